"""The semantics layering network (SLN) of Zhang et al. (ACM MM 2019), Sec. 4, on torchvision's parts.

Modules (Fig. 4, Sec. 4.1-4.4):

- ENC (Sec. 4.2): torchvision's ResNet (``backbone``, ResNet-50 in the paper) with dilation
  (``replace_stride_with_dilation``); the outputs of its four stages (layer1..layer4) are brought to one
  resolution (stride ``feature_stride``: average-pooled when finer, bilinearly upsampled when coarser) and
  concatenated (256 + 512 + 1024 + 2048 = 3840 channels for ResNet-50).
- GLM (Sec. 4.3): conv-bn-relu-conv-bn-relu-conv, 3x3 stride 1, predicting the global layering map M_G over
  ``max_level + 1`` channels (0 = background, l = covered by l regions; softmax applied to the logits).
- RPN (Sec. 4.1, Faster R-CNN): torchvision's ``RegionProposalNetwork`` with an ``AnchorGenerator`` and an
  ``RPNHead`` on the ENC features concatenated with softmax(M_G); Faster R-CNN's 3x3 intermediate layer
  (``rpn_channels`` wide, ReLU) comes first, the head's two 1x1 sibling convolutions after it.
- ROI-Align (He et al., Mask R-CNN): ``torchvision.ops.roi_align`` of the features and M_G together.
- ILM (Sec. 4.4): the GLM block again, predicting the instance layering map (0 = outside, l = visibility
  level l - 1); the sem-dist map derived from it by Eq. 1 (:func:`derived_semdist`) and the ROI features
  go through a conv-bn-relu-conv-bn-relu-conv block predicting the refined sem-dist map.

Loss (Eq. 6, Sec. 4.5): l = lambda_R l_R + lambda_G l_G + lambda_I l_I + lambda_M l_M with lambda = 1
(Sec. 4.6). l_R: torchvision's RPN losses (smooth L1 on the box deltas, as the paper says, plus the
objectness BCE any RPN needs). l_G, l_I: :func:`layering_bce`, the BCE between the softmax layering maps and
their one-hot targets. l_M: the BCE of the refined map. A sem-dist map M = C - L has an integer part (the
level L, supervised through the instance layering map by l_I) and a fractional part, the amodal confidence
C in [0, 1) (Eq. 3); l_M is the BCE of the refined confidence sigmoid(refined) against the ground truth's
C (``GT_CONFIDENCE`` on the amodal mask, 0 outside). The refined sem-dist map is sigmoid(refined) - L with
L the most likely inside level of the instance layering map.

Training ROIs of the ILM (the paper does not say): the RPN proposals plus the ground-truth boxes, matched
by torchvision's ``Matcher`` (IoU >= ``fg_iou``), at most ``rois_per_image`` foreground ROIs drawn by its
``BalancedPositiveNegativeSampler``, as Mask R-CNN trains its mask head; the targets are the matched
instance layering maps ROI-Aligned as one-hot channels and taken back to labels by argmax.

Initialisation and schedule (Sec. 4.6): the new modules (GLM, RPN, ILM, refinement) are initialised after
He et al. (2015, the paper's [15]: Kaiming normal, fan-out, ReLU gain); ENC keeps torchvision's (also He's)
or loads pretrained weights (the paper: pretrained on COCO instance segmentation, which ``--pretrained
torchvision`` gives for ResNet-50 with torchvision's COCO Mask R-CNN backbone). :meth:`SLN.set_stage` trains
GLM, RPN and ILM one after another, each earlier module frozen, then all jointly.

What differs from the paper, or is not given there and chosen here:

- Sec. 4.1 says the GLM "also takes the input images"; here it reads the ENC features (three 3x3 convs on
  raw pixels would see only 7x7 pixels).
- Sec. 4.2 lists four stage sizes that halve (strides 4, 8, 16, 32 of a 1024-pixel input), which a dilated
  ResNet does not give. The default dilates layer3 and layer4 (output stride 8, the common "dilated ResNet")
  and fuses at stride 8; ``dilation=[false, false, false]`` gives the listed halving sizes. ResNet-18/34
  (basic blocks) cannot be dilated in torchvision; they run undilated.
- Not given: the fused resolution, the widths of the GLM/ILM convolutions (``hidden``), the ROI size, the
  anchors (``anchor_sizes`` x ratios 0.5, 1, 2 on the single fused map), the RPN's sampling and NMS settings
  (torchvision's Faster R-CNN defaults here), the ILM's training ROIs (above), that the global layering
  logits are upsampled bilinearly to the image for l_G, and which module trains ENC in the staged schedule
  (here the first, with the GLM; ENC is frozen in the RPN and ILM stages and fine-tuned in the joint one).
- Detections are the RPN's proposals after its NMS, scored by their objectness (SLN has no box head); every
  detection has class 1 (SLN predicts no class).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import get_model
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import box_iou, roi_align
from torchvision.ops.misc import Conv2dNormActivation

from converters.results import SEMDIST_STEPS
from amodaldata.targets import DECODE_THRESHOLD, GT_CONFIDENCE, amodal_mask, modal_mask

from .results import Detections

#: torchvision ResNet depths the encoder can be built from.
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
#: Training stages of Sec. 4.6, in order, then the joint fine-tuning.
STAGES = ("glm", "rpn", "ilm", "joint")
#: The modules each stage trains (ENC trains with the first one, see the module docstring).
STAGE_MODULES: dict[str, tuple[str, ...]] = {"glm": ("backbone", "glm"), "rpn": ("rpn",), "ilm": ("ilm", "refine")}
#: The Eq. 6 terms each stage minimises.
STAGE_LOSSES: dict[str, tuple[str, ...]] = {
    "glm": ("global_layering",), "rpn": ("rpn_objectness", "rpn_box"), "ilm": ("instance_layering", "semdist"),
    "joint": ("rpn_objectness", "rpn_box", "global_layering", "instance_layering", "semdist"),
}


def layering_block(cin: int, hidden: int, cout: int) -> nn.Sequential:
    """conv-bn-relu-conv-bn-relu-conv, 3x3 stride 1 (SLN Sec. 4.3, 4.4); logits, softmax applied by the caller."""
    return nn.Sequential(Conv2dNormActivation(cin, hidden, 3), Conv2dNormActivation(hidden, hidden, 3),
                         nn.Conv2d(hidden, cout, 3, padding=1))


def he_init(module: nn.Module) -> None:
    """He et al. (2015) initialisation (SLN Sec. 4.6, its [15]) of every convolution in ``module``: Kaiming
    normal with fan-out and ReLU gain, zero biases; batch norms at weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


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


