"""The layered embedding net (Liu et al. 2019, Sec. 3-4): bottom-up amodal instances from K layers.

A fully convolutional network predicts, for each of K layers (K = 2 in the paper: the foreground, i.e. the
nearest object at a pixel, and the occlusion layer, the second nearest), a semantic map over
``num_classes + 1`` classes (0 = no object in that layer) and a C-dimensional pixel embedding. The K-layer
targets are the first K slices of the layer stack (:func:`amodaldata.targets.layered_masks`), at the output
resolution (stride 4: the paper's 256 -> 64).

Loss: ``alpha l_var + beta l_dst + gamma l_reg`` (the discriminative loss of De Brabandere et al. [3] as
varied by the paper) plus the cross entropy of each semantic map. All labelled pixels of all layers are
pooled; mu_n is the mean embedding of instance n over its pixels in every layer; distances are L1:

- l_var = 1/N sum_n 1/|R_n| sum_{p in R_n} [||mu_n - E(p)|| - d_var]_+^2
- l_dst = sum_k 1/(N_k (N_k - 1)) sum_{a != b of class k} [2 d_dst - ||mu_a - mu_b||]_+^2, only between
  instances of the same class ("embeddings for shapes of different classes are allowed to be similar");
  the margin 2 d_dst is that of [3] and of the authors' public code (the paper's prose says "closer than
  d_dst"; its equation is not legible in our copy), which keeps a pixel within d_var of its centre farther
  than the clustering threshold (1.5 = d_dst) from any other centre;
- l_reg = 1/N sum_n ||mu_n|| (Eq. 3).

Defaults are the paper's (Sec. 4, "Implementation Details"): alpha = beta = gamma = 1, d_var = 0.5,
d_dst = 1.5, C = 6, clustering threshold 1.5, and four modules (a semantic map and an embedding per layer)
of 3x3 convolutions with ReLU of 256, 256, 128, then C (or ``num_classes + 1``) filters on shared features.
Decoding (:meth:`LayeredEmbeddingNet.predict`) clusters, class by class (l_dst separates only instances of
one class, so instances of different classes may share embeddings), the embeddings of the pixels predicted
as that class in any layer, by the mean-shift grouping of [3]: start at the first unlabelled pixel (the
paper picks one at random), group the pixels within the threshold of the current mean, recompute the mean
until the group is stable. A cluster's layer-0 pixels are its visible mask, its pixels in any layer its
amodal mask; clusters with no visible pixel are dropped (only objects partly visible are detected).

Features: the paper uses DeepLabv3+ with an Xception backbone, its final upsampling and logit layers removed,
so its 256-channel decoder output at stride 4 (256 x 256 in, 64 x 64 out). Xception and the DeepLabv3+
decoder are not in torchvision; this net uses torchvision's DeepLabv3 instead: a ResNet body
(``IntermediateLayerGetter`` up to ``layer4``) and the ASPP head of ``DeepLabHead`` without its final
classifier convolution (256 channels), whose stride-8 output (``replace_stride_with_dilation=[False, True,
True]``, as ``deeplabv3_resnet50``) is upsampled bilinearly to stride 4. ``backbone`` picks the ResNet depth:
``resnet50`` (the default; the layout of ``deeplabv3_resnet50``, so its weights load by name) or ``resnet101``;
``resnet18`` / ``resnet34`` (basic blocks, which torchvision cannot dilate: ASPP reads their stride-8
``layer2``, 128 channels) exist for quick CPU runs. ``--pretrained torchvision`` loads ``DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1``
(``DeepLabV3_ResNet101_Weights`` for resnet101; ImageNet weights in the body for the basic-block depths); the
inputs are normalised with the ImageNet statistics those weights expect (:func:`models.data.scene_sample`).

Evaluation size: the paper scores its 64 x 64 outputs (and resizes Mask R-CNN's masks to 64 x 64 "to be
directly comparable"). ``eval_size=64`` (the default) decodes the outputs at 64 x 64 (resampled bilinearly
when the input is not 256 px; for 256 px inputs they are the raw outputs) and the masks are then enlarged
(nearest) to each image's original size; ``eval_size=None`` resamples the outputs bilinearly to the original
size and decodes there (full-size masks); any other value decodes at that side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from torchvision.models import get_model, get_model_weights
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPPPooling, DeepLabHead

from amodaldata.errors import AmodalDataError

from .results import Detections

#: ResNet depths of the feature extractor -> the stage ASPP reads, at output stride 8 for every depth:
#: ``layer4`` dilated for the bottleneck nets (as ``deeplabv3_resnet50``), ``layer2`` for the basic-block nets,
#: which torchvision cannot dilate.
BACKBONES = {"resnet18": "layer2", "resnet34": "layer2", "resnet50": "layer4", "resnet101": "layer4"}
#: torchvision's DeepLabv3 weights of each depth that has them.
DEEPLAB_WEIGHTS = {"resnet50": "deeplabv3_resnet50", "resnet101": "deeplabv3_resnet101"}


def conv_head(cin: int, hidden: tuple[int, ...], cout: int) -> nn.Sequential:
    """3x3 conv-relu layers of the given widths, then a 3x3 conv to ``cout`` outputs (the paper's modules)."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=True)]
        cin = width
    layers.append(nn.Conv2d(cin, cout, 3, padding=1))
    return nn.Sequential(*layers)


def downsample_labels(maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nearest resampling at pixel centres of label maps ``(..., H, W)`` to ``(..., height, width)``."""
    h, w = maps.shape[-2:]
    ys = ((torch.arange(height, device=maps.device) + 0.5) * h / height).long().clamp(max=h - 1)
    xs = ((torch.arange(width, device=maps.device) + 0.5) * w / width).long().clamp(max=w - 1)
    return maps[..., ys, :][..., xs]


def discriminative_loss(embeddings: torch.Tensor, instances: torch.Tensor, classes: torch.Tensor,
                        d_var: float = 0.5, d_dst: float = 1.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(l_var, l_dst, l_reg)`` of one image (module docstring).

    ``embeddings`` ``(K, C, H, W)``; ``instances`` ``(K, H, W)`` instance ids (0 = none); ``classes``
    ``(K, H, W)`` their classes. An image with no instance gives zeros (still connected to the graph).
    """
    labelled = instances > 0
    e = embeddings.permute(0, 2, 3, 1)[labelled].float()                      # (P, C)
    if e.shape[0] == 0:
        zero = embeddings.sum() * 0
        return zero, zero, zero
    ids, inverse = torch.unique(instances[labelled], return_inverse=True)
    n = len(ids)
    counts = torch.bincount(inverse, minlength=n).float()
    centres = torch.zeros(n, e.shape[1], dtype=e.dtype, device=e.device).index_add_(0, inverse, e)
    centres = centres / counts[:, None]
    pull = (e - centres[inverse]).abs().sum(dim=1)
    l_var = (F.relu(pull - d_var) ** 2 / counts[inverse]).sum() / n
    cls = torch.zeros(n, dtype=classes.dtype, device=e.device).scatter_reduce(
        0, inverse, classes[labelled], reduce="amax", include_self=False)
    same = (cls[:, None] == cls[None, :]) & ~torch.eye(n, dtype=torch.bool, device=e.device)
    n_class = same.sum(dim=1).float() + 1                                       # N_k of each row's class
    push = (centres[:, None] - centres[None, :]).abs().sum(dim=-1)
    hinge = F.relu(2 * d_dst - push) ** 2 * same
    l_dst = (hinge.sum(dim=1) / (n_class * (n_class - 1)).clamp(min=1)).sum()
    l_reg = centres.abs().sum(dim=1).mean()
    return l_var, l_dst, l_reg


def mean_shift(embeddings: np.ndarray, threshold: float, max_iter: int = 20) -> np.ndarray:
    """Cluster labels (0..n-1) of ``(P, C)`` embeddings by the grouping of [3] (L1 distances)."""
    labels = np.full(len(embeddings), -1, dtype=np.int64)
    cluster = 0
    while True:
        free = np.flatnonzero(labels < 0)
        if free.size == 0:
            return labels
        centre = embeddings[free[0]]
        group = free[:1]
        for _ in range(max_iter):
            near = free[np.abs(embeddings[free] - centre).sum(axis=1) <= threshold]
            if near.size == 0:
                near = free[:1]
            if np.array_equal(near, group):
                break
            group, centre = near, embeddings[near].mean(axis=0)
        labels[group] = cluster
        cluster += 1


class _PooledBatchNorm(nn.BatchNorm2d):
    """Batch norm of ASPP's image-pooling branch (one value per channel and image): with a single image in a
    training batch it normalises with the running statistics, as in evaluation, instead of failing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


def deeplab_features(backbone: str = "resnet50") -> tuple[nn.Module, nn.Sequential, int]:
    """torchvision's DeepLabv3 without its classifier convolution: the ResNet body (``backbone``), the ASPP
    head (256 channels out) and the body's output stride (see the module docstring). Untrained."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    layer = BACKBONES[backbone]
    dilate = layer == "layer4"
    resnet = get_model(backbone, weights=None, replace_stride_with_dilation=[False, dilate, dilate])
    body = IntermediateLayerGetter(resnet, return_layers={layer: "out"})
    channels = _out_channels(getattr(resnet, layer))
    head = nn.Sequential(*list(DeepLabHead(channels, 1).children())[:-1])
    pooling = next(m for m in head.modules() if isinstance(m, ASPPPooling))
    norm = pooling[2]
    pooling[2] = _PooledBatchNorm(norm.num_features, eps=norm.eps, momentum=norm.momentum)
    return body, head, 8


def _out_channels(stage: nn.Sequential) -> int:
    """Output channels of a ResNet stage (its last block's last batch norm)."""
    norms = [m for m in stage[-1].modules() if isinstance(m, nn.BatchNorm2d)]
    return norms[-1].num_features


class LayeredEmbeddingNet(nn.Module):
    """K-layer semantic maps and embeddings on DeepLabv3 features (module docstring). ``forward(batch)`` ->
    loss terms; ``predict(images, orig_sizes)`` -> detections."""

    stride = 4
    channels = 256

    def __init__(self, *, num_classes: int = 1, layers: int = 2, embedding_dim: int = 6, backbone: str = "resnet50",
                 head: tuple[int, ...] = (256, 256, 128), d_var: float = 0.5, d_dst: float = 1.5,
                 loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0), cluster_threshold: float = 1.5,
                 min_pixels: int = 2, eval_size: int | None = 64) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        if eval_size is not None and eval_size < 1:
            raise ValueError(f"eval_size must be >= 1 or None, got {eval_size}")
        self.num_classes, self.layers, self.embedding_dim = num_classes, layers, embedding_dim
        self.backbone_name = backbone
        self.d_var, self.d_dst = d_var, d_dst
        self.alpha, self.beta, self.gamma = loss_weights
        self.cluster_threshold, self.min_pixels, self.eval_size = cluster_threshold, min_pixels, eval_size
        self.backbone, self.classifier, self.feature_stride = deeplab_features(backbone)
        self.semantic = nn.ModuleList(conv_head(self.channels, tuple(head), num_classes + 1) for _ in range(layers))
        self.embed = nn.ModuleList(conv_head(self.channels, tuple(head), embedding_dim) for _ in range(layers))

    def torchvision_state(self) -> tuple[dict[str, torch.Tensor], str]:
        """torchvision's named weights for this backbone (``--pretrained torchvision``, module docstring), in
        this model's key layout; downloaded by torchvision where a network exists, or read from its cache."""
        if self.backbone_name in DEEPLAB_WEIGHTS:
            weights = get_model_weights(DEEPLAB_WEIGHTS[self.backbone_name]).COCO_WITH_VOC_LABELS_V1
            return weights.get_state_dict(progress=True), f"torchvision {weights}"
        weights = get_model_weights(self.backbone_name).IMAGENET1K_V1
        body = {f"backbone.{k}": v for k, v in weights.get_state_dict(progress=True).items() if not k.startswith("fc.")}
        return body, f"torchvision {weights}"

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The 256-channel DeepLabv3 features ``(B, 256, H/4, W/4)`` (inputs: sides multiples of 8)."""
        h, w = images.shape[-2:]
        if h % 8 or w % 8:
            raise AmodalDataError(f"input size {h}x{w} must be a multiple of 8 (the embedding net's --size)")
        feats = self.classifier(self.backbone(images)["out"])
        return F.interpolate(feats, size=(h // self.stride, w // self.stride), mode="bilinear", align_corners=False)

    def outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Semantic logits ``(B, K, classes + 1, h, w)`` and embeddings ``(B, K, C, h, w)`` at stride 4."""
        feats = self.features(images)
        semantic = torch.stack([head(feats) for head in self.semantic], dim=1)
        embedding = torch.stack([head(feats) for head in self.embed], dim=1)
        return semantic, embedding

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        semantic, embedding = self.outputs(batch["images"])
        h, w = semantic.shape[-2:]
        classes = downsample_labels(batch["layered_classes"], h, w).long()      # (B, K, h, w)
        instances = downsample_labels(batch["layered_instances"], h, w).long()
        sem = F.cross_entropy(semantic.flatten(0, 1).float(), classes.flatten(0, 1))
        terms = [discriminative_loss(e, i, c, self.d_var, self.d_dst)
                 for e, i, c in zip(embedding, instances, classes)]
        l_var, l_dst, l_reg = (torch.stack(t).mean() for t in zip(*terms))
        return {"semantic": sem * self.layers, "var": self.alpha * l_var, "dst": self.beta * l_dst,
                "reg": self.gamma * l_reg}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, orig_sizes: list[tuple[int, int]]) -> list[Detections]:
        """Per image: instances clustered class by class at the evaluation size (``eval_size``, module
        docstring), with amodal and visible masks at the original size, their class, and the mean semantic
        probability of their pixels as score."""
        semantic, embedding = self.outputs(images)
        out = []
        for sem, emb, (oh, ow) in zip(semantic.float(), embedding.float(), orig_sizes):
            size = (oh, ow) if self.eval_size is None else (self.eval_size, self.eval_size)
            if tuple(sem.shape[-2:]) != size:
                sem = F.interpolate(sem, size=size, mode="bilinear", align_corners=False)
                emb = F.interpolate(emb, size=size, mode="bilinear", align_corners=False)
            out.append(self._decode(sem, emb, oh, ow))
        return out

    def _decode(self, semantic: torch.Tensor, embedding: torch.Tensor, oh: int, ow: int) -> Detections:
        """One image's detections from its ``(K, classes + 1, h, w)`` logits and ``(K, C, h, w)`` embeddings,
        the masks enlarged (nearest, at pixel centres) to ``oh x ow``."""
        conf, label = torch.softmax(semantic, dim=1).max(dim=1)                   # (K, h, w)
        cf, lb = conf.cpu().numpy(), label.cpu().numpy()
        emb = embedding.permute(0, 2, 3, 1).cpu().numpy()                         # (K, h, w, C)
        det = Detections()
        _, h, w = lb.shape
        rows = np.minimum((np.arange(oh) + 0.5) * h / oh, h - 1).astype(np.int64)
        cols = np.minimum((np.arange(ow) + 0.5) * w / ow, w - 1).astype(np.int64)
        for cls in np.unique(lb[lb > 0]):
            layer, ys, xs = np.nonzero(lb == cls)
            clusters = mean_shift(emb[layer, ys, xs], self.cluster_threshold)
            for c in range(clusters.max() + 1):
                member = clusters == c
                front = member & (layer == 0)
                if member.sum() < self.min_pixels or not front.any():
                    continue
                amodal = np.zeros((h, w), dtype=bool)
                visible = np.zeros((h, w), dtype=bool)
                amodal[ys[member], xs[member]] = True
                visible[ys[front], xs[front]] = True
                score = float(cf[layer[member], ys[member], xs[member]].mean())
                det.add(score, int(cls), amodal[np.ix_(rows, cols)], visible[np.ix_(rows, cols)])
        return det
