"""A picture of one scene a person can read: the image with every region's amodal outline, its visible part
filled and its hidden part hatched, and below it a strip of the targets derived from the layer stack.

The strip shows the global layering map (SLN Sec. 4.3), every slice of the layer stack (slice 1 = the visible
masks) and the sem-dist maps M = C - L (SLN Eq. 1) of the most occluded regions.

:func:`render_predictions` draws a model's predictions over the ground truth of one image, as matched at IoU
.5 by the evaluation (COCO's greedy matching, :mod:`amodaldata.evaluation.segmentation`), in three styles:

- matched prediction (:data:`MATCHED`, blue): its predicted visible part filled, its predicted occluded part
  (amodal minus visible) hatched, its outline drawn; the ground-truth region's amodal outline in white;
- missed ground-truth region (:data:`MISSED`, orange): hatched over its amodal mask, outlined;
- false positive (:data:`FALSE_POSITIVE`, magenta): filled (visible part) and hatched (occluded part), outlined.

A prediction without a visible mask is filled whole. Pure PIL + numpy.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .atomic import atomic_path
from .errors import AmodalDataError, AnnotationError, FormatError
from .images import decode_rgb
from .layers import LayerStack
from .scene import Scene
from .targets import GT_CONFIDENCE, global_layering_map, semdist_map

BACKGROUND_GREY = (128, 128, 128)
#: Colours of the prediction picture (:func:`render_predictions`), told apart with any colour vision.
MATCHED = (40, 140, 255)
MISSED = (255, 150, 0)
FALSE_POSITIVE = (230, 30, 200)
GT_OUTLINE = (255, 255, 255)
STRIP_BACKGROUND = (245, 245, 245)
PANEL_EMPTY = (30, 30, 30)
TEXT_DARK = (20, 20, 20)
TEXT_LIGHT = (255, 255, 255)
#: Colours of the global layering map classes 0 (background), 1, 2, 3, 4, 5+ (light to dark, then warm).
LEVEL_COLOURS = np.array([(30, 30, 30), (253, 231, 37), (94, 201, 98), (33, 145, 140), (59, 82, 139),
                          (68, 1, 84), (180, 30, 60), (240, 120, 40)], dtype=np.uint8)
#: Sem-dist colour map anchors (value, RGB): yellow-orange for the visible part (M in [0, 1)), blues darkening
#: with the visibility level for the hidden part (M < 0), near-black for M = 0 outside the region.
SEMDIST_ANCHORS = (
    (-4.0, (20, 10, 60)), (-3.0, (45, 30, 130)), (-2.0, (40, 80, 200)), (-1.0, (60, 150, 240)),
    (-1e-6, (160, 215, 255)), (0.0, PANEL_EMPTY), (1e-6, (150, 60, 0)), (1.0, (255, 230, 40)),
)


@dataclass(frozen=True)
class RenderStyle:
    """Sizes and strengths of the drawing; the defaults suit COCO-sized images (about 640 x 480)."""

    fill_alpha: float = 0.40       # opacity of the visible-part fill
    image_dim: float = 0.15        # how much the photo is blended towards grey so colours stand out
    outline: int = 2               # amodal outline thickness, pixels
    hatch_period: int = 8          # distance between hatch lines, pixels (along x)
    hatch_width: int = 2           # hatch line thickness, pixels (along x)
    font_size: int = 13
    panel_columns: int = 3
    semdist_panels: int = 3        # sem-dist maps shown: of the most occluded regions


def region_colours(n: int) -> np.ndarray:
    """``n`` distinct, saturated RGB colours (uint8 ``(n, 3)``): hues spread by the golden ratio, with
    alternating brightness so neighbours in the list differ in two ways."""
    hues = (np.arange(n) * 0.618033988749895 + 0.08) % 1.0
    values = np.where(np.arange(n) % 2 == 0, 1.0, 0.78)
    sats = np.where(np.arange(n) % 3 == 2, 0.6, 0.9)
    rgb = [colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hues, sats, values)]
    return (np.asarray(rgb, dtype=float).reshape(n, 3) * 255).round().astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _text_colour(rgb: Sequence[int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``rgb`` (ITU-R BT.601 luma)."""
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return TEXT_DARK if luma > 140 else TEXT_LIGHT