class StageEncoder(nn.Module):
    """ENC (Sec. 4.2): a torchvision ResNet's four stages, resized to stride ``feature_stride`` and concatenated.

    ``body`` is torchvision's ``IntermediateLayerGetter``, so its weights carry torchvision's names under
    ``backbone.body`` (those of its detection backbones: ``--pretrained`` loads them)."""

    def __init__(self, name: str, dilation: Sequence[bool], feature_stride: int) -> None:
        super().__init__()
        if name not in BACKBONES:
            raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
        dilation = [bool(d) for d in dilation]
        if len(dilation) != 3:
            raise ValueError(f"dilation takes 3 flags (layer2, layer3, layer4), got {len(dilation)}")
        if name in ("resnet18", "resnet34") and any(dilation):
            raise ValueError(f"{name} has basic blocks, which torchvision cannot dilate: use dilation "
                             "[false, false, false] or a deeper ResNet")
        resnet = get_model(name, weights=None, replace_stride_with_dilation=dilation)
        self.body = IntermediateLayerGetter(resnet, {f"layer{k}": str(k) for k in range(1, 5)})
        stride, strides = 4, []
        for k in range(4):
            if k and not dilation[k - 1]:
                stride *= 2
            strides.append(stride)
        self.strides, self.feature_stride = tuple(strides), feature_stride
        self.out_channels = sum(_stage_width(getattr(resnet, f"layer{k}")) for k in range(1, 5))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        step = max(self.strides + (self.feature_stride,))
        if h % step or w % step:
            raise ValueError(f"input size {h}x{w} must be a multiple of {step}")
        size = (h // self.feature_stride, w // self.feature_stride)
        out = []
        for x in self.body(images).values():
            if x.shape[-1] > size[1]:
                x = F.adaptive_avg_pool2d(x, size)
            elif x.shape[-1] < size[1]:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            out.append(x)
        return torch.cat(out, dim=1)


def _stage_width(layer: nn.Sequential) -> int:
    """Output channels of a ResNet stage (its last block's last convolution)."""
    block = layer[-1]
    return (block.conv3 if hasattr(block, "conv3") else block.conv2).out_channels


class _IntermediateRPNHead(nn.Module):
    """Faster R-CNN's RPN head: a 3x3 intermediate layer (ReLU) to ``width`` channels, then torchvision's
    ``RPNHead`` siblings (1x1 objectness and box-delta convolutions)."""

    def __init__(self, in_channels: int, width: int, num_anchors: int) -> None:
        super().__init__()
        self.intermediate = Conv2dNormActivation(in_channels, width, 3, norm_layer=None)
        self.head = RPNHead(width, num_anchors, conv_depth=0)

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return self.head([self.intermediate(f) for f in features])


class ScoredRPN(RegionProposalNetwork):
    """torchvision's ``RegionProposalNetwork`` that also returns the objectness probabilities of the proposals
    it keeps (its ``filter_proposals`` computes them; its ``forward`` drops them)."""

    def filter_proposals(self, *args: Any, **kwargs: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        boxes, scores = super().filter_proposals(*args, **kwargs)
        self._scores = scores
        return boxes, scores

    def forward(self, images: ImageList, features: dict[str, torch.Tensor],
                targets: list[dict[str, torch.Tensor]] | None = None
                ) -> tuple[list[torch.Tensor], list[torch.Tensor], dict[str, torch.Tensor]]:
        boxes, losses = super().forward(images, features, targets)
        scores = self._scores
        del self._scores
        return boxes, scores, losses


class SLN(nn.Module):
    """Semantics layering network (module docstring). ``forward(batch)`` -> the Eq. 6 terms of the stage."""

    def __init__(self, *, backbone: str = "resnet50", dilation: Sequence[bool] | None = None,
                 feature_stride: int = 8, max_level: int = 4, hidden: int = 256, rpn_channels: int = 256,
                 roi_size: int = 14, rois_per_image: int = 64, fg_iou: float = 0.5, detections: int = 100,
                 anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
                 rpn_pre_nms: Sequence[int] = (2000, 1000), rpn_post_nms: Sequence[int] = (2000, 100),
                 rpn_nms: float = 0.7, loss_weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> None:
        super().__init__()
        if dilation is None:
            dilation = (False, False, False) if backbone in ("resnet18", "resnet34") else (False, True, True)
        if len(loss_weights) != 4:
            raise ValueError(f"loss_weights takes lambda_R, lambda_G, lambda_I, lambda_M, got {list(loss_weights)}")
        self.max_level, self.roi_size, self.rois_per_image = max_level, roi_size, rois_per_image
        self.weights = dict(zip("RGIM", (float(w) for w in loss_weights)))
        levels = max_level + 1
        self.backbone = StageEncoder(backbone, dilation, feature_stride)
        channels = self.backbone.out_channels
        self.glm = layering_block(channels, hidden, levels)
        anchors = AnchorGenerator((tuple(int(s) for s in anchor_sizes),), ((0.5, 1.0, 2.0),))
        self.rpn = ScoredRPN(anchors, _IntermediateRPNHead(channels + levels, rpn_channels,
                                                           anchors.num_anchors_per_location()[0]),
                             fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=256, positive_fraction=0.5,
                             pre_nms_top_n={"training": rpn_pre_nms[0], "testing": rpn_pre_nms[1]},
                             post_nms_top_n={"training": rpn_post_nms[0], "testing": min(rpn_post_nms[1], detections)},
                             nms_thresh=rpn_nms)
        self.ilm = layering_block(channels + levels, hidden, levels)
        self.refine = layering_block(channels + levels + 1, hidden, 1)
        for module in (self.glm, self.rpn, self.ilm, self.refine):
            he_init(module)
        self.matcher = Matcher(fg_iou, fg_iou, allow_low_quality_matches=False)
        self.sampler = BalancedPositiveNegativeSampler(rois_per_image, 1.0)
        self.stage = "joint"

    # -- the staged schedule (Sec. 4.6) --------------------------------------------------------------------
    def set_stage(self, stage: str) -> None:
        """Train one stage of Sec. 4.6: ``glm``, ``rpn``, ``ilm`` (each trains its modules, :data:`STAGE_MODULES`,
        with the earlier ones frozen: no gradient, batch norms in eval mode; the later, untrained ones are
        neither run nor in the loss) or ``joint`` (every module, Eq. 6 in full). ``forward`` returns the
        stage's terms only (:data:`STAGE_LOSSES`), each reaching every trainable parameter."""
        if stage not in STAGES:
            raise ValueError(f"unknown SLN stage {stage!r}; choose one of {', '.join(STAGES)}")
        self.stage = stage
        for name, module in self._stage_modules():
            module.requires_grad_(stage == "joint" or name in STAGE_MODULES[stage])
        self.train(self.training)

    def _stage_modules(self) -> list[tuple[str, nn.Module]]:
        return [(name, getattr(self, name)) for names in STAGE_MODULES.values() for name in names]

    def _frozen(self) -> set[str]:
        """Modules trained in an earlier stage than the current one."""
        if self.stage == "joint":
            return set()
        earlier = STAGES[:STAGES.index(self.stage)]
        return {name for s in earlier for name in STAGE_MODULES[s]}

    def train(self, mode: bool = True) -> "SLN":
        """As ``nn.Module.train``, but frozen modules stay in eval mode (their batch-norm statistics fixed)."""
        super().train(mode)
        for name in self._frozen():
            getattr(self, name).eval()
        return self

    # -- the network ---------------------------------------------------------------------------------------
    def _global(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ENC features concatenated with softmax(M_G), and the GLM logits."""
        feats = self.backbone(images)
        g_logits = self.glm(feats)
        return torch.cat([feats, torch.softmax(g_logits.float(), dim=1).to(feats.dtype)], dim=1), g_logits

    def _proposals(self, joint: torch.Tensor, images: torch.Tensor, gt_boxes: list[torch.Tensor] | None):
        image_list = ImageList(images, [tuple(images.shape[-2:])] * len(images))
        targets = None if gt_boxes is None or not self.rpn.training else [{"boxes": b} for b in gt_boxes]
        return self.rpn(image_list, OrderedDict([("0", joint)]), targets)

    def _instance(self, joint: torch.Tensor, rois: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """ILM logits ``(R, L+1, S, S)`` and refinement logits ``(R, 1, S, S)`` of the ROIs."""
        x = roi_align(joint, [r.to(joint.dtype) for r in rois], self.roi_size,
                      spatial_scale=1.0 / self.backbone.feature_stride, sampling_ratio=2, aligned=True)
        i_logits = self.ilm(x)
        m0 = derived_semdist(torch.softmax(i_logits.float(), dim=1)).to(x.dtype)
        return i_logits, self.refine(torch.cat([m0, x], dim=1))

    def _sample(self, proposals: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Foreground ROIs per image (proposals and ground-truth boxes matched at IoU >= ``fg_iou``, at most
        ``rois_per_image``) and their instance layering targets ``(sum R, S, S)``."""
        rois, layer_t = [], []
        for props, t in zip(proposals, targets):
            gt = t["boxes"].to(props.dtype)
            if len(gt) == 0:
                rois.append(props[:0])
                continue
            cand = torch.cat([props.detach(), gt])
            matched = self.matcher(box_iou(gt, cand))
            (pos,), _ = self.sampler([(matched >= 0).long()])
            keep = torch.nonzero(pos).squeeze(1)
            boxes, idx = cand[keep], matched[keep]
            onehot = F.one_hot(t["instance_layering"].long().clamp(max=self.max_level), self.max_level + 1)
            layer_t.append(roi_align(onehot.permute(0, 3, 1, 2).float(),
                                     torch.cat([idx[:, None].to(boxes.dtype), boxes], dim=1), self.roi_size,
                                     sampling_ratio=2, aligned=True).argmax(dim=1))
            rois.append(boxes)
        size = (0, self.roi_size, self.roi_size)
        return rois, (torch.cat(layer_t) if layer_t else proposals[0].new_zeros(size, dtype=torch.int64))

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        images, targets = batch["images"], batch["targets"]
        terms = STAGE_LOSSES[self.stage]
        joint, g_logits = self._global(images)
        out: dict[str, torch.Tensor] = {}
        if "global_layering" in terms:
            g_up = F.interpolate(g_logits.float(), size=tuple(images.shape[-2:]), mode="bilinear",
                                 align_corners=False)
            out["global_layering"] = self.weights["G"] * layering_bce(g_up, batch["global_layering"])
        if self.stage == "glm":
            return out
        proposals, _, rpn_losses = self._proposals(joint, images, [t["boxes"] for t in targets])
        if "rpn_box" in terms:
            out["rpn_objectness"] = self.weights["R"] * rpn_losses["loss_objectness"]
            out["rpn_box"] = self.weights["R"] * rpn_losses["loss_rpn_box_reg"]
        if "semdist" not in terms:
            return out
        rois, layer_t = self._sample(proposals, targets)
        i_logits, refined = self._instance(joint, rois)
        conf_t = (layer_t > 0).float() * GT_CONFIDENCE                  # Eq. 3: C on the amodal mask, 0 outside
        out["instance_layering"] = self.weights["I"] * layering_bce(i_logits, layer_t)
        out["semdist"] = self.weights["M"] * (
            F.binary_cross_entropy_with_logits(refined[:, 0].float(), conf_t) if len(conf_t) else refined.sum() * 0)
        return {k: out[k] for k in terms}

    # -- inference -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def roi_maps(self, images: torch.Tensor
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Per image the detected boxes and their objectness; for all of them, in order, the refined amodal
        confidence ``(sum R, S, S)`` in [0, 1] and the instance layering probabilities ``(sum R, L+1, S, S)``."""
        joint, _ = self._global(images)
        boxes, scores, _ = self._proposals(joint, images, None)
        i_logits, refined = self._instance(joint, boxes)
        return boxes, scores, torch.sigmoid(refined[:, 0].float()), torch.softmax(i_logits.float(), dim=1)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, orig_sizes: list[tuple[int, int]],
                threshold: float = DECODE_THRESHOLD) -> list[Detections]:
        """Per image, at its original size: each detection's sem-dist map M = C - L (C the refined confidence
        and L the most likely inside level, both pasted into the image by torchvision's
        ``paste_masks_in_image``; C quantised to 1/256 as the results file stores it), the amodal mask (Eq. 3
        decoder), the visible mask (Eq. 2 decoder) and the objectness score."""
        boxes, scores, conf, probs = self.roi_maps(images)
        h, w = images.shape[-2:]
        out, start = [], 0
        for bx, score, (oh, ow) in zip(boxes, scores, orig_sizes):
            det = Detections()
            scale = bx.new_tensor([ow / w, oh / h, ow / w, oh / h])
            for k, (box, s) in enumerate(zip(bx * scale, score.tolist())):
                maps = torch.cat([conf[start + k][None], probs[start + k, 1:]])[:, None]   # (1 + L, 1, S, S)
                pasted = paste_masks_in_image(maps, box[None].expand(len(maps), 4), (oh, ow))[:, 0]
                q = torch.clamp(torch.round(pasted[0] * SEMDIST_STEPS), max=SEMDIST_STEPS - 1) / SEMDIST_STEPS
                m = (q - pasted[1:].argmax(dim=0).float()).cpu().numpy().astype(np.float32)
                det.add(s, 1, amodal_mask(m, threshold), modal_mask(m, threshold), semdist=m)
            out.append(det)
            start += len(bx)
        return out
