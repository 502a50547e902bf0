"""Shared fixtures: the built-in real COCOA demo data (see amodaldata/data/cocoa/PROVENANCE.md), random bitmaps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from amodaldata.data import COCOA_DEMO_DIR, COCOA_DEMO_JSON


@pytest.fixture
def cocoa_json() -> Path:
    """The five real COCOA annotations in the release layout."""
    return COCOA_DEMO_JSON


def _box(h: int, w: int, y0: int, x0: int, y1: int, x1: int):
    """A rectangle [y0, y1) x [x0, x1) as a mask."""
    from amodaldata.masks import Mask

    bitmap = np.zeros((h, w), dtype=bool)
    bitmap[y0:y1, x0:x1] = True
    return Mask.from_bitmap(bitmap)


@pytest.fixture(scope="session")
def make_box():
    """``make_box(h, w, y0, x0, y1, x1) -> Mask``: a rectangle [y0, y1) x [x0, x1)."""
    return _box


@pytest.fixture
def cocoa_images() -> Path:
    """The folder holding the five COCO images of the demo annotations."""
    return COCOA_DEMO_DIR


@pytest.fixture
def cocoa_raw() -> dict:
    """The parsed demo release file."""
    return json.loads(COCOA_DEMO_JSON.read_text())


# -- random scenes for property tests (hypothesis) ---------------------------------------------------------
def _scene_strategy():
    """Small random scenes: 1-5 regions, each a random bitmap, its RLE or a random polygon (possibly empty or
    reaching outside the image), and a random acyclic occlusion order (a random subset of the pairs of a
    random permutation, so some pairs stay unordered)."""
    from hypothesis import strategies as st

    from amodaldata.masks import Mask
    from amodaldata.order import OcclusionOrder
    from amodaldata.scene import Region, Scene

    @st.composite
    def scenes(draw):
        h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
        n = draw(st.integers(1, 5))
        regions = []
        for rid in range(1, n + 1):
            kind = draw(st.sampled_from(["bitmap", "rle", "polygon"]))
            if kind == "polygon":
                k = draw(st.integers(3, 6))
                xs = draw(st.lists(st.floats(-1.5, w + 1.5, allow_nan=False), min_size=k, max_size=k))
                ys = draw(st.lists(st.floats(-1.5, h + 1.5, allow_nan=False), min_size=k, max_size=k))
                mask = Mask.from_polygons([v for xy in zip(xs, ys) for v in xy], h, w)
            else:
                bits = draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))
                bitmap = np.array(bits, dtype=bool).reshape(h, w)
                mask = Mask.from_bitmap(bitmap) if kind == "bitmap" else \
                    Mask.from_rle(Mask.from_bitmap(bitmap).to_rle(), h, w)
            regions.append(Region(rid, mask, name=f"r{rid}"))
        perm = draw(st.permutations(list(range(1, n + 1))))
        edges = {(perm[i], perm[j]) for i in range(n) for j in range(i + 1, n) if draw(st.booleans())}
        return Scene(id="random", height=h, width=w, regions=regions, order=OcclusionOrder(edges))

    return scenes()


@pytest.fixture(scope="session")
def random_scenes():
    """A hypothesis strategy of random scenes; draw from it with ``data.draw(random_scenes)``."""
    return _scene_strategy()


def _bitmaps(seed: int, n: int, height: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        kind = rng.integers(3)
        if kind == 0:      # noise: many short runs
            out.append(rng.random((height, width)) < rng.uniform(0.05, 0.95))
        elif kind == 1:    # a block: long runs, wrapping columns when it spans the height
            m = np.zeros((height, width), dtype=bool)
            y0, x0 = rng.integers(height), rng.integers(width)
            m[y0:y0 + rng.integers(1, height + 1), x0:x0 + rng.integers(1, width + 1)] = True
            out.append(m)
        else:              # empty or full
            out.append(np.full((height, width), bool(rng.integers(2))))
    return out


@pytest.fixture(scope="session")
def random_bitmaps():
    """``random_bitmaps(seed, n, height, width)``: n bool bitmaps, each noise, a block or empty/full."""
    return _bitmaps
