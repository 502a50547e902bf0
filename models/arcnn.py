"""ARCNN: amodal Mask R-CNN (Follmann et al., WACV 2019; the baseline of seeds ``000`` Table 1 and ``002``).

Mask R-CNN (He et al.) whose mask head is trained on amodal masks, so it predicts each instance's whole
extent; "ARCNN with visible mask" (seed 000, Table 1) adds a second, identical head for the visible mask
(``visible_head=True``, the default; without it the visible mask of a detection is its amodal mask).
Stages: encoder -> RPN -> ROI-Align 7x7 -> box head (two fully connected layers; class scores over
``num_classes + 1`` and class-specific box deltas) -> ROI-Align 14x14 -> mask heads (four 3x3 conv-relu, a
2x2 stride-2 transposed conv, a 1x1 conv to one 28x28 mask per class).

Losses (Mask R-CNN): RPN objectness BCE and box smooth L1; box head cross entropy and smooth L1 on
foreground ROIs; mask BCE per foreground ROI on the channel of its ground-truth class, the target being the
ground-truth amodal (visible) mask ROI-Aligned into the ROI and thresholded at 0.5. Training ROIs: RPN
proposals plus ground-truth boxes, ``rois_per_image`` sampled with 25% foreground (IoU >= 0.5).

Simplified relative to the papers: a small encoder trained from scratch and one feature level (no
ResNet-50/101 FPN, no ImageNet pretraining); everything else follows Mask R-CNN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import boxes as B
from .backbone import Encoder
from .results import Detections
from .roi import add_gt_boxes, crop_maps, paste, roi_align, sample_rois
from .rpn import RPN

#: Box-delta weights of the second stage (Mask R-CNN's defaults).
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


class MaskHead(nn.Module):
    """Four 3x3 conv-relu, a 2x2 transposed conv (x2), a 1x1 conv to ``num_classes`` mask logits."""

    def __init__(self, cin: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Conv2d(cin if i == 0 else hidden, hidden, 3, padding=1), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(hidden, hidden, 2, stride=2), nn.ReLU(inplace=True),
                   nn.Conv2d(hidden, num_classes, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mask_bce(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean BCE of each ROI's mask logits at its class channel ``labels - 1`` against ``targets`` (R, M, M)."""
    if len(labels) == 0:
        return logits.sum() * 0
    chosen = logits[torch.arange(len(labels), device=logits.device), labels - 1]
    return F.binary_cross_entropy_with_logits(chosen.float(), targets)


