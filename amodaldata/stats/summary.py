"""Dataset summary of Zhu et al. Fig. 5a: annotations per image, regions per annotation, points per region
polygon, pixel coverage (the occlusion rows come from :mod:`amodaldata.stats.occlusion`).

An image is a ``Scene.id``; each Scene is one annotation (BSDS has 5 to 7 per image, COCOA one); annotations
are grouped by image in :mod:`amodaldata.stats.agreement`, which counts them per image. Points per
region counts the vertices of the amodal polygon(s) of regions that arrived as polygons (RLE and bitmap regions
have none and are left out of that row). Pixel coverage is, per annotation, the fraction of image pixels inside
at least one amodal region (the layer stack's count map), averaged over annotations.
"""

from __future__ import annotations

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
    """Regions per annotation, points per region and pixel coverage over a dataset."""

    def __init__(self) -> None:
        self.regions = Mean()
        self.points = {g: Mean() for g in GROUPS}
        self.coverage = Mean()

    def add(self, scene: Scene, layers: LayerStack, stuff: np.ndarray) -> None:
        self.regions.add(len(scene.regions))
        points = polygon_points(scene)
        present = ~np.isnan(points)
        for group, sel in (("all", present), ("things", present & ~stuff), ("stuff", present & stuff)):
            self.points[group].add(points[sel])
        self.coverage.add(coverage(layers))

    def result(self) -> dict:
        return {"annotations": self.regions.n, "regions_per_annotation": self.regions.result(),
                "points_per_region": {g: m.result() for g, m in self.points.items()},
                "pixel_coverage": self.coverage.result()}
