"""Synthetic occlusion by pasting real objects over other images (Li & Malik style; the COCOA paper's synthetic
amodal training data, Zhu et al. 2017, Sec. 5.1: "randomly overlaying objects masks from the original COCO dataset").

Objects whose amodal mask is complete in a source dataset (occlusion rate 0 from the layer stack, not stuff,
not touching the image frame, at least ``min_area`` pixels) are cut out with their mask and pasted, scaled
and moved at random, over the image of another source scene. The pasted object lies in front of everything
beneath it, so the ground truth stays exact: the base scene's regions keep their annotated amodal masks and
order, each pasted object's amodal mask is its source mask scaled and translated (polygons stay polygons),
and it gets an order edge over every region its mask overlaps. A paste is redrawn (up to ``tries`` times,
then dropped) when it would leave an occluded region with less than ``min_visible`` of its area visible.
Pixels are copied by nearest-neighbour inverse mapping onto exactly the pixels of the new mask, so the
picture agrees with the masks. Given visible masks of the base scene are dropped (they would be stale); the
visible masks come from the layer stack.
"""

from __future__ import annotations

import functools
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np
from PIL import Image

from amodaldata.errors import AnnotationError, MissingImageError
from amodaldata.images import decode_rgb as decode_image
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene

#: Image formats the generated scenes can be encoded in.
IMAGE_FORMATS = ("jpeg", "png")


