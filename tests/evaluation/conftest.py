"""Helpers for the evaluation tests: pycocotools' COCOeval as the reference, and small hand-made scenes."""

from __future__ import annotations

import contextlib
import io
from typing import Callable

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from amodaldata.masks import Mask
from amodaldata.scene import Region, Scene


def _coco_reference(scenes: list[Scene], preds: list, use_cats: int,
                    counts: Callable[[Scene, Region], bool] | None = None,
                    gt_masks: Callable[[Scene, Region], Mask] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval (segm, max dets 1/10/100/1000, one area range) on the same inputs: ``(precision, recall)``
    of shapes (T, R, K, M) and (T, K, M). A region for which ``counts`` is False is made ignored the way the
    official COCOA API ignores regions outside an occlusion level: its area is put outside the area range."""
    images, anns = [], []
    for scene in scenes:
        images.append({"id": scene.id, "height": scene.height, "width": scene.width})
        for region in scene.regions:
            mask = gt_masks(scene, region) if gt_masks else region.amodal
            area = float(mask.area()) if counts is None or counts(scene, region) else 2e10
            anns.append({"id": len(anns) + 1, "image_id": scene.id, "category_id": region.category_id or 1,
                         "segmentation": mask.to_rle(), "area": area,
                         "iscrowd": int(region.is_crowd), "bbox": list(mask.bbox())})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": c} for c in sorted({a["category_id"] for a in anns})]}
    dets = [{"image_id": p.image_id, "category_id": p.category_id or 1, "segmentation": p.mask.to_rle(),
             "score": p.score} for p in preds]
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else COCO()
        ev = COCOeval(gt, dt, "segm")
        ev.params.useCats = use_cats
        ev.params.maxDets = [1, 10, 100, 1000]
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
        ev.accumulate()
    return ev.eval["precision"][:, :, :, 0, :], ev.eval["recall"][:, :, 0, :]


@pytest.fixture(scope="session")
def coco_reference():
    """``coco_reference(scenes, preds, use_cats, counts=None, gt_masks=None) -> (precision, recall)``."""
    return _coco_reference
