"""Training-data throughput of :class:`models.data.ShardDataset`, against decoding the images alone.

A synthetic shard (seeded): ``--scenes`` scenes of 480x640 (COCOA's size) with 6 to 14 overlapping polygon
regions in a depth order and a JPEG image. Reference, in the same run: read the same rows' image bytes from
the Parquet file and decode + resize them with PIL, the floor every loader pays. Ours: full samples at
``--size`` (image, sem-dist maps, layering maps, K-layer masks, amodal/visible masks, boxes), one process.

    python bench/models_data.py [--scenes 200] [--size 256]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from amodaldata.shards import ShardSet, write_shard
from models.data import ShardDataset

HEIGHT, WIDTH = 480, 640


def synthetic_scene(rng: np.random.Generator, index: int) -> Scene:
    regions = []
    for rid in range(1, int(rng.integers(6, 15)) + 1):
        cx, cy, radius = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(30, 160)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 16))
        r = radius * rng.uniform(0.6, 1.0, 16)
        xs = np.clip(cx + r * np.cos(angles), 0, WIDTH - 1)
        ys = np.clip(cy + r * np.sin(angles), 0, HEIGHT - 1)
        polygon = np.stack([xs, ys], axis=1).ravel().tolist()
        regions.append(Region(rid, Mask.from_polygons(polygon, HEIGHT, WIDTH), name=f"r{rid}", depth_rank=rid))
    pixels = rng.integers(0, 255, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).resize((WIDTH, HEIGHT), Image.BILINEAR).save(buf, format="JPEG", quality=90)
    order = OcclusionOrder.from_ranks({r.id: r.depth_rank for r in regions})
    return Scene(id=index, height=HEIGHT, width=WIDTH, regions=regions, order=order, file_name=f"{index}.jpg",
                 image_bytes=buf.getvalue())


def images_only(path: Path, size: int) -> int:
    n = 0
    for row in ShardSet.rows(path, ["image"], batch_size=100):
        with Image.open(io.BytesIO(row["image"]["bytes"])) as im:
            np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32)
        n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train-00000-of-00001.parquet"
        write_shard((synthetic_scene(rng, i) for i in range(args.scenes)), path)
        tic = time.perf_counter()
        n_ref = images_only(path, args.size)
        ref = time.perf_counter() - tic
        tic = time.perf_counter()
        n = sum(1 for _ in ShardDataset(path, args.size))
        ours = time.perf_counter() - tic
    print(f"{args.scenes} scenes of {HEIGHT}x{WIDTH} -> samples of {args.size}x{args.size}")
    print(f"images only (decode + resize): {n_ref / ref:8.1f} scenes/s")
    print(f"ShardDataset (all targets):    {n / ours:8.1f} scenes/s")
    print(f"ratio (ours / images only time): {ours / ref:.2f}")


if __name__ == "__main__":
    main()