def base_image(scene: Scene, image: Image.Image | None) -> np.ndarray:
    """The photo as float RGB ``(H, W, 3)``: ``image``, else ``scene.image_bytes``, else a neutral grey canvas."""
    if image is None and scene.image_bytes is not None:
        image = decode_rgb(scene.image_bytes, scene.height, scene.width, file=scene.file_name, image_id=scene.id,
                           annotation_id=scene.annotation_id)
    if image is None:
        return np.broadcast_to(np.asarray(BACKGROUND_GREY, float), (scene.height, scene.width, 3)).copy()
    if image.size != (scene.width, scene.height):
        raise AnnotationError(f"the image is {image.size[0]}x{image.size[1]} (w x h) but the annotation says "
                              f"{scene.width}x{scene.height}", image_id=scene.id, annotation_id=scene.annotation_id)
    return np.asarray(image.convert("RGB"), dtype=float)


def _outline(mask: np.ndarray, thickness: int) -> np.ndarray:
    """Pixels of ``mask`` within ``thickness`` pixels of its border (mask minus its erosion by a square)."""
    eroded = mask.copy()
    for _ in range(thickness):
        padded = np.pad(eroded, 1, constant_values=False)
        eroded = (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
                  & padded[1:-1, :-2] & padded[1:-1, 2:])
    return mask & ~eroded


def _label_anchor(stack: LayerStack, rid: int, width: int) -> tuple[int, int] | None:
    """A pixel ``(x, y)`` well inside the region's visible part (its amodal mask when fully hidden): the one
    nearest the median of its coordinates."""
    idx = stack.pixels[rid]
    if idx.size == 0:
        return None
    vis = idx[stack.levels[rid] == 0]
    idx = vis if vis.size else idx
    ys, xs = np.divmod(idx, width)
    mx, my = np.median(xs), np.median(ys)
    best = int(np.argmin((xs - mx) ** 2 + (ys - my) ** 2))
    return int(xs[best]), int(ys[best])


def _diagonal(h: int, w: int, style: RenderStyle) -> np.ndarray:
    """Flat ``(H * W,)`` position of every pixel along the hatch period, ``(x + y) % period``."""
    ys, xs = np.divmod(np.arange(h * w), w)
    return (xs + ys) % style.hatch_period


def draw_regions(scene: Scene, photo: np.ndarray, colours: dict[int, np.ndarray], style: RenderStyle = RenderStyle()
                 ) -> np.ndarray:
    """The picture without labels, uint8 ``(H, W, 3)``: ``photo`` (float RGB ``(H, W, 3)``) dimmed towards grey,
    each region's visible part filled with its colour, its hidden part hatched in its colour (diagonal stripes
    clipped to the hidden pixels, a different phase per region) and its amodal outline drawn over all."""
    stack = scene.layers
    h, w = stack.shape
    out = photo * (1 - style.image_dim) + np.asarray(BACKGROUND_GREY, float) * style.image_dim
    flat = out.reshape(-1, 3)
    # Diagonal stripes; each region gets a different phase so overlapping hidden parts stay distinguishable.
    diagonal = _diagonal(h, w, style)
    for i, rid in enumerate(stack.front_to_back):
        idx, lv = stack.pixels[rid], stack.levels[rid]
        visible = idx[lv == 0]
        flat[visible] = flat[visible] * (1 - style.fill_alpha) + colours[rid] * style.fill_alpha
        hidden = idx[lv > 0]
        phase = (i * style.hatch_width) % style.hatch_period
        stripes = (diagonal[hidden] - phase) % style.hatch_period < style.hatch_width
        flat[hidden[stripes]] = colours[rid]
    # Outlines last, back to front so the nearest region's outline is on top; a dark rim keeps them legible.
    for rid in reversed(stack.front_to_back):
        amodal = stack.amodal(rid)
        line = _outline(amodal, style.outline)
        rim = _outline(amodal, style.outline + 1) & ~line
        out[rim] = out[rim] * 0.35
        out[line] = colours[rid]
    return out.clip(0, 255).astype(np.uint8)


