"""The options of each generator, parsed by one piece of code wherever they are given.

``amodaldata gen shapes|overlay`` (``cli.py``) and scenes generated while training
(``python -m models.train --generate 'shapes --per-class 6'``, :mod:`models.generated`) read a generator's
options through the same click parameters (:func:`shapes_options`, :func:`overlay_options`) and turn them into
a config with the same function (:func:`generator_config`); :func:`parse_generator` runs click's parser of a
command holding just those parameters on a string of them. The options of a run (``--n``, ``--out``,
``--seed``, ...) belong to the ``gen`` commands, not here.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from amodaldata.errors import AmodalDataError

#: The generators, by the name of their ``gen`` command.
GENERATOR_NAMES = ("shapes", "overlay")


def parse_range(number: type) -> Callable[[click.Context, click.Parameter, str], tuple[Any, Any]]:
    """A click callback reading ``"N"`` as ``(N, N)`` and ``"LOW-HIGH"`` as ``(LOW, HIGH)``, each a ``number``."""
    def parse(ctx: click.Context, param: click.Parameter, value: str) -> tuple[Any, Any]:
        try:
            low, _, high = value.partition("-")
            return number(low), number(high or low)
        except ValueError:
            what = "an integer" if number is int else "a number"
            raise click.BadParameter(f"expected {what} or LOW-HIGH, got {value!r}") from None
    return parse


def _apply(options: list[Callable[[Callable[..., Any]], Callable[..., Any]]],
           func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(options):
        func = option(func)
    return func


def shapes_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The shapes generator's options (Liu et al. 2019, Sec. 3; the defaults are the paper's)."""
    return _apply([
        click.option("--per-class", default="6", show_default=True, callback=parse_range(int),
                     help="Shapes per class and scene: N, or LOW-HIGH drawn per scene."),
        click.option("--size", default=256, show_default=True, type=click.IntRange(min=8), help="Image side, px."),
        click.option("--classes", default="circle,triangle,rectangle", show_default=True,
                     help="Comma-separated: circle, triangle, rectangle, ellipse, square, star."),
        click.option("--size-jitter", default=0.0, show_default=True, type=float,
                     help="Scale each shape by a factor uniform in [1 - j, 1 + j]."),
        click.option("--outline", default=0.01, show_default=True, type=float,
                     help="Outline width, fraction of the side."),
        click.option("--fill", type=click.Choice(["same", "gray", "random"]), default="same", show_default=True,
                     help="same: white like the background (the paper); gray / random: a gray level / RGB colour "
                     "per shape."),
        click.option("--mask-size", default=64, show_default=True, type=click.IntRange(min=0),
                     help="Side of the extra low-resolution amodal masks (0: none)."),
        click.option("--keep-hidden", is_flag=True, help="Keep shapes with no visible pixel in the annotations."),
        click.option("--image-mode", type=click.Choice(["L", "RGB", "1"]),
                     help="PNG mode: 8-bit gray, RGB, or 1-bit (fill 'same' only; decoded as bool arrays) [L, RGB "
                     "for --fill random]."),
    ], func)


def overlay_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The overlay generator's options (Li & Malik style pastes; Zhu et al. 2017, Sec. 5.1)."""
    return _apply([
        click.option("--source", nargs=2, type=(str, click.Path(exists=True, path_type=Path)), default=None,
                     metavar="FORMAT INPUT", help="Source dataset: cocoa, cocoa-cls, kins, d2sa, bsds or parquet (a "
                     "folder of shards) and its file or folder [the built-in COCOA demo data]."),
        click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="Folder of the source images (formats that embed images need none)."),
        click.option("--objects", default="1-3", show_default=True, callback=parse_range(int),
                     help="Objects pasted per scene: N or LOW-HIGH."),
        click.option("--scale", default="0.5-1.25", show_default=True, callback=parse_range(float),
                     help="Scale factor range of a pasted object."),
        click.option("--min-visible", default=0.25, show_default=True, type=click.FloatRange(0, 1),
                     help="Least visible fraction a paste may leave an occluded region."),
        click.option("--min-area", default=400, show_default=True, type=click.IntRange(min=1),
                     help="Least area (px) of a source object."),
        click.option("--image-format", type=click.Choice(["jpeg", "png"]), default="jpeg", show_default=True),
    ], func)


def _shapes_config(*, per_class: tuple[int, int], size: int, classes: str, size_jitter: float, outline: float,
                   fill: str, mask_size: int, keep_hidden: bool, image_mode: str | None) -> Any:
    from .shapes import ShapesConfig

    return ShapesConfig(size=size, classes=tuple(c.strip() for c in classes.split(",") if c.strip()),
                        per_class=per_class, size_jitter=size_jitter, outline=outline, fill=fill,
                        mask_size=mask_size, keep_hidden=keep_hidden, image_mode=image_mode)


def _overlay_config(*, source: tuple[str, Path] | None, images: Path | None, objects: tuple[int, int],
                    scale: tuple[float, float], min_visible: float, min_area: int, image_format: str) -> Any:
    from amodaldata.data import COCOA_DEMO_DIR, COCOA_DEMO_JSON

    from .overlay import OverlayConfig

    fmt, path = source if source else ("cocoa", COCOA_DEMO_JSON)
    if source is None and images is None:
        images = COCOA_DEMO_DIR
    return OverlayConfig(fmt, str(path), str(images) if images else None, objects=objects, scale=scale,
                         min_visible=min_visible, min_area=min_area, image_format=image_format)


_OPTIONS = {"shapes": shapes_options, "overlay": overlay_options}
_CONFIGS = {"shapes": _shapes_config, "overlay": _overlay_config}


def generator_config(name: str, **options: Any) -> Any:
    """The config (``ShapesConfig`` / ``OverlayConfig``) of the generator ``name`` from its parsed options; a
    value the config refuses is a :class:`click.UsageError`."""
    try:
        return _CONFIGS[name](**options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def generator_command(name: str) -> click.Command:
    """A click command holding only the options of the generator ``name``; invoked, it returns the config."""
    if name not in _OPTIONS:
        raise AmodalDataError(f"unknown generator {name!r}; choose one of {', '.join(GENERATOR_NAMES)}")
    def config(**options: Any) -> Any:
        return generator_config(name, **options)

    return click.command(name, help=f"Options of `amodaldata gen {name}` (without those of the run: --n, --out, "
                         "...).")(_OPTIONS[name](config))


def parse_generator(spec: str | Sequence[str]) -> Any:
    """The generator config of ``spec``: its name and the options of ``amodaldata gen NAME``, as one shell-quoted
    string (``"shapes --per-class 3-9 --size 128"``) or a list of words.

    Bad options are an :class:`~amodaldata.errors.AmodalDataError` carrying click's message; ``--help`` prints
    the generator's options and exits (``SystemExit``)."""
    words = shlex.split(spec) if isinstance(spec, str) else list(spec)
    if not words:
        raise AmodalDataError(f"no generator given; start with one of {', '.join(GENERATOR_NAMES)}")
    command = generator_command(words[0])
    try:
        with command.make_context(words[0], words[1:]) as ctx:
            return command.invoke(ctx)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        raise AmodalDataError(f"generator options {shlex.join(words)!r}: {exc.format_message()}") from None
