"""Box geometry in torch: IoU, Faster R-CNN box coding, greedy NMS, anchors (Ren et al., used by SLN and ARCNN).

Boxes are ``(x0, y0, x1, y1)`` in input-image pixels with exclusive ends (a box's width is ``x1 - x0``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Largest log-scale a box delta may apply (as in Faster R-CNN implementations: exp(4.135) = 1000/16).
MAX_LOG_SCALE = math.log(1000.0 / 16)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``(len(a), len(b))``."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union.clamp(min=1e-6)


def encode(reference: torch.Tensor, target: torch.Tensor,
           weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """Deltas ``(dx, dy, dw, dh)`` taking ``reference`` boxes to ``target`` boxes (Faster R-CNN Eq. 2)."""
    rw, rh = reference[:, 2] - reference[:, 0], reference[:, 3] - reference[:, 1]
    rx, ry = reference[:, 0] + 0.5 * rw, reference[:, 1] + 0.5 * rh
    tw, th = target[:, 2] - target[:, 0], target[:, 3] - target[:, 1]
    tx, ty = target[:, 0] + 0.5 * tw, target[:, 1] + 0.5 * th
    wx, wy, ww, wh = weights
    return torch.stack([wx * (tx - rx) / rw, wy * (ty - ry) / rh,
                        ww * torch.log(tw / rw), wh * torch.log(th / rh)], dim=1)


def decode(reference: torch.Tensor, deltas: torch.Tensor,
           weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """Apply deltas ``(N, 4)`` to reference boxes ``(N, 4)`` (the inverse of :func:`encode`)."""
    rw, rh = reference[:, 2] - reference[:, 0], reference[:, 3] - reference[:, 1]
    rx, ry = reference[:, 0] + 0.5 * rw, reference[:, 1] + 0.5 * rh
    wx, wy, ww, wh = weights
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw = (deltas[:, 2] / ww).clamp(max=MAX_LOG_SCALE)
    dh = (deltas[:, 3] / wh).clamp(max=MAX_LOG_SCALE)
    cx, cy = rx + dx * rw, ry + dy * rh
    w, h = rw * torch.exp(dw), rh * torch.exp(dh)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=1)


def clip(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Boxes clipped to the image."""
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, by decreasing score.

    The IoU matrix is computed on the boxes' device; the greedy sweep runs on the host.
    """
    order = scores.argsort(descending=True)
    over = (box_iou(boxes[order], boxes[order]) > iou_threshold).cpu().numpy()
    keep = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1:] &= ~over[i, i + 1:]
    return order[torch.from_numpy(keep).to(order.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """NMS applied separately inside each group (class), by offsetting the groups apart."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    offset = groups.to(boxes.dtype)[:, None] * (boxes.max() + 1)
    return nms(boxes + offset, scores, iou_threshold)


def anchors(height: int, width: int, stride: int, sizes: tuple[int, ...], ratios: tuple[float, ...],
            device: torch.device | None = None) -> torch.Tensor:
    """Anchor boxes ``(height * width * A, 4)`` centred on a feature grid of the given stride; A = sizes x
    ratios (ratio = height / width), ordered location-major, matching a head's ``(A, H, W)`` output permuted
    to ``(H, W, A)``."""
    scales = torch.tensor(sizes, dtype=torch.float32, device=device)
    r = torch.tensor(ratios, dtype=torch.float32, device=device)
    hs = (scales[:, None] * torch.sqrt(r)[None, :]).reshape(-1)
    ws = (scales[:, None] / torch.sqrt(r)[None, :]).reshape(-1)
    base = torch.stack([-ws, -hs, ws, hs], dim=1) / 2                       # (A, 4)
    ys = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) * stride
    xs = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)      # (H*W, 1, 4)
    return (centres + base[None]).reshape(-1, 4)
