"""Shape statistics of Zhu et al. Table 1: convexity (Eq. 1) and simplicity (Eq. 2) of modal and amodal segments.

``convexity(S) = Area(S) / Area(ConvexHull(S))`` and ``simplicity(S) = sqrt(4 pi Area(S)) / Perimeter(S)``; both
are 1 for a disk. Everything is measured on the **raster** (pycocotools semantics: the masks the layer stack is
built from), for modal and amodal segments alike, so the two columns are measured the same way whatever
encoding the data arrived in (polygons, RLE, generated shards):

- area: the pixel count (the COCOA ``area``);
- convex hull: the hull of the pixel squares (an axis-aligned rectangle has convexity exactly 1);
- perimeter: the length of the marching-squares boundary measured with chords over 4 steps
  (:func:`~amodaldata.stats.geometry.perimeters`): within about 1 % of the true length of a digitised disk or
  square at any orientation, where the plain step count is 5 to 8 % long on slanted and curved outlines.

A segment with several parts (a visible mask cut in two by an occluder, a multi-polygon amodal mask) is one
set S: its area sums the parts, its perimeter sums every ring (outer boundaries and holes) and its hull spans
all parts, so fragmentation lowers both measures, modal and amodal alike. A fully hidden region has no modal
segment: it is left out of the modal column and counted as ``hidden``. Small segments are noisy (a single
pixel has simplicity 1.25); nothing is clipped.
"""

from __future__ import annotations

import numpy as np

from .geometry import Boundary, Pieces, SceneGeometry, boundary, hull_areas, perimeters
from .tally import GROUPS, Mean


def convexity(area: np.ndarray, hull_area: np.ndarray) -> np.ndarray:
    """Eq. 1: area / convex-hull area (NaN where the hull is empty)."""
    area, hull_area = np.asarray(area, dtype=float), np.asarray(hull_area, dtype=float)
    return np.divide(area, hull_area, out=np.full(area.shape, np.nan), where=hull_area > 0)


def simplicity(area: np.ndarray, perimeter: np.ndarray) -> np.ndarray:
    """Eq. 2: sqrt(4 pi area) / perimeter (NaN where the perimeter is 0)."""
    area, perimeter = np.asarray(area, dtype=float), np.asarray(perimeter, dtype=float)
    return np.divide(np.sqrt(4 * np.pi * area), perimeter, out=np.full(area.shape, np.nan), where=perimeter > 0)


def measure(pieces: Pieces, traced: Boundary | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Convexity and simplicity of every mask of a batch (NaN for an empty mask); ``traced`` is its boundary
    when already traced."""
    traced = boundary(pieces) if traced is None else traced
    area = pieces.areas()
    return convexity(area, hull_areas(pieces)), simplicity(area, perimeters(traced, pieces.n_masks))


def mask_shape(bitmaps: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Convexity and simplicity of boolean masks of one size."""
    return measure(Pieces.from_bitmaps(bitmaps))


def scene_shapes(geometry: SceneGeometry) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"amodal": (convexity, simplicity), "modal": (...)}``, one value per region of the scene.

    A region that is not occluded shares its amodal values; a fully hidden one gets NaN as modal values.
    """
    amodal = measure(geometry.amodal, geometry.amodal_boundary)
    conv, simp = (a.copy() for a in amodal)
    occluded = np.flatnonzero(geometry.occluded)
    conv[occluded], simp[occluded] = measure(geometry.visible, geometry.visible_boundary)
    return {"amodal": amodal, "modal": (conv, simp)}


class ShapeTally:
    """Table 1 over a dataset: mean convexity and simplicity of modal and amodal segments, per region group."""

    def __init__(self) -> None:
        self.measures = {g: {side: {"convexity": Mean(), "simplicity": Mean()} for side in ("modal", "amodal")}
                         for g in GROUPS}
        self.hidden = {g: 0 for g in GROUPS}

    def add(self, shapes: dict[str, tuple[np.ndarray, np.ndarray]], stuff: np.ndarray) -> None:
        """Add one scene's :func:`scene_shapes`; ``stuff`` flags its stuff regions."""
        groups = {"all": np.ones(stuff.shape, dtype=bool), "things": ~stuff, "stuff": stuff}
        hidden = ~np.isnan(shapes["amodal"][0]) & np.isnan(shapes["modal"][0])
        for side, (conv, simp) in shapes.items():
            present = ~np.isnan(conv)
            for group, sel in groups.items():
                self.measures[group][side]["convexity"].add(conv[sel & present])
                self.measures[group][side]["simplicity"].add(simp[sel & present])
        for group, sel in groups.items():
            self.hidden[group] += int(np.count_nonzero(sel & hidden))

    def result(self) -> dict:
        return {g: {**{side: {name: m.result() for name, m in by_name.items()} for side, by_name in sides.items()},
                    "hidden": self.hidden[g]}
                for g, sides in self.measures.items()}
