"""The ``amodaldata`` command. Thin: it parses options and calls the library; the work is done in the packages."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable

import click

from amodaldata import __version__
from amodaldata.engines import ENGINES
from amodaldata.errors import AmodalDataError, ErrorPolicy
from generators.options import generator_config, overlay_options, shapes_options


def reports_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an :class:`AmodalDataError`, or a file-system error on a named path (an output under an existing
    file, a folder that cannot be written), into a one-line message on stderr and exit code 1, and Ctrl-C into
    "interrupted" and exit code 130 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AmodalDataError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)
        except OSError as exc:
            if exc.filename is None:
                raise
            hint = " (a folder on that path is a file)" if isinstance(exc, (NotADirectoryError, FileExistsError)) \
                else ""
            click.echo(f"error: {exc.filename}: {exc.strerror}{hint}", err=True)
            sys.exit(1)
        except (KeyboardInterrupt, SystemError) as exc:
            if not _interrupted(exc):
                raise
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def _interrupted(exc: BaseException | None) -> bool:
    """Whether ``exc`` is Ctrl-C, which inside a compiled kernel surfaces as a SystemError caused by it."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__
    return False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="amodaldata")
def main() -> None:
    """Read, convert, measure, generate and evaluate amodal segmentation data."""


@main.command()
@click.argument("args", nargs=-1, required=True, metavar="[SRC_FORMAT] INPUT")
@click.option("--from", "from_format", help="Input format (same as SRC_FORMAT); without either, it is told "
              "from the content.")
@click.option("--to", "dst_format", required=True, help="Output format: parquet, semdist, layered, or an "
              "annotation format (cocoa, bsds, cocoa-cls, kins, kins-2020, d2sa).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output file or folder.")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of the image files (needed to embed images in shards).")
@click.option("--layers", type=click.IntRange(min=1), help="layered: number of layers K [2].")
@click.option("--max-level", type=click.IntRange(min=1), help="semdist: cap of the layering maps [4].")
@click.option("--split", help="parquet: split name in the shard file names [train].")
@click.option("--scenes-per-shard", type=click.IntRange(min=1), help="parquet: rows per shard [1000].")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="fail: stop at the first bad item; skip: drop it and report it at the end.")
@click.option("--label-map", help="JSON file of free-text name -> category id or name (or the built-in "
              "'cocoa-coco'), for targets with categories.")