@dataclass(frozen=True)
class OverlayConfig:
    """Options of the overlay generator.

    Attributes:
        source_format, source, images: the source dataset, read with ``converters.read(source,
            format=source_format, images=images, load_images=True)`` (formats that embed images, e.g. shards,
            need no ``images``).
        objects: ``(low, high)``: objects pasted per scene, uniform in ``[low, high]``.
        scale: ``(low, high)``: each pasted object is scaled by a factor uniform in this range (then shrunk if it
            would not fit in the image).
        min_visible: the least visible fraction of its amodal area an occluded region may be left with.
        min_area: the least amodal area (px) of a source object.
        tries: placements drawn per object before it is dropped.
        image_format: ``jpeg`` (quality ``jpeg_quality``) or ``png``.
    """

    source_format: str
    source: str
    images: str | None = None
    objects: tuple[int, int] = (1, 3)
    scale: tuple[float, float] = (0.5, 1.25)
    min_visible: float = 0.25
    min_area: int = 400
    tries: int = 20
    image_format: str = "jpeg"
    jpeg_quality: int = 95

    name: ClassVar[str] = "overlay"

    def __post_init__(self) -> None:
        low, high = self.objects
        if not 1 <= low <= high:
            raise ValueError(f"objects must be 1 <= low <= high, got {self.objects}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must be 0 < low <= high, got {self.scale}")
        if not 0 <= self.min_visible <= 1:
            raise ValueError(f"min_visible must lie in [0, 1], got {self.min_visible}")
        if self.min_area < 1 or self.tries < 1:
            raise ValueError("min_area and tries must be >= 1")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {', '.join(IMAGE_FORMATS)}, got {self.image_format!r}")
        from converters import READERS

        if self.source_format not in READERS:
            raise ValueError(f"unknown source format {self.source_format!r}; known: {', '.join(sorted(READERS))} "
                             "(parquet: a folder of shards)")
        # absolute paths: worker processes and reruns from another folder find the same source
        object.__setattr__(self, "source", str(Path(self.source).resolve()))
        if self.images is not None:
            object.__setattr__(self, "images", str(Path(self.images).resolve()))

    def generate(self, rng: np.random.Generator, indices: range, split: str = "train") -> Iterator[Scene]:
        """The scenes ``indices`` drawn one after another from ``rng``."""
        source = load_source(self)
        for index in indices:
            yield generate_scene(self, source, rng, index, split)

    def describe(self) -> dict[str, Any]:
        """The options as JSON values."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# -- the source: bases and cut-out objects ----------------------------------------------------------------
@dataclass(frozen=True)
class CutOut:
    """An unoccluded source object: its mask and pixels in its bounding box ``(x0, y0)``, and where it came from."""

    scene: int                 # index of the source scene in Source.scenes
    region: int                # region id in that scene
    name: str | None
    category_id: int | None
    polygons: list[list[float]] | None
    x0: int
    y0: int
    mask: np.ndarray           # bool (h, w)
    pixels: np.ndarray         # uint8 (h, w, 3)


@dataclass
class Source:
    scenes: list[Scene]
    objects: list[CutOut]


def decode_rgb(scene: Scene) -> np.ndarray:
    """The scene's image as uint8 ``(H, W, 3)``; its size must be the scene's."""
    if scene.image_bytes is None:
        raise MissingImageError("the source scene has no image (give the image folder)", image_id=scene.id,
                                file=scene.file_name)
    return np.asarray(decode_image(scene.image_bytes, scene.height, scene.width, file=scene.file_name,
                                   image_id=scene.id, annotation_id=scene.annotation_id))


@functools.lru_cache(maxsize=4)
def load_source(config: OverlayConfig) -> Source:
    """Read the source dataset once per process and cut out every eligible object (module doc)."""
    from converters import read

    scenes = list(read(config.source, format=config.source_format, images=config.images, load_images=True))
    objects: list[CutOut] = []
    for k, scene in enumerate(scenes):
        stack = scene.layers
        rgb = None
        for region in scene.regions:
            if region.is_stuff or stack.area(region.id) < config.min_area or stack.occlusion_rate(region.id) > 0:
                continue
            ys, xs = np.divmod(stack.pixels[region.id], scene.width)
            x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
            if x0 == 0 or y0 == 0 or x1 == scene.width or y1 == scene.height:
                continue                       # cut by the image frame: the mask may not be complete
            if rgb is None:
                rgb = decode_rgb(scene)
            mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
            mask[ys - y0, xs - x0] = True
            objects.append(CutOut(k, region.id, region.name, region.category_id, region.amodal.polygons, x0, y0,
                                  mask, rgb[y0:y1, x0:x1].copy()))
    if not objects:
        raise AnnotationError(f"no unoccluded, complete object of at least {config.min_area} px in the source",
                              file=str(config.source))
    return Source(scenes, objects)


@functools.lru_cache(maxsize=32)
def _base_rgb(scene: Scene) -> np.ndarray:
    """Decoded base images, kept for reuse (read-only: copy before painting)."""
    return decode_rgb(scene)


# -- one scene ------------------------------------------------------------------------------------------
@dataclass
class _Paste:
    obj: CutOut
    scale: float
    x: int                     # top-left of the scaled bounding box in the new image
    y: int
    mask: np.ndarray           # bool (H, W)
    amodal: Mask


def _place(config: OverlayConfig, obj: CutOut, height: int, width: int, rng: np.random.Generator) -> _Paste:
    """Draw a scale and position for ``obj`` inside a ``height`` x ``width`` image; build its new mask."""
    h, w = obj.mask.shape
    scale = float(rng.uniform(*config.scale))
    scale = min(scale, (width - 1) / w, (height - 1) / h)
    sw, sh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    x = int(rng.integers(0, width - sw + 1))
    y = int(rng.integers(0, height - sh + 1))
    if obj.polygons is not None:
        polys = [(np.asarray(p).reshape(-1, 2) - (obj.x0, obj.y0)) * scale + (x, y) for p in obj.polygons]
        amodal = Mask.from_polygons([p.ravel().tolist() for p in polys], height, width)
        mask = amodal.to_bitmap()
    else:
        mask = np.zeros((height, width), dtype=bool)
        yy, xx = np.mgrid[y:y + sh, x:x + sw]
        sy = np.clip(((yy + 0.5 - y) / scale).astype(np.int64), 0, h - 1)
        sx = np.clip(((xx + 0.5 - x) / scale).astype(np.int64), 0, w - 1)
        mask[y:y + sh, x:x + sw] = obj.mask[sy, sx]
        amodal = Mask.from_bitmap(mask)
    return _Paste(obj, scale, x, y, mask, amodal)


def _paint(image: np.ndarray, paste: _Paste) -> None:
    """Copy the object's pixels onto exactly the pixels of its new mask (nearest-neighbour inverse mapping)."""
    ys, xs = np.nonzero(paste.mask)
    h, w = paste.obj.mask.shape
    sy = np.clip(((ys + 0.5 - paste.y) / paste.scale).astype(np.int64), 0, h - 1)
    sx = np.clip(((xs + 0.5 - paste.x) / paste.scale).astype(np.int64), 0, w - 1)
    image[ys, xs] = paste.obj.pixels[sy, sx]


