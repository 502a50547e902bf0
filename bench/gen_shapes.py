"""Shapes generation end to end into Parquet shards, against PNG-encoding the same images alone in the same run.

The paper's setting (seed 002, Sec. 3): 256x256, 6 circles + 6 triangles + 6 rectangles per scene, every amodal
mask encoded (polygons and RLE), visible masks, order, layer stack and 64x64 targets, written by
:func:`generators.tasks.generate_dataset` (the real path of ``amodaldata gen shapes``). Printed:

- end to end on one worker: scenes/s (wall clock, and per CPU second of this process);
- the floor any generator pays: PNG-encoding the very same images (read back from the shards) with PIL at its
  default settings, and with the 1-bit encoder the generator uses; the ratio of the end-to-end time to each;
- a split of the end-to-end time: generating the Scenes (``generate_scene``) vs writing them (row + Parquet);
- ``--workers 2`` against ``--workers 1`` on ``--n-scale`` scenes (process start-up included).

Goals: >= 500 scenes/s per core end to end; ``--workers 2`` >= 1.8x ``--workers 1``. The machine's load average
is printed: other processes on a shared machine lower every figure.

    python bench/gen_shapes.py [--n 1000] [--n-scale 2000]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from amodaldata.shards import read_shards, write_shard
from generators.encode import encode_png
from generators.shapes import PAPER, generate_scene
from generators.tasks import generate_dataset

GOAL_RATE = 500.0
GOAL_SPEEDUP = 1.8


def _timed(func):
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="scenes of the one-worker run")
    parser.add_argument("--n-scale", type=int, default=2000, help="scenes of the workers 1 vs 2 runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # end to end, one worker (in this process)
        report, wall, cpu = _timed(lambda: generate_dataset(PAPER, tmp / "one", args.n, seed=args.seed,
                                                            scenes_per_shard=250, workers=1, progress=False))
        regions = report.stats.regions
        print(f"end to end, 1 worker: {args.n} scenes ({regions} regions) in {wall:.2f} s: "
              f"{args.n / wall:.0f} scenes/s wall, {args.n / cpu:.0f} scenes per CPU second "
              f"(goal >= {GOAL_RATE:.0f})")

        # the floor: PNG-encoding the same images
        arrays = []
        for scene in read_shards(tmp / "one"):
            with Image.open(io.BytesIO(scene.image_bytes)) as im:
                arrays.append(np.asarray(im))
        pil_png = lambda a: Image.fromarray(a).save(io.BytesIO(), format="PNG")   # noqa: E731
        _, pil_wall, pil_cpu = _timed(lambda: [pil_png(a) for a in arrays])
        _, own_wall, own_cpu = _timed(lambda: [encode_png(a, PAPER.png_compression) for a in arrays])
        print(f"PNG-encoding the same {len(arrays)} images alone: PIL {len(arrays) / pil_cpu:.0f} images per CPU s, "
              f"generator's encoder {len(arrays) / own_cpu:.0f} images per CPU s")
        print(f"ratio end to end / PNG alone (CPU time): {cpu / pil_cpu:.2f}x PIL's PNG, "
              f"{cpu / own_cpu:.2f}x the generator's PNG")

        # where the time goes
        rng = np.random.default_rng(args.seed)
        scenes, _, gen_cpu = _timed(lambda: [generate_scene(PAPER, rng, i) for i in range(min(args.n, 500))])
        _, _, write_cpu = _timed(lambda: write_shard(scenes, tmp / "split.parquet"))
        k = len(scenes)
        print(f"split over {k} scenes: generate {gen_cpu / k * 1e3:.2f} ms/scene ({k / gen_cpu:.0f}/s), "
              f"write (row + Parquet) {write_cpu / k * 1e3:.2f} ms/scene ({k / write_cpu:.0f}/s)")

        # workers 2 vs 1
        per_shard = max(1, args.n_scale // 8)
        _, one_wall, _ = _timed(lambda: generate_dataset(PAPER, tmp / "w1", args.n_scale, seed=args.seed,
                                                         scenes_per_shard=per_shard, workers=1, progress=False))
        _, two_wall, _ = _timed(lambda: generate_dataset(PAPER, tmp / "w2", args.n_scale, seed=args.seed,
                                                         scenes_per_shard=per_shard, workers=2, progress=False))
        same = all((tmp / "w1" / p.name).read_bytes() == p.read_bytes() for p in (tmp / "w2").glob("*.parquet"))
        print(f"workers 1: {args.n_scale / one_wall:.0f} scenes/s, workers 2: {args.n_scale / two_wall:.0f} scenes/s "
              f"(process start-up included): speed-up {one_wall / two_wall:.2f}x (goal >= {GOAL_SPEEDUP}); "
              f"shards byte-identical: {same}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
