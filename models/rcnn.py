"""The two-stage amodal family on torchvision's Mask R-CNN: ARCNN, ORCNN, the jigsaw ARCNN and ARCNN-add.

Every variant is torchvision's :class:`~torchvision.models.detection.MaskRCNN` (ResNet + FPN backbone,
``RegionProposalNetwork``, ``MultiScaleRoIAlign``, the two-layer box head, ``batched_nms`` in its
post-processing) whose single mask branch is replaced by the branches of its paper
(:class:`AmodalRoIHeads`). Each branch is torchvision's mask head (four 3x3 conv-ReLU of 256 channels,
``MaskRCNNHeads``) and predictor (a 2x2 stride-2 transposed conv and a 1x1 conv to one 28x28 logit map per
class, ``MaskRCNNPredictor``), fed by one shared 14x14 ROI-Align of the FPN features. The RPN and the box
head are trained on the amodal boxes (the tight box of the amodal mask), so proposals cover hidden parts.

- ``arcnn``: Follmann et al., "Learning to See the Invisible" (WACV 2019), amodal Mask R-CNN: one mask
  branch trained on amodal masks. It knows no visible part: its visible mask is its amodal mask and its
  occluded mask is empty.
- ``orcnn``: Follmann et al. (WACV 2019), Occlusion R-CNN: amodal and visible branches; the occluded mask
  is the amodal minus the visible one (probabilities: ``max(p_A - p_V, 0)``). The paper also has an
  occlusion-classification head; it is not built here.
- ``jigsaw``: Yin, "Amodal segmentation just like doing a jigsaw" (2021), Sec. 3.1-3.3: visible and
  occluded branches; the amodal logits of class T are a 1x1 convolution over every class's visible and
  occluded logits (Eq. 1, ``AM_T = sum_i VW_Ti VM_i + OW_Ti OM_i``); loss ``L_box + L_cls + L_AM + L_VM +
  L_OM`` (Eq. 2), every mask term a per-pixel BCE on the channel of the ground-truth class, equal weights.
- ``arcnn-add``: the same paper's ablation (Sec. 4.5.2): amodal = visible + occluded. The two parts are
  disjoint, so their probabilities add: ``p_A = min(p_V + p_O, 1)``, trained with the same five terms.

The RPN losses (objectness BCE, box smooth L1) are Mask R-CNN's and are part of every variant; Yin's Eq. 2
leaves them implicit. What differs from the papers, which build on detectron2: torchvision's Mask R-CNN
keeps detectron2's main settings (7x7 box and 14x14 mask ROI-Align over the FPN levels, 512 ROIs per image
with 25 % foreground, 256 anchors per image for the RPN, NMS 0.5 and 100 detections at test time) but
differs in details: ROI-Align without the half-pixel alignment (detectron2's ``ROIAlignV2`` aligns), a
smooth-L1 box loss with beta 1/9 (detectron2 uses L1). Input normalisation is torchvision's (RGB in
[0, 1], ImageNet mean and std); weights converted from detectron2 (BGR in [0, 255]) are adapted on loading
(:mod:`models.weights`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import get_model
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import (RoIHeads, fastrcnn_loss, maskrcnn_inference, maskrcnn_loss,
                                                    paste_masks_in_image, project_masks_on_boxes)
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.ops import FrozenBatchNorm2d

from .results import Detections

#: Mask branches of each variant (``--pretrained`` initialises each from torchvision's one mask branch).
VARIANTS: dict[str, tuple[str, ...]] = {
    "arcnn": ("amodal",),
    "orcnn": ("amodal", "visible"),
    "jigsaw": ("visible", "occluded"),
    "arcnn-add": ("visible", "occluded"),
}
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
#: Binarisation threshold of predicted mask probabilities (Mask R-CNN's).
MASK_THRESHOLD = 0.5


def resnet_fpn(name: str, norm_layer: type[nn.Module], trainable_layers: int = 3, channels: int = 256
               ) -> BackboneWithFPN:
    """torchvision's ResNet with an FPN over its four stages plus a max-pooled fifth level (Lin et al. 2017),
    as ``resnet_fpn_backbone`` builds it, with ``channels`` FPN channels; only the last ``trainable_layers``
    of conv1, layer1..layer4 are trained (5 = all)."""
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers must lie in 0..5, got {trainable_layers}")
    body = get_model(name, weights=None, norm_layer=norm_layer)
    train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers] + (["bn1"] if trainable_layers == 5
                                                                                     else [])
    for key, param in body.named_parameters():
        param.requires_grad_(key.startswith(tuple(train)))
    stage2 = body.inplanes // 8
    return BackboneWithFPN(body, {f"layer{k}": str(k - 1) for k in range(1, 5)},
                           [stage2 * 2 ** (k - 1) for k in range(1, 5)], channels)


class MaskBranch(nn.Module):
    """torchvision's mask head and predictor: ROI features (R, 256, 14, 14) -> logits (R, classes + 1, 28, 28)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 256, convs: int = 4) -> None:
        super().__init__()
        self.head = MaskRCNNHeads(in_channels, [width] * convs, dilation=1)
        self.predictor = MaskRCNNPredictor(width, width, num_classes + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.head(x))


