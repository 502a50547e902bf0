"""A simulated detector: predictions derived from the ground truth with the errors a real amodal model makes,
to try the evaluation, its plots and the prediction pictures without training a model.

Per ground-truth region, with probabilities growing with its occlusion rate q (the harder, occluded regions fail
more, as every amodal model in Zhu et al. 2017, Table 3): missed with ``0.05 + 0.3 q``; else predicted as its
visible part only (no amodal completion) with ``0.6 q``, otherwise as its amodal mask shifted by up to
``max_shift`` pixels; labelled with another category with ``confusion``; detected twice (a duplicate, shifted
further) with ``duplicate``. Scores fall with q. Each image also gets about ``background`` false positives
(discs at random places) of low score. Every prediction carries its visible part (the region's visible mask moved
with the prediction) and its order (the region's depth rank). Deterministic for a given ``seed``.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..masks import Mask
from ..scene import Scene
from .groundtruth import front_to_back, occlusion_rates
from .predictions import Prediction


def _shifted(bitmap: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``bitmap`` moved by ``(dy, dx)`` pixels, what leaves the image dropped."""
    h, w = bitmap.shape
    out = np.zeros_like(bitmap)
    ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    src_y, src_x = slice(max(-dy, 0), h - max(dy, 0)), slice(max(-dx, 0), w - max(dx, 0))
    out[ys, xs] = bitmap[src_y, src_x]
    return out


def _disc(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    r = rng.uniform(0.05, 0.15) * min(h, w)
    ys, xs = np.ogrid[:h, :w]
    return (ys - cy) ** 2 + (xs - cx) ** 2 <= r * r


def simulated_predictions(scenes: Iterable[Scene], *, seed: int = 0, max_shift: int = 3, confusion: float = 0.1,
                          duplicate: float = 0.05, background: float = 1.0) -> list[Prediction]:
    """The simulated predictions for ``scenes`` (module docstring), in image order."""
    scenes = list(scenes)
    categories = sorted({r.category_id for s in scenes for r in s.regions if r.category_id is not None})
    out: list[Prediction] = []
    for k, scene in enumerate(scenes):
        rng = np.random.default_rng([seed, k])
        rates = occlusion_rates(scene)
        rank = {rid: i + 1 for i, rid in enumerate(front_to_back(scene))}
        stack = scene.layers

        def entry(amodal: np.ndarray, visible: np.ndarray, score: float, category: Any, order: int) -> None:
            if amodal.any():
                out.append(Prediction(scene.id, Mask.from_bitmap(amodal).compact(), round(float(score), 4),
                                      category, Mask.from_bitmap(visible & amodal).compact(), order=order,
                                      index=len(out)))

        for region in scene.regions:
            q = rates[region.id]
            if rng.random() < 0.05 + 0.3 * q:
                continue
            visible = stack.visible(region.id)
            amodal = visible.copy() if rng.random() < 0.6 * q else region.amodal.to_bitmap()
            dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
            category = region.category_id
            if categories and len(categories) > 1 and rng.random() < confusion:
                category = rng.choice([c for c in categories if c != region.category_id]).item()
            score = rng.uniform(0.5, 1.0) * (1 - 0.5 * q)
            entry(_shifted(amodal, dy, dx), _shifted(visible, dy, dx), score, category, rank[region.id])
            if rng.random() < duplicate:
                dy, dx = rng.integers(-3 * max_shift, 3 * max_shift + 1, size=2)
                entry(_shifted(amodal, dy, dx), _shifted(visible, dy, dx), score * 0.6, category, rank[region.id])
        for _ in range(rng.poisson(background)):
            disc = _disc(scene.height, scene.width, rng)
            entry(disc, disc, rng.uniform(0.05, 0.5), rng.choice(categories).item() if categories else None,
                  len(scene.regions) + 1)
    return out