def generate_scene(config: OverlayConfig, source: Source, rng: np.random.Generator, index: int,
                   split: str = "train") -> Scene:
    """One overlay scene (id ``index``): a source scene with 1..n pasted objects on top (module doc)."""
    base_index = int(rng.integers(len(source.scenes)))
    base = source.scenes[base_index]
    height, width = base.height, base.width
    image = _base_rgb(base).copy()
    stack = base.layers
    top = stack.ids[0].astype(np.int64) if stack.depth else np.zeros((height, width), dtype=np.int64)
    area = {r.id: stack.area(r.id) for r in base.regions}
    shown = {r.id: stack.visible_area(r.id) for r in base.regions}
    bitmaps = {r.id: r.amodal.to_bitmap() for r in base.regions}
    others = [o for o in source.objects if o.scene != base_index] or source.objects
    next_id = max((r.id for r in base.regions), default=0) + 1
    pastes: list[tuple[int, _Paste]] = []
    wanted = int(rng.integers(config.objects[0], config.objects[1] + 1))
    for _ in range(wanted):
        obj = others[int(rng.integers(len(others)))]
        for _ in range(config.tries):
            paste = _place(config, obj, height, width, rng)
            if not paste.mask.any():
                continue
            lost = np.bincount(top[paste.mask].ravel(), minlength=next_id)
            hit = (np.flatnonzero(lost[1:]) + 1).tolist()
            if all((shown[rid] - lost[rid]) >= config.min_visible * area[rid] for rid in hit):
                break
        else:
            continue
        rid = next_id
        next_id += 1
        for other in hit:
            shown[other] -= int(lost[other])
        area[rid] = shown[rid] = int(paste.mask.sum())
        bitmaps[rid] = paste.mask
        top[paste.mask] = rid
        _paint(image, paste)
        pastes.append((rid, paste))

    n_pasted = len(pastes)
    regions = [Region(id=r.id, amodal=r.amodal, name=r.name, category_id=r.category_id, is_stuff=r.is_stuff,
                      is_crowd=r.is_crowd, depth_rank=None if r.depth_rank is None else r.depth_rank + n_pasted, extra=dict(r.extra))
               for r in base.regions]
    edges = set(base.order.edges)
    below = [r.id for r in base.regions]
    for k, (rid, paste) in enumerate(pastes):
        obj = paste.obj
        regions.append(Region(
            id=rid, amodal=paste.amodal, name=obj.name, category_id=obj.category_id, depth_rank=n_pasted - k,
            extra={"pasted_from": {"image_id": source.scenes[obj.scene].id, "region_id": obj.region,
                                   "scale": round(paste.scale, 6), "offset": [paste.x, paste.y]}}))
        edges |= {(rid, other) for other in below if (bitmaps[other] & paste.mask).any()}
        below.append(rid)
    return Scene(id=index, height=height, width=width, regions=regions, order=OcclusionOrder(edges),
                 file_name=f"{split}-{index:08d}.{'jpg' if config.image_format == 'jpeg' else 'png'}",
                 image_bytes=_encode(image, config), annotator=base.annotator,
                 extra={"generator": "overlay", "base": {"image_id": base.id, "annotation_id": base.annotation_id,
                                                         "file_name": base.file_name}})


def _encode(image: np.ndarray, config: OverlayConfig) -> bytes:
    buf = io.BytesIO()
    if config.image_format == "jpeg":
        Image.fromarray(image).save(buf, format="JPEG", quality=config.jpeg_quality)
    else:
        Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()

