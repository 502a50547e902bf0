"""Scene complexity (Zhu et al. Sec. 3 "Scene complexity", Fig. 6b-d and Fig. 7).

Per annotation, the occlusion DAG has a node per region and an edge A -> B when A's amodal mask overlaps B's
and A precedes B in depth (the layer stack's front-to-back order). Its weakly connected components (CC) are groups of mutually overlapping regions; a region that
overlaps nothing is a CC of size 1. The number of depth layers a CC needs is its longest directed path,
counted in nodes (a foreground object over a background: 2; a chain A over B over C: 3; many disjoint
objects over one background: still 2). Fig. 7 relates layers to CC size; the paper sees logarithmic growth,
fitted here by least squares as ``layers = a + b * log2(size)`` over the CCs of two regions or more (``b`` is
the number of layers added per doubling of the CC size).
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from amodaldata.layers import LayerStack

from .geometry import SceneGeometry
from .tally import IntCounts


def overlap_pairs(geometry: SceneGeometry, layers: LayerStack) -> np.ndarray:
    """``(P, 2)`` distinct (front, back) region-id pairs whose amodal masks share a pixel; front is nearer in the
    layer stack's front-to-back order.

    Overlaps are found on the amodal column runs (the masks the stack is built from): two runs of one column
    overlap when one starts inside the other, so each run is paired with the runs starting within it.
    """
    p = geometry.amodal
    if p.mask.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    start = p.col * (p.height + 1) + p.top
    end = p.col * (p.height + 1) + p.bottom
    order = np.argsort(start, kind="stable")
    start, end, mask = start[order], end[order], p.mask[order]
    first, stop = np.arange(start.size) + 1, np.searchsorted(start, end, side="left")
    count = np.maximum(stop - first, 0)
    a = np.repeat(mask, count)
    b = mask[np.repeat(first - np.cumsum(count) + count, count) + np.arange(int(count.sum()))]
    rank_of = {rid: k for k, rid in enumerate(layers.front_to_back)}
    rank = np.array([rank_of[rid] for rid in geometry.region_ids.tolist()], dtype=np.int64)
    a, b = a[a != b], b[a != b]
    front = np.where(rank[a] < rank[b], a, b)
    back = np.where(rank[a] < rank[b], b, a)
    code = np.unique(front * p.n_masks + back)
    return np.stack([geometry.region_ids[code // p.n_masks], geometry.region_ids[code % p.n_masks]], axis=1)


def occlusion_dag(region_ids: list[int], pairs: np.ndarray) -> nx.DiGraph:
    """The occlusion DAG: a node per region id, an edge per (front, back) overlap pair."""
    dag = nx.DiGraph()
    dag.add_nodes_from(region_ids)
    dag.add_edges_from(map(tuple, pairs.tolist()))
    return dag


def node_layers(dag: nx.DiGraph) -> dict:
    """The depth layer of every node: the longest directed path ending at it, in nodes (1 = nothing in front)."""
    longest: dict = {}
    for node in nx.topological_sort(dag):
        longest[node] = 1 + max((longest[p] for p in dag.predecessors(node)), default=0)
    return longest


def components(dag: nx.DiGraph) -> tuple[np.ndarray, np.ndarray]:
    """Size and number of depth layers (longest directed path, in nodes) of each weakly connected component."""
    longest = node_layers(dag)
    sizes, layers = [], []
    for cc in nx.weakly_connected_components(dag):
        sizes.append(len(cc))
        layers.append(max(longest[n] for n in cc))
    return np.array(sizes, dtype=np.int64), np.array(layers, dtype=np.int64)


class ComplexityTally:
    """CCs per annotation, CC sizes, layers per CC, mean layers per CC size and the log fit of Fig. 7."""

    def __init__(self) -> None:
        self.per_annotation = IntCounts()
        self.sizes = IntCounts()
        self.layers = IntCounts()
        self.layer_sum_by_size = np.zeros(0, dtype=np.int64)
        self.fit = np.zeros(6)          # n, sum x, sum x^2, sum y, sum xy, sum y^2 with x = log2(size), y = layers

    def add(self, sizes: np.ndarray, layers: np.ndarray) -> None:
        """Add one annotation's components (:func:`components`)."""
        self.per_annotation.add(sizes.size)
        self.sizes.add(sizes)
        self.layers.add(layers)
        by_size = np.bincount(sizes, weights=layers).astype(np.int64)
        if by_size.size > self.layer_sum_by_size.size:
            by_size[: self.layer_sum_by_size.size] += self.layer_sum_by_size
            self.layer_sum_by_size = by_size
        else:
            self.layer_sum_by_size[: by_size.size] += by_size
        big = sizes >= 2
        x, y = np.log2(sizes[big]), layers[big].astype(float)
        self.fit += [x.size, x.sum(), (x * x).sum(), y.sum(), (x * y).sum(), (y * y).sum()]

    def log_fit(self) -> dict:
        """Least-squares ``layers = intercept + slope * log2(size)`` over CCs of size >= 2, with its R^2."""
        n, sx, sxx, sy, sxy, syy = self.fit
        var_x, var_y, cov = n * sxx - sx * sx, n * syy - sy * sy, n * sxy - sx * sy
        if n < 2 or var_x <= 0:
            return {"n": int(n), "intercept": None, "slope": None, "r2": None, "base": 2}
        slope = cov / var_x
        r2 = cov * cov / (var_x * var_y) if var_y > 0 else 1.0
        return {"n": int(n), "intercept": (sy - slope * sx) / n, "slope": slope, "r2": r2, "base": 2}

    def result(self) -> dict:
        counts = self.sizes.counts
        layers_by_size = {str(s): {"components": int(counts[s]), "mean_layers": self.layer_sum_by_size[s] / counts[s]}
                          for s in range(counts.size) if counts[s]}
        return {"components_per_annotation": self.per_annotation.describe(),
                "component_size": self.sizes.describe(), "layers_per_component": self.layers.describe(),
                "layers_by_size": layers_by_size, "log_fit": self.log_fit()}
