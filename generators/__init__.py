"""Synthetic amodal datasets with exact ground truth, written as Parquet shards.

- :mod:`generators.shapes`: outlined shapes stacked in depth (layered-embeddings paper, Liu et al. 2019, Sec. 3);
- :mod:`generators.overlay`: unoccluded real objects pasted over other images (Li & Malik style; the COCOA
  paper's synthetic data, Zhu et al. 2017, Sec. 5.1);
- :mod:`generators.options`: each generator's options, parsed by the same code for ``amodaldata gen`` and for
  scenes generated while training (``models.train --generate``);
- :mod:`generators.tasks`: shard tasks (seeded per shard, resumable), run by :mod:`amodaldata.engines` (a process
  pool or Ray);
- :mod:`generators.kernels`: the compiled (numba) loops of the shapes generator, among them pycocotools' polygon
  rasteriser re-implemented exactly; :mod:`generators.encode`: the PNG writer.

``generate_dataset``, ``ShapesConfig``, ``OverlayConfig`` and ``generator_config`` are re-exported here.
"""

from __future__ import annotations

from amodaldata.lazy import lazy_exports

#: Re-exported on first use (PEP 562), so ``import generators`` does not import numba.
_LAZY = {"generate_dataset": "tasks", "ShapesConfig": "shapes", "OverlayConfig": "overlay",
         "generator_config": "options"}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
