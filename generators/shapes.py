"""The shapes dataset of the layered-embeddings paper (Liu et al. 2019, Sec. 3): outlined shapes stacked in depth.

Paper default (:data:`PAPER`): a 256x256 white image; ``per_class`` circles, triangles and rectangles, shuffled;
the draw order is the depth order (a later shape is nearer); each shape's anchor (the top-left corner of its unrotated
bounding box, as in the paper's public generator) is uniform in [0.1, 0.9] of the side (shapes may leave the
canvas) and its rotation about the anchor uniform in [0, 360) degrees (circles unrotated); fixed sizes
relative to the side: circle diameter 0.25, equilateral triangle side 0.3, rectangle a 0.1 x 0.8 bar;
shapes are filled white like the background with a black outline of 0.01 x side (2 px), so only outlines
tell them apart. Targets also come at ``mask_size`` (64x64, the paper's output size).

Ground truth is exact by construction. Every shape is a polygon (circles and ellipses with enough vertices
that no chord departs from the curve by more than :data:`CURVE_TOLERANCE` px, below the 0.2 px vertex grid of
pycocotools' polygon rasteriser), with vertices on a 1/256 px grid. The amodal mask *is* that polygon under
pycocotools semantics (``Mask.from_polygons``), and the picture is painted from the very same pixels: each
shape is rasterised once, by :mod:`generators.kernels` (pycocotools' ``rleFrPoly`` re-implemented exactly in
compiled code; the RLE is cached in the amodal mask), its outline is the mask minus its erosion, and the shapes
are laid front to back, so at every pixel the nearest shape shows its fill or its outline. The order is
``OcclusionOrder`` edges (later, earlier) for every pair whose masks share a pixel; ``depth_rank`` 1 is the
nearest shape. The layer stack, the visible masks and the order are built from the same per-shape pixels and
handed to the Scene, so nothing is rasterised twice. Shapes left with no visible pixel are dropped unless
``keep_hidden``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import ClassVar, Iterator, Sequence

import numpy as np

from amodaldata.layers import LayerStack, id_dtype
from amodaldata.masks import Mask
from amodaldata.rle import strings
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene

from .encode import encode_png
from .kernels import paint_shapes, polygons_counts, stack_shapes

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
#: PNG image modes: 8-bit gray, RGB, or 1-bit (black and white, fill ``same`` only; Hugging Face ``datasets``
#: and PIL decode it as a bool array, unlike every other image dataset, so it is not the default).
IMAGE_MODES = ("L", "RGB", "1")


@dataclass(frozen=True)
class ShapesConfig:
    """Options of the shapes generator; the defaults are the paper's (Liu et al. 2019, Sec. 3).

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
        image_mode: PNG mode, one of :data:`IMAGE_MODES`; None: ``L`` (8-bit gray) for the fills ``same`` and
            ``gray``, ``RGB`` for ``random``.
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
    image_mode: str | None = None

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
        if self.image_mode is not None and self.image_mode not in IMAGE_MODES:
            raise ValueError(f"image_mode must be one of {', '.join(IMAGE_MODES)}, got {self.image_mode!r}")
        if self.image_mode == "1" and self.fill != "same":
            raise ValueError(f"a 1-bit image holds black and white only; fill {self.fill!r} needs mode L or RGB")
        if self.image_mode == "L" and self.fill == "random":
            raise ValueError("fill 'random' paints colours; use image mode RGB")
        for name in self.classes:
            # pycocotools rounds vertices to a 0.2 px grid and divides 0 by 0 on an edge whose ends meet there;
            # ends at least 0.3 px apart (more than the cell diagonal, 0.28) never do
            tpl = _template(name, self.size * (1 + self.size_jitter))
            shortest = float(np.linalg.norm(tpl - np.roll(tpl, -1, axis=0), axis=1).min())
            if shortest * self.size * (1 - self.size_jitter) < 0.3:
                raise ValueError(f"{name}s would have edges under 0.3 px at size {self.size} with size jitter "
                                 f"{self.size_jitter}; use a larger image or less jitter")

    @property
    def png_mode(self) -> str:
        """The PNG mode the images are written in (:attr:`image_mode`, or the fill's default)."""
        return self.image_mode or ("RGB" if self.fill == "random" else "L")

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
    """The class's polygon ``(k, 2)`` in units of the image side, unrotated, with the top-left corner of its
    bounding box at the origin: the anchor, which is the point a shape is placed at and rotated about.

    That is where the paper's public generator anchors its shapes (a circle's bounding-box corner, the first
    corner of a triangle or a bar); with centred shapes, more of each shape stays on the canvas and scenes
    are more occluded than the paper's (the K-layer oracle of Table 2 then scores lower).
    ``max_side`` (the largest side a jittered shape may reach, in px) fixes the vertex count of curves.
    """
    centred = _centred_template(name, max_side)
    return centred - centred.min(axis=0)


