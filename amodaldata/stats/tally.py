"""Streaming accumulators: a statistic over a whole dataset in constant memory (sums and fixed-bin counts).

Every measurement of :mod:`amodaldata.stats` feeds per-region or per-annotation scalars into these, so a pass
over any number of scenes keeps no masks and no per-region lists. Values are buffered (up to :data:`BUFFER`
numbers or :data:`BATCHES` arrays) and folded in together: a scene brings a handful of values, and folding
them one scene at a time would cost more in numpy calls than the values are worth.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

#: Bin edges of every histogram of a fraction (occlusion level, F-scores): 20 bins of width 0.05 over [0, 1].
FRACTION_BINS = np.linspace(0.0, 1.0, 21)

#: The region groups of the things/stuff split (Zhu et al. Sec. 3, "Semantic labels").
GROUPS = ("all", "things", "stuff")

#: Values, and arrays of values, held before they are folded into a tally.
BUFFER = 4096
BATCHES = 128


class _Buffered(ABC):
    """Collects arrays of values and hands them over in batches to :meth:`_fold`."""

    def __init__(self) -> None:
        self._pending: list[np.ndarray] = []
        self._held = 0

    def add(self, values: np.ndarray | float) -> None:
        v = np.asarray(values).ravel()
        if v.size:
            self._pending.append(v)
            self._held += v.size
            if self._held >= BUFFER or len(self._pending) >= BATCHES:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            values = np.concatenate(self._pending)
            self._pending, self._held = [], 0
            self._fold(values)

    @abstractmethod
    def _fold(self, values: np.ndarray) -> None:
        """Take a batch of values into the tally."""


class Mean(_Buffered):
    """Count, mean, standard deviation, minimum and maximum of a stream of numbers."""

    def __init__(self) -> None:
        super().__init__()
        self._n = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.low = math.inf
        self.high = -math.inf

    def _fold(self, values: np.ndarray) -> None:
        v = values.astype(float, copy=False)
        self._n += int(v.size)
        self.total += float(v.sum())
        self.total_sq += float(np.square(v).sum())
        self.low = min(self.low, float(v.min()))
        self.high = max(self.high, float(v.max()))

    @property
    def n(self) -> int:
        """How many values were added."""
        self._flush()
        return self._n

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def result(self) -> dict:
        """``{"n", "mean", "std", "min", "max"}`` (None for an empty stream)."""
        n = self.n
        if not n:
            return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
        mean = self.total / n
        var = max(self.total_sq / n - mean * mean, 0.0)
        return {"n": n, "mean": mean, "std": math.sqrt(var), "min": self.low, "max": self.high}


class Histogram(_Buffered):
    """Counts over fixed bin edges; the last bin is closed on the right (as ``numpy.histogram``)."""

    def __init__(self, edges: np.ndarray = FRACTION_BINS) -> None:
        super().__init__()
        self.edges = np.asarray(edges, dtype=float)
        self.counts = np.zeros(len(self.edges) - 1, dtype=np.int64)

    def _fold(self, values: np.ndarray) -> None:
        self.counts += np.histogram(values.astype(float, copy=False), bins=self.edges)[0]

    def result(self) -> dict:
        self._flush()
        return {"bin_edges": [round(float(e), 6) for e in self.edges], "counts": self.counts.tolist()}


class IntCounts(_Buffered):
    """Counts of small non-negative integers (components per annotation, component sizes, depth layers)."""

    def __init__(self) -> None:
        super().__init__()
        self._counts = np.zeros(0, dtype=np.int64)

    @property
    def counts(self) -> np.ndarray:
        """``counts[v]`` = how many times ``v`` was seen."""
        self._flush()
        return self._counts

    def _fold(self, values: np.ndarray) -> None:
        c = np.bincount(values.astype(np.int64, copy=False))
        if c.size > self._counts.size:
            c[: self._counts.size] += self._counts
            self._counts = c
        else:
            self._counts[: c.size] += c

    def result(self) -> dict[str, int]:
        """``{value: count}`` for the values seen (JSON keys are strings)."""
        return {str(k): int(c) for k, c in enumerate(self.counts) if c}

    def describe(self) -> dict:
        """Count, mean, std, min and max of the values, and their histogram (:meth:`result`)."""
        c = self.counts
        n = int(c.sum())
        if n == 0:
            return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "histogram": {}}
        values = np.arange(c.size)
        mean = float((values * c).sum() / n)
        std = math.sqrt(max(float((values * values * c).sum()) / n - mean * mean, 0.0))
        seen = np.flatnonzero(c)
        return {"n": n, "mean": mean, "std": std, "min": int(seen[0]), "max": int(seen[-1]),
                "histogram": self.result()}
