"""Torch models trained on amodaldata shards: SLN (seed 000), ARCNN (amodal Mask R-CNN), the layered
embedding net (seed 002); data loading in :mod:`models.data`, training in :mod:`models.train`, inference in
:mod:`models.predict`. Models import :mod:`amodaldata` only.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .arcnn import ARCNN
from .embedding import LayeredEmbeddingNet
from .sln import SLN

#: Model name (``--model``) -> class; each takes keyword options and has ``forward(batch) -> losses`` and
#: ``predict(images, orig_sizes) -> list[Detections]``.
MODELS: dict[str, type[nn.Module]] = {"sln": SLN, "arcnn": ARCNN, "embedding": LayeredEmbeddingNet}


def build_model(name: str, config: dict[str, Any]) -> nn.Module:
    """An untrained model of that name with the given keyword options."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    try:
        return MODELS[name](**config)
    except TypeError as exc:
        raise ValueError(f"bad option for model {name!r}: {exc}") from None
