"""`amodaldata stats` throughput and memory, against pycocotools' bare rasterisation of the same polygons.

The five built-in COCOA scenes are repeated to ``--scenes`` scenes (default 5,000), each copy with fresh Mask
objects built from the polygons (nothing cached) and its own image id. "Ours" streams them through
:func:`amodaldata.stats.compute_stats` (layer stack, outlines, shape, edges, occlusion DAG, agreement
bookkeeping: everything the command computes); the reference, timed in the same run, is pycocotools alone:
``frPyObjects`` + ``merge`` + ``decode`` of every region's polygon. The two take turns on chunks of scenes so
that a change of machine load hits both. Goal: a ratio of at most 3. A third turn builds only the layer stacks
of the same fresh scenes, to show how the ratio splits between the stack and the statistics proper.

Memory: the peak of Python-tracked allocations (tracemalloc, which sees numpy's buffers) while streaming two
numbers of scenes through the statistics; flat memory means the same peak for both.

    python bench/stats.py [--scenes 5000] [--chunk 250] [--memory 500 5000]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from typing import Iterator

from pycocotools import mask as cocomask

from amodaldata.data import COCOA_DEMO_JSON
from amodaldata.masks import Mask
from amodaldata.scene import Region, Scene
from amodaldata.stats import StatsAccumulator
from converters import read

GOAL = 3.0


def fresh_scenes(templates: list[Scene], count: int, start: int = 0) -> Iterator[Scene]:
    """``count`` copies of the templates in turn, with fresh masks from the polygons and their own image ids."""
    for i in range(start, start + count):
        t = templates[i % len(templates)]
        regions = [Region(r.id, Mask.from_polygons(r.amodal.polygons, t.height, t.width), name=r.name,
                          is_stuff=r.is_stuff, depth_rank=r.depth_rank) for r in t.regions]
        yield Scene(f"{i}-{t.id}", t.height, t.width, regions, t.order, annotator=t.annotator,
                    annotation_id=f"{i}-{t.annotation_id}")


def rasterise(templates: list[Scene], count: int, start: int) -> None:
    """The reference: pycocotools' rasterisation of the polygons of the same scenes."""
    for i in range(start, start + count):
        t = templates[i % len(templates)]
        for region in t.regions:
            cocomask.decode(cocomask.merge(cocomask.frPyObjects(region.amodal.polygons, t.height, t.width)))


def peak_memory(templates: list[Scene], count: int) -> float:
    """Peak traced allocation in MiB while computing the statistics of ``count`` scenes."""
    tracemalloc.start()
    acc = StatsAccumulator()
    for scene in fresh_scenes(templates, count):
        acc.add(scene)
    acc.result()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=5000, help="scenes to measure")
    parser.add_argument("--chunk", type=int, default=250, help="scenes per turn")
    parser.add_argument("--memory", type=int, nargs=2, default=(500, 5000), metavar=("SMALL", "LARGE"),
                        help="the two numbers of scenes of the memory runs")
    args = parser.parse_args()
    templates = list(read(COCOA_DEMO_JSON, format="cocoa"))
    regions = sum(len(templates[i % len(templates)].regions) for i in range(args.scenes))

    warm_up = StatsAccumulator()              # imports, compiling the numba loops: not timed
    for scene in fresh_scenes(templates, len(templates)):
        warm_up.add(scene)
    warm_up.result()
    ours = reference = stack = 0.0
    acc = StatsAccumulator()
    for start in range(0, args.scenes, args.chunk):
        n = min(args.chunk, args.scenes - start)
        t0 = time.perf_counter()
        rasterise(templates, n, start)
        t1 = time.perf_counter()
        for scene in fresh_scenes(templates, n, start):
            acc.add(scene)
        t2 = time.perf_counter()
        for scene in fresh_scenes(templates, n, start):
            scene.layers
        t3 = time.perf_counter()
        reference += t1 - t0
        ours += t2 - t1
        stack += t3 - t2
    t0 = time.perf_counter()
    result = acc.result()
    ours += time.perf_counter() - t0
    assert result["summary"]["annotations"] == args.scenes

    ratio = ours / reference
    print(f"{args.scenes} scenes ({regions} regions)")
    print(f"pycocotools rasterisation only : {args.scenes / reference:8.1f} scenes/s")
    print(f"amodaldata stats               : {args.scenes / ours:8.1f} scenes/s")
    print(f"ratio (stats / rasterisation): {ratio:.2f}  (goal <= {GOAL:g}: {'met' if ratio <= GOAL else 'NOT met'})")
    print(f"  of which building the layer stacks (fresh masks -> scene.layers): {stack / reference:.2f}, "
          f"the statistics: {(ours - stack) / reference:.2f}")
    small, large = args.memory
    peaks = [peak_memory(templates, n) for n in (small, large)]
    print(f"peak traced memory: {peaks[0]:.1f} MiB at {small} scenes, {peaks[1]:.1f} MiB at {large} scenes")


if __name__ == "__main__":
    main()
