"""The semantics layering network (SLN, seed ``000``, Sec. 4): instance sem-dist maps from one RGB image.

Modules (Fig. 4): the encoder ENC (:class:`~models.backbone.Encoder`, Sec. 4.2); the global layering module
GLM (Sec. 4.3), conv-bn-relu-conv-bn-relu-conv-softmax, 3x3 stride 1, predicting the global layering map M_G
(``max_level + 1`` channels: 0 = background, l = covered by l regions); an RPN fed with the encoder features
concatenated with M_G (Sec. 4.1); ROI-Align of features and M_G together; the instance layering module ILM
(Sec. 4.4), the GLM block again predicting the instance layering map (0 = outside, l = visibility level l - 1),
from which a sem-dist map is derived with Eq. 1, and a conv-bn-relu-conv-bn-relu-conv block that takes the
derived sem-dist map and the ROI features and predicts the refined one.

Loss (Eq. 6): l = lambda_R l_R + lambda_G l_G + lambda_I l_I + lambda_M l_M, with l_R the RPN losses (smooth L1
on boxes; plus the objectness BCE any RPN needs), l_G and l_I the BCE between the softmax layering maps and
their one-hot targets, and l_M the BCE of the sem-dist map. A sem-dist map M = C - L has an integer part (the
level L, supervised through the instance layering map by l_I) and a fractional part, the amodal confidence C
in [0, 1); l_M is the BCE of the refined confidence against the ground truth's C (``GT_CONFIDENCE`` on the
amodal mask, 0 outside: the fractional part of the target sem-dist map, Eq. 3). The refined sem-dist map is
``sigmoid(refined) - L``, with L the most likely level of the instance layering map.

Simplified relative to the paper: a small encoder trained from scratch (no pretrained dilated ResNet-50);
the GLM reads the encoder features (three 3x3 convs on raw pixels would see only 7x7 pixels); a single-level
RPN (:mod:`models.rpn`); the ILM is trained on RPN proposals matched to a ground-truth box (IoU >= 0.5) plus
the ground-truth boxes themselves, as Mask R-CNN trains its mask head; all modules are trained jointly
(Sec. 4.6 trains GLM, RPN and ILM one after another, then fine-tunes jointly); detection scores are the RPN
objectness.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from amodaldata.targets import DECODE_THRESHOLD

from .backbone import Encoder, conv_bn_relu
from .results import Detections
from .roi import add_gt_boxes, crop_maps, paste, roi_align, sample_rois
from .rpn import RPN


def layering_block(cin: int, hidden: int, cout: int) -> nn.Sequential:
    """conv-bn-relu-conv-bn-relu-conv, 3x3 stride 1 (SLN Sec. 4.3); logits, softmax applied by the caller."""
    return nn.Sequential(conv_bn_relu(cin, hidden), conv_bn_relu(hidden, hidden), nn.Conv2d(hidden, cout, 3, padding=1))


def layering_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean BCE between the softmax of ``logits`` ``(N, C, H, W)`` and the one-hot of class map ``target``
    ``(N, H, W)`` (l_G, l_I of Eq. 6); log(1 - p) is computed stably as a log-sum-exp over the other channels."""
    if logits.numel() == 0:
        return logits.sum() * 0
    z = logits.float()
    c = z.shape[1]
    log_p = F.log_softmax(z, dim=1)
    others = z[:, None].expand(-1, c, -1, -1, -1).masked_fill(
        torch.eye(c, dtype=torch.bool, device=z.device)[None, :, :, None, None], float("-inf"))
    log_not_p = torch.logsumexp(others, dim=2) - torch.logsumexp(z, dim=1, keepdim=True)
    onehot = F.one_hot(target.long(), c).permute(0, 3, 1, 2).float()
    return -(onehot * log_p + (1 - onehot) * log_not_p).mean()


def derived_semdist(probs: torch.Tensor) -> torch.Tensor:
    """A sem-dist map from instance layering probabilities ``(R, L+1, S, S)`` by Eq. 1: M = C - L with C the
    probability of being inside the object (1 - p_0) and L the expected visibility level given inside."""
    inside = probs[:, 1:]
    conf = inside.sum(dim=1, keepdim=True)
    levels = torch.arange(inside.shape[1], dtype=probs.dtype, device=probs.device).view(1, -1, 1, 1)
    level = (inside * levels).sum(dim=1, keepdim=True) / conf.clamp(min=1e-6)
    return conf - level


