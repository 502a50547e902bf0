"""Pretrained weights: torchvision's named weights or a local state dict.

A model with a ``torchvision_state()`` method names its own torchvision weights (the layered embedding net:
DeepLabv3, :meth:`models.embedding.LayeredEmbeddingNet.torchvision_state`); for the two-stage models:

``--pretrained torchvision`` takes, for a ResNet-50 backbone, torchvision's COCO Mask R-CNN
(``MaskRCNN_ResNet50_FPN_Weights.COCO_V1``, the COCO-pretrained Mask R-CNN of Liu et al. 2019, Table 1),
and for the other depths their ImageNet classification weights (``ResNet*_Weights.IMAGENET1K_V1``) in the
backbone body; both are downloaded by torchvision where a network exists, or read from its cache
(``$TORCH_HOME``). ``--pretrained PATH`` reads a local file: a state dict (or a checkpoint holding one under
``model`` or ``state_dict``) in torchvision's layout, or in detectron2's (``backbone.bottom_up.*``,
converted: keys renamed, the first convolution turned from BGR to RGB and from the [0, 255] pixel range to
torchvision's normalisation).

Keys are matched by name after renaming torchvision's single mask branch (``roi_heads.mask_head``,
``roi_heads.mask_predictor``) to every mask branch of the model; a tensor whose shape differs (the class
layers when the class count differs) is left at its initialisation and reported as skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from amodaldata.errors import AmodalDataError


@dataclass
class LoadReport:
    """What a load did: tensors loaded, model tensors left at their initialisation (missing), file tensors
    with no place in the model (unexpected), and tensors whose shapes differ (skipped)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        def few(keys: list[str]) -> str:
            return "" if not keys else " (" + ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "") + ")"
        return (f"pretrained {self.source}: {len(self.loaded)} tensors loaded, {len(self.missing)} missing"
                f"{few(self.missing)}, {len(self.unexpected)} unexpected{few(self.unexpected)}, "
                f"{len(self.skipped)} skipped for their shape{few(self.skipped)}")


# -- detectron2 layout -> torchvision layout ----------------------------------------------------------------
_D2_RULES: list[tuple[str, str]] = [
    (r"^backbone\.bottom_up\.stem\.conv1\.norm\.", "backbone.body.bn1."),
    (r"^backbone\.bottom_up\.stem\.conv1\.", "backbone.body.conv1."),
    (r"^backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.norm\.", lambda m: f"backbone.body.layer{int(m[1]) - 1}.{m[2]}.downsample.1."),
    (r"^backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.", lambda m: f"backbone.body.layer{int(m[1]) - 1}.{m[2]}.downsample.0."),
    (r"^backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.norm\.", lambda m: f"backbone.body.layer{int(m[1]) - 1}.{m[2]}.bn{m[3]}."),
    (r"^backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.", lambda m: f"backbone.body.layer{int(m[1]) - 1}.{m[2]}.conv{m[3]}."),
    (r"^backbone\.fpn_lateral(\d)\.", lambda m: f"backbone.fpn.inner_blocks.{int(m[1]) - 2}.0."),
    (r"^backbone\.fpn_output(\d)\.", lambda m: f"backbone.fpn.layer_blocks.{int(m[1]) - 2}.0."),
    (r"^proposal_generator\.rpn_head\.conv\.", "rpn.head.conv.0.0."),
    (r"^proposal_generator\.rpn_head\.objectness_logits\.", "rpn.head.cls_logits."),
    (r"^proposal_generator\.rpn_head\.anchor_deltas\.", "rpn.head.bbox_pred."),
    (r"^roi_heads\.box_head\.fc1\.", "roi_heads.box_head.fc6."),
    (r"^roi_heads\.box_head\.fc2\.", "roi_heads.box_head.fc7."),
    (r"^roi_heads\.mask_head\.mask_fcn(\d)\.", lambda m: f"roi_heads.mask_head.{int(m[1]) - 1}.0."),
    (r"^roi_heads\.mask_head\.deconv\.", "roi_heads.mask_predictor.conv5_mask."),
    (r"^roi_heads\.mask_head\.predictor\.", "roi_heads.mask_predictor.mask_fcn_logits."),
]
def is_detectron2(state: dict[str, Any]) -> bool:
    return any(k.startswith("backbone.bottom_up.") for k in state)


