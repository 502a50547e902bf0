"""BSDS-amodal (Zhu et al., "Semantic Amodal Segmentation", Sec. 3): COCOA's schema over BSDS images.

Each of the 5 to 7 annotators of an image is a separate annotation object with the same ``image_id``; each
becomes its own Scene (same ``Scene.id``, its ``annotator`` and ``annotation_id``), and the Scenes of one
image are yielded together, in the file's order of first appearance of the image. Writing is COCOA's
(:func:`converters.cocoa.write_cocoa`), one annotation object per Scene.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

from amodaldata.errors import ErrorPolicy, OnError
from amodaldata.scene import Scene

from .cocoa import read_cocoa, write_cocoa
from .losses import LossReport, Written


def read_bsds(path: str | Path, images: str | Path | None = None, *, on_error: OnError | ErrorPolicy = "fail",
              load_images: bool = False) -> Iterator[Scene]:
    """Yield one Scene per annotation object, the annotators of an image together.

    The grouping holds the file's Scenes (outlines only, no rasters) until the end: BSDS files are small
    (at most 200 images of 5 to 7 annotators).
    """
    groups: dict[Any, list[Scene]] = {}
    for scene in read_cocoa(path, images, on_error=on_error, load_images=load_images):
        groups.setdefault(scene.id, []).append(scene)
    for scenes in groups.values():
        yield from scenes


def write_bsds(scenes: Iterable[Scene], out: str | Path, *, losses: LossReport | None = None,
               written: Written | None = None) -> int:
    """Write Scenes as a BSDS-amodal file (COCOA's conventions); return the number of annotation objects."""
    return write_cocoa(scenes, out, losses=losses, written=written, fmt="bsds")