class OcclusionContext(nn.Module):
    """Yin (2021) Eq. 1: amodal logits of class T from all classes' visible and occluded logits by a 1x1 conv.

    Input and output keep torchvision's layout (channel 0 = background, unused); the convolution reads and
    writes channels ``1..n`` only, so ``weight[T - 1, i - 1]`` is ``VW_Ti`` and ``weight[T - 1, n + i - 1]``
    is ``OW_Ti``."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * num_classes, num_classes, 1)
        nn.init.normal_(self.conv.weight, std=0.01)        # the paper gives no initialisation; start neutral
        nn.init.zeros_(self.conv.bias)

    def forward(self, visible: torch.Tensor, occluded: torch.Tensor) -> torch.Tensor:
        amodal = self.conv(torch.cat([visible[:, 1:], occluded[:, 1:]], dim=1))
        return F.pad(amodal, (0, 0, 0, 0, 1, 0))


def _chosen(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each ROI's map ``(R, M, M)`` at the channel of its label."""
    return logits[torch.arange(len(labels), device=logits.device), labels]


class AmodalRoIHeads(RoIHeads):
    """torchvision's ``RoIHeads`` (box sampling, box head, box losses and post-processing unchanged) with the
    mask branches of one variant (module docstring) in place of its single mask branch.

    Training targets: ``masks`` (the amodal masks, as torchvision's) and ``visible`` (N, H, W) per image; the
    occluded target is amodal and not visible. Inference adds ``masks`` (amodal), ``visible_masks`` and
    ``occluded_masks`` probabilities (D, 1, 28, 28) to each image's detections.
    """

    def __init__(self, base: RoIHeads, variant: str, num_classes: int, in_channels: int, width: int = 256,
                 convs: int = 4) -> None:
        super().__init__(base.box_roi_pool, base.box_head, base.box_predictor,
                         base.proposal_matcher.high_threshold, base.proposal_matcher.low_threshold,
                         base.fg_bg_sampler.batch_size_per_image, base.fg_bg_sampler.positive_fraction,
                         base.box_coder.weights, base.score_thresh, base.nms_thresh, base.detections_per_img,
                         mask_roi_pool=base.mask_roi_pool)
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        self.variant = variant
        self.branches = nn.ModuleDict({part: MaskBranch(in_channels, num_classes, width, convs)
                                       for part in VARIANTS[variant]})
        self.context = OcclusionContext(num_classes) if variant == "jigsaw" else None

    def has_mask(self) -> bool:
        return True

    def mask_logits(self, features: dict[str, torch.Tensor], boxes: list[torch.Tensor],
                    image_shapes: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
        """Logits ``(R, classes + 1, 28, 28)`` of every branch, and the jigsaw's fused amodal logits."""
        x = self.mask_roi_pool(features, boxes, image_shapes)
        logits = {part: branch(x) for part, branch in self.branches.items()}
        if self.context is not None:
            logits["amodal"] = self.context(logits["visible"], logits["occluded"])
        return logits

    def forward(self, features: dict[str, torch.Tensor], proposals: list[torch.Tensor],
                image_shapes: list[tuple[int, int]], targets: list[dict[str, torch.Tensor]] | None = None
                ) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("targets are needed in training mode")
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        if not self.training:
            boxes, scores, labels = self.postprocess_detections(class_logits, box_regression, proposals,
                                                                image_shapes)
            result = [{"boxes": b, "labels": lab, "scores": s} for b, s, lab in zip(boxes, scores, labels)]
            probs = self.mask_probabilities(self.mask_logits(features, boxes, image_shapes), labels)
            for key, per_image in probs.items():
                for r, p in zip(result, per_image):
                    r[key] = p
            return result, {}
        loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
        pos = [torch.where(lab > 0)[0] for lab in labels]
        mask_boxes = [p[i] for p, i in zip(proposals, pos)]
        mask_idxs = [m[i] for m, i in zip(matched_idxs, pos)]
        logits = self.mask_logits(features, mask_boxes, image_shapes)
        losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
        losses.update(self.mask_losses(logits, mask_boxes, mask_idxs, targets))
        return [], losses

    def mask_losses(self, logits: dict[str, torch.Tensor], boxes: list[torch.Tensor], idxs: list[torch.Tensor],
                    targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Per-pixel BCE of each predicted part on the ground-truth class channel (``maskrcnn_loss``)."""
        gt_labels = [t["labels"] for t in targets]
        gt = {"amodal": [t["masks"] for t in targets], "visible": [t["visible"] for t in targets]}
        gt["occluded"] = [a.bool() & ~v.bool() for a, v in zip(gt["amodal"], gt["visible"])]
        losses = {f"loss_{part}_mask": maskrcnn_loss(logits[part].float(), boxes, gt[part], gt_labels, idxs)
                  for part in ("amodal", "visible", "occluded") if part in logits}
        if self.variant == "arcnn-add":
            losses["loss_amodal_mask"] = self._added_amodal_loss(logits, boxes, idxs, gt["amodal"], gt_labels)
        return losses

    @staticmethod
    def _added_amodal_loss(logits: dict[str, torch.Tensor], boxes: list[torch.Tensor], idxs: list[torch.Tensor],
                           gt_masks: list[torch.Tensor], gt_labels: list[torch.Tensor]) -> torch.Tensor:
        """BCE of ``min(p_V + p_O, 1)`` against the amodal mask (ARCNN-add), in float32 outside autocast."""
        size = logits["visible"].shape[-1]
        labels = torch.cat([lab[i] for lab, i in zip(gt_labels, idxs)])
        target = torch.cat([project_masks_on_boxes(m, b, i, size) for m, b, i in zip(gt_masks, boxes, idxs)])
        if target.numel() == 0:
            return logits["visible"].sum() * 0 + logits["occluded"].sum() * 0
        with torch.autocast(target.device.type, enabled=False):
            p = added_amodal(_chosen(logits["visible"].float(), labels).sigmoid(),
                             _chosen(logits["occluded"].float(), labels).sigmoid())
            # ROI-Align of a 0/1 mask can overshoot [0, 1] by rounding; binary_cross_entropy refuses that
            return F.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), target.float().clamp(0, 1))

    def mask_probabilities(self, logits: dict[str, torch.Tensor], labels: list[torch.Tensor]
                           ) -> dict[str, list[torch.Tensor]]:
        """``masks`` (amodal), ``visible_masks``, ``occluded_masks`` (D, 1, 28, 28) per image, at the predicted
        class, completed as the variant defines the parts it does not predict (module docstring)."""
        p = {part: maskrcnn_inference(x, labels) for part, x in logits.items()}
        if self.variant == "arcnn":
            p["visible"] = p["amodal"]
            p["occluded"] = [torch.zeros_like(a) for a in p["amodal"]]
        elif self.variant == "orcnn":
            p["occluded"] = [(a - v).clamp(min=0) for a, v in zip(p["amodal"], p["visible"])]
        elif self.variant == "arcnn-add":
            p["amodal"] = [added_amodal(v, o) for v, o in zip(p["visible"], p["occluded"])]
        return {"masks": p["amodal"], "visible_masks": p["visible"], "occluded_masks": p["occluded"]}


def added_amodal(visible: torch.Tensor, occluded: torch.Tensor) -> torch.Tensor:
    """ARCNN-add's amodal probability from the visible and occluded probabilities: ``min(p_V + p_O, 1)``
    (Yin 2021, Sec. 4.5.2; the two parts are disjoint, so their probabilities add)."""
    return (visible + occluded).clamp(max=1.0)


class PrescaledTransform(GeneralizedRCNNTransform):
    """torchvision's transform (normalisation, batching by zero padding to a multiple of 32, boxes and masks
    brought back to each image's original size) for images the data pipeline has already resized
    (:func:`models.data.instance_sample` resizes the scene itself, exactly, from its RLE masks): ``resize`` is
    the identity, and post-processing also pastes the visible and occluded masks."""

    def resize(self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None):
        return image, target

    def postprocess(self, result: list[dict[str, torch.Tensor]], image_shapes: list[tuple[int, int]],
                    original_image_sizes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        if self.training:
            return result
        for pred, shape, size in zip(result, image_shapes, original_image_sizes):
            pred["boxes"] = resize_boxes(pred["boxes"], shape, size)
            for key in ("masks", "visible_masks", "occluded_masks"):
                if key in pred:
                    pred[key] = paste_masks_in_image(pred[key], pred["boxes"], size)
        return result


class AmodalRCNN(MaskRCNN):
    """One variant of the two-stage family (module docstring) on a ResNet-FPN backbone.

    ``forward(batch)`` takes a batch of :func:`models.data.collate` (``images``: a list of (3, H, W) floats in
    [0, 1]; ``targets``: ``boxes``, ``labels``, ``amodal``, ``visible``) and returns torchvision's loss dict
    in training mode; :meth:`predict` returns :class:`~models.results.Detections`. ``norm`` is the backbone's
    normalisation: ``frozen`` (FrozenBatchNorm2d, for pretrained weights, torchvision's default) or ``bn``
    (trainable BatchNorm, for training from scratch). ``mask_channels``, ``mask_convs`` and ``box_fc`` are the
    widths of the mask branches (256, 4 convs), of the box head's two fully connected layers (1024) and
    ``fpn_channels`` of the FPN (256): the papers' values by default; narrower heads make CPU runs affordable. ``anchor_sizes`` (one per FPN level,
    default 32..512) suit small images. Other keyword options go to torchvision's ``MaskRCNN`` (``rpn_*``,
    ``box_*``).
    """

    def __init__(self, variant: str = "arcnn", *, num_classes: int = 1, backbone: str = "resnet50",
                 norm: str = "frozen", trainable_layers: int = 3, mask_channels: int = 256, mask_convs: int = 4,
                 box_fc: int = 1024, fpn_channels: int = 256, anchor_sizes: tuple[int, ...] | None = None, **options: Any) -> None:
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        norms = {"frozen": FrozenBatchNorm2d, "bn": nn.BatchNorm2d}
        if norm not in norms:
            raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(norms)}")
        body = resnet_fpn(backbone, norms[norm], trainable_layers, fpn_channels)
        if anchor_sizes is not None:
            if len(anchor_sizes) != 5:
                raise ValueError(f"anchor_sizes needs one size per FPN level (5), got {list(anchor_sizes)}")
            options["rpn_anchor_generator"] = AnchorGenerator(tuple((int(s),) for s in anchor_sizes),
                                                              ((0.5, 1.0, 2.0),) * len(anchor_sizes))
        resolution = 7                       # the box head's ROI-Align output (torchvision's MultiScaleRoIAlign)
        options["box_head"] = TwoMLPHead(body.out_channels * resolution ** 2, box_fc)
        options["box_predictor"] = FastRCNNPredictor(box_fc, num_classes + 1)
        # the mask branches are AmodalRoIHeads'; identities stop MaskRCNN from building its own
        super().__init__(body, mask_head=nn.Identity(), mask_predictor=nn.Identity(), **options)
        self.variant, self.num_classes = variant, num_classes
        self.roi_heads = AmodalRoIHeads(self.roi_heads, variant, num_classes, body.out_channels, mask_channels,
                                        mask_convs)
        # sizes are the data pipeline's (models.data.instance_sample); the transform only normalises and pads
        self.transform = PrescaledTransform(1, 1, self.transform.image_mean, self.transform.image_std)

    @staticmethod
    def _targets(batch: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
        return [{"boxes": t["boxes"], "labels": t["labels"], "masks": t["amodal"], "visible": t["visible"]}
                for t in batch["targets"]]

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:  # type: ignore[override]
        if not self.training:
            raise RuntimeError("AmodalRCNN.forward computes the losses; call predict() for detections")
        return super().forward(list(batch["images"]), self._targets(batch))

    @torch.no_grad()
    def detect(self, images: list[torch.Tensor] | torch.Tensor, orig_sizes: list[tuple[int, int]]
               ) -> list[dict[str, torch.Tensor]]:
        """torchvision's detections per image, with boxes and mask probabilities at ``orig_sizes``."""
        batch, _ = self.transform(list(images))
        features = self.backbone(batch.tensors)
        proposals, _ = self.rpn(batch, features)
        detections, _ = self.roi_heads(features, proposals, batch.image_sizes)
        return self.transform.postprocess(detections, batch.image_sizes, [tuple(s) for s in orig_sizes])

    @torch.no_grad()
    def predict(self, images: list[torch.Tensor] | torch.Tensor, orig_sizes: list[tuple[int, int]],
                threshold: float = MASK_THRESHOLD) -> list[Detections]:
        """Per image: amodal, visible and occluded masks (probability > ``threshold``) at the original size,
        scores and labels."""
        out = []
        for d in self.detect(images, orig_sizes):
            masks = {k: (d[k][:, 0] > threshold).cpu().numpy() for k in ("masks", "visible_masks", "occluded_masks")}
            out.append(Detections.from_arrays(d["scores"].float().cpu().numpy(), d["labels"].cpu().numpy(),
                                              masks["masks"], masks["visible_masks"], masks["occluded_masks"]))
        return out
