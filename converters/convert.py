"""Read -> write orchestration behind ``amodaldata convert``: streaming, progress, error policy, atomic output."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from amodaldata.atomic import atomic_path, remove
from amodaldata.errors import AmodalDataError, EmptyOutputError, ErrorPolicy, FormatError, OnError
from amodaldata.images import check_image
from amodaldata.scene import Scene

from . import EMBEDS_IMAGES, READ_OPTIONS, READERS, WRITE_OPTIONS, WRITERS, accepted_options, check_options
from .detect import detect_format
from .labels import load_label_map
from .losses import LossReport, Written, source_gaps


@dataclass
class ConversionReport:
    """What a conversion did: counts, every skipped item, and what the target format could not hold."""

    output: Path
    source_format: str = ""
    scenes: int = 0
    regions: int = 0
    read_scenes: int = 0
    read_regions: int = 0
    skipped: list[AmodalDataError] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """``wrote S scenes (R regions) to OUT``, with what was read when it differs."""
        line = f"wrote {self.scenes} scenes ({self.regions} regions) to {self.output}"
        if (self.scenes, self.regions) != (self.read_scenes, self.read_regions):
            line += f" (read {self.read_scenes} scenes, {self.read_regions} regions)"
        return line


def _check_output(out: Path, overwrite: bool) -> None:
    if out.exists() and (out.is_file() or any(out.iterdir())) and not overwrite:
        raise FormatError("output exists and is not empty; pass --overwrite to replace it", file=str(out))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:       # another user's process
        return True
    return True


def _remove_leftovers(out: Path) -> None:
    """Remove what killed conversions to ``out`` left (``.OUT.partial-PID`` and the writers' hidden files beside
    it, ``..OUT.partial-PID.*``), when the process PID is gone; a conversion still running keeps its own."""
    if not out.parent.is_dir():
        return
    for prefix in (f".{out.name}.partial-", f"..{out.name}.partial-"):
        for path in out.parent.glob(f"{prefix}*"):
            pid = path.name[len(prefix):].split(".", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                remove(path)


def convert(src_format: str | None, input: str | Path, dst_format: str, out: str | Path, *,
            images: str | Path | None = None, on_error: OnError = "fail", overwrite: bool = False,
            progress: bool = False, allow_empty: bool = False, **options: Any) -> ConversionReport:
    """Read ``input`` as ``src_format`` and write ``out`` as ``dst_format``.

    The output is built under a hidden temporary name beside ``out`` and renamed into place only when complete,
    so a failure leaves nothing behind; what a killed run left there is removed first (:func:`_remove_leftovers`). An existing non-empty ``out`` is refused unless ``overwrite``.
    ``options`` go to the reader and the writer that declare them (e.g. ``layers``, ``max_level``, ``split``); one
    that no reader or writer declares is a TypeError.
    ``src_format`` None: told from the content (:func:`converters.detect.detect_format`). ``label_map`` (a
    file, ``cocoa-coco`` or a mapping) is refused by a target without categories. What the target cannot hold
    is listed in the report's ``losses`` (:mod:`converters.losses`). The report's ``scenes`` and ``regions``
    are what the writer wrote (``read_scenes`` / ``read_regions``: what was read); a conversion that would
    write no region raises :class:`EmptyOutputError` saying why and how to fix it, unless ``allow_empty``.
    """
    check_options(options, READ_OPTIONS | WRITE_OPTIONS, "the readers and writers")
    if src_format is None:
        src_format = detect_format(input)
    for fmt, table, what in ((src_format, READERS, "input"), (dst_format, WRITERS, "output")):
        if fmt not in table:
            raise FormatError(f"unknown {what} format {fmt!r}; known: {', '.join(sorted(table))}")
    out = Path(out)
    _check_output(out, overwrite)
    policy = ErrorPolicy(on_error)
    reader, writer = READERS[src_format], WRITERS[dst_format]
    if options.get("label_map") is not None:
        if "label_map" not in inspect.signature(writer).parameters:
            takes = sorted(f for f, w in WRITERS.items() if "label_map" in inspect.signature(w).parameters)
            raise FormatError(f"--label-map applies to formats with categories ({', '.join(takes)}); "
                              f"{dst_format} has none")
        options["label_map"] = load_label_map(options["label_map"])
    losses = LossReport()
    read_options = accepted_options(reader, {**options, "images": images, "on_error": policy, "losses": losses,
                                      "load_images": images is not None and dst_format in EMBEDS_IMAGES})
    report = ConversionReport(output=out, source_format=src_format)
    scenes: Iterable[Scene] = _stacked(reader(input, **read_options), report, policy, input,
                                       check_images=dst_format in EMBEDS_IMAGES)
    if progress:
        from tqdm import tqdm

        scenes = tqdm(scenes, desc=f"{src_format} -> {dst_format}", unit=" scenes")
    _remove_leftovers(out)
    written = Written()
    with atomic_path(out, out.with_name(f".{out.name}.partial-{os.getpid()}")) as tmp:
        writer(scenes, tmp, **accepted_options(writer, {**options, "losses": losses, "written": written}))
        report.scenes, report.regions = written.scenes, written.regions
        if not report.regions and not allow_empty:
            raise _empty_output(report, dst_format, losses, out)
    report.skipped = policy.skipped
    report.losses = source_gaps(src_format, dst_format) + losses.lines()
    return report


def _empty_output(report: ConversionReport, dst_format: str, losses: LossReport, out: Path) -> EmptyOutputError:
    """Why nothing would be written, and the fix."""
    if not report.read_regions:
        why = f"the input holds no region ({report.read_scenes} scenes read)"
        fix = "pass --allow-empty to write the scenes without regions"
    else:
        dropped = [line for line in losses.lines(details=3) if "not written" in line]
        why = f"all {report.read_regions} regions read were dropped" + (f" ({dropped[0]})" if dropped else "")
        fix = "pass --allow-empty to write it anyway"
        if any("category" in line for line in dropped):
            fix = f"map the names to {dst_format} categories with --label-map FILE (a JSON object of name -> " \
                  f"category id or name), or {fix}"
    return EmptyOutputError(f"no region written: {why}; {fix}", file=str(out))


def _stacked(scenes: Iterator[Scene], report: ConversionReport, policy: ErrorPolicy, source: str | Path,
             check_images: bool = False) -> Iterator[Scene]:
    """The scenes with their layer stack built (every writer reads it; it stays cached on the scene), counted.
    A scene whose stack cannot be built (a depth cycle, an RLE that is not a mask of the image: shards are
    read without decoding their counts) goes to the error policy like a bad record of the reader; so does,
    with ``check_images`` (a target embedding them), an image that does not decode or is not the scene's
    size (:func:`amodaldata.images.check_image`)."""
    for scene in scenes:
        try:
            if check_images and scene.image_bytes is not None:
                check_image(scene.image_bytes, scene.height, scene.width, file=scene.file_name, image_id=scene.id,
                            annotation_id=scene.annotation_id)
            scene.layers
        except AmodalDataError as err:
            policy.handle(err.located(file=str(source)))
            continue
        report.read_scenes += 1
        report.read_regions += len(scene.regions)
        yield scene