def _draw_labels(canvas: Image.Image, scene: Scene, colours: dict[int, np.ndarray],
                 font: Any, offset: tuple[int, int]) -> None:
    """A small box "id name" per region at a point inside it, nudged down so boxes do not overlap."""
    draw = ImageDraw.Draw(canvas)
    stack = scene.layers
    placed: list[tuple[int, int, int, int]] = []
    for region in scene.regions:
        anchor = _label_anchor(stack, region.id, scene.width)
        if anchor is None:
            continue
        text = f"{region.id} {region.label}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        bw, bh = right - left + 6, bottom - top + 4
        x = int(np.clip(anchor[0] - bw // 2, 0, max(scene.width - bw, 0))) + offset[0]
        y = int(np.clip(anchor[1] - bh // 2, 0, max(scene.height - bh, 0))) + offset[1]
        for _ in range(len(placed) + 1):
            clash = [p for p in placed if x < p[2] and p[0] < x + bw and y < p[3] and p[1] < y + bh]
            if not clash:
                break
            y = max(p[3] for p in clash) + 1
        box = (x, y, x + bw, y + bh)
        placed.append(box)
        colour = tuple(int(c) for c in colours[region.id])
        draw.rectangle(box, fill=colour, outline=(0, 0, 0))
        draw.text((x + 3 - left, y + 2 - top), text, fill=_text_colour(colour), font=font)


def _colour_ids(id_map: np.ndarray, colours: dict[int, np.ndarray]) -> np.ndarray:
    """An id map coloured with the region colours (0 = empty), uint8 ``(H, W, 3)``."""
    ids = np.array(sorted(colours), dtype=np.int64)
    table = np.vstack([np.asarray([PANEL_EMPTY], np.uint8), *(colours[i][None] for i in ids)])
    pos = np.searchsorted(ids, id_map)
    found = pos < len(ids)
    found[found] &= ids[pos[found]] == id_map[found]
    return table[np.where(found, pos + 1, 0)]


def _colour_levels(class_map: np.ndarray) -> np.ndarray:
    """A layering map (class indices) coloured with :data:`LEVEL_COLOURS`, uint8 ``(H, W, 3)``."""
    return LEVEL_COLOURS[np.minimum(class_map, len(LEVEL_COLOURS) - 1)]


def _colour_semdist(m: np.ndarray) -> np.ndarray:
    """A sem-dist map coloured by :data:`SEMDIST_ANCHORS` (piecewise linear), uint8 ``(H, W, 3)``."""
    xs = np.array([a for a, _ in SEMDIST_ANCHORS])
    rgb = np.array([c for _, c in SEMDIST_ANCHORS], dtype=float)
    return np.stack([np.interp(m, xs, rgb[:, c]) for c in range(3)], axis=-1).round().astype(np.uint8)


@dataclass
class Panel:
    """One captioned picture of the strip: ``rgb`` at scene resolution, shown cropped to ``box``
    ``(x0, y0, x1, y1)`` when given (a zoom on one region), with an optional colour key."""

    caption: str
    rgb: np.ndarray
    key: list[tuple[tuple[int, int, int], str]]
    box: tuple[int, int, int, int] | None = None


def _zoom_box(stack: LayerStack, rid: int, aspect: float, margin: float = 0.15) -> tuple[int, int, int, int]:
    """The region's bounding box grown by ``margin`` and to the width/height ratio ``aspect``, inside the image."""
    h, w = stack.shape
    ys, xs = np.divmod(stack.pixels[rid], w)
    if ys.size == 0:
        return (0, 0, w, h)
    bw, bh = (xs.max() - xs.min() + 1) * (1 + 2 * margin), (ys.max() - ys.min() + 1) * (1 + 2 * margin)
    bw, bh = max(bw, bh * aspect, 16.0), max(bh, bw / aspect, 16.0 / aspect)
    bw, bh = min(bw, w), min(bh, h)
    cx, cy = (xs.max() + xs.min() + 1) / 2, (ys.max() + ys.min() + 1) / 2
    x0 = int(np.clip(round(cx - bw / 2), 0, w - round(bw)))
    y0 = int(np.clip(round(cy - bh / 2), 0, h - round(bh)))
    return (x0, y0, x0 + int(round(bw)), y0 + int(round(bh)))


def strip_panels(scene: Scene, colours: dict[int, np.ndarray], *, max_level: int = 4,
                 semdist_regions: Iterable[int] | None = None, semdist_count: int = 3,
                 confidence: float = GT_CONFIDENCE) -> list[Panel]:
    """The panels under the image: global layering map, each layer-stack slice, sem-dist maps (zoomed on their
    region). ``semdist_regions`` defaults to the ``semdist_count`` most occluded regions (by occlusion rate)."""
    stack = scene.layers
    glm = global_layering_map(stack, max_level)
    level_key = [(tuple(int(c) for c in LEVEL_COLOURS[min(lv, len(LEVEL_COLOURS) - 1)]),
                  f"{lv}+" if lv == max_level else str(lv)) for lv in range(max_level + 1)]
    panels = [Panel(f"global layering map: regions covering each pixel (capped at {max_level})",
                    _colour_levels(glm), level_key)]
    for k in range(stack.depth):
        what = "visible masks" if k == 0 else f"{_ordinal(k + 1)} nearest region"
        panels.append(Panel(f"layer stack slice {k + 1}: {what}", _colour_ids(stack.ids[k], colours), []))
    if semdist_regions is None:
        rates = sorted(((stack.occlusion_rate(r.id), -i, r.id) for i, r in enumerate(scene.regions)), reverse=True)
        semdist_regions = [rid for _, _, rid in rates[:semdist_count]]
    key = [(tuple(int(v) for v in _colour_semdist(np.array(confidence - lv))), "visible" if lv == 0 else f"L={lv}")
           for lv in range(max(stack.depth, 2))]
    for rid in semdist_regions:
        region = scene.region(rid)
        rate = stack.occlusion_rate(rid)
        panels.append(Panel(f"sem-dist M = C - L of {rid} {region.label} ({rate:.0%} hidden; zoom)",
                            _colour_semdist(semdist_map(stack, rid, confidence)), key,
                            _zoom_box(stack, rid, scene.width / scene.height)))
    return panels


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> list[str]:
    """Greedy word wrap of ``text`` to lines no wider than ``width`` pixels."""
    lines: list[str] = []
    for word in text.split():
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(trial, font=font) <= width:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines


def _key_layout(draw: ImageDraw.ImageDraw, key: list[tuple[tuple[int, int, int], str]], font: Any, width: int,
                swatch: int) -> list[tuple[int, int, tuple[int, int, int], str]]:
    """Positions ``(dx, row, colour, label)`` of the key items, wrapped to ``width`` pixels."""
    out, dx, row = [], 0, 0
    for colour, label in key:
        item = swatch + 4 + int(draw.textlength(label, font=font)) + 10
        if dx and dx + item > width:
            dx, row = 0, row + 1
        out.append((dx, row, colour, label))
        dx += item
    return out


def _draw_strip(panels: list[Panel], width: int, font: Any, style: RenderStyle, scene_shape: tuple[int, int]
                ) -> Image.Image:
    """Panels laid out ``style.panel_columns`` to a row, each with its caption above and colour key below."""
    cols = style.panel_columns
    gap = 10
    pw = (width - gap * (cols + 1)) // cols
    ph = max(1, round(pw * scene_shape[0] / scene_shape[1]))
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = style.font_size + 4
    swatch = style.font_size - 2
    captions = [_wrap(scratch, p.caption, font, pw) for p in panels]
    keys = [_key_layout(scratch, p.key, font, pw, swatch) for p in panels]
    cap_h = max((len(c) for c in captions), default=1) * line_h
    key_h = max((1 + max(r for _, r, _, _ in k) for k in keys if k), default=0) * line_h
    cell_h = cap_h + ph + key_h + 2 * gap
    rows = -(-len(panels) // cols)
    strip = Image.new("RGB", (width, gap + rows * cell_h), STRIP_BACKGROUND)
    draw = ImageDraw.Draw(strip)
    for n, (panel, lines, key) in enumerate(zip(panels, captions, keys)):
        x = gap + (n % cols) * (pw + gap)
        y = gap + (n // cols) * cell_h
        for j, line in enumerate(lines):
            draw.text((x, y + j * line_h), line, fill=TEXT_DARK, font=font)
        picture = Image.fromarray(panel.rgb)
        if panel.box is not None:
            picture = picture.crop(panel.box)
        strip.paste(picture.resize((pw, ph), Image.Resampling.NEAREST), (x, y + cap_h))
        draw.rectangle((x - 1, y + cap_h - 1, x + pw, y + cap_h + ph), outline=(90, 90, 90))
        ky = y + cap_h + ph + 4
        for dx, row, colour, label in key:
            top = ky + row * line_h
            draw.rectangle((x + dx, top + 2, x + dx + swatch, top + 2 + swatch), fill=colour, outline=(90, 90, 90))
            draw.text((x + dx + swatch + 4, top), label, fill=TEXT_DARK, font=font)
    return strip


def render_scene(scene: Scene, image: Image.Image | None = None, *, max_level: int = 4,
                 semdist_regions: Iterable[int] | None = None, style: RenderStyle = RenderStyle()
                 ) -> Image.Image:
    """Draw ``scene``: a title line, the image (``image``, else ``scene.image_bytes``, else a grey canvas) with
    each region's amodal outline in its own colour, visible part filled, hidden part hatched and an
    "id name" label; below, captioned panels of the global layering map, the layer-stack slices and the
    sem-dist maps of ``semdist_regions`` (default: the most occluded regions)."""
    stack = scene.layers
    palette = region_colours(len(scene.regions))
    colours = {r.id: palette[i] for i, r in enumerate(scene.regions)}
    font = _font(style.font_size)
    photo = base_image(scene, image)
    picture = draw_regions(scene, photo, colours, style)

    width = max(scene.width, 640)
    title = (f"image {scene.id}" + (f", annotation {scene.annotation_id}" if scene.annotation_id is not None else "")
             + (f" by {scene.annotator}" if scene.annotator else "")
             + f": {len(scene.regions)} regions, {len(scene.order.edges)} order edges, stack depth {stack.depth}"
             + ("" if (image is not None or scene.image_bytes is not None) else " (no image: grey canvas)"))
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_lines = _wrap(scratch, title, font, width - 16)
    legend = "filled = visible part, hatched = hidden part, outline = amodal shape"
    head_lines = title_lines + [legend]
    line_h = style.font_size + 5
    head_h = 8 + line_h * len(head_lines)
    panels = strip_panels(scene, colours, max_level=max_level, semdist_regions=semdist_regions,
                          semdist_count=style.semdist_panels)
    strip = _draw_strip(panels, width, font, style, (scene.height, scene.width))

    canvas = Image.new("RGB", (width, head_h + scene.height + strip.height), STRIP_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for j, line in enumerate(head_lines):
        draw.text((8, 4 + j * line_h), line, fill=TEXT_DARK if j < len(title_lines) else (90, 90, 90), font=font)
    x0 = (width - scene.width) // 2
    canvas.paste(Image.fromarray(picture), (x0, head_h))
    _draw_labels(canvas, scene, colours, font, (x0, head_h))
    canvas.paste(strip, (0, head_h + scene.height))
    return canvas


@dataclass
class PredictionOverlay:
    """What one prediction picture shows: the image's matched, missed and false-positive counts and recall."""

    picture: Image.Image
    matched: int
    missed: int
    false_positives: int
    #: Each image pixel is drawn as ``zoom x zoom`` pixels of the picture, from ``origin`` (x, y) on.
    zoom: int = 1
    origin: tuple[int, int] = (0, 0)

    @property
    def recall(self) -> float:
        """Matched / (matched + missed) regions (1.0 for an image without a region to find)."""
        found = self.matched + self.missed
        return self.matched / found if found else 1.0


def draw_predictions(scene: Scene, photo: np.ndarray, matched: Sequence[tuple[Any, int]], missed: Sequence[int],
                     false_positives: Sequence[Any], style: RenderStyle = RenderStyle()) -> np.ndarray:
    """The prediction picture without text, uint8 ``(H, W, 3)``: ``photo`` dimmed, then ``matched`` ((prediction,
    region id) pairs), ``missed`` region ids and ``false_positives`` drawn in the styles of the module docstring.
    A prediction is anything with ``mask`` and ``visible`` :class:`~amodaldata.masks.Mask` attributes."""
    h, w = scene.height, scene.width
    out = photo * (1 - style.image_dim) + np.asarray(BACKGROUND_GREY, float) * style.image_dim
    flat = out.reshape(-1, 3)
    diagonal = _diagonal(h, w, style)
    outlines: list[tuple[np.ndarray, tuple[int, int, int]]] = []

    def paint(amodal: np.ndarray, visible: np.ndarray | None, colour: tuple[int, int, int]) -> None:
        shown = amodal if visible is None else amodal & visible
        idx = np.flatnonzero(shown)
        flat[idx] = flat[idx] * (1 - style.fill_alpha) + np.asarray(colour, float) * style.fill_alpha
        hidden = np.flatnonzero(amodal & ~shown)
        flat[hidden[diagonal[hidden] < style.hatch_width]] = colour
        outlines.append((amodal, colour))

    def bitmaps(prediction: Any) -> tuple[np.ndarray, np.ndarray | None]:
        visible = prediction.visible.to_bitmap() if prediction.visible is not None else None
        return prediction.mask.to_bitmap(), visible

    for prediction, _ in matched:
        paint(*bitmaps(prediction), MATCHED)
    for prediction in false_positives:
        paint(*bitmaps(prediction), FALSE_POSITIVE)
    for rid in missed:
        amodal = scene.region(rid).amodal.to_bitmap()
        paint(amodal, np.zeros_like(amodal), MISSED)
    outlines += [(scene.region(rid).amodal.to_bitmap(), GT_OUTLINE) for _, rid in matched]
    for mask, colour in outlines:
        line = _outline(mask, 1 if colour == GT_OUTLINE else style.outline)
        out[line] = colour
    return out.clip(0, 255).astype(np.uint8)


#: Small images are enlarged (by a whole factor, nearest neighbour) until their longer side reaches this.
MIN_PICTURE_SIDE = 400


def render_predictions(scene: Scene, predictions: Sequence[Any], *, class_aware: bool = False,
                       image: Image.Image | None = None, style: RenderStyle = RenderStyle(),
                       zoom: int | None = None) -> PredictionOverlay:
    """Match ``predictions`` (of this image; :class:`~amodaldata.evaluation.Prediction`) to the scene's regions
    as the evaluation does at IoU .5 (one matching nothing, of a class the image lacks included, is a false
    positive), and draw them over the image with a title and the key of the styles.
    ``zoom``: pixels per image pixel (default: enough for a longer side of :data:`MIN_PICTURE_SIDE`)."""
    from .evaluation import evaluate_segmentation

    result = evaluate_segmentation([scene], list(predictions), class_aware=class_aware, min_occlusion=None)
    by_index = {p.index: p for p in predictions}
    matched = [(by_index[m.prediction], m.region_id) for m in result.matches
               if m.prediction is not None and m.at50 in ("tp", "ignored")]
    rows = {m.prediction for m in result.matches}
    # a false positive: unmatched, or (class-aware) of a category this image has no region of
    false_pos = [by_index[m.prediction] for m in result.matches if m.prediction is not None and m.at50 == "fp"] + \
        [p for p in predictions if p.index not in rows]
    missed = [m.region_id for m in result.matches if m.prediction is None]
    picture = draw_predictions(scene, base_image(scene, image), matched, missed, false_pos, style)
    zoom = zoom or max(1, -(-MIN_PICTURE_SIDE // max(scene.height, scene.width, 1)))
    shown = Image.fromarray(picture).resize((scene.width * zoom, scene.height * zoom), Image.Resampling.NEAREST)
    counts = (sum(m.at50 == "tp" for m in result.matches), len(missed), len(false_pos))
    recall = counts[0] / (counts[0] + counts[1]) if counts[0] + counts[1] else 1.0
    font = _font(style.font_size)
    width = max(shown.width + 16, 640)
    title = (f"image {scene.id}: {len(scene.regions)} regions, {len(predictions)} predictions; matched at IoU .5: "
             f"{counts[0]}, missed {counts[1]}, false positives {counts[2]}; recall {recall:.2f}")
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = _wrap(scratch, title, font, width - 16)
    key = [(MATCHED, "matched: visible part filled, occluded part hatched"), (GT_OUTLINE, "its ground truth"),
           (MISSED, "missed region"), (FALSE_POSITIVE, "false positive")]
    swatch = style.font_size - 2
    layout = _key_layout(scratch, key, font, width - 16, swatch)
    line_h = style.font_size + 5
    key_rows = 1 + max(r for _, r, _, _ in layout)
    head_h = 8 + line_h * (len(lines) + key_rows)
    canvas = Image.new("RGB", (width, head_h + shown.height + 8), STRIP_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for j, line in enumerate(lines):
        draw.text((8, 4 + j * line_h), line, fill=TEXT_DARK, font=font)
    top = 4 + len(lines) * line_h
    for dx, row, colour, label in layout:
        y = top + row * line_h
        draw.rectangle((8 + dx, y + 2, 8 + dx + swatch, y + 2 + swatch), fill=colour, outline=(90, 90, 90))
        draw.text((8 + dx + swatch + 4, y), label, fill=TEXT_DARK, font=font)
    origin = ((width - shown.width) // 2, head_h)
    canvas.paste(shown, origin)
    return PredictionOverlay(canvas, *counts, zoom=zoom, origin=origin)


def select_scene(scenes: Iterable[Scene], image_id: Any, annotator: str | None = None) -> Scene:
    """The scene of ``image_id`` (compared as text). With several annotations of the image (BSDS), the first,
    or the one whose author is ``annotator``, or the ``annotator``-th (0-based) when it is a number.

    Raises :class:`AmodalDataError` listing some available image ids (or annotators) when nothing matches.
    """
    wanted = str(image_id)
    matches: list[Scene] = []
    others: list[str] = []
    for scene in scenes:
        if str(scene.id) == wanted:
            matches.append(scene)
        elif len(others) < 10 and str(scene.id) not in others:
            others.append(str(scene.id))
    if not matches:
        hint = f"; available: {', '.join(others)}{', ...' if len(others) == 10 else ''}" if others else \
            "; the input has no scene"
        raise AmodalDataError(f"no scene with image id {wanted}{hint}")
    if annotator is None:
        return matches[0]
    for scene in matches:
        if scene.annotator == annotator:
            return scene
    if annotator.isdigit() and int(annotator) < len(matches):
        return matches[int(annotator)]
    authors = ", ".join(f"{i} ({s.annotator})" for i, s in enumerate(matches))
    raise AmodalDataError(f"no annotator {annotator!r} for this image; it has {authors}", image_id=wanted)


def save_image(picture: Image.Image, out: str | Path) -> Path:
    """Write ``picture`` to ``out`` atomically (temporary file, then rename); the format follows the suffix."""
    out = Path(out)
    fmt = Image.registered_extensions().get(out.suffix.lower())
    if fmt is None:
        raise FormatError(f"cannot tell an image format from the suffix {out.suffix!r} (use .png or .jpg)",
                          file=str(out))
    with atomic_path(out) as tmp:
        picture.save(tmp, format=fmt)          # created with the usual permissions (umask), unlike mkstemp
    return out
