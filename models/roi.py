"""Region-of-interest operations with plain torch ops: ROI-Align (He et al., Mask R-CNN) through
``torch.nn.functional.grid_sample``, proposal-to-ground-truth matching and sampling, ROI targets, mask pasting.

ROI-Align: each of the ``S x S`` output bins averages ``sampling x sampling`` bilinear samples at regularly
spaced points of the box (no quantisation of box or bins), as in Mask R-CNN. The feature map must cover the
image exactly (image size = feature size x stride); box coordinates are input-image pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import boxes as B


def _grid(boxes: torch.Tensor, points: int, height: int, width: int) -> torch.Tensor:
    """``grid_sample`` coordinates ``(R, points, points, 2)`` of a regular grid of points inside each box
    (points at the centres of ``points x points`` equal cells), normalised to an image of ``height x width``."""
    t = (torch.arange(points, dtype=boxes.dtype, device=boxes.device) + 0.5) / points
    xs = boxes[:, 0:1] + t[None] * (boxes[:, 2:3] - boxes[:, 0:1])                # (R, P)
    ys = boxes[:, 1:2] + t[None] * (boxes[:, 3:4] - boxes[:, 1:2])
    gx = (2 * xs / width - 1)[:, None, :].expand(-1, points, -1)
    gy = (2 * ys / height - 1)[:, :, None].expand(-1, -1, points)
    return torch.stack([gx, gy], dim=-1)


def roi_align(features: torch.Tensor, boxes: list[torch.Tensor], output_size: int,
              image_size: tuple[int, int], sampling: int = 2) -> torch.Tensor:
    """ROI-Align of every image's boxes: ``(sum R_i, C, S, S)``, images in order, in the features' dtype.

    Sampling runs in float32 whatever the autocast dtype, so box coordinates keep sub-pixel precision.
    """
    height, width = image_size
    out = []
    for feat, bx in zip(features, boxes):
        if len(bx) == 0:
            continue
        p = output_size * sampling
        grid = _grid(bx.float(), p, height, width)                                   # (R, P, P, 2)
        r = len(bx)
        sampled = F.grid_sample(feat[None].float(), grid.reshape(1, r * p, p, 2), mode="bilinear",
                                padding_mode="zeros", align_corners=False)           # (1, C, R*P, P)
        sampled = sampled.reshape(feat.shape[0], r, p, p).permute(1, 0, 2, 3)
        out.append(F.avg_pool2d(sampled, sampling) if sampling > 1 else sampled)
    if not out:
        return features.new_zeros((0, features.shape[1], output_size, output_size))
    return torch.cat(out).to(features.dtype)


def crop_maps(maps: torch.Tensor, boxes: torch.Tensor, output_size: int, mode: str = "bilinear") -> torch.Tensor:
    """Crop and resize one image-sized map per box: ``maps`` ``(R, H, W)`` -> ``(R, S, S)`` float.

    ``mode="nearest"`` keeps label values exact (layering maps, sem-dist maps); ``"bilinear"`` is Mask
    R-CNN's ROI-Align of a binary mask (threshold the result at 0.5).
    """
    if len(boxes) == 0:
        return maps.new_zeros((0, output_size, output_size), dtype=torch.float32)
    h, w = maps.shape[-2:]
    grid = _grid(boxes.float(), output_size, h, w)
    return F.grid_sample(maps[:, None].float(), grid, mode=mode, padding_mode="zeros",
                         align_corners=False)[:, 0]


def add_gt_boxes(proposals: list[torch.Tensor], gt_boxes: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each image's proposals with its ground-truth boxes appended (Mask R-CNN training)."""
    return [torch.cat([p, g.to(p.dtype)]) for p, g in zip(proposals, gt_boxes)]


def match(proposals: torch.Tensor, gt: torch.Tensor, fg_iou: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of each proposal's best ground-truth box and whether it is foreground (IoU >= ``fg_iou``)."""
    if len(gt) == 0:
        zeros = torch.zeros(len(proposals), dtype=torch.int64, device=proposals.device)
        return zeros, zeros.bool()
    best, idx = B.box_iou(proposals, gt).max(dim=1)
    return idx, best >= fg_iou


def sample_rois(proposals: torch.Tensor, gt: torch.Tensor, batch_per_image: int, pos_fraction: float,
                fg_iou: float = 0.5, foreground_only: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sampled ROIs of one image, their matched ground-truth index, and the foreground flag.

    At most ``batch_per_image * pos_fraction`` foreground ROIs (random), the rest background; with
    ``foreground_only`` (mask-only heads) only foreground ROIs, at most ``batch_per_image``.
    """
    idx, fg = match(proposals, gt, fg_iou)
    pos = torch.nonzero(fg).squeeze(1)
    neg = torch.nonzero(~fg).squeeze(1)
    n_pos = min(len(pos), batch_per_image if foreground_only else int(batch_per_image * pos_fraction))
    n_neg = 0 if foreground_only else min(len(neg), batch_per_image - n_pos)
    pos = pos[torch.randperm(len(pos), device=pos.device)[:n_pos]]
    neg = neg[torch.randperm(len(neg), device=neg.device)[:n_neg]]
    keep = torch.cat([pos, neg])
    return proposals[keep], idx[keep], fg[keep]


def paste(roi_map: torch.Tensor, box: np.ndarray, height: int, width: int, mode: str = "bilinear") -> np.ndarray:
    """Resample an ``(S, S)`` ROI map into an image of ``height x width`` (zeros outside the box); float32.

    ``box`` is in the output image's pixels. Only the box's pixel extent is computed.
    """
    out = np.zeros((height, width), dtype=np.float32)
    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = min(int(np.ceil(box[2])), width), min(int(np.ceil(box[3])), height)
    bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
    if x1 <= x0 or y1 <= y0 or bw <= 0 or bh <= 0:
        return out
    xs = torch.arange(x0, x1, dtype=torch.float32) + 0.5
    ys = torch.arange(y0, y1, dtype=torch.float32) + 0.5
    gx = (2 * (xs - float(box[0])) / bw - 1)[None, :].expand(len(ys), -1)
    gy = (2 * (ys - float(box[1])) / bh - 1)[:, None].expand(-1, len(xs))
    grid = torch.stack([gx, gy], dim=-1)[None].to(roi_map.device)
    sampled = F.grid_sample(roi_map[None, None].float(), grid, mode=mode, padding_mode="zeros",
                            align_corners=False)
    out[y0:y1, x0:x1] = sampled[0, 0].cpu().numpy()
    return out