def _centred_template(name: str, max_side: float) -> np.ndarray:
    """The class's polygon centred on the origin (see :func:`_template`)."""
    if name == "circle":
        t = np.linspace(0.0, 2 * np.pi, _curve_vertices(0.125 * max_side), endpoint=False)
        return 0.125 * np.stack([np.cos(t), np.sin(t)], axis=1)
    if name == "ellipse":
        t = np.linspace(0.0, 2 * np.pi, _curve_vertices(0.15 * max_side), endpoint=False)
        return np.stack([0.15 * np.cos(t), 0.075 * np.sin(t)], axis=1)
    if name == "triangle":   # equilateral, side 0.3
        t = np.deg2rad([90.0, 210.0, 330.0])
        return 0.3 / math.sqrt(3.0) * np.stack([np.cos(t), np.sin(t)], axis=1)
    if name == "rectangle":  # the paper's bar, 0.1 wide and 0.8 long
        return np.array([[-0.05, -0.4], [0.05, -0.4], [0.05, 0.4], [-0.05, 0.4]])
    if name == "square":
        return np.array([[-0.1, -0.1], [0.1, -0.1], [0.1, 0.1], [-0.1, 0.1]])
    if name == "star":       # five-pointed, outer radius 0.15, inner radius of the regular pentagram
        t = np.deg2rad(-90.0 + 36.0 * np.arange(10))
        r = np.where(np.arange(10) % 2 == 0, 0.15, 0.15 * math.sin(math.radians(18)) / math.sin(math.radians(54)))
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    raise ValueError(f"unknown shape class {name!r}")


#: The paper's setting (Liu et al. 2019, Sec. 3).
PAPER = ShapesConfig()


@dataclass(frozen=True)
class ShapeDraw:
    """One drawn shape: class, polygon (px, on the 1/QUANTUM grid), placement and fill. The placement is
    recorded as stored in the region's ``extra``: anchor in px and angle in degrees to 0.001, scale to 0.0001
    (the polygon was computed from the unrounded values)."""

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
    anchor_list, angle_list = np.round(anchors, 3).tolist(), np.round(angles, 3).tolist()
    scale_list = np.round(scales, 4).tolist()
    fill_list = fills.tolist()
    return [ShapeDraw(config.classes[c], polygons[i], tuple(anchor_list[i]), angle_list[i], scale_list[i],
                      tuple(fill_list[i])) for i, c in enumerate(labels.tolist())]


# -- painting ---------------------------------------------------------------------------------------------
@dataclass
class Painted:
    """A painted scene. Kept shapes are listed nearest first (``kept`` holds their draw indices; hidden shapes
    are left out unless kept on purpose); pixel indices are column-major, ``x * H + y`` (COCO RLE's order).

    Attributes:
        coords, starts: every shape's polygon, concatenated in draw order; shape i's vertices are
            ``coords[starts[i]:starts[i + 1]]``.
        kept: draw indices of the kept shapes, nearest first.
        amodal_counts, counts_offsets: each kept shape's amodal COCO RLE counts, concatenated; shape k's are
            ``amodal_counts[counts_offsets[k]:counts_offsets[k + 1]]``.
        pixels, levels, pixel_offsets: each kept shape's pixel indices (ascending) and its visibility level at
            each, concatenated; shape k's are ``[pixel_offsets[k]:pixel_offsets[k + 1]]``.
        count: ``(H * W,)`` how many kept shapes cover each pixel.
        top: ``(H * W,)`` draw index + 1 of the nearest shape, 0 = background.
        depth: the largest count (the layer stack's K).
        image: ``(H, W)`` bool (1-bit, fill "same"), ``(H, W)`` uint8 gray or ``(H, W, 3)`` uint8.
    """

    coords: np.ndarray
    starts: np.ndarray
    kept: np.ndarray
    amodal_counts: np.ndarray
    counts_offsets: np.ndarray
    pixels: np.ndarray
    levels: np.ndarray
    pixel_offsets: np.ndarray
    count: np.ndarray
    top: np.ndarray
    depth: int
    image: np.ndarray


