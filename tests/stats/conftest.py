"""Scene builders for the stats tests."""

from __future__ import annotations

import numpy as np
import pytest

from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene


def box(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """A bool ``(h, w)`` array, True on rows [y0, y1) and columns [x0, x1)."""
    out = np.zeros((h, w), dtype=bool)
    out[y0:y1, x0:x1] = True
    return out


def layered_scene(bitmaps: list[np.ndarray], *, image_id: object = "img", annotator: str | None = None,
                  stuff: tuple[int, ...] = ()) -> Scene:
    """Regions 1..n from bitmaps listed nearest first (rank = list position); ``stuff`` lists stuff region ids."""
    h, w = bitmaps[0].shape
    regions = [Region(k, Mask.from_bitmap(b), depth_rank=k, is_stuff=k in stuff)
               for k, b in enumerate(bitmaps, start=1)]
    order = OcclusionOrder.from_ranks({r.id: r.depth_rank for r in regions})
    return Scene(id=image_id, height=h, width=w, regions=regions, order=order, annotator=annotator,
                 annotation_id=annotator)


@pytest.fixture
def make_scene():
    return layered_scene