def from_detectron2(state: dict[str, torch.Tensor], image_std: list[float]) -> dict[str, torch.Tensor]:
    """A detectron2 state dict renamed to torchvision's layout, its first convolution adapted to RGB input
    normalised by torchvision's mean and ``image_std`` (detectron2's MSRA ResNets read BGR in [0, 255] minus
    the mean, std 1).

    The class layers change meaning as well (detectron2 puts the background class last and regresses no
    background box); they are kept under their renamed keys only when the shapes agree, and loaded as
    they are."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not torch.is_tensor(value):
            continue
        new = key
        for pattern, repl in _D2_RULES:
            if re.match(pattern, key):
                new = re.sub(pattern, repl, key)
                break
        out[new] = value
    conv = out.get("backbone.body.conv1.weight")
    if conv is not None and conv.shape[1] == 3:
        # detectron2 reads x_d = 255 x - mean_d2 (BGR); torchvision x_t = (x - mean) / std (RGB), so
        # x_d = 255 std x_t + (255 mean - mean_d2): flip the channels and scale by 255 std; the shift vanishes
        # for torchvision's default mean (255 mean == mean_d2 in RGB order) and is left out otherwise
        scale = torch.tensor([255.0 * s for s in image_std], dtype=conv.dtype).view(1, 3, 1, 1)
        out["backbone.body.conv1.weight"] = conv.flip(1) * scale
    return out


def _branch_copies(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """torchvision's one mask branch copied to each mask branch of an :class:`~models.rcnn.AmodalRCNN`."""
    branches = getattr(getattr(model, "roi_heads", None), "branches", None)
    if branches is None:
        return state
    out = {}
    for key, value in state.items():
        head = re.match(r"^roi_heads\.mask_head\.(.*)$", key)
        pred = re.match(r"^roi_heads\.mask_predictor\.(.*)$", key)
        if head or pred:
            for part in branches:
                out[f"roi_heads.branches.{part}.{'head' if head else 'predictor'}.{(head or pred)[1]}"] = value
        else:
            out[key] = value
    return out


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> LoadReport:
    """Load the tensors of ``state`` whose names and shapes match the model's; report the rest."""
    state = _branch_copies(state, model)
    own = model.state_dict()
    report = LoadReport(source)
    usable = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            report.skipped.append(key)
        else:
            usable[key] = value
    model.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    report.missing = [k for k in own if k not in usable and k not in report.skipped]
    return report


def torchvision_state(backbone: str) -> tuple[dict[str, torch.Tensor], str]:
    """torchvision's named weights for a backbone depth: COCO Mask R-CNN for ResNet-50, ImageNet otherwise."""
    from torchvision.models import get_model_weights
    if backbone == "resnet50":
        weights = get_model_weights("maskrcnn_resnet50_fpn").COCO_V1
        return weights.get_state_dict(progress=True), f"torchvision {weights}"
    weights = get_model_weights(backbone).IMAGENET1K_V1
    body = {f"backbone.body.{k}": v for k, v in weights.get_state_dict(progress=True).items()
            if not k.startswith("fc.")}
    return body, f"torchvision {weights}"


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: a plain one, or a checkpoint holding one under ``model`` / ``state_dict``."""
    path = Path(path)
    if not path.is_file():
        raise AmodalDataError(f"pretrained weights not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise AmodalDataError(f"{path}: not a readable torch state dict ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not any(torch.is_tensor(v) for v in obj.values()):
        raise AmodalDataError(f"{path}: holds no state dict of tensors")
    return obj


def load_pretrained(model: nn.Module, spec: str, backbone: str = "resnet50") -> LoadReport:
    """Load ``torchvision`` (named weights for ``backbone``) or a local file into ``model``."""
    if spec == "torchvision":
        own = getattr(model, "torchvision_state", None)          # a model with weights of its own kind
        try:
            state, source = own() if own is not None else torchvision_state(backbone)
        except Exception as exc:  # noqa: BLE001 - no network, no cache
            raise AmodalDataError(f"cannot get torchvision's weights for {backbone} ({type(exc).__name__}: {exc}); "
                                  "download them where a network exists into $TORCH_HOME, or pass a file") from None
        return load_state(model, state, source)
    state = read_state(spec)
    if is_detectron2(state):
        transform = getattr(model, "transform", None)
        std = list(getattr(transform, "image_std", (0.229, 0.224, 0.225)))
        return load_state(model, from_detectron2(state, std), f"{spec} (detectron2 layout)")
    return load_state(model, state, spec)
