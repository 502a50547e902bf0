"""Edge maps and edge density (Zhu et al. Sec. 3 "Edge density", Table 1 last row).

An edge map marks, one pixel thick, the pixels whose label differs from their right or lower neighbour (the
convention of the BSDS benchmark's ``seg2bmap``; the image border is no edge). The **visible** (modal) edge
map is that of the visible partition, slice 0 of the layer stack (regions against each other and against
unannotated pixels); the **amodal** edge map is the union of every region's own amodal outline, hidden parts
included. Every visible edge lies on the outline of the nearer region, so the visible map is a subset of the
amodal one. Edge density is the fraction of image pixels that are edge pixels.

Both maps are unions of traced outlines (:func:`~amodaldata.stats.geometry.edge_pixels`): the visible map
takes the amodal outline of each region that is not occluded and the visible outline of each occluded one.
"""

from __future__ import annotations

import numpy as np

from .geometry import SceneGeometry, edge_pixels
from .tally import Mean


def label_edges(labels: np.ndarray) -> np.ndarray:
    """Bool map of the pixels whose label differs from the right or lower neighbour."""
    edges = np.zeros(labels.shape, dtype=bool)
    edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edges[:-1] |= labels[:-1] != labels[1:]
    return edges


def scene_edges(geometry: SceneGeometry) -> tuple[np.ndarray, np.ndarray]:
    """The visible and the amodal edge map of a scene, as bool ``(H, W)`` arrays."""
    g = geometry
    h, w = g.height, g.width
    owner, amodal = edge_pixels(g.amodal_boundary, h, w)
    _, visible_t = edge_pixels(g.visible_boundary, w, h)          # transposed frame: index x * H + y
    visible_map = np.zeros(h * w, dtype=bool)
    visible_map[amodal[~g.occluded[owner]]] = True
    visible_map[(visible_t % h) * w + visible_t // h] = True
    amodal_map = np.zeros(h * w, dtype=bool)
    amodal_map[amodal] = True
    return visible_map.reshape(h, w), amodal_map.reshape(h, w)


class EdgeDensityTally:
    """Mean edge density per annotation, visible (modal) and amodal."""

    def __init__(self) -> None:
        self.modal = Mean()
        self.amodal = Mean()

    def add(self, visible: np.ndarray, amodal: np.ndarray) -> None:
        """Add one scene's edge maps (:func:`scene_edges`)."""
        if visible.size:
            self.modal.add(np.count_nonzero(visible) / visible.size)
            self.amodal.add(np.count_nonzero(amodal) / amodal.size)

    def result(self) -> dict:
        return {"modal": self.modal.result(), "amodal": self.amodal.result()}
