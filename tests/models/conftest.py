"""Tiny hand-built scenes and shards for the model tests: 64x64 images of overlapping rectangles and discs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from amodaldata.shards import shard_name, write_shard

SIZE = 64


def make_scene(index: int, size: int = SIZE) -> Scene:
    """Three shapes (a rectangle, a disc, a bar; categories 1, 2, 3) stacked front to back in list order,
    painted nearest last in distinct grey levels, with random positions seeded by ``index``."""
    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[:size, :size]
    masks = []
    cx, cy = rng.integers(14, size - 14, 2)
    masks.append((np.abs(xx - cx) < 10) & (np.abs(yy - cy) < 8))
    cx, cy = rng.integers(14, size - 14, 2)
    masks.append((xx - cx) ** 2 + (yy - cy) ** 2 < 12 ** 2)
    cy = rng.integers(16, size - 16)
    masks.append((np.abs(yy - cy) < 4) & (xx > 4) & (xx < size - 4))
    image = np.full((size, size, 3), 30, np.uint8)
    for k, m in reversed(list(enumerate(masks))):           # back to front
        image[m] = (80 + 60 * k, 200 - 50 * k, 120)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    regions = [Region(k + 1, Mask.from_bitmap(m), category_id=k + 1, depth_rank=k + 1)
               for k, m in enumerate(masks)]
    order = OcclusionOrder({(a.id, b.id) for i, a in enumerate(regions) for b in regions[i + 1:]
                            if (masks[a.id - 1] & masks[b.id - 1]).any()})
    return Scene(id=index, height=size, width=size, regions=regions, order=order,
                 file_name=f"{index}.png", image_bytes=buf.getvalue())


def write_tiny_shards(folder: Path, n_scenes: int, n_shards: int) -> list[Path]:
    """``n_scenes`` scenes spread over ``n_shards`` shard files named the Hub way."""
    paths = []
    for s, ids in enumerate(np.array_split(np.arange(n_scenes), n_shards)):
        path = folder / shard_name("train", s, n_shards)
        write_shard([make_scene(int(i)) for i in ids], path, row_group_size=2)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two scenes in one shard, shared by a test module."""
    folder = tmp_path_factory.mktemp("shards")
    write_tiny_shards(folder, 2, 1)
    return folder


@pytest.fixture
def shards(tmp_path) -> Path:
    """Four scenes in two shards of row groups of two."""
    folder = tmp_path / "shards"
    write_tiny_shards(folder, 4, 2)
    return folder


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and do not fight other test workers for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
