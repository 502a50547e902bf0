"""amodaldata: read, convert, measure, generate and evaluate amodal segmentation data.

The core data model is :class:`Scene` (an image, its amodal :class:`Region` s and their
:class:`OcclusionOrder`); every target is derived from the scene's :class:`LayerStack`.
"""

from .errors import (AmodalDataError, AnnotationError, DepthCycleError, ErrorPolicy, FormatError,
                     GeometryError, MissingImageError)
from .layers import LayerStack
from .masks import Mask
from .order import OcclusionOrder
from .scene import Region, Scene

__version__ = "0.1.0"

__all__ = [
    "AmodalDataError", "AnnotationError", "DepthCycleError", "ErrorPolicy", "FormatError", "GeometryError",
    "LayerStack", "Mask", "MissingImageError", "OcclusionOrder", "Region", "Scene", "__version__",
]