class SLN(nn.Module):
    """Semantics layering network (see the module docstring). ``forward(batch)`` -> weighted Eq. 6 terms."""

    def __init__(self, *, max_level: int = 4, widths: tuple[int, int, int, int] = (32, 64, 128, 128),
                 channels: int = 128, hidden: int = 64, roi_size: int = 14, rois_per_image: int = 32,
                 fg_iou: float = 0.5, detections: int = 100,
                 loss_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
                 anchor_sizes: tuple[int, ...] = (16, 32, 64, 128, 256)) -> None:
        super().__init__()
        self.max_level, self.roi_size = max_level, roi_size
        self.rois_per_image, self.fg_iou, self.detections = rois_per_image, fg_iou, detections
        self.weights = dict(zip("RGIM", loss_weights))
        levels = max_level + 1
        self.encoder = Encoder(tuple(widths), channels)
        self.glm = layering_block(channels, hidden, levels)
        self.rpn = RPN(channels + levels, Encoder.stride, sizes=tuple(anchor_sizes), post_nms=(300, detections))
        self.ilm = layering_block(channels + levels, hidden, levels)
        self.refine = layering_block(channels + levels + 1, hidden, 1)

    def _shared(self, images: torch.Tensor, gt_boxes: list[torch.Tensor] | None):
        feats = self.encoder(images)
        g_logits = self.glm(feats)
        joint = torch.cat([feats, torch.softmax(g_logits.float(), dim=1).to(feats.dtype)], dim=1)
        proposals, scores, rpn_losses = self.rpn(joint, tuple(images.shape[-2:]), gt_boxes)
        return joint, g_logits, proposals, scores, rpn_losses

    def _instance(self, joint: torch.Tensor, rois: list[torch.Tensor], image_size: tuple[int, int]):
        x = roi_align(joint, rois, self.roi_size, image_size)
        i_logits = self.ilm(x)
        m0 = derived_semdist(torch.softmax(i_logits.float(), dim=1)).to(x.dtype)
        return i_logits, self.refine(torch.cat([m0, x], dim=1))

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        images, targets = batch["images"], batch["targets"]
        size = tuple(images.shape[-2:])
        gt_boxes = [t["boxes"] for t in targets]
        joint, g_logits, proposals, _, rpn_losses = self._shared(images, gt_boxes)
        g_up = F.interpolate(g_logits.float(), size=size, mode="bilinear", align_corners=False)
        rois, layer_t, conf_t = [], [], []
        for props, t in zip(add_gt_boxes(proposals, gt_boxes), targets):
            boxes, idx, _ = sample_rois(props, t["boxes"], self.rois_per_image, 1.0, self.fg_iou,
                                        foreground_only=True)
            rois.append(boxes)
            layer_t.append(crop_maps(t["instance_layering"][idx], boxes, self.roi_size, "nearest"))
            semdist = crop_maps(t["semdist"][idx], boxes, self.roi_size, "nearest")
            conf_t.append(semdist - torch.floor(semdist))                      # Eq. 3: the amodal confidence
        i_logits, refined = self._instance(joint, rois, size)
        conf_t = torch.cat(conf_t)
        l_m = (F.binary_cross_entropy_with_logits(refined[:, 0].float(), conf_t) if len(conf_t)
               else refined.sum() * 0)
        w = self.weights
        return {
            "rpn_objectness": w["R"] * rpn_losses["rpn_objectness"],
            "rpn_box": w["R"] * rpn_losses["rpn_box"],
            "global_layering": w["G"] * layering_bce(g_up, batch["global_layering"]),
            "instance_layering": w["I"] * layering_bce(i_logits, torch.cat(layer_t).round().long()),
            "semdist": w["M"] * l_m,
        }

    @torch.no_grad()
    def semdist_rois(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Proposals, objectness scores and the refined sem-dist maps ``(sum R, S, S)`` of their ROIs."""
        joint, _, proposals, scores, _ = self._shared(images, None)
        i_logits, refined = self._instance(joint, proposals, tuple(images.shape[-2:]))
        level = i_logits[:, 1:].argmax(dim=1).float()
        return proposals, scores, torch.sigmoid(refined[:, 0].float()) - level

    @torch.no_grad()
    def predict(self, images: torch.Tensor, orig_sizes: list[tuple[int, int]],
                threshold: float = DECODE_THRESHOLD) -> list[Detections]:
        """Per image: amodal masks (Eq. 3 decoder), visible masks (Eq. 2 decoder), objectness scores, at the
        original image size."""
        proposals, scores, semdist = self.semdist_rois(images)
        h, w = images.shape[-2:]
        out, start = [], 0
        for boxes, score, (oh, ow) in zip(proposals, scores, orig_sizes):
            det = Detections()
            scale = np.array([ow / w, oh / h, ow / w, oh / h], dtype=np.float32)
            for box, s, m in zip(boxes.cpu().numpy() * scale, score.tolist(), semdist[start:start + len(boxes)]):
                conf = paste(m - torch.floor(m), box, oh, ow)
                level = paste(-torch.floor(m), box, oh, ow, mode="nearest")
                amodal = conf > threshold
                det.add(s, 1, amodal, amodal & (level == 0))
            out.append(det)
            start += len(boxes)
        return out