def paint(config: ShapesConfig, shapes: Sequence[ShapeDraw]) -> Painted:
    """Rasterise and paint the shapes front to back in one compiled pass (Liu et al. 2019, Sec. 3: later = nearer).

    Each polygon is rasterised exactly as pycocotools does (:func:`generators.kernels.polygon_counts`). A
    shape's level at a pixel is the number of nearer shapes already laid there (the layer stack rule); a shape
    with no level-0 pixel is hidden. Where a shape is nearest, the pixel shows its outline if the pixel lies in
    the shape's outline band (the mask minus its erosion by an octagon of radius ``outline_px``, alternating
    4- and 8-neighbour steps; pixels beyond the image frame count as inside, so no outline runs along the
    frame), else its fill.
    """
    size, n = config.size, len(shapes)
    n_pix = size * size
    coords = np.concatenate([s.polygon for s in shapes]) if n else np.zeros((0, 2))
    starts = np.zeros(n + 1, dtype=np.int64)
    starts[1:] = np.cumsum([len(s.polygon) for s in shapes])
    count = np.zeros(n_pix, dtype=np.uint8 if n < 2**8 else np.uint16 if n < 2**16 else np.int32)
    top = np.zeros(n_pix, dtype=np.uint8 if n < 255 else np.int32)
    edge = np.zeros((size, size), dtype=bool)
    kept, amodal_counts, counts_offsets, pixels, levels, pixel_offsets, depth = paint_shapes(
        coords, starts, size, size, config.outline_px, config.keep_hidden, count, top, edge)
    if config.fill == "same":
        image = ~edge
    else:
        lut = np.full((n + 1, len(shapes[0].fill) if shapes else 1), 255, dtype=np.uint8)
        for i, shape in enumerate(shapes):
            lut[i + 1] = shape.fill
        image = lut[top.reshape(size, size).T]
        image[edge] = 0
        image = image[:, :, 0] if image.shape[2] == 1 else image
    return Painted(coords, starts, kept, amodal_counts, counts_offsets, pixels, levels, pixel_offsets, count, top,
                   depth, image)


def in_mode(image: np.ndarray, mode: str) -> np.ndarray:
    """The painted ``image`` (bool 1-bit, uint8 gray or RGB) as the array :func:`encode_png` writes in ``mode``."""
    if mode == "1":
        return image
    gray = image.astype(np.uint8) * 255 if image.dtype == bool else image
    if mode == "RGB" and gray.ndim == 2:
        return np.repeat(gray[:, :, None], 3, axis=2)
    return gray


def generate_scene(config: ShapesConfig, rng: np.random.Generator, index: int, split: str = "train") -> Scene:
    """One shapes scene (id ``index``): PNG image, exact amodal polygons, visible masks, order and layer stack.

    Region ids 1..m follow the draw order (back to front); ``depth_rank`` 1 is the nearest shape.
    """
    size = config.size
    n_pix = size * size
    shapes = sample_shapes(config, rng)
    painted = paint(config, shapes)
    kept = painted.kept.tolist()
    m = len(kept)
    rids = list(range(m, 0, -1))                     # nearest first
    ids = np.zeros(painted.depth * n_pix, dtype=id_dtype(m))
    pairs = np.zeros((m + 1, m + 1), dtype=bool)
    visible_counts, visible_offsets = stack_shapes(painted.pixels, painted.levels, painted.pixel_offsets, n_pix,
                                                   ids, pairs)
    # every RLE text at once, nearest first: amodal masks, visible masks, then the small amodal masks
    groups = [(painted.amodal_counts, painted.counts_offsets), (visible_counts, visible_offsets)]
    if config.mask_size and m:
        groups.append(polygons_counts(painted.coords, painted.starts, painted.kept, config.mask_size / size,
                                      config.mask_size, config.mask_size))
    firsts = np.cumsum([0] + [c.size for c, _ in groups])
    ends = [o[1:] + first for (_, o), first in zip(groups, firsts)]
    texts = strings(np.concatenate([c for c, _ in groups]), np.concatenate([[0], *ends]))
    regions = []
    for rid in range(1, m + 1):
        k = m - rid                                  # position in the nearest-first lists
        shape = shapes[kept[k]]
        extra: dict = {"anchor": list(shape.anchor), "angle": shape.angle, "scale": shape.scale}
        if shape.fill:
            extra["fill"] = list(shape.fill)
        if len(groups) == 3:
            extra["amodal_small"] = {"size": [config.mask_size, config.mask_size], "counts": texts[2 * m + k]}
        regions.append(Region(
            id=rid, name=shape.name, category_id=config.category_id(shape.name),
            amodal=Mask(size, size, polygons=[shape.polygon.ravel().tolist()],
                        rle={"size": [size, size], "counts": texts[k]}),
            visible=Mask(size, size, rle={"size": [size, size], "counts": texts[m + k]}),
            depth_rank=m + 1 - rid, extra=extra))
    # overlapping pairs, the later (higher id) in front
    front, back = np.nonzero(pairs)
    scene = Scene(id=index, height=size, width=size, regions=regions,
                  order=OcclusionOrder(set(zip(front.tolist(), back.tolist()))),
                  file_name=f"{split}-{index:08d}.png",
                  image_bytes=encode_png(in_mode(painted.image, config.png_mode), config.png_compression),
                  extra={"generator": "shapes"})
    # The stack of the pixels painted above, equal to LayerStack.from_scene(scene) (see the tests): computed once,
    # column-major as from_scene builds it.
    scene.set_layers(LayerStack.from_laid(rids, painted.pixels, painted.levels, painted.pixel_offsets, painted.count,
                                          size, size, ids=ids))
    return scene
