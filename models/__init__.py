"""Torch models trained on amodaldata shards.

- The two-stage family on torchvision's Mask R-CNN (:mod:`models.rcnn`): ``arcnn`` (Follmann et al. 2019,
  amodal Mask R-CNN), ``orcnn`` (Follmann et al. 2019, amodal and visible heads), ``jigsaw`` (Yin 2021,
  visible and occluded heads fused by a 1x1 convolution), ``arcnn-add`` (Yin 2021, amodal = visible +
  occluded).
- ``sln``: the semantics layering network (Zhang et al. 2019, :mod:`models.sln`).
- ``embedding``: the layered embedding net (Liu et al. 2019, :mod:`models.embedding`).

Data loading in :mod:`models.data`, training in :mod:`models.train`, inference in :mod:`models.predict`,
pretrained weights in :mod:`models.weights`. Models import :mod:`amodaldata` only.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from torch import nn

from .embedding import LayeredEmbeddingNet
from .rcnn import VARIANTS, AmodalRCNN
from .sln import SLN

#: Model name (``--model``) -> constructor taking keyword options; each model has ``forward(batch) -> losses``
#: and ``predict(images, orig_sizes) -> list[Detections]``.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "sln": SLN, "embedding": LayeredEmbeddingNet,
    **{name: functools.partial(AmodalRCNN, name) for name in VARIANTS},
}
#: The two-stage models: aspect-preserving inputs of :func:`models.data.instance_sample`.
TWO_STAGE = tuple(VARIANTS)


def model_options(name: str) -> list[str]:
    """The keyword options the model ``name`` accepts (``--set KEY=VALUE``)."""
    if name in TWO_STAGE:
        own = [k for k in inspect.signature(AmodalRCNN).parameters if k not in ("variant", "options")]
        from torchvision.models.detection import MaskRCNN
        passed = [k for k in inspect.signature(MaskRCNN).parameters
                  if k.startswith(("rpn_", "box_")) and k not in ("rpn_anchor_generator", "rpn_head", "box_roi_pool",
                                                                  "box_head", "box_predictor")]
        return own + passed
    return [k for k in inspect.signature(MODELS[name]).parameters]


def build_model(name: str, config: dict[str, Any]) -> nn.Module:
    """An untrained model of that name with the given keyword options; an unknown option lists the valid ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    valid = model_options(name)
    unknown = sorted(set(config) - set(valid))
    if unknown:
        raise ValueError(f"bad option for model {name!r}: unknown {', '.join(map(repr, unknown))}; "
                         f"valid options: {', '.join(valid)}")
    try:
        return MODELS[name](**config)
    except TypeError as exc:
        raise ValueError(f"bad option for model {name!r}: {exc}") from None
