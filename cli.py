"""The ``amodaldata`` command. Thin: it parses options and calls the library; the work is done in the packages."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable

import click

from amodaldata import __version__
from amodaldata.errors import AmodalDataError, ErrorPolicy


def reports_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an :class:`AmodalDataError` into a one-line message on stderr and exit code 1 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AmodalDataError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="amodaldata")
def main() -> None:
    """Read, convert, measure, generate and evaluate amodal segmentation data."""


@main.command()
@click.argument("src_format")
@click.argument("input", type=click.Path(exists=True, path_type=Path))
@click.option("--to", "dst_format", required=True, help="Output format: parquet, semdist, layered, or an "
              "annotation format.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output file or folder.")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of the image files (needed to embed images in shards).")
@click.option("--layers", type=click.IntRange(min=1), help="layered: number of layers K [2].")
@click.option("--max-level", type=click.IntRange(min=1), help="semdist: cap of the layering maps [4].")
@click.option("--split", help="parquet: split name in the shard file names [train].")
@click.option("--scenes-per-shard", type=click.IntRange(min=1), help="parquet: rows per shard [1000].")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="fail: stop at the first bad item; skip: drop it and report it at the end.")
@click.option("--overwrite", is_flag=True, help="Replace an existing non-empty output.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@reports_errors
def convert(src_format: str, input: Path, dst_format: str, out: Path, images: Path | None, layers: int | None,
            max_level: int | None, split: str | None, scenes_per_shard: int | None, on_error: str,
            overwrite: bool, progress: bool) -> None:
    """Convert INPUT (in SRC_FORMAT) to another format or to training targets.

    \b
    amodaldata convert cocoa COCO_amodal_val2014.json --to semdist --out targets/
    amodaldata convert cocoa COCO_amodal_val2014.json --to layered --layers 3 --out layered/
    amodaldata convert cocoa COCO_amodal_val2014.json --images val2014/ --to parquet --out shards/
    """
    from converters.convert import convert as run

    report = run(src_format, input, dst_format, out, images=images, on_error=on_error, overwrite=overwrite,
                 progress=progress, layers=layers, max_level=max_level, split=split,
                 scenes_per_shard=scenes_per_shard)
    click.echo(f"wrote {report.scenes} scenes ({report.regions} regions) to {report.output}")
    for loss in report.losses:
        click.echo(f"lost: {loss}", err=True)
    if report.skipped:
        click.echo(ErrorPolicy("skip", report.skipped).summary(), err=True)


@main.command()
@click.argument("input", type=click.Path(exists=True, path_type=Path))
@click.option("--image-id", required=True, help="Image id of the scene to draw.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Picture to write (.png or .jpg).")
@click.option("--from", "src_format", default="cocoa", show_default=True, help="Input format (cocoa, parquet, ...).")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of the image files (without it: the shard's embedded image, else a grey canvas).")
@click.option("--annotator", help="With several annotations of the image (BSDS): author name or 0-based index "
              "[first].")
@click.option("--max-level", type=click.IntRange(min=1), default=4, show_default=True,
              help="Cap of the global layering map.")
@reports_errors
def show(input: Path, image_id: str, out: Path, src_format: str, images: Path | None, annotator: str | None,
         max_level: int) -> None:
    """Draw one scene of INPUT: outlines, visible parts filled, hidden parts hatched, and its target maps.

    \b
    amodaldata show amodaldata/data/cocoa/COCOA_demo.json --images amodaldata/data/cocoa --image-id 6608 \\
        --out scene.png
    """
    from amodaldata.render import render_scene, save_image, select_scene
    from converters import READERS, read
    from converters.convert import _accepted

    options = _accepted(READERS[src_format], {"images": images, "load_images": images is not None}) \
        if src_format in READERS else {}
    scene = select_scene(read(src_format, input, **options), image_id, annotator)
    click.echo(f"wrote {save_image(render_scene(scene, max_level=max_level), out)}")


if __name__ == "__main__":
    main()
