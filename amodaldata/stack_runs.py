"""The layer stack read as COCO run-length runs: every region's visible and hidden part as compressed RLE,
and the overlapping pairs, from one pass over the stack in COCO's column-major pixel order (no image-sized
raster per region)."""

from __future__ import annotations

import numpy as np

from .layers import LayerStack


class StackRuns:
    """The layer stack read once in COCO's column-major pixel order, as runs of equal region ids per slice.

    A region's visible part is its runs in slice 0, its hidden part its runs in the deeper slices (merged),
    so every region's visible and hidden RLE comes from one pass over the stack rather than one image-sized
    raster per region; overlapping pairs are read off the pixel positions where some slice changes.
    """

    def __init__(self, stack: LayerStack) -> None:
        self.height, self.width = stack.shape
        k = stack.depth
        slices = stack.ids.transpose(0, 2, 1)          # free when the stack was built column-major
        if not slices.flags.c_contiguous:
            top = int(stack.ids.max()) if stack.ids.size else 0
            small = np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else stack.ids.dtype
            slices = np.ascontiguousarray(stack.ids.astype(small).transpose(0, 2, 1))
        self.runs = [self._runs(level.ravel()) for level in slices]
        self.visible = self._group(*self.runs[0]) if k else {}
        if k > 1:
            starts, ends, values = (np.concatenate(parts) for parts in zip(*self.runs[1:]))
            self.hidden = self._group(starts, ends, values)
        else:
            self.hidden = {}

    @staticmethod
    def _runs(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Runs ``[start, end)`` of equal non-zero values of one column-major slice, and their values."""
        change = np.flatnonzero(v[1:] != v[:-1]) + 1
        starts = np.concatenate(([0], change))
        ends = np.concatenate((change, [v.size]))
        values = v[starts].astype(np.int64)
        keep = values > 0
        return starts[keep], ends[keep], values[keep]

    @staticmethod
    def _group(starts: np.ndarray, ends: np.ndarray, values: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per region id, its runs sorted and with touching runs (from different slices) merged."""
        order = np.lexsort((starts, values))
        starts, ends, values = starts[order], ends[order], values[order]
        new = np.ones(starts.size, dtype=bool)
        new[1:] = (values[1:] != values[:-1]) | (starts[1:] != ends[:-1])
        first = np.flatnonzero(new)
        last = np.concatenate((first[1:], [starts.size])) - 1
        starts, ends, values = starts[first], ends[last], values[first]
        bounds = np.flatnonzero(np.diff(values)) + 1
        groups = {}
        for lo, hi in zip(np.concatenate(([0], bounds)), np.concatenate((bounds, [values.size]))):
            groups[int(values[lo])] = (starts[lo:hi], ends[lo:hi])
        return groups

    def _rle(self, groups: dict, rid: int) -> dict:
        from .rle import from_runs

        starts, ends = groups.get(rid, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        return from_runs(starts, ends, self.height, self.width)

    def visible_rle(self, rid: int) -> dict:
        """The region's visible part (level 0) as compressed RLE."""
        return self._rle(self.visible, rid)

    def invisible_rle(self, rid: int) -> dict:
        """The region's hidden part (level > 0) as compressed RLE."""
        return self._rle(self.hidden, rid)

    def overlapping_pairs(self) -> np.ndarray:
        """``(P, 2)`` int array of ``(front, back)`` region ids whose amodal masks share a pixel, front per the
        stack, sorted: for every run of a deeper slice, the runs of each nearer slice over the same pixels (a
        pixel covered at depth k is covered at every nearer depth, so those runs hold no zero)."""
        fronts, backs = [], []
        for back_level in range(1, len(self.runs)):
            b_starts, b_ends, b_values = self.runs[back_level]
            for front_level in range(back_level):
                f_starts, _, f_values = self.runs[front_level]
                first = np.searchsorted(f_starts, b_starts, side="right") - 1
                last = np.searchsorted(f_starts, b_ends, side="left") - 1
                n = last - first + 1
                offsets = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
                fronts.append(f_values[np.repeat(first, n) + offsets])
                backs.append(np.repeat(b_values, n))
        if not fronts:
            return np.zeros((0, 2), dtype=np.int64)
        front, back = np.concatenate(fronts), np.concatenate(backs)
        base = int(max(front.max(), back.max())) + 1
        codes = np.unique(front * base + back)
        return np.stack([codes // base, codes % base], axis=1)
