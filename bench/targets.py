"""Polygons -> all training targets, against pycocotools' bare rasterisation of the same polygons.

For the built-in COCOA scenes (repeated for stable timing), one round of "ours" builds fresh Masks from the
polygons (so nothing is cached) and calls :func:`amodaldata.targets.scene_targets`: rasterisation, layer stack,
visible/amodal masks, sem-dist maps, layering maps, layered masks; once with full-image (N, H, W) per-region
maps and once with per-region maps in each region's box (``crop=True``, the ROI form SLN's ILM trains on).
The stack alone is timed too. The reference, timed in the same run, is
pycocotools alone: ``frPyObjects`` + ``merge`` + ``decode`` of every region's polygon. The goal is a ratio of
at most 1.5.

    python bench/targets.py [--repeat 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

from pycocotools import mask as cocomask

from amodaldata.data import COCOA_DEMO_DIR, COCOA_DEMO_JSON
from amodaldata.masks import Mask
from amodaldata.scene import Region, Scene
from amodaldata.targets import (RegionBoxes, global_layering_map, instance_layering_crops, scene_targets,
                                semdist_crops)
from converters import read

GOAL = 1.5


def fresh(scene: Scene) -> Scene:
    """A copy of ``scene`` whose masks are rebuilt from the polygons, so no raster is cached."""
    regions = [Region(r.id, Mask.from_polygons(r.amodal.polygons, scene.height, scene.width), name=r.name,
                      is_stuff=r.is_stuff, depth_rank=r.depth_rank) for r in scene.regions]
    return Scene(scene.id, scene.height, scene.width, regions, scene.order)


def ours(scenes: list[Scene]) -> None:
    for scene in scenes:
        scene_targets(fresh(scene))


def ours_in_boxes(scenes: list[Scene]) -> None:
    for scene in scenes:
        scene_targets(fresh(scene), crop=True)


def sln_targets(scenes: list[Scene]) -> None:
    """The issue's list: the stack, sem-dist maps and layering maps (instance maps in each region's box)."""
    for scene in scenes:
        stack = fresh(scene).layers
        rids = [r.id for r in scene.regions]
        boxes = RegionBoxes.of(stack, rids)
        semdist_crops(stack, rids, boxes=boxes)
        instance_layering_crops(stack, rids, boxes=boxes)
        global_layering_map(stack)


def stack_only(scenes: list[Scene]) -> None:
    for scene in scenes:
        fresh(scene).layers


def pycocotools_only(scenes: list[Scene]) -> None:
    for scene in scenes:
        for region in scene.regions:
            rles = cocomask.frPyObjects(region.amodal.polygons, scene.height, scene.width)
            cocomask.decode(cocomask.merge(rles))


def best_times(funcs: list[Callable[[list[Scene]], None]], scenes: list[Scene], rounds: int) -> list[float]:
    """The fastest of ``rounds`` runs of each function, in seconds; the functions take turns in every round, so
    a load change on the machine hits them alike."""
    best = [float("inf")] * len(funcs)
    for _ in range(rounds):
        for i, func in enumerate(funcs):
            start = time.perf_counter()
            func(scenes)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="copies of the built-in scenes per round")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds; the fastest counts")
    args = parser.parse_args()
    base = list(read(COCOA_DEMO_JSON, format="cocoa", images=COCOA_DEMO_DIR))
    scenes = base * args.repeat
    regions = sum(len(s.regions) for s in scenes)
    ours(scenes[:len(base)])                  # warm-up (imports, compiling the numba loops, allocator)
    t_ref, t_stack, t_sln, t_ours, t_boxes = best_times(
        [pycocotools_only, stack_only, sln_targets, ours, ours_in_boxes], scenes, args.rounds)
    ratio = t_sln / t_ref
    print(f"{len(scenes)} scenes ({regions} regions), best of {args.rounds} rounds")
    print(f"pycocotools rasterisation only : {len(scenes) / t_ref:8.1f} scenes/s")
    print(f"amodaldata polygons -> stack    : {len(scenes) / t_stack:8.1f} scenes/s  ({t_stack / t_ref:.2f}x)")
    print(f"amodaldata polygons -> targets, full-image (N, H, W) maps : {len(scenes) / t_ours:8.1f} scenes/s"
          f"  ({t_ours / t_ref:.2f}x)")
    print(f"amodaldata polygons -> targets, per-region maps in boxes : {len(scenes) / t_boxes:8.1f} scenes/s"
          f"  ({t_boxes / t_ref:.2f}x)")
    print(f"amodaldata polygons -> stack + sem-dist + layering maps (in boxes): {len(scenes) / t_sln:8.1f} scenes/s")
    print(f"ratio (stack + sem-dist + layering maps / rasterisation): {ratio:.2f}  "
          f"(goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
