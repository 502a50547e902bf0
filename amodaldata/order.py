"""The occlusion order: a directed graph on region ids, edge ``A -> B`` meaning A is in front of B where they overlap.

Given orders (ranks, or pairs in front of each other, as the annotation formats store them) and orders derived
from visible/amodal masks all become an :class:`OcclusionOrder`. :meth:`OcclusionOrder.front_to_back` turns it
into the total order the layer stack is built in, and refuses cycles with a :class:`DepthCycleError`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from .errors import DepthCycleError

if TYPE_CHECKING:
    from .scene import Region


@dataclass
class OcclusionOrder:
    """A set of ``(front, back)`` region-id pairs."""

    edges: set[tuple[int, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.edges = {(int(a), int(b)) for a, b in self.edges}
        for a, b in self.edges:
            if a == b:
                raise DepthCycleError([a])

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_ranks(cls, ranks: dict[int, int], overlapping: Iterable[tuple[int, int]] | None = None
                   ) -> "OcclusionOrder":
        """Edges from 1-based front-to-back ranks (COCOA ``order``): the lower rank is in front.

        ``overlapping`` restricts the edges to those pairs (any orientation); by default every pair of regions
        gets an edge. Equal ranks give no edge.
        """
        if overlapping is None:
            ids = sorted(ranks, key=lambda r: ranks[r])
            pairs: Iterable[tuple[int, int]] = ((a, b) for i, a in enumerate(ids) for b in ids[i + 1:])
        else:
            pairs = overlapping
        edges = set()
        for a, b in pairs:
            if ranks[a] < ranks[b]:
                edges.add((a, b))
            elif ranks[b] < ranks[a]:
                edges.add((b, a))
        return cls(edges)

    @classmethod
    def from_masks(cls, regions: Sequence["Region"], visible: Sequence[np.ndarray] | None = None
                   ) -> "OcclusionOrder":
        """Derive the order from amodal and visible masks.

        For two regions whose amodal masks overlap, the one whose visible part covers more of the other's
        amodal area is in front; a tie (e.g. both hidden there by a third region) gives no edge. ``visible``
        defaults to each region's given visible mask, else its amodal mask.
        """
        if len(regions) < 2:
            return cls()
        amodal = np.stack([r.amodal.to_bitmap().ravel() for r in regions]).astype(np.float32)
        if visible is None:
            visible = [(r.visible or r.amodal).to_bitmap() for r in regions]
        vis = np.stack([np.asarray(v).ravel() for v in visible]).astype(np.float32)
        overlap = amodal @ amodal.T          # |A_i & A_j|
        covers = vis @ amodal.T              # |V_i & A_j|: how much of j's amodal area i's visible part covers
        edges = set()
        n = len(regions)
        for i in range(n):
            for j in range(i + 1, n):
                if overlap[i, j] == 0:
                    continue
                if covers[i, j] > covers[j, i]:
                    edges.add((regions[i].id, regions[j].id))
                elif covers[j, i] > covers[i, j]:
                    edges.add((regions[j].id, regions[i].id))
        return cls(edges)

    # -- queries --------------------------------------------------------------------------------------
    def in_front(self, a: int, b: int) -> bool:
        """True when the graph has the edge ``a -> b``."""
        return (a, b) in self.edges

    def front_to_back(self, ids: Sequence[int], tie_break: dict[int, Any] | None = None) -> list[int]:
        """A total front-to-back order of ``ids`` consistent with every edge (a topological sort).

        Among regions the graph leaves unordered, ``tie_break`` values (e.g. depth ranks) decide, then the
        position in ``ids``; so the result is deterministic. Raises :class:`DepthCycleError` naming a cycle.
        """
        position = {rid: i for i, rid in enumerate(ids)}
        succ: dict[int, list[int]] = {rid: [] for rid in ids}
        indegree = {rid: 0 for rid in ids}
        for a, b in self.edges:
            if a in succ and b in succ:
                succ[a].append(b)
                indegree[b] += 1

        def key(rid: int) -> tuple:
            t = tie_break.get(rid) if tie_break else None
            return (t is None, t if t is not None else 0, position[rid])

        heap = [(key(r), r) for r in ids if indegree[r] == 0]
        heapq.heapify(heap)
        out: list[int] = []
        while heap:
            _, rid = heapq.heappop(heap)
            out.append(rid)
            for nxt in succ[rid]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    heapq.heappush(heap, (key(nxt), nxt))
        if len(out) != len(ids):
            raise DepthCycleError(self.find_cycle([r for r in ids if indegree[r] > 0]))
        return out

    def find_cycle(self, ids: Iterable[int] | None = None) -> list[int]:
        """One cycle of the graph (restricted to ``ids``), as a list of region ids; [] when acyclic."""
        import networkx as nx

        graph = nx.DiGraph()
        keep = None if ids is None else set(ids)
        graph.add_edges_from((a, b) for a, b in self.edges
                             if keep is None or (a in keep and b in keep))
        try:
            return [a for a, _ in nx.find_cycle(graph)]
        except nx.NetworkXNoCycle:
            return []
