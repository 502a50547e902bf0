"""Region proposal network (Faster R-CNN, Ren et al.; the RPN of SLN Sec. 4.1 and of Mask R-CNN/ARCNN).

Single-level and anchor-based: a 3x3 conv (stride 2 over the stride-4 encoder features, so anchors sit on a
stride-8 grid), then 1x1 objectness and box-delta convs. Training labels anchors by IoU with the ground-truth
amodal boxes (>= ``fg_iou`` positive, < ``bg_iou`` negative, and every ground-truth box's best anchors
positive), samples ``batch_per_image`` anchors with at most ``pos_fraction`` positives, and returns the
objectness BCE and the smooth-L1 box loss (SLN's l_R). Proposals: decoded, clipped, top ``pre_nms`` by
score, NMS at ``nms_iou``, top ``post_nms``. Simplified relative to the papers: one feature level instead of
an FPN (Mask R-CNN) or the ResNet C4 head; anchors crossing the image border are kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import boxes as B


class RPN(nn.Module):
    """Anchor-based RPN over one feature map of stride ``feature_stride``."""

    def __init__(self, in_channels: int, feature_stride: int = 4, *, hidden: int = 128,
                 sizes: tuple[int, ...] = (16, 32, 64, 128, 256), ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
                 fg_iou: float = 0.7, bg_iou: float = 0.3, batch_per_image: int = 256, pos_fraction: float = 0.5,
                 pre_nms: tuple[int, int] = (1000, 500), post_nms: tuple[int, int] = (300, 100),
                 nms_iou: float = 0.7, box_beta: float = 1.0 / 9) -> None:
        super().__init__()
        self.sizes, self.ratios = tuple(sizes), tuple(ratios)
        self.stride = feature_stride * 2
        n = len(self.sizes) * len(self.ratios)
        self.conv = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.objectness = nn.Conv2d(hidden, n, 1)
        self.deltas = nn.Conv2d(hidden, 4 * n, 1)
        for layer in (self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        self.fg_iou, self.bg_iou = fg_iou, bg_iou
        self.batch_per_image, self.pos_fraction = batch_per_image, pos_fraction
        self.pre_nms, self.post_nms, self.nms_iou = pre_nms, post_nms, nms_iou
        self.box_beta = box_beta

    def forward(self, features: torch.Tensor, image_size: tuple[int, int],
                gt_boxes: list[torch.Tensor] | None = None
                ) -> tuple[list[torch.Tensor], list[torch.Tensor], dict[str, torch.Tensor]]:
        """Proposals and their objectness probabilities per image, and the losses when ``gt_boxes`` is given.

        Proposals are detached (no gradient flows back through them, as in Faster R-CNN's approximate joint
        training).
        """
        x = self.conv(features)
        b, _, h, w = x.shape
        logits = self.objectness(x).permute(0, 2, 3, 1).reshape(b, -1)                 # (B, H*W*A)
        deltas = self.deltas(x).reshape(b, -1, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, 4)
        anchors = B.anchors(h, w, self.stride, self.sizes, self.ratios, device=x.device)
        proposals, scores = self.propose(anchors, logits.detach().float(), deltas.detach().float(), image_size)
        losses = {} if gt_boxes is None else self.loss(anchors, logits, deltas, gt_boxes)
        return proposals, scores, losses

    def propose(self, anchors: torch.Tensor, logits: torch.Tensor, deltas: torch.Tensor,
                image_size: tuple[int, int]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per image: decoded, clipped boxes (at least 1 px wide and high) after top-k and NMS, and their
        objectness probabilities; train and test keep different numbers (``pre_nms``, ``post_nms``)."""
        pre, post = (self.pre_nms[0], self.post_nms[0]) if self.training else (self.pre_nms[1], self.post_nms[1])
        out_boxes, out_scores = [], []
        for lg, dl in zip(logits, deltas):
            top = lg.topk(min(pre, lg.numel())).indices
            boxes = B.clip(B.decode(anchors[top], dl[top]), *image_size)
            score = torch.sigmoid(lg[top])
            wide = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
            boxes, score = boxes[wide], score[wide]
            keep = B.nms(boxes, score, self.nms_iou)[:post]
            out_boxes.append(boxes[keep])
            out_scores.append(score[keep])
        return out_boxes, out_scores

    def label_anchors(self, anchors: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per anchor: 1 positive, 0 negative, -1 ignored; and the index of its best ground-truth box."""
        labels = torch.zeros(len(anchors), dtype=torch.int64, device=anchors.device)
        if len(gt) == 0:
            return labels, labels.clone()
        iou = B.box_iou(anchors, gt)
        best, matched = iou.max(dim=1)
        labels[(best >= self.bg_iou) & (best < self.fg_iou)] = -1
        labels[best >= self.fg_iou] = 1
        best_per_gt = iou.max(dim=0).values
        labels[((iou == best_per_gt[None]) & (best_per_gt[None] > 0)).any(dim=1)] = 1
        return labels, matched

    def sample(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Random positive and negative anchor indices (at most ``batch_per_image``)."""
        pos = torch.nonzero(labels == 1).squeeze(1)
        neg = torch.nonzero(labels == 0).squeeze(1)
        n_pos = min(len(pos), int(self.batch_per_image * self.pos_fraction))
        n_neg = min(len(neg), self.batch_per_image - n_pos)
        pos = pos[torch.randperm(len(pos), device=pos.device)[:n_pos]]
        neg = neg[torch.randperm(len(neg), device=neg.device)[:n_neg]]
        return pos, neg

    def loss(self, anchors: torch.Tensor, logits: torch.Tensor, deltas: torch.Tensor,
             gt_boxes: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``rpn_objectness`` (BCE over sampled anchors) and ``rpn_box`` (smooth L1 on positives), both
        normalised by the number of sampled anchors."""
        obj_terms, box_terms, sampled = [], [], 0
        for lg, dl, gt in zip(logits.float(), deltas.float(), gt_boxes):
            labels, matched = self.label_anchors(anchors, gt)
            pos, neg = self.sample(labels)
            idx = torch.cat([pos, neg])
            target = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)]).float()
            obj_terms.append(F.binary_cross_entropy_with_logits(lg[idx], target, reduction="sum"))
            if len(pos):
                reg = B.encode(anchors[pos], gt[matched[pos]])
                box_terms.append(F.smooth_l1_loss(dl[pos], reg, beta=self.box_beta, reduction="sum"))
            sampled += len(idx)
        norm = max(sampled, 1)
        box = torch.stack(box_terms).sum() if box_terms else deltas.sum() * 0
        return {"rpn_objectness": torch.stack(obj_terms).sum() / norm, "rpn_box": box / norm}
