"""amodaldata: read, convert, measure, generate and evaluate amodal segmentation data.

The core data model is :class:`Scene` (an image, its amodal :class:`Region` s and their
:class:`OcclusionOrder`); every target is derived from the scene's :class:`LayerStack`. The front door:

    from converters import read
    import amodaldata

    amodaldata.write_shards(read("COCO_amodal_val2014.json", format="cocoa"), "shards/")

Files are read and written by ``converters.read(path, format)`` / ``converters.write(scenes, path, format)``;
synthetic data comes from ``generators.generate_dataset``; shards (:class:`ShardSet`), targets, statistics and the
task engine are re-exported here.
"""

from .errors import (AmodalDataError, AnnotationError, DepthCycleError, ErrorPolicy, FormatError,
                     GeometryError, MissingImageError)
from .layers import LayerStack
from .lazy import lazy_exports
from .masks import Mask
from .order import OcclusionOrder
from .scene import Region, Scene

__version__ = "0.1.0"

#: Re-exported on first use (PEP 562), so ``import amodaldata`` does not import pyarrow, numba or matplotlib.
_LAZY = {
    "read_shards": "shards", "write_shards": "shards", "ShardSet": "shards", "scene_targets": "targets",
    "compute_stats": "stats", "format_report": "stats", "run_tasks": "engines", "atomic_path": "atomic",
}

__all__ = [
    "AmodalDataError", "AnnotationError", "DepthCycleError", "ErrorPolicy", "FormatError", "GeometryError",
    "LayerStack", "Mask", "MissingImageError", "OcclusionOrder", "Region", "Scene", "__version__", *sorted(_LAZY),
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
