"""Dataset summary of Zhu et al. Fig. 5a: annotations per image, regions per annotation, points per region
polygon, pixel coverage (the occlusion rows come from :mod:`amodaldata.stats.occlusion`).

An image is a ``Scene.id``; each Scene is one annotation (BSDS has 5 to 7 per image, COCOA one). Points per
region counts the vertices of the amodal polygon(s) of regions that arrived as polygons (RLE and bitmap regions
have none and are left out of that row). Pixel coverage is, per annotation, the fraction of image pixels inside
at least one amodal region (the layer stack's count map), averaged over annotations.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from amodaldata.layers import LayerStack
from amodaldata.scene import Scene

from .tally import GROUPS, Mean


def polygon_points(scene: Scene) -> np.ndarray:
    """Vertices of each region's amodal polygons (NaN for a region not given as polygons)."""
    return np.array([sum(len(p) for p in r.amodal.polygons) / 2 if r.amodal.polygons is not None else np.nan
                     for r in scene.regions], dtype=float)


def coverage(layers: LayerStack) -> float:
    """Fraction of the image covered by at least one amodal region."""
    return np.count_nonzero(layers.count) / layers.count.size if layers.count.size else 0.0


class SummaryTally:
    """Counts of Fig. 5a over a dataset (one integer per image id is kept, for annotations per image)."""

    def __init__(self) -> None:
        self.per_image: Counter = Counter()
        self.regions = Mean()
        self.points = {g: Mean() for g in GROUPS}
        self.coverage = Mean()

    def add(self, scene: Scene, layers: LayerStack, stuff: np.ndarray) -> None:
        self.per_image[scene.id] += 1
        self.regions.add(len(scene.regions))
        points = polygon_points(scene)
        present = ~np.isnan(points)
        for group, sel in (("all", present), ("things", present & ~stuff), ("stuff", present & stuff)):
            self.points[group].add(points[sel])
        self.coverage.add(coverage(layers))

    def result(self) -> dict:
        per_image = Mean()
        per_image.add(np.fromiter(self.per_image.values(), dtype=float, count=len(self.per_image)))
        return {"images": len(self.per_image), "annotations": self.regions.n,
                "annotations_per_image": per_image.result(), "regions_per_annotation": self.regions.result(),
                "points_per_region": {g: m.result() for g, m in self.points.items()},
                "pixel_coverage": self.coverage.result()}
