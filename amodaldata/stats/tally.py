"""Streaming accumulators: a statistic over a whole dataset in constant memory (sums and fixed-bin counts).

Every measurement of :mod:`amodaldata.stats` feeds per-region or per-annotation scalars into these, so a pass
over any number of scenes keeps no masks and no per-region lists.
"""

from __future__ import annotations

import math

import numpy as np

#: Bin edges of every histogram of a fraction (occlusion level, F-scores): 20 bins of width 0.05 over [0, 1].
FRACTION_BINS = np.linspace(0.0, 1.0, 21)

#: The region groups of the things/stuff split (Zhu et al. Sec. 3, "Semantic labels").
GROUPS = ("all", "things", "stuff")


class Mean:
    """Count, mean, standard deviation, minimum and maximum of a stream of numbers."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.low = math.inf
        self.high = -math.inf

    def add(self, values: np.ndarray | float) -> None:
        v = np.asarray(values, dtype=float).ravel()
        if v.size == 0:
            return
        self.n += int(v.size)
        self.total += float(v.sum())
        self.total_sq += float(np.square(v).sum())
        self.low = min(self.low, float(v.min()))
        self.high = max(self.high, float(v.max()))

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def result(self) -> dict:
        """``{"n", "mean", "std", "min", "max"}`` (None for an empty stream)."""
        if not self.n:
            return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
        mean = self.total / self.n
        var = max(self.total_sq / self.n - mean * mean, 0.0)
        return {"n": self.n, "mean": mean, "std": math.sqrt(var), "min": self.low, "max": self.high}


class Histogram:
    """Counts over fixed bin edges; the last bin is closed on the right (as ``numpy.histogram``)."""

    def __init__(self, edges: np.ndarray = FRACTION_BINS) -> None:
        self.edges = np.asarray(edges, dtype=float)
        self.counts = np.zeros(len(self.edges) - 1, dtype=np.int64)

    def add(self, values: np.ndarray | float) -> None:
        v = np.asarray(values, dtype=float).ravel()
        if v.size:
            self.counts += np.histogram(v, bins=self.edges)[0]

    def result(self) -> dict:
        return {"bin_edges": [round(float(e), 6) for e in self.edges], "counts": self.counts.tolist()}


class IntCounts:
    """Counts of small non-negative integers (components per annotation, component sizes, depth layers)."""

    def __init__(self) -> None:
        self.counts = np.zeros(0, dtype=np.int64)

    def add(self, values: np.ndarray | int) -> None:
        v = np.asarray(values, dtype=np.int64).ravel()
        if v.size == 0:
            return
        c = np.bincount(v)
        if c.size > self.counts.size:
            c[: self.counts.size] += self.counts
            self.counts = c
        else:
            self.counts[: c.size] += c

    def result(self) -> dict[str, int]:
        """``{value: count}`` for the values seen (JSON keys are strings)."""
        return {str(k): int(c) for k, c in enumerate(self.counts) if c}
