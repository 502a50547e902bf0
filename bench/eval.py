"""Segmentation evaluation, against pycocotools' COCOeval on the same task in the same run.

A synthetic task (seeded): ``--images`` ground-truth scenes of 480x640 with 6 to 14 overlapping polygon
regions in a depth order (a fifth of them stuff), and ``--dets`` detections per image (jittered copies of the
regions and random shapes, random scores), every mask as COCO RLE. The reference is COCOeval (``segm``,
``useCats=0``, one area range, max detections 1/10/100/1000, the COCOA settings): evaluate + accumulate +
summarize. Ours is :func:`amodaldata.evaluation.evaluate_segmentation`, which also computes the occlusion
rates from the depth order and the 13 buckets (all/things/stuff x none/partial/heavy, occluded-only); its
overall AP/AR are checked equal to COCOeval's. The goal is a ratio of at most 1.5.

    python bench/eval.py [--images 1250] [--dets 100] [--rounds 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from typing import Any, Callable

import numpy as np
from pycocotools import mask as cocomask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from amodaldata.evaluation import Prediction, evaluate_segmentation
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene

GOAL = 1.5
HEIGHT, WIDTH = 480, 640


def blob(rng: np.random.Generator, cx: float, cy: float, radius: float) -> list[float]:
    """A star-shaped 16-gon around (cx, cy), clipped to the image."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, 16))
    r = radius * rng.uniform(0.6, 1.0, 16)
    xs = np.clip(cx + r * np.cos(angles), 0, WIDTH - 1)
    ys = np.clip(cy + r * np.sin(angles), 0, HEIGHT - 1)
    return np.stack([xs, ys], axis=1).ravel().tolist()


def rle(polygon: list[float]) -> dict:
    out = cocomask.merge(cocomask.frPyObjects([polygon], HEIGHT, WIDTH))
    return {"size": out["size"], "counts": out["counts"].decode("ascii")}


def synthetic_task(n_images: int, n_dets: int, seed: int = 0) -> tuple[list[Scene], list[Prediction], dict,
                                                                         list[dict]]:
    """Scenes and predictions for ours; the same as a COCO ground-truth dataset and results list."""
    rng = np.random.default_rng(seed)
    scenes, preds, images, anns, dets = [], [], [], [], []
    for image_id in range(1, n_images + 1):
        regions, polygons = [], []
        for rid in range(1, int(rng.integers(6, 15)) + 1):
            poly = blob(rng, rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(15, 120))
            polygons.append(poly)
            mask = rle(poly)
            regions.append(Region(rid, Mask.from_rle(mask, HEIGHT, WIDTH), is_stuff=bool(rng.random() < 0.2),
                                  depth_rank=rid))
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "segmentation": mask,
                         "area": float(cocomask.area(regions[-1].amodal.to_pycocotools())), "iscrowd": 0,
                         "bbox": list(regions[-1].amodal.bbox())})
        order = OcclusionOrder.from_ranks({r.id: r.id for r in regions})
        scenes.append(Scene(image_id, HEIGHT, WIDTH, regions, order))
        images.append({"id": image_id, "height": HEIGHT, "width": WIDTH})
        for _ in range(n_dets):
            if rng.random() < 0.7:
                poly = np.asarray(polygons[rng.integers(len(polygons))]).reshape(-1, 2)
                poly = poly + rng.normal(0, 4, 2) + rng.normal(0, 2, poly.shape)
                poly = np.clip(poly, 0, [WIDTH - 1, HEIGHT - 1]).ravel().tolist()
            else:
                poly = blob(rng, rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(15, 120))
            mask, score = rle(poly), float(rng.random())
            preds.append(Prediction(image_id, Mask.from_rle(mask, HEIGHT, WIDTH), score, index=len(preds)))
            dets.append({"image_id": image_id, "category_id": 1, "segmentation": mask, "score": score})
    dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}
    return scenes, preds, dataset, dets


def cocoeval(gt: COCO, dt: COCO) -> np.ndarray:
    """COCOeval with the COCOA settings: evaluate + accumulate + summarize; returns the stats."""
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, dt, "segm")
        ev.params.useCats = 0
        ev.params.maxDets = [1, 10, 100, 1000]
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"][:, :, :, 0, -1]
    recall = ev.eval["recall"][:, :, 0, :]
    return np.array([precision[precision > -1].mean(), *recall.mean(axis=(0, 1))])


def best_time(func: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    """The fastest of ``rounds`` runs, in seconds, and the last result."""
    times, out = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1250, help="ground-truth images")
    parser.add_argument("--dets", type=int, default=100, help="detections per image")
    parser.add_argument("--rounds", type=int, default=1, help="timed runs of each side (the fastest counts)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    scenes, preds, dataset, dets = synthetic_task(args.images, args.dets, args.seed)
    print(f"task: {args.images} images, {sum(len(s.regions) for s in scenes)} regions, {len(preds)} detections "
          f"(built in {time.perf_counter() - start:.1f} s)")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes(dets)

    t_ref, ref = best_time(lambda: cocoeval(gt, dt), args.rounds)
    t_ours, res = best_time(lambda: evaluate_segmentation(scenes, preds, keep_matches=False), args.rounds)
    overall = res.overall
    mine = np.array([overall.ap, *overall.ar.values()])
    n = len(preds)
    print(f"pycocotools COCOeval (evaluate+accumulate+summarize): {t_ref:7.2f} s  {n / t_ref:9.0f} detections/s")
    print(f"amodaldata eval (+ occlusion rates, {len(res.buckets)} buckets): {t_ours:7.2f} s  "
          f"{n / t_ours:9.0f} detections/s")
    print(f"ratio ours / COCOeval: {t_ours / t_ref:.2f} (goal <= {GOAL})")
    print(f"AP {overall.ap:.4f}  AR1 {overall.ar[1]:.4f}  AR10 {overall.ar[10]:.4f}  AR100 {overall.ar[100]:.4f}  "
          f"AR1000 {overall.ar[1000]:.4f}; largest difference to COCOeval {np.abs(mine - ref).max():.2e}")
    for name in ("all, none [0, 1e-05]", "all, partial [1e-05, 0.25]", "all, heavy [0.25, 1]"):
        b = res.bucket(name)
        print(f"  {name:28s} n_gt {b.n_gt:6d}  AP {b.ap:.4f}  AR1000 {b.ar[1000]:.4f}")


if __name__ == "__main__":
    main()
