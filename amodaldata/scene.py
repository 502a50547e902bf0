"""The one data model: a :class:`Scene` is an image and its amodal :class:`Region`\\ s with their occlusion order.

Pure containers (as detectron2's ``structures``): no file I/O here. Readers in ``converters/`` and the
generators build Scenes; everything else (targets, statistics, shards, evaluation) reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .errors import AnnotationError
from .masks import Mask
from .order import OcclusionOrder

if TYPE_CHECKING:
    from .layers import LayerStack


@dataclass(eq=False)
class Region:
    """One amodally outlined object or stuff region.

    Attributes:
        id: positive int, unique within the scene; the value the layer stack stores for this region.
        amodal: the whole outline, hidden parts included, in the encoding it arrived in.
        name: free-text label (COCOA), or None.
        category_id: category id (COCO-style datasets), or None.
        is_stuff: True for amorphous background regions (COCOA ``isStuff``).
        is_crowd: True for a region outlining a crowd of objects (COCO ``iscrowd``): the evaluation matches
            detections to it but never counts it, as COCO's does.
        visible: the visible part as given by the annotation, or None (it is derived from the layer stack).
        depth_rank: 1-based front-to-back rank as given (COCOA ``order``), or None.
        extra: fields no reader models, kept so a round trip loses nothing.
    """

    id: int
    amodal: Mask
    name: str | None = None
    category_id: int | None = None
    is_stuff: bool = False
    is_crowd: bool = False
    visible: Mask | None = None
    depth_rank: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A display label: the name, else the category id, else the region id."""
        if self.name is not None:
            return self.name.strip()
        return str(self.category_id) if self.category_id is not None else f"region {self.id}"


@dataclass(eq=False)
class Scene:
    """One image and everything known about it.

    ``order`` holds the occlusion graph (edge A -> B: A is in front of B where they overlap). The layer stack,
    from which every target is derived, is computed once on first access of :attr:`layers` and cached; build
    a new Scene (or call :meth:`invalidate`) after changing regions or order.
    """

    id: Any
    height: int
    width: int
    regions: list[Region] = field(default_factory=list)
    order: OcclusionOrder = field(default_factory=OcclusionOrder)
    file_name: str | None = None
    image_bytes: bytes | None = None
    annotator: str | None = None
    annotation_id: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check ids, sizes and order edges; raise :class:`AnnotationError` naming the image and region."""
        from .images import check_size

        try:
            check_size(self.height, self.width)
        except AnnotationError as err:
            raise err.located(image_id=self.id, annotation_id=self.annotation_id)
        seen: set[int] = set()
        for region in self.regions:
            if not isinstance(region.id, int) or isinstance(region.id, bool) or region.id <= 0:
                raise AnnotationError(f"region id must be a positive int, got {region.id!r}",
                                      image_id=self.id, annotation_id=self.annotation_id)
            if region.id in seen:
                raise AnnotationError("duplicate region id", image_id=self.id,
                                      annotation_id=self.annotation_id, region_id=region.id)
            seen.add(region.id)
            for what, mask in (("amodal", region.amodal), ("visible", region.visible)):
                if mask is not None and mask.size != (self.height, self.width):
                    raise AnnotationError(
                        f"{what} mask is {mask.height}x{mask.width}, image is {self.height}x{self.width}",
                        image_id=self.id, annotation_id=self.annotation_id, region_id=region.id)
        for front, back in self.order.edges:
            for rid in (front, back):
                if rid not in seen:
                    raise AnnotationError(f"occlusion order names region {rid}, which the scene does not have",
                                          image_id=self.id, annotation_id=self.annotation_id)

    def region(self, region_id: int) -> Region:
        """The region with that id."""
        for region in self.regions:
            if region.id == region_id:
                return region
        raise KeyError(region_id)

    @cached_property
    def layers(self) -> "LayerStack":
        """The layer stack (computed once, cached)."""
        from .layers import LayerStack

        return LayerStack.from_scene(self)

    def set_layers(self, stack: "LayerStack") -> None:
        """Give the scene its layer stack when the caller built it with the pixels (a generator that laid the
        regions itself), so that it is not computed again; it must be what :attr:`layers` would compute."""
        if stack.shape != (self.height, self.width) or sorted(stack.front_to_back) != sorted(r.id for r in
                                                                                            self.regions):
            raise ValueError(f"a layer stack of {stack.shape} over regions {sorted(stack.front_to_back)} does not "
                             f"fit scene {self.id!r}")
        self.__dict__["layers"] = stack

    def invalidate(self) -> None:
        """Forget the cached layer stack after an in-place change."""
        self.__dict__.pop("layers", None)

    def __repr__(self) -> str:
        return (f"Scene(id={self.id!r}, {self.height}x{self.width}, {len(self.regions)} regions, "
                f"{len(self.order.edges)} order edges)")
