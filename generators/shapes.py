"""The shapes dataset of the layered-embeddings paper (seed ``002``, Sec. 3): outlined shapes stacked in depth.

Paper default (:data:`PAPER`): a 256x256 white image; ``per_class`` circles, triangles and rectangles, shuffled;
the draw order is the depth order (a later shape is nearer); each shape's anchor is uniform in [0.1, 0.9] of
the side (shapes may leave the canvas) and its rotation uniform in [0, 360) degrees (circles unrotated); fixed
sizes relative to the side: circle diameter 0.25, equilateral triangle side 0.3, rectangle a 0.8 x 0.1 bar;
shapes are filled white like the background with a black outline of 0.01 x side (2 px), so only outlines
tell them apart. Targets also come at ``mask_size`` (64x64, the paper's output size).

Ground truth is exact by construction. Every shape is a polygon (circles and ellipses with enough vertices
that no chord departs from the curve by more than :data:`CURVE_TOLERANCE` px, below the 0.2 px vertex grid of
pycocotools' polygon rasteriser), with vertices on a 1/256 px grid. The amodal mask *is* that polygon under
pycocotools semantics (``Mask.from_polygons``), and the picture is painted from the very same pixels: each
shape is rasterised once (in its bounding box), its outline is the mask minus its erosion, and the shapes
are painted back to front, so at every pixel the nearest shape shows its fill or its outline. The order is
``OcclusionOrder`` edges (later, earlier) for every pair whose masks share a pixel; ``depth_rank`` 1 is the
nearest shape. The layer stack is built from the same per-shape pixels and handed to the Scene, so nothing
is rasterised twice. Shapes left with no visible pixel are dropped unless ``keep_hidden``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import ClassVar, Iterator, Sequence

import numpy as np
from pycocotools import mask as cocomask

from amodaldata.layers import LayerStack
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene

from .encode import encode_png, label_rles
from .raster import crop_boxes, crop_safe, rasterise

#: The classes of the paper, in class-id order (category ids 1, 2, 3).
PAPER_CLASSES = ("circle", "triangle", "rectangle")
#: Every class the generator draws; category ids follow this order (1-based).
CLASSES = ("circle", "triangle", "rectangle", "ellipse", "square", "star")
#: Largest distance (px) between a circle/ellipse polygon's chord and the true curve.
CURVE_TOLERANCE = 0.1
#: Vertex coordinates are multiples of 1/QUANTUM px, so every rasterisation of them is exact in floating point.
QUANTUM = 256
#: Fill modes: ``same`` = white like the background (the paper), ``gray`` = a random gray level per shape,
#: ``random`` = a random RGB colour per shape.
FILLS = ("same", "gray", "random")


@dataclass(frozen=True)
class ShapesConfig:
    """Options of the shapes generator; the defaults are the paper's (seed ``002``, Sec. 3).

    Attributes:
        size: side of the square image in pixels.
        classes: class names drawn (see :data:`CLASSES`).
        per_class: ``(low, high)``: each class gets a count uniform in ``[low, high]`` per scene (equal = fixed).
        size_jitter: each shape's size is scaled by a factor uniform in ``[1 - j, 1 + j]``.
        outline: outline width relative to the side (``int(outline * size)`` px; 0 = no outline).
        fill: one of :data:`FILLS`.
        mask_size: side of the extra low-resolution amodal masks (0 = none); stored per region as
            ``extra["amodal_small"]`` (COCO RLE of the polygon scaled to that size).
        keep_hidden: keep shapes that end up with no visible pixel (dropped by default).
        png_compression: zlib level of the PNG images (0-9).
    """

    size: int = 256
    classes: tuple[str, ...] = PAPER_CLASSES
    per_class: tuple[int, int] = (6, 6)
    size_jitter: float = 0.0
    outline: float = 0.01
    fill: str = "same"
    mask_size: int = 64
    keep_hidden: bool = False
    png_compression: int = 1

    def __post_init__(self) -> None:
        unknown = [c for c in self.classes if c not in CLASSES]
        if unknown or not self.classes:
            raise ValueError(f"unknown shape class(es) {unknown}; known: {', '.join(CLASSES)}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("a class is listed twice")
        low, high = self.per_class
        if not 0 <= low <= high:
            raise ValueError(f"per_class must be 0 <= low <= high, got {self.per_class}")
        if self.size < 8:
            raise ValueError(f"size must be at least 8 px, got {self.size}")
        if not 0 <= self.size_jitter < 1:
            raise ValueError(f"size_jitter must lie in [0, 1), got {self.size_jitter}")
        if not 0 <= self.outline < 0.5:
            raise ValueError(f"outline must lie in [0, 0.5), got {self.outline}")
        if self.fill not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {self.fill!r}")
        if self.mask_size < 0:
            raise ValueError(f"mask_size must be >= 0, got {self.mask_size}")
        if not 0 <= self.png_compression <= 9:
            raise ValueError(f"png_compression must lie in 0..9, got {self.png_compression}")
        for name in self.classes:
            # pycocotools rounds vertices to a 0.2 px grid and divides 0 by 0 on an edge whose ends meet there;
            # ends at least 0.3 px apart (more than the cell diagonal, 0.28) never do
            tpl = _template(name, self.size * (1 + self.size_jitter))
            shortest = float(np.linalg.norm(tpl - np.roll(tpl, -1, axis=0), axis=1).min())
            if shortest * self.size * (1 - self.size_jitter) < 0.3:
                raise ValueError(f"{name}s would have edges under 0.3 px at size {self.size} with size jitter "
                                 f"{self.size_jitter}; use a larger image or less jitter")

    @property
    def outline_px(self) -> int:
        """The outline width in pixels."""
        return int(self.outline * self.size + 1e-9)

    def category_id(self, name: str) -> int:
        """The class's category id: its 1-based position in :data:`CLASSES`."""
        return CLASSES.index(name) + 1

    # -- the generator protocol of generators.tasks -----------------------------------------------------------
    name: ClassVar[str] = "shapes"

    def generate(self, rng: np.random.Generator, indices: range, split: str = "train") -> Iterator[Scene]:
        """The scenes ``indices`` drawn one after another from ``rng``."""
        for index in indices:
            yield generate_scene(self, rng, index, split)

    def describe(self) -> dict:
        """The options as JSON values."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}



# -- geometry ---------------------------------------------------------------------------------------------
def _curve_vertices(radius_px: float) -> int:
    """Vertices of a regular polygon inscribed in a circle of that radius whose sagitta is CURVE_TOLERANCE."""
    if radius_px <= CURVE_TOLERANCE:
        return 8
    return max(8, math.ceil(math.pi / math.acos(1.0 - CURVE_TOLERANCE / radius_px)))


@functools.lru_cache(maxsize=64)
def _template(name: str, max_side: float) -> np.ndarray:
    """The class's polygon ``(k, 2)`` in units of the image side, centred on its anchor, unrotated.

    ``max_side`` (the largest side a jittered shape may reach, in px) fixes the vertex count of curves.
    """
    if name == "circle":
        t = np.linspace(0.0, 2 * np.pi, _curve_vertices(0.125 * max_side), endpoint=False)
        return 0.125 * np.stack([np.cos(t), np.sin(t)], axis=1)
    if name == "ellipse":
        t = np.linspace(0.0, 2 * np.pi, _curve_vertices(0.15 * max_side), endpoint=False)
        return np.stack([0.15 * np.cos(t), 0.075 * np.sin(t)], axis=1)
    if name == "triangle":   # equilateral, side 0.3, centred on its centroid
        t = np.deg2rad([90.0, 210.0, 330.0])
        return 0.3 / math.sqrt(3.0) * np.stack([np.cos(t), np.sin(t)], axis=1)
    if name == "rectangle":  # the paper's 0.8 x 0.1 bar
        return np.array([[-0.4, -0.05], [0.4, -0.05], [0.4, 0.05], [-0.4, 0.05]])
    if name == "square":
        return np.array([[-0.1, -0.1], [0.1, -0.1], [0.1, 0.1], [-0.1, 0.1]])
    if name == "star":       # five-pointed, outer radius 0.15, inner radius of the regular pentagram
        t = np.deg2rad(-90.0 + 36.0 * np.arange(10))
        r = np.where(np.arange(10) % 2 == 0, 0.15, 0.15 * math.sin(math.radians(18)) / math.sin(math.radians(54)))
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    raise ValueError(f"unknown shape class {name!r}")


#: The paper's setting (seed 002, Sec. 3).
PAPER = ShapesConfig()


@dataclass(frozen=True)
class ShapeDraw:
    """One drawn shape: class, polygon (px, on the 1/QUANTUM grid), placement and fill."""

    name: str
    polygon: np.ndarray        # (k, 2) float64
    anchor: tuple[float, float]
    angle: float               # degrees
    scale: float
    fill: tuple[int, ...]      # () for "same", (gray,) or (r, g, b)


def sample_shapes(config: ShapesConfig, rng: np.random.Generator) -> list[ShapeDraw]:
    """Draw one scene's shapes in draw order (back to front): counts, shuffle, anchors, angles, sizes, fills."""
    n_classes = len(config.classes)
    low, high = config.per_class
    counts = np.full(n_classes, low) if low == high else rng.integers(low, high + 1, size=n_classes)
    labels = rng.permutation(np.repeat(np.arange(n_classes), counts))
    n = labels.size
    side = float(config.size)
    anchors = rng.uniform(0.1, 0.9, size=(n, 2)) * side
    angles = rng.uniform(0.0, 360.0, size=n)
    scales = 1.0 + rng.uniform(-config.size_jitter, config.size_jitter, size=n) if config.size_jitter else np.ones(n)
    if config.fill == "gray":
        fills = rng.integers(0, 256, size=(n, 1))
    elif config.fill == "random":
        fills = rng.integers(0, 256, size=(n, 3))
    else:
        fills = np.zeros((n, 0), dtype=np.int64)
    is_circle = np.array([c == "circle" for c in config.classes])[labels] if n else np.zeros(0, dtype=bool)
    angles[is_circle] = 0.0
    theta = np.deg2rad(angles)
    cos, sin = np.cos(theta) * scales * side, np.sin(theta) * scales * side
    polygons: list[np.ndarray] = [np.empty(0)] * n
    for c, name in enumerate(config.classes):
        members = np.flatnonzero(labels == c)
        if not members.size:
            continue
        tpl = _template(name, side * (1 + config.size_jitter))
        x = tpl[None, :, 0] * cos[members, None] - tpl[None, :, 1] * sin[members, None] + anchors[members, 0, None]
        y = tpl[None, :, 0] * sin[members, None] + tpl[None, :, 1] * cos[members, None] + anchors[members, 1, None]
        quantised = np.round(np.stack([x, y], axis=2) * QUANTUM) / QUANTUM
        for j, member in enumerate(members):
            polygons[member] = quantised[j]
    return [ShapeDraw(config.classes[labels[i]], polygons[i], (float(anchors[i, 0]), float(anchors[i, 1])),
                      float(angles[i]), float(scales[i]), tuple(int(v) for v in fills[i])) for i in range(n)]


