"""The one table of formats: each format's name, reader, writer, detector, checks, and whether it embeds images.

:data:`FORMATS` is the table; ``converters.READERS`` / ``WRITERS`` / ``EMBEDS_IMAGES``, format detection
(:func:`converters.detect.detect_format`) and ``amodaldata validate`` are derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from amodaldata.scene import Scene

from . import detect
from .bsds import read_bsds, write_bsds
from .cocoa import read_cocoa, write_cocoa
from .cocoa_cls import read_cocoa_cls, write_cocoa_cls
from .d2sa import read_d2sa, write_d2sa
from .kins import read_kins, write_kins, write_kins_2020
from .parquet import read_parquet, write_parquet
from .targets import read_layered, read_semdist, write_layered, write_semdist

if TYPE_CHECKING:
    from amodaldata.validate import ValidationReport


@dataclass(frozen=True)
class Format:
    """One format. ``read`` / ``write``: its reader and writer (None: not readable / writable); ``detect``: the
    detector that tells it (and its look-alikes) from content (:mod:`converters.detect`); ``validate``: its
    checks, ``(path, images=None, fix_out=None) -> ValidationReport``; ``repairs``: the checks can write a
    repaired copy (``--fix``); ``embeds_images``: the format carries the image bytes (the reader loads them
    when an image folder is given)."""

    name: str
    read: Callable[..., Iterator[Scene]] | None = None
    write: Callable[..., Any] | None = None
    detect: detect.Detector | None = None
    validate: Callable[..., ValidationReport] | None = None
    repairs: bool = False
    embeds_images: bool = False


def _json_checks(name: str) -> Callable[..., ValidationReport]:
    """The checks of JSON format ``name`` (:func:`converters.validate.validate_file` on its layout)."""

    def checks(path: str | Path, images: str | Path | None = None,
               fix_out: str | Path | None = None) -> ValidationReport:
        from . import validate

        return validate.validate_file(path, validate.LAYOUTS[name], images=images, fix_out=fix_out)

    return checks


def _shard_checks(path: str | Path, images: str | Path | None = None) -> ValidationReport:
    """The checks of Parquet shards (:func:`amodaldata.validate_shards.validate_shards`)."""
    from amodaldata.validate_shards import validate_shards

    return validate_shards(path, images=images)


def _target_checks(name: str) -> Callable[..., ValidationReport]:
    """The checks of target format ``name`` (:func:`converters.validate_targets.validate_targets`)."""

    def checks(path: str | Path, images: str | Path | None = None) -> ValidationReport:
        from .validate_targets import validate_targets

        return validate_targets(path, name, images=images)

    return checks


def _json(name: str, read: Callable[..., Iterator[Scene]], write: Callable[..., Any],
          detector: detect.Detector) -> Format:
    """A JSON annotation format: checked by :mod:`converters.validate`, which can repair its polygons."""
    return Format(name, read, write, detector, _json_checks(name), repairs=True)


#: Format name -> its entry, in the order detection tries the detectors.
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("parquet", read_parquet, write_parquet, detect.shards, _shard_checks, embeds_images=True),
    Format("semdist", read_semdist, write_semdist, detect.target_folder, _target_checks("semdist")),
    Format("layered", read_layered, write_layered, detect.target_folder, _target_checks("layered")),
    _json("cocoa", read_cocoa, write_cocoa, detect.cocoa_schema),
    _json("bsds", read_bsds, write_bsds, detect.cocoa_schema),
    _json("kins", read_kins, write_kins, detect.kins_fields),
    Format("kins-2020", write=write_kins_2020, validate=_json_checks("kins"), repairs=True),    # read as kins
    _json("cocoa-cls", read_cocoa_cls, write_cocoa_cls, detect.instances_with_visible),
    _json("d2sa", read_d2sa, write_d2sa, detect.instances_with_visible),
)}
