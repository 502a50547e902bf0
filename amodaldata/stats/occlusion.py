"""Occlusion statistics (Zhu et al. Fig. 5a "occlusion rate", "occ/region"; Fig. 6a histogram of occlusion level).

The occlusion level of a region is the fraction of its amodal area that is hidden, ``|invisible| / |amodal|``
(COCOA ``occlude_rate``), read off the layer stack (:meth:`SceneGeometry.occlusion_levels`). The occlusion rate
is the fraction of regions with a level above 0; occ/region is the mean level over all regions. Regions with an
empty amodal mask are left out.
"""

from __future__ import annotations

import numpy as np

from .tally import FRACTION_BINS, GROUPS, Histogram, Mean


class OcclusionTally:
    """Occlusion levels over a dataset, per region group (all, things, stuff)."""

    def __init__(self) -> None:
        self.level = {g: Mean() for g in GROUPS}
        self.occluded_level = {g: Mean() for g in GROUPS}
        self.histogram = {g: Histogram(FRACTION_BINS) for g in GROUPS}

    def add(self, levels: np.ndarray, stuff: np.ndarray) -> None:
        """Add one scene's per-region occlusion levels (NaN = empty region) and stuff flags."""
        present = ~np.isnan(levels)
        for group, sel in (("all", present), ("things", present & ~stuff), ("stuff", present & stuff)):
            q = levels[sel]
            self.level[group].add(q)
            self.occluded_level[group].add(q[q > 0])
            self.histogram[group].add(q[q > 0])

    def result(self) -> dict:
        """Per group: ``regions``, ``occluded``, ``occlusion_rate`` (fraction occluded), ``occ_per_region`` (mean
        level over all regions), ``occ_per_occluded_region``, and the Fig. 6a ``histogram`` of the levels of
        the occluded regions (20 bins over (0, 1])."""
        out = {}
        for g in GROUPS:
            n, occluded = self.level[g].n, self.occluded_level[g].n
            out[g] = {"regions": n, "occluded": occluded, "occlusion_rate": occluded / n if n else None,
                      "occ_per_region": self.level[g].mean, "occ_per_occluded_region": self.occluded_level[g].mean,
                      "histogram": self.histogram[g].result()}
        return out