# -- painting ---------------------------------------------------------------------------------------------
def outline(mask: np.ndarray, width: int, at_frame: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """Mask minus its erosion by an octagon of radius ``width`` (alternating 4- and 8-neighbour steps), i.e. the
    band of pixels less than ~``width`` px from the outside.

    ``at_frame`` (left, top, right, bottom): which crop sides lie on the image frame; the shape continues
    beyond the frame, so no outline is drawn along it (those sides are padded with True, the others False).
    """
    if width <= 0 or mask.size == 0:
        return np.zeros_like(mask)
    left, top, right, bottom = at_frame
    a = np.zeros((mask.shape[0] + 2 * width, mask.shape[1] + 2 * width), dtype=bool)
    a[width:-width, width:-width] = mask
    if left:
        a[:, :width] = True
    if right:
        a[:, -width:] = True
    if top:
        a[:width] = True
    if bottom:
        a[-width:] = True
    for step in range(width):
        if step % 2 == 0:
            a = a[1:-1, 1:-1] & a[:-2, 1:-1] & a[2:, 1:-1] & a[1:-1, :-2] & a[1:-1, 2:]
        else:
            b = a[:, :-2] & a[:, 1:-1] & a[:, 2:]
            a = b[:-2] & b[1:-1] & b[2:]
    return mask & ~a


# -- one scene --------------------------------------------------------------------------------------------
@dataclass
class Painted:
    """A painted scene, shapes listed nearest first (``kept`` are draw indices; hidden shapes are left out
    unless kept on purpose): each one's flat pixel indices and visibility levels, the coverage count, the
    nearest shape per pixel and the picture."""

    kept: list[int]
    pixels: list[np.ndarray]
    levels: list[np.ndarray]
    count: np.ndarray          # (H * W,) int32
    top: np.ndarray            # (H * W,) column-major: draw index + 1 of the nearest shape, 0 = background
    image: np.ndarray          # (H, W) bool (1-bit, fill "same"), (H, W) uint8 gray or (H, W, 3) uint8


@functools.lru_cache(maxsize=8)
def _flat_index(size: int) -> np.ndarray:
    """``(size, size)`` int64 array of the row-major flat index ``y * size + x`` of every pixel (read-only)."""
    grid = np.arange(size * size, dtype=np.int64).reshape(size, size)
    grid.flags.writeable = False
    return grid


def paint(config: ShapesConfig, shapes: Sequence[ShapeDraw]) -> Painted:
    """Rasterise and paint the shapes front to back in one pass (seed 002, Sec. 3: later = nearer).

    A shape's level at a pixel is the number of nearer shapes already laid there (the layer stack rule);
    a shape with no level-0 pixel is hidden. Where a shape is nearest, the pixel shows its outline if the
    pixel lies in the shape's outline band, else its fill. All work happens in each shape's bounding box.
    """
    size, width = config.size, config.outline_px
    n = len(shapes)
    polygons = [s.polygon for s in shapes]
    boxes = crop_boxes(polygons, size, size)
    safe = crop_safe(polygons, boxes).tolist()
    count = np.zeros((size, size), dtype=np.int32)
    top = np.zeros((size, size), dtype=np.uint8 if n < 255 else np.int32)   # [x, y]: column-major when flat
    edge = np.zeros((size, size), dtype=bool)
    grid = _flat_index(size)
    out = Painted([], [], [], count.ravel(), top.ravel(), np.empty(0))
    for i in range(n - 1, -1, -1):
        box = boxes[i]
        x0, y0, x1, y1 = box
        crop = rasterise(polygons[i], box, safe[i], size, size)
        cnt = count[y0:y1, x0:x1]
        level = cnt[crop]
        if not level.size or (not config.keep_hidden and level.min() > 0):
            continue
        shown = crop & (cnt == 0)
        cnt += crop
        np.copyto(top[x0:x1, y0:y1], i + 1, where=shown.T)
        if width:
            band = outline(crop, width, (x0 == 0, y0 == 0, x1 == size, y1 == size))
            np.copyto(edge[y0:y1, x0:x1], band, where=shown)
        out.kept.append(i)
        out.pixels.append(grid[y0:y1, x0:x1][crop])
        out.levels.append(level)
    if config.fill == "same":
        out.image = ~edge
    else:
        lut = np.full((n + 1, len(shapes[0].fill) if shapes else 1), 255, dtype=np.uint8)
        for i, shape in enumerate(shapes):
            lut[i + 1] = shape.fill
        image = lut[top.T]
        image[edge] = 0
        out.image = image[:, :, 0] if image.shape[2] == 1 else image
    return out


def generate_scene(config: ShapesConfig, rng: np.random.Generator, index: int, split: str = "train") -> Scene:
    """One shapes scene (id ``index``): PNG image, exact amodal polygons, visible masks, order and layer stack.

    Region ids 1..m follow the draw order (back to front); ``depth_rank`` 1 is the nearest shape.
    """
    size = config.size
    n_pix = size * size
    shapes = sample_shapes(config, rng)
    painted = paint(config, shapes)
    m = len(painted.kept)
    rids = [m - k for k in range(m)]                 # nearest first
    lut = np.zeros(len(shapes) + 1, dtype=np.uint8 if m < 256 else np.int32)
    lut[np.asarray(painted.kept, dtype=np.int64) + 1] = rids
    labels = lut[painted.top]
    visible_counts = label_rles(labels, size, size, np.arange(1, m + 1))
    small = []
    if config.mask_size and m:
        scale = config.mask_size / size
        polys = [(shapes[i].polygon * scale).ravel().tolist() for i in reversed(painted.kept)]
        small = [r["counts"].decode("ascii") for r in cocomask.frPyObjects(polys, config.mask_size, config.mask_size)]
    regions = []
    for rid in range(1, m + 1):
        shape = shapes[painted.kept[m - rid]]
        extra: dict = {"anchor": [round(shape.anchor[0], 3), round(shape.anchor[1], 3)],
                       "angle": round(shape.angle, 3), "scale": round(shape.scale, 4)}
        if shape.fill:
            extra["fill"] = list(shape.fill)
        if small:
            extra["amodal_small"] = {"size": [config.mask_size, config.mask_size], "counts": small[rid - 1]}
        regions.append(Region(
            id=rid, amodal=Mask(size, size, polygons=[shape.polygon.ravel().tolist()]), name=shape.name,
            category_id=config.category_id(shape.name),
            visible=Mask(size, size, rle={"size": [size, size], "counts": visible_counts[rid - 1]}),
            depth_rank=m + 1 - rid, extra=extra))
    # overlapping pairs, the later (higher id) in front: pycocotools' IoU of the amodal RLEs (computed here
    # once and cached in the masks, where the shard writer reads them)
    rles = [r.amodal.to_pycocotools() for r in regions]
    iou = cocomask.iou(rles, rles, [0] * m) if m > 1 else np.zeros((m, m))
    a, b = np.nonzero(np.triu(np.asarray(iou).reshape(m, m), 1) > 0)
    edges = set(zip((b + 1).tolist(), (a + 1).tolist()))
    scene = Scene(id=index, height=size, width=size, regions=regions, order=OcclusionOrder(edges),
                  file_name=f"{split}-{index:08d}.png",
                  image_bytes=encode_png(painted.image, config.png_compression),
                  extra={"generator": "shapes"})
    depth = int(painted.count.max()) if m else 0
    ids = np.zeros(depth * n_pix, dtype=np.int32)
    if m:
        sizes = [idx.size for idx in painted.pixels]
        ids[np.concatenate(painted.levels) * np.int64(n_pix) + np.concatenate(painted.pixels)] = \
            np.repeat(rids, sizes)
    # The stack of the pixels painted above, equal to LayerStack.from_scene(scene) (see the tests): computed once.
    scene.layers = LayerStack(ids=ids.reshape(depth, size, size), count=painted.count.reshape(size, size),
                              front_to_back=tuple(rids), pixels=dict(zip(rids, painted.pixels)),
                              levels=dict(zip(rids, painted.levels)))
    return scene