class ARCNN(nn.Module):
    """Amodal Mask R-CNN (see the module docstring). ``forward(batch)`` -> its loss terms."""

    def __init__(self, *, num_classes: int = 1, visible_head: bool = True,
                 widths: tuple[int, int, int, int] = (32, 64, 128, 128), channels: int = 128, fc: int = 256,
                 mask_hidden: int = 128, box_roi: int = 7, mask_roi: int = 14, rois_per_image: int = 64,
                 pos_fraction: float = 0.25, fg_iou: float = 0.5, score_threshold: float = 0.05,
                 nms_iou: float = 0.5, detections: int = 100,
                 anchor_sizes: tuple[int, ...] = (16, 32, 64, 128, 256)) -> None:
        super().__init__()
        self.num_classes, self.box_roi, self.mask_roi = num_classes, box_roi, mask_roi
        self.rois_per_image, self.pos_fraction, self.fg_iou = rois_per_image, pos_fraction, fg_iou
        self.score_threshold, self.nms_iou, self.detections = score_threshold, nms_iou, detections
        self.encoder = Encoder(tuple(widths), channels)
        self.rpn = RPN(channels, Encoder.stride, sizes=tuple(anchor_sizes))
        self.box_head = nn.Sequential(nn.Flatten(), nn.Linear(channels * box_roi * box_roi, fc),
                                      nn.ReLU(inplace=True), nn.Linear(fc, fc), nn.ReLU(inplace=True))
        self.cls_score = nn.Linear(fc, num_classes + 1)
        self.box_deltas = nn.Linear(fc, 4 * (num_classes + 1))
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.box_deltas.weight, std=0.001)
        for layer in (self.cls_score, self.box_deltas):
            nn.init.zeros_(layer.bias)
        self.amodal_head = MaskHead(channels, mask_hidden, num_classes)
        self.visible_head = MaskHead(channels, mask_hidden, num_classes) if visible_head else None

    def _boxes(self, feats: torch.Tensor, rois: list[torch.Tensor], size: tuple[int, int]):
        x = self.box_head(roi_align(feats, rois, self.box_roi, size))
        return self.cls_score(x), self.box_deltas(x).reshape(-1, self.num_classes + 1, 4)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        images, targets = batch["images"], batch["targets"]
        size = tuple(images.shape[-2:])
        gt_boxes = [t["boxes"] for t in targets]
        feats = self.encoder(images)
        proposals, _, rpn_losses = self.rpn(feats, size, gt_boxes)
        rois, labels, reg_t, fg_rois, fg_labels, amodal_t, visible_t = [], [], [], [], [], [], []
        for props, t in zip(add_gt_boxes(proposals, gt_boxes), targets):
            boxes, idx, fg = sample_rois(props, t["boxes"], self.rois_per_image, self.pos_fraction, self.fg_iou)
            lab = torch.where(fg, t["labels"][idx] if len(t["labels"]) else torch.zeros_like(idx),
                              torch.zeros_like(idx))
            rois.append(boxes)
            labels.append(lab)
            reg_t.append(B.encode(boxes[fg], t["boxes"][idx[fg]], BOX_WEIGHTS))
            fg_rois.append(boxes[fg])
            fg_labels.append(lab[fg])
            amodal_t.append(crop_maps(t["amodal"][idx[fg]], boxes[fg], 2 * self.mask_roi) >= 0.5)
            visible_t.append(crop_maps(t["visible"][idx[fg]], boxes[fg], 2 * self.mask_roi) >= 0.5)
        labels, fg_labels = torch.cat(labels), torch.cat(fg_labels)
        cls_logits, deltas = self._boxes(feats, rois, size)
        fg = labels > 0
        reg_t = torch.cat(reg_t)
        box_reg = (F.smooth_l1_loss(deltas[fg, labels[fg]].float(), reg_t, beta=1.0, reduction="sum")
                   / max(len(labels), 1)) if fg.any() else deltas.sum() * 0
        mask_x = roi_align(feats, fg_rois, self.mask_roi, size)
        losses = {
            "rpn_objectness": rpn_losses["rpn_objectness"],
            "rpn_box": rpn_losses["rpn_box"],
            "box_cls": F.cross_entropy(cls_logits.float(), labels) if len(labels) else cls_logits.sum() * 0,
            "box_reg": box_reg,
            "amodal_mask": mask_bce(self.amodal_head(mask_x), fg_labels, torch.cat(amodal_t).float()),
        }
        if self.visible_head is not None:
            losses["visible_mask"] = mask_bce(self.visible_head(mask_x), fg_labels, torch.cat(visible_t).float())
        return losses

    @torch.no_grad()
    def detect(self, feats: torch.Tensor, size: tuple[int, int]
               ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Second-stage detections per image: boxes, scores, labels (score filter, per-class NMS, top-k)."""
        proposals, _, _ = self.rpn(feats, size)
        cls_logits, deltas = self._boxes(feats, proposals, size)
        probs = torch.softmax(cls_logits.float(), dim=1)
        out_boxes, out_scores, out_labels, start = [], [], [], 0
        for props in proposals:
            n = len(props)
            p, d = probs[start:start + n, 1:], deltas[start:start + n, 1:].float()
            start += n
            boxes = B.clip(B.decode(props[:, None].expand(-1, self.num_classes, -1).reshape(-1, 4),
                                    d.reshape(-1, 4), BOX_WEIGHTS), *size)
            scores = p.reshape(-1)
            labels = torch.arange(1, self.num_classes + 1, device=props.device).repeat(n)
            keep = (scores > self.score_threshold) & ((boxes[:, 2] - boxes[:, 0]) >= 1) \
                & ((boxes[:, 3] - boxes[:, 1]) >= 1)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = B.batched_nms(boxes, scores, labels, self.nms_iou)[: self.detections]
            out_boxes.append(boxes[keep])
            out_scores.append(scores[keep])
            out_labels.append(labels[keep])
        return out_boxes, out_scores, out_labels

    @torch.no_grad()
    def predict(self, images: torch.Tensor, orig_sizes: list[tuple[int, int]],
                threshold: float = 0.5) -> list[Detections]:
        """Per image: amodal (and visible) masks pasted at the original size, class scores and labels."""
        size = tuple(images.shape[-2:])
        feats = self.encoder(images)
        boxes, scores, labels = self.detect(feats, size)
        mask_x = roi_align(feats, boxes, self.mask_roi, size)
        cat_labels = torch.cat(labels)
        rows = torch.arange(len(cat_labels), device=mask_x.device)
        amodal = torch.sigmoid(self.amodal_head(mask_x)[rows, cat_labels - 1].float())
        visible = (torch.sigmoid(self.visible_head(mask_x)[rows, cat_labels - 1].float())
                   if self.visible_head is not None else amodal)
        out, start = [], 0
        h, w = size
        for bx, sc, lb, (oh, ow) in zip(boxes, scores, labels, orig_sizes):
            det = Detections()
            scale = np.array([ow / w, oh / h, ow / w, oh / h], dtype=np.float32)
            for i, box in enumerate(bx.cpu().numpy() * scale):
                a = paste(amodal[start + i], box, oh, ow) > threshold
                v = paste(visible[start + i], box, oh, ow) > threshold
                det.add(float(sc[i]), int(lb[i]), a, v)
            out.append(det)
            start += len(bx)
        return out