@click.option("--overwrite", is_flag=True, help="Replace an existing non-empty output.")
@click.option("--allow-empty", is_flag=True, help="Write the output even when no region is written (else an error "
              "says why).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@reports_errors
def convert(args: tuple[str, ...], from_format: str | None, dst_format: str, out: Path, images: Path | None,
            layers: int | None, max_level: int | None, split: str | None, scenes_per_shard: int | None,
            on_error: str, label_map: str | None, overwrite: bool, allow_empty: bool, progress: bool) -> None:
    """Convert INPUT (in SRC_FORMAT, or --from, or told from its content) to another format or to targets.

    What the target cannot hold is listed ("lost: ..."); nothing is dropped silently.

    \b
    amodaldata convert cocoa COCO_amodal_val2014.json --to semdist --out targets/
    amodaldata convert COCO_amodal_val2014.json --to layered --layers 3 --out layered/
    amodaldata convert cocoa COCO_amodal_val2014.json --images val2014/ --to parquet --out shards/
    amodaldata convert instances_val.json --to cocoa --out kins_as_cocoa.json
    amodaldata convert cocoa COCO_amodal_val2014.json --to kins --label-map names.json --out kins.json
    """
    from converters.convert import convert as run

    if len(args) > 2:
        raise click.UsageError("expected [SRC_FORMAT] INPUT")
    src_format, input = (args[0], Path(args[1])) if len(args) == 2 else (None, Path(args[0]))
    if src_format is not None and from_format is not None and src_format != from_format:
        raise click.UsageError(f"SRC_FORMAT {src_format!r} and --from {from_format!r} disagree")
    if not input.exists():
        raise click.BadParameter(f"{input} does not exist", param_hint="INPUT")
    report = run(src_format or from_format, input, dst_format, out, images=images, on_error=on_error,
                 overwrite=overwrite, progress=progress, allow_empty=allow_empty, layers=layers,
                 max_level=max_level, split=split, scenes_per_shard=scenes_per_shard, label_map=label_map)
    read_as = "" if (src_format or from_format) else f" (input read as {report.source_format})"
    click.echo(f"{report.summary()}{read_as}")
    for loss in report.losses:
        click.echo(f"lost: {loss}", err=True)
    if report.skipped:
        click.echo(ErrorPolicy("skip", report.skipped).summary(), err=True)


@main.command()
@click.argument("input", type=click.Path(exists=True, path_type=Path))
@click.option("--from", "src_format", help="Input format (cocoa, bsds, cocoa-cls, kins, d2sa, parquet); without it, "
              "told from the content.")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of the image files: check that every image is on disk (shards: every image stored "
              "without bytes).")
@click.option("--fix", is_flag=True, help="Repair self-intersecting polygons (shapely make_valid) into --out "
              "(annotation files only).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="With --fix: the repaired file.")
@reports_errors
def validate(input: Path, src_format: str | None, images: Path | None, fix: bool, out: Path | None) -> None:
    """Check INPUT's schema and geometry; report counts per problem with the first examples.

    INPUT is an annotation file or a Parquet shard file or folder. Exits 0 only when no problem is left (with
    --fix, repaired polygons count as solved).

    \b
    amodaldata validate COCO_amodal_val2014.json --images val2014/
    amodaldata validate instances_train.json --from kins --fix --out instances_train.fixed.json
    amodaldata validate shards/
    """
    from amodaldata.errors import FormatError
    from converters.detect import detect_format
    from converters.formats import FORMATS

    if fix != (out is not None):
        raise click.UsageError("--fix and --out go together")
    fmt = src_format or detect_format(input)
    entry = FORMATS.get(fmt)
    if entry is None or entry.validate is None:
        checked = [name for name, f in FORMATS.items() if f.validate is not None]
        raise FormatError(f"validate checks {', '.join(checked)}, not {fmt!r}", file=str(input))
    if fix and not entry.repairs:
        raise click.UsageError(f"--fix repairs annotation files only; {fmt} is not rewritten (fix the source "
                               "and convert it again)")
    report = entry.validate(input, images=images, **({"fix_out": out} if fix else {}))
    click.echo("\n".join(report.lines()))
    sys.exit(0 if report.clean else 1)


@main.command()
@click.argument("input", type=click.Path(exists=True, path_type=Path))
@click.option("--image-id", help="Image id of the scene to draw.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Picture to write (.png or .jpg); with --worst, the folder of the pictures.")
@click.option("--from", "src_format", help="Input format (cocoa, parquet, ...); without it, told from the content.")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of the image files (without it: the shard's embedded image, else a grey canvas).")
@click.option("--annotator", help="With several annotations of the image (BSDS): author name or 0-based index "
              "[first].")
@click.option("--max-level", type=click.IntRange(min=1), default=4, show_default=True,
              help="Cap of the global layering map.")
@click.option("--pred", "pred", type=click.Path(exists=True, path_type=Path),
              help="Predictions (COCO results JSON or prediction shards) to draw over the ground truth: matched "
              "(blue), missed (orange), false positive (magenta), as matched at IoU .5.")
@click.option("--min-score", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="With --pred: predictions scoring below are left out (of the matching too).")
@click.option("--classes", type=click.Choice(["agnostic", "aware"]), default="agnostic", show_default=True,
              help="With --pred: match within a category (aware) or not.")
@click.option("--worst", type=click.IntRange(min=1),
              help="With --pred: draw the N images of lowest recall into the --out folder.")
@reports_errors
def show(input: Path, image_id: str | None, out: Path, src_format: str, images: Path | None, annotator: str | None,
         max_level: int, pred: Path | None, min_score: float, classes: str, worst: int | None) -> None:
    """Draw one scene of INPUT: outlines, visible parts filled, hidden parts hatched, and its target maps; or,
    with --pred, a model's predictions over it; or, with --pred --worst N, the N images it does worst on.

    \b
    amodaldata show amodaldata/data/cocoa/COCOA_demo.json --images amodaldata/data/cocoa --image-id 6608 \\
        --out scene.png
    amodaldata show shards/ --from parquet --pred results.json --image-id 7 --out pred.png
    amodaldata show shards/ --from parquet --pred results.json --worst 20 --out gallery/
    """
    from amodaldata.render import render_scene, save_image, select_scene
    from converters import read

    if (image_id is None) == (worst is None):
        raise click.UsageError("give either --image-id or --worst (with --pred)")
    if worst is not None and pred is None:
        raise click.UsageError("--worst ranks the images by the recall of --pred")
    scenes = read(input, format=src_format, images=images, load_images=images is not None)
    if pred is None:
        scene = select_scene(scenes, image_id, annotator)
        click.echo(f"wrote {save_image(render_scene(scene, max_level=max_level), out)}")
        return
    _show_predictions(list(scenes), pred, image_id, out, annotator, min_score, classes == "aware", worst)


def _show_predictions(scenes: list, pred: Path, image_id: str | None, out: Path, annotator: str | None,
                      min_score: float, class_aware: bool, worst: int | None) -> None:
    from amodaldata.evaluation import evaluate_segmentation
    from amodaldata.evaluation.analysis import image_recalls
    from amodaldata.evaluation.predictions import group_by_image, image_key, image_sizes
    from amodaldata.render import render_predictions, save_image, select_scene
    from converters.results import read_results

    predictions = [p for p in read_results(pred, image_sizes(scenes)).predictions if p.score >= min_score]
    by_image, _ = group_by_image(predictions, [])
    if worst is None:
        scene = select_scene(scenes, image_id, annotator)
        overlay = render_predictions(scene, by_image.get(image_key(scene.id), []), class_aware=class_aware)
        click.echo(f"wrote {save_image(overlay.picture, out)} (recall {overlay.recall:.2f})")
        return
    result = evaluate_segmentation(scenes, predictions, class_aware=class_aware, min_occlusion=None)
    for rank, (worst_id, matched, missed) in enumerate(image_recalls(result)[:worst], start=1):
        scene = select_scene(scenes, worst_id)
        overlay = render_predictions(scene, by_image.get(image_key(scene.id), []), class_aware=class_aware)
        path = save_image(overlay.picture, out / f"worst-{rank:03d}-image-{worst_id}.png")
        click.echo(f"wrote {path} (recall {matched}/{matched + missed})")


@main.command()
@click.argument("args", nargs=-1, required=True, metavar="[FORMAT] INPUT")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of the image files (for readers that need it to know image sizes).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every figure to this JSON file.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write PNG plots (Fig. 6, 7, 8) into this folder (needs the 'plots' extra: matplotlib).")
@click.option("--table", "table_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the measures of every scene and region as scenes.parquet and regions.parquet here.")
@click.option("--graphs", "graphs_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every scene's occlusion DAG as JSON lines (networkx node-link form) to this file.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="fail: stop at the first bad item; skip: drop it and report it at the end.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@reports_errors
def stats(args: tuple[str, ...], images: Path | None, json_out: Path | None, plots_dir: Path | None,
          table_dir: Path | None, graphs_out: Path | None, on_error: str, progress: bool) -> None:
    """Measure INPUT (in FORMAT, or told from its content) as Zhu et al. measured COCOA and BSDS: Fig. 5a,
    Table 1, Fig. 6-8.

    \b
    amodaldata stats cocoa amodaldata/data/cocoa/COCOA_demo.json --json stats.json --plots plots/
    amodaldata stats BSDS_amodal_val.json
    amodaldata stats shards/ --table tables/ --graphs dags.jsonl
    """
    import contextlib

    from amodaldata.stats import compute_stats, format_report, plots_available, write_json, write_plots
    from amodaldata.stats.plots import MISSING
    from amodaldata.stats.table import write_graphs, write_tables
    from converters import read

    if len(args) > 2:
        raise click.UsageError("expected [FORMAT] INPUT")
    src_format, input = (args[0], Path(args[1])) if len(args) == 2 else (None, Path(args[0]))
    if not input.exists():
        raise click.BadParameter(f"{input} does not exist", param_hint="INPUT")
    if plots_dir is not None and not plots_available():
        raise click.ClickException(MISSING)
    policy = ErrorPolicy(on_error)
    with contextlib.ExitStack() as outputs:
        sinks = [outputs.enter_context(write_tables(table_dir))] if table_dir is not None else []
        sinks += [outputs.enter_context(write_graphs(graphs_out))] if graphs_out is not None else []
        result = compute_stats(read(input, format=src_format, images=images, on_error=policy), progress=progress,
                               sinks=sinks)
    click.echo(format_report(result))
    if table_dir is not None:
        click.echo(f"wrote {table_dir / 'scenes.parquet'} and {table_dir / 'regions.parquet'}")
    if graphs_out is not None:
        click.echo(f"wrote {graphs_out}")
    if json_out is not None:
        click.echo(f"wrote {write_json(result, json_out)}")
    if plots_dir is not None:
        for path in write_plots(result, plots_dir):
            click.echo(f"wrote {path}")
    if policy.skipped:
        click.echo(policy.summary(), err=True)


# -- eval: `eval GT PRED` (segmentation), `eval order GT PRED`, `eval oracle GT` --------------------------
class _EvalGroup(click.Group):
    """A group whose default command is ``segm``: an unknown first argument is taken as the GT path."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["segm", *args]
        return super().parse_args(ctx, args)


def _read_ground_truth(gt: Path, src_format: str | None, on_error: str) -> list:
    from converters import read

    policy = ErrorPolicy(on_error)
    scenes = list(read(gt, format=src_format, on_error=policy))
    if policy.skipped:
        click.echo(policy.summary(), err=True)
    return scenes


def _read_ground_truth_and_predictions(gt: Path, pred: Path, src_format: str | None, on_error: str) -> tuple:
    from amodaldata.evaluation.predictions import image_sizes
    from converters.results import read_results

    scenes = _read_ground_truth(gt, src_format, on_error)
    return scenes, read_results(pred, image_sizes(scenes))


def _write_outputs(summary: dict, json_out: Path | None, rows: list, row_type: type, csv_out: Path | None) -> None:
    """``--json`` (the summary) and ``--csv`` (one line per row dataclass) of an eval command."""
    from amodaldata.evaluation.report import write_csv, write_json

    if json_out:
        click.echo(f"wrote {write_json(summary, json_out)}")
    if csv_out:
        columns = list(row_type.__dataclass_fields__)
        click.echo(f"wrote {write_csv([r.to_dict() for r in rows], csv_out, columns)}")


def _layers(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        out: set[int] = set()
        for part in value.split(","):
            lo, _, hi = part.strip().partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give K, a list 1,2,3 or a range 1-5") from None
    if not out or min(out) < 1:
        raise click.BadParameter(f"{value!r}: layer counts start at 1")
    return sorted(out)


def _max_dets(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        out = tuple(sorted(int(v) for v in value.split(",")))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give comma-separated integers") from None
    if not out or out[0] < 1:
        raise click.BadParameter(f"{value!r}: max detections must be positive")
    return out


_gt_arg = click.argument("gt", type=click.Path(exists=True, path_type=Path))
_from_opt = click.option("--from", "src_format", help="Ground-truth format (cocoa, bsds, kins, parquet, ...) "
                         "[detected].")
_annotator_opt = click.option("--annotator", type=click.Choice(["first", "each"]), default="first",
                              show_default=True, help="Several annotations of an image: score the first (the "
                              "official COCOA API), or each annotator set and average.")
_on_error_opt = click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                             help="Bad ground-truth item: stop, or drop it and report it.")
_classes_opt = click.option("--classes", type=click.Choice(["agnostic", "aware"]), default="agnostic",
                            show_default=True, help="Class-agnostic (COCOA) or class-aware (COCOA-cls, KINS, D2SA).")
_min_occ_opt = click.option("--min-occlusion", type=click.FloatRange(0, 1), default=0.15, show_default=True,
                            help="Occluded-only bucket: regions whose occlusion rate is above this.")
_json_opt = click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
                         help="Also write the results as JSON.")
_plots_opt = click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
                          help="Write the figures and their numbers (plots.json) into this folder (needs the "
                          "'plots' extra: matplotlib).")
_plot_format_opt = click.option("--plot-format", type=click.Choice(["png", "svg"]), default="png", show_default=True,
                                help="File format of the --plots figures.")


def _eval_outputs(csv_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The outputs every scoring command shares (--json, --csv with ``csv_help``, --plots, --plot-format), its
    --on-error and its error reporting."""
    csv_opt = click.option("--csv", "csv_out", type=click.Path(dir_okay=False, path_type=Path), help=csv_help)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed([_json_opt, csv_opt, _plots_opt, _plot_format_opt, _on_error_opt, reports_errors]):
            func = option(func)
        return func

    return decorate


def _check_plots(plots_dir: Path | None, annotator: str) -> None:
    """Refuse --plots up front (before any scoring) when matplotlib is missing or the curves would be averaged."""
    from amodaldata.plotting import MISSING, plots_available

    if plots_dir is None:
        return
    if not plots_available():
        raise click.ClickException(MISSING)
    if annotator != "first":
        raise click.UsageError("--plots draws the curves of one annotator set: use --annotator first")


def _write_plots(plots: list, plots_dir: Path | None, fmt: str) -> None:
    from amodaldata.evaluation.plots import write_plots

    for path in write_plots(plots, plots_dir, fmt):
        click.echo(f"wrote {path}")


@main.group("eval", cls=_EvalGroup)
def eval_group() -> None:
    """Score predictions: amodal segmentation (default), pairwise depth order, or the K-layer oracle.

    \b
    amodaldata eval GT PRED [--json FILE] [--csv FILE]      amodal AP/AR by occlusion level
    amodaldata eval order GT PRED                           pairwise depth order
    amodaldata eval oracle GT --layers 1-5                  masks from the first K ground-truth layers
    """


@eval_group.command("segm")
@_gt_arg
@click.argument("pred", type=click.Path(exists=True, path_type=Path))
@_from_opt
@_classes_opt
@click.option("--gt-mask", type=click.Choice(["amodal", "visible"]), default="amodal", show_default=True,
              help="Score against amodal masks, or visible masks (the amodal one where none is given and the "
              "region is unoccluded).")
@click.option("--part", type=click.Choice(["amodal", "visible", "occluded", "all"]), default="amodal",
              show_default=True, help="Score the predicted amodal masks, or their visible / occluded parts "
              "(the predictions' 'visible' / 'occluded' masks) against the same parts of GT; all: the three, "
              "and the summary of Yin (2021) Table 1.")
@_min_occ_opt
@_annotator_opt
@click.option("--max-dets", default="1,10,100,1000", show_default=True, callback=_max_dets,
              help="Max detections per image for AR (AP at the largest).")
@_eval_outputs("Write the per-image matches (every detection and every missed region) as CSV.")
def eval_segm(gt: Path, pred: Path, src_format: str | None, classes: str, gt_mask: str, part: str,
              min_occlusion: float, annotator: str, max_dets: tuple[int, ...], json_out: Path | None,
              csv_out: Path | None, plots_dir: Path | None, plot_format: str, on_error: str) -> None:
    """Amodal segmentation AP/AR of PRED against GT, per occlusion level and subset.

    PRED is a COCO results JSON or prediction shards (regions scored by extra["score"]). --plots draws the
    precision-recall curves per level, COCO's error breakdown, AP per class and AP against the occlusion rate
    (of the amodal part with --part all)."""
    from amodaldata.evaluation import evaluate_segmentation
    from amodaldata.evaluation.report import parts_summary, segmentation_table
    from amodaldata.evaluation.segmentation import MatchRow

    _check_plots(plots_dir, annotator)
    scenes, preds = _read_ground_truth_and_predictions(gt, pred, src_format, on_error)
    parts = ["amodal", "visible", "occluded"] if part == "all" else [part]
    results = {p: evaluate_segmentation(scenes, preds, class_aware=classes == "aware", gt_mask=gt_mask, part=p,
                                        min_occlusion=min_occlusion, annotator=annotator, max_dets=max_dets)
               for p in parts}
    for p, res in results.items():
        if len(parts) > 1:
            click.echo(f"-- {p} part")
        click.echo(segmentation_table(res))
    if len(parts) > 1:
        click.echo(parts_summary(results, min_occlusion))
    result = results[parts[0]]
    summary = result.to_dict() if len(parts) == 1 else {p: r.to_dict() for p, r in results.items()}
    _write_outputs(summary, json_out, result.matches, MatchRow, csv_out)
    if plots_dir is not None:
        from amodaldata.evaluation.plots import segmentation_plots

        _write_plots(segmentation_plots(scenes, preds, result), plots_dir, plot_format)


@eval_group.command("order")
@_gt_arg
@click.argument("pred", type=click.Path(exists=True, path_type=Path))
@_from_opt
@click.option("--source", type=click.Choice(["auto", "order", "masks", "semdist"]), default="auto",
              show_default=True, help="Predicted order from the 'order' ranks, the amodal + visible masks, or the "
              "sem-dist maps (auto: the first every detection has).")
@click.option("--iou", "iou_threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Matching IoU threshold.")
@_annotator_opt
@_eval_outputs("Write every ground-truth pair with its verdict as CSV.")
def eval_order(gt: Path, pred: Path, src_format: str | None, source: str, iou_threshold: float, annotator: str,
          json_out: Path | None, csv_out: Path | None, plots_dir: Path | None, plot_format: str,
          on_error: str) -> None:
    """Pairwise depth order of PRED on every pair of overlapping GT regions, with the trivial baselines.

    --plots draws the accuracy against the pair's overlap size and occlusion rate."""
    from amodaldata.evaluation import evaluate_order
    from amodaldata.evaluation.order import PairRow
    from amodaldata.evaluation.report import order_table

    _check_plots(plots_dir, "first")
    scenes, preds = _read_ground_truth_and_predictions(gt, pred, src_format, on_error)
    result = evaluate_order(scenes, preds, source=source, iou_threshold=iou_threshold, annotator=annotator)
    click.echo(order_table(result))
    _write_outputs(result.to_dict(), json_out, result.pairs, PairRow, csv_out)
    if plots_dir is not None:
        from amodaldata.evaluation.plots import order_plots

        _write_plots(order_plots(scenes, result), plots_dir, plot_format)


@eval_group.command("oracle")
@_gt_arg
@_from_opt
@click.option("--layers", default="1-5", show_default=True, callback=_layers,
              help="Numbers of layers K to try: K, a list 1,2,3 or a range 1-5.")
@_classes_opt
@_min_occ_opt
@_annotator_opt
@_json_opt
@_on_error_opt
@reports_errors
def eval_oracle(gt: Path, src_format: str | None, layers: list[int], classes: str, min_occlusion: float,
           annotator: str, json_out: Path | None, on_error: str) -> None:
    """Score instance masks rebuilt from the first K layers of GT's layer stack (Liu et al. 2019, Table 2)."""
    from amodaldata.evaluation import evaluate_oracle
    from amodaldata.evaluation.report import oracle_table, write_json

    scenes = _read_ground_truth(gt, src_format, on_error)
    result = evaluate_oracle(scenes, layers, class_aware=classes == "aware", min_occlusion=min_occlusion,
                             annotator=annotator)
    click.echo(oracle_table(result))
    if json_out:
        click.echo(f"wrote {write_json(result.to_dict(), json_out)}")


@eval_group.command("simulate")
@_gt_arg
@_from_opt
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The COCO results JSON file to write.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--max-shift", default=3, show_default=True, type=click.IntRange(min=0),
              help="Largest shift of a predicted mask, in pixels.")
@click.option("--confusion", default=0.1, show_default=True, type=click.FloatRange(0, 1),
              help="Probability of a wrong category.")
@click.option("--duplicate", default=0.05, show_default=True, type=click.FloatRange(0, 1),
              help="Probability of a second, shifted detection.")
@click.option("--background", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Mean number of false positives per image.")
@_on_error_opt
@reports_errors
def eval_simulate(gt: Path, src_format: str | None, out: Path, seed: int, max_shift: int, confusion: float,
                  duplicate: float, background: float, on_error: str) -> None:
    """Write the predictions of a simulated detector for GT: its regions with the errors a real amodal model
    makes (misses and lost amodal completion growing with occlusion, shifts, wrong classes, duplicates,
    background), to try eval, its plots and show --pred without a model."""
    from amodaldata.evaluation.simulate import simulated_predictions
    from converters.results import write_results

    scenes = _read_ground_truth(gt, src_format, on_error)
    predictions = simulated_predictions(scenes, seed=seed, max_shift=max_shift, confusion=confusion,
                                        duplicate=duplicate, background=background)
    click.echo(f"wrote {write_results(predictions, out)} ({len(predictions)} detections)")


# -- gen: synthetic datasets ------------------------------------------------------------------------------
def _gen_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every generator shares: size of the run, where it goes, how it runs."""
    options = [
        click.option("--n", "n", required=True, type=click.IntRange(min=1), help="Number of scenes."),
        click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Output folder (shards + README.md); rerunning the same command resumes."),
        click.option("--seed", default=0, show_default=True, type=int, help="Seed; shard i uses (seed, i)."),
        click.option("--split", default="train", show_default=True,
                     help="Split name in the shard file names, as Hugging Face names it (val -> validation)."),
        click.option("--scenes-per-shard", default=1000, show_default=True, type=click.IntRange(min=1)),
        click.option("--workers", type=click.IntRange(min=1),
                     help="Processes generating, this one included [the CPUs this process may use]."),
        click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
                     help="local: process pool; ray: Ray tasks on the cluster ray.init() finds."),
        click.option("--progress/--no-progress", default=True, show_default=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.group("gen")
def gen_group() -> None:
    """Generate synthetic amodal datasets with exact ground truth, as Parquet shards."""


def _run_generator(config: Any, n: int, out: Path, seed: int, split: str, scenes_per_shard: int,
                   workers: int | None, engine: str, progress: bool) -> None:
    from concurrent.futures.process import BrokenProcessPool

    from amodaldata.shards import canonical_split
    from generators.tasks import generate_dataset

    def done() -> str:
        shards = len(list(out.glob(f"{canonical_split(split)}-*.parquet")))
        return f"{shards} shard(s) complete in {out}; rerun the same command to resume"

    try:
        report = generate_dataset(config, out, n, seed=seed, split=split, scenes_per_shard=scenes_per_shard,
                                  workers=workers, engine=engine, progress=progress)
    except BrokenProcessPool:
        click.echo(f"error: a worker process died (killed, or out of memory?); {done()}", err=True)
        sys.exit(1)
    except (KeyboardInterrupt, SystemError) as exc:
        if not _interrupted(exc):
            raise
        click.echo(f"interrupted: {done()}", err=True)
        sys.exit(130)
    click.echo(report.summary())


@gen_group.command("shapes")
@_gen_options
@shapes_options
@reports_errors
def gen_shapes(n: int, out: Path, seed: int, split: str, scenes_per_shard: int, workers: int | None, engine: str,
               progress: bool, **options: Any) -> None:
    """Outlined shapes stacked in depth (layered-embeddings paper, Sec. 3; the defaults are the paper's).

    \b
    amodaldata gen shapes --n 1000 --per-class 6 --out shapes/
    amodaldata gen shapes --n 100000 --per-class 3-9 --classes circle,square,star --fill random --out big/
    """
    config = generator_config("shapes", **options)
    _run_generator(config, n, out, seed, split, scenes_per_shard, workers, engine, progress)


@gen_group.command("overlay")
@_gen_options
@overlay_options
@reports_errors
def gen_overlay(n: int, out: Path, seed: int, split: str, scenes_per_shard: int, workers: int | None, engine: str,
                progress: bool, **options: Any) -> None:
    """Unoccluded real objects pasted over other images (Li & Malik style; COCOA paper Sec. 5.1).

    \b
    amodaldata gen overlay --n 100 --out overlay/            # the built-in COCOA demo data
    amodaldata gen overlay --source cocoa COCO_amodal_train2014.json --images train2014/ --n 10000 --out ov/
    """
    config = generator_config("overlay", **options)
    _run_generator(config, n, out, seed, split, scenes_per_shard, workers, engine, progress)


if __name__ == "__main__":
    main()
