"""Training targets derived from the layer stack: sem-dist maps and their decoders, layering maps, K-layer masks.

Equations are those of the semantic layering network paper (SLN, Zhang et al. 2019): the sem-dist map
M = C - L (Eq. 1), its modal and amodal decoders (Eq. 2, 3) and the pairwise depth map R_AB (Eq. 4, 5); the
global and instance layering maps (Sec. 4.3, 4.4); and the layered masks of the layered-embedding net
(Liu et al. 2019, Sec. 3: per layer, a class map and an instance map of the k-th nearest object).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .layers import LayerStack
from .scene import Scene

#: Ground-truth confidence C used when encoding sem-dist maps from annotations. 0.75 is exact in binary
#: floating point, so ``C - L`` and its fractional part are exact, and it clears both decoding thresholds:
#: ``DECODE_THRESHOLD`` (0.5) for masks and ``DECODE_THRESHOLD ** 2`` for the overlap region of Eq. 5.
GT_CONFIDENCE = 0.75
#: Default confidence threshold c of the decoders.
DECODE_THRESHOLD = 0.5


# -- sem-dist maps (SLN Sec. 3) -------------------------------------------------------------------------
def semdist_map(stack: LayerStack, region_id: int, confidence: float = GT_CONFIDENCE) -> np.ndarray:
    """The sem-dist map M(x, y) = C(x, y) - L(x, y) of one region (SLN Eq. 1), float32 ``(H, W)``.

    C is ``confidence`` on the region's amodal mask and 0 elsewhere, L the visibility level from the stack
    (0 outside), so M lies in [0, 1) where visible, in [-L, -L + 1) where hidden behind L regions, 0 outside.
    """
    _check_confidence(confidence)
    return stack._dense(region_id, confidence - stack.levels[region_id].astype(np.float32), 0.0, np.float32)


def semdist_maps(stack: LayerStack, region_ids: list[int], confidence: float = GT_CONFIDENCE) -> np.ndarray:
    """Sem-dist maps of several regions, float32 ``(N, H, W)`` (Eq. 1)."""
    _check_confidence(confidence)
    return _dense_maps(stack, region_ids, lambda rid: _semdist_values(stack, rid, confidence), np.float32)


def _semdist_values(stack: LayerStack, region_id: int, confidence: float) -> np.ndarray:
    """C - L at the region's amodal pixels (Eq. 1), float32."""
    return np.subtract(np.float32(confidence), stack.levels[region_id], dtype=np.float32)


def modal_heatmap(semdist: np.ndarray) -> np.ndarray:
    """M_modal (SLN Eq. 2): M where M is in [0, 1), 0 elsewhere."""
    m = np.asarray(semdist)
    return np.where((m >= 0) & (m < 1), m, 0).astype(m.dtype, copy=False)


def amodal_heatmap(semdist: np.ndarray) -> np.ndarray:
    """M_amodal (SLN Eq. 3): the fractional part M - floor(M)."""
    m = np.asarray(semdist)
    return m - np.floor(m)


def modal_mask(semdist: np.ndarray, threshold: float = DECODE_THRESHOLD) -> np.ndarray:
    """The visible mask decoded from a sem-dist map: M_modal > c (Eq. 2)."""
    return modal_heatmap(semdist) > threshold


def amodal_mask(semdist: np.ndarray, threshold: float = DECODE_THRESHOLD) -> np.ndarray:
    """The amodal mask decoded from a sem-dist map: M_amodal > c (Eq. 3)."""
    return amodal_heatmap(semdist) > threshold


def visibility_level(semdist: np.ndarray, threshold: float = DECODE_THRESHOLD) -> np.ndarray:
    """The visibility level L = -floor(M) on the decoded amodal mask, -1 elsewhere (inverse of Eq. 1)."""
    m = np.asarray(semdist)
    return np.where(amodal_mask(m, threshold), -np.floor(m), -1).astype(np.int32)


def pairwise_depth_map(semdist_a: np.ndarray, semdist_b: np.ndarray,
                       threshold: float = DECODE_THRESHOLD) -> np.ndarray:
    """R_AB (SLN Eq. 4-5): floor(M_A) - floor(M_B) where frac(M_A) * frac(M_B) > c^2, 0 elsewhere.

    R_AB > 0 where A is nearer than B, < 0 where B is nearer; int32 ``(H, W)``.
    """
    a, b = np.asarray(semdist_a), np.asarray(semdist_b)
    both = amodal_heatmap(a) * amodal_heatmap(b) > threshold ** 2
    return np.where(both, np.floor(a) - np.floor(b), 0).astype(np.int32)


def depth_order_from_semdist(semdist_a: np.ndarray, semdist_b: np.ndarray,
                             threshold: float = DECODE_THRESHOLD) -> int:
    """Object-level order of A and B from R_AB: +1 if A is in front, -1 if B is, 0 if undecided.

    The sign held by more pixels of the overlap decides (the largest region decides, SLN Sec. 3 leaves the
    object-level rule open since parts may differ).
    """
    r = pairwise_depth_map(semdist_a, semdist_b, threshold)
    front, back = int(np.count_nonzero(r > 0)), int(np.count_nonzero(r < 0))
    return (front > back) - (back > front)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence C must lie in (0, 1) (SLN Eq. 1), got {confidence}")


# -- layering maps (SLN Sec. 4.3, 4.4) ------------------------------------------------------------------
def global_layering_map(stack: LayerStack, max_level: int = 4) -> np.ndarray:
    """The global layering map as class indices, uint8 ``(H, W)``: the number of regions covering each pixel
    (0 = background), counts above ``max_level`` merged into ``max_level`` (SLN Sec. 4.3).

    Channel l of the paper's multi-layer heatmap M_G is ``one_hot(map, max_level)[l]``.
    """
    _check_max_level(max_level)
    return np.minimum(stack.count, max_level).astype(np.uint8)


def instance_layering_map(stack: LayerStack, region_id: int, max_level: int = 4) -> np.ndarray:
    """One region's instance layering map as class indices, uint8 ``(H, W)`` (SLN Sec. 4.4): 0 outside the
    region, L + 1 on its amodal mask (1 = visible), with levels beyond ``max_level`` merged into the last.
    """
    _check_max_level(max_level)
    return stack._dense(region_id, _layering_values(stack, region_id, max_level), 0, np.uint8)


def instance_layering_maps(stack: LayerStack, region_ids: list[int], max_level: int = 4) -> np.ndarray:
    """Instance layering maps of several regions, uint8 ``(N, H, W)``."""
    _check_max_level(max_level)
    return _dense_maps(stack, region_ids, lambda rid: _layering_values(stack, rid, max_level), np.uint8)


def _layering_values(stack: LayerStack, region_id: int, max_level: int) -> np.ndarray:
    """L + 1, capped at ``max_level``, at the region's amodal pixels (uint8)."""
    return np.minimum(stack.levels[region_id] + 1, max_level).astype(np.uint8)


def one_hot(class_map: np.ndarray, max_level: int) -> np.ndarray:
    """``(max_level + 1, ...)`` float32 one-hot channels of a layering map (the softmax target of GLM/ILM)."""
    levels = np.arange(max_level + 1, dtype=class_map.dtype).reshape(-1, *([1] * class_map.ndim))
    return (class_map[None] == levels).astype(np.float32)


def _check_max_level(max_level: int) -> None:
    if max_level < 1:
        raise ValueError(f"max_level must be >= 1, got {max_level}")


# -- per-region maps, dense or in each region's box ---------------------------------------------------------
def _dense_maps(stack: LayerStack, region_ids: list[int], values_of: Callable[[int], np.ndarray],
                dtype: type) -> np.ndarray:
    """``(N, H, W)`` maps, 0 outside each region, ``values_of(rid)`` at its amodal pixels."""
    h, w = stack.shape
    out = np.zeros((len(region_ids), h * w), dtype=dtype)
    for row, rid in zip(out, region_ids):
        row[stack.pixels[rid]] = values_of(rid)
    return out.reshape(len(region_ids), h, w)


@dataclass(frozen=True)
class RegionCrops:
    """Per-region maps cut to each region's amodal bounding box, 0 outside the region: the region of interest
    in which SLN's instance layering module predicts an instance's maps (Sec. 4.4). The cost is the boxes'
    area instead of N full images.

    ``boxes[i] = (x0, y0, x1, y1)`` (ends exclusive; all 0 for an empty region) and ``crops[i]`` has shape
    ``(y1 - y0, x1 - x0)``; ``shape`` is the image's ``(H, W)``.
    """

    region_ids: np.ndarray
    boxes: np.ndarray
    crops: list[np.ndarray]
    shape: tuple[int, int]

    def dense(self) -> np.ndarray:
        """The full-image ``(N, H, W)`` maps."""
        dtype = self.crops[0].dtype if self.crops else np.float32
        out = np.zeros((len(self.crops), *self.shape), dtype=dtype)
        for plane, (x0, y0, x1, y1), crop in zip(out, self.boxes, self.crops):
            plane[y0:y1, x0:x1] = crop
        return out


@dataclass(frozen=True)
class RegionBoxes:
    """Each region's amodal box ``(x0, y0, x1, y1)`` (ends exclusive) and its pixels as flat indices into the
    crop of that box, in the stack's own layout (``column_major``: the crop is stored ``(x, y)``, as COCO runs
    come, and handed out transposed); computed once and shared by every per-region map of a scene."""

    region_ids: list[int]
    boxes: np.ndarray
    local: list[np.ndarray]
    shape: tuple[int, int]
    column_major: bool

    @classmethod
    def of(cls, stack: LayerStack, region_ids: list[int]) -> "RegionBoxes":
        from .stack_kernels import column_major_box

        h, w = stack.shape
        boxes = np.zeros((len(region_ids), 4), dtype=np.int64)
        local = []
        for box, rid in zip(boxes, region_ids):
            idx = stack.native_pixels(rid)
            if idx.size == 0:
                local.append(idx)
            elif stack.column_major:     # idx = x * h + y, ascending
                x0, y0, x1, y1, crop_index = column_major_box(idx, h)
                box[:] = (x0, y0, x1, y1)
                local.append(crop_index)
            else:
                ys, xs = np.divmod(idx, w)
                x0, y0 = int(xs.min()), int(ys.min())
                box[:] = (x0, y0, int(xs.max()) + 1, int(ys.max()) + 1)
                local.append((ys - y0) * (int(box[2]) - x0) + (xs - x0))
        return cls(list(region_ids), boxes, local, (h, w), stack.column_major)


def region_crops(stack: LayerStack, region_ids: list[int], values_of: Callable[[int], np.ndarray],
                 dtype: type, boxes: RegionBoxes | None = None) -> RegionCrops:
    """:class:`RegionCrops` holding ``values_of(rid)`` at each region's amodal pixels (``boxes`` reuses the
    geometry of an earlier call on the same regions)."""
    boxes = boxes if boxes is not None else RegionBoxes.of(stack, region_ids)
    crops = []
    for (x0, y0, x1, y1), local, rid in zip(boxes.boxes, boxes.local, region_ids):
        crop = np.zeros((y1 - y0) * (x1 - x0), dtype=dtype)
        crop[local] = values_of(rid)
        crops.append(crop.reshape(x1 - x0, y1 - y0).T if boxes.column_major else crop.reshape(y1 - y0, x1 - x0))
    return RegionCrops(np.asarray(region_ids, dtype=np.int64), boxes.boxes, crops, boxes.shape)


def semdist_crops(stack: LayerStack, region_ids: list[int], confidence: float = GT_CONFIDENCE,
                  boxes: RegionBoxes | None = None) -> RegionCrops:
    """Sem-dist maps (Eq. 1) cut to each region's amodal box, float32."""
    _check_confidence(confidence)
    return region_crops(stack, region_ids, lambda rid: _semdist_values(stack, rid, confidence), np.float32, boxes)


def instance_layering_crops(stack: LayerStack, region_ids: list[int], max_level: int = 4,
                            boxes: RegionBoxes | None = None) -> RegionCrops:
    """Instance layering maps (Sec. 4.4) cut to each region's amodal box, uint8."""
    _check_max_level(max_level)
    return region_crops(stack, region_ids, lambda rid: _layering_values(stack, rid, max_level), np.uint8, boxes)


# -- K-layer masks of the layered-embedding net (Liu et al. 2019, Sec. 3) ---------------------------------------
@dataclass(frozen=True)
class LayeredMasks:
    """Per layer k (0 = nearest): ``classes[k]`` the class of the (k+1)-th nearest object at each pixel and
    ``instances[k]`` its region id (0 = none). K = 2 is the paper's foreground / occlusion pair."""

    classes: np.ndarray
    instances: np.ndarray


def layered_masks(stack: LayerStack, layers: int, classes: Mapping[int, int]) -> LayeredMasks:
    """K-layer class and instance maps, each ``(K, H, W)``, read off the first K slices of the stack.

    ``classes`` maps region id -> class index (> 0); see :func:`region_classes` for the default.
    """
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    return LayeredMasks(stack.planes(layers, classes), stack.planes(layers))


def region_classes(scene: Scene, names: Mapping[str, int] | None = None) -> dict[int, int]:
    """Default class of every region: its ``category_id``; else its name looked up in ``names``; else 1."""
    out = {}
    for r in scene.regions:
        if r.category_id is not None:
            out[r.id] = int(r.category_id)
        elif names is not None and r.name is not None and r.name.strip() in names:
            out[r.id] = int(names[r.name.strip()])
        else:
            out[r.id] = 1
    return out


# -- everything at once -----------------------------------------------------------------------------------
def scene_targets(scene: Scene, *, max_level: int = 4, layers: int = 2, confidence: float = GT_CONFIDENCE,
                  crop: bool = False) -> dict[str, Any]:
    """All targets of one scene, from its (cached) layer stack. Keys (N regions, in ``scene.regions`` order):

    - ``region_ids`` int64 (N,); ``occlusion_rate`` float32 (N,)
    - ``amodal``, ``visible`` bool (N, H, W)
    - ``semdist`` float32 (N, H, W): Eq. 1 with C = ``confidence``
    - ``instance_layering`` uint8 (N, H, W); ``global_layering`` uint8 (H, W): Sec. 4.3-4.4, capped
    - ``layer_stack`` int32 (K, H, W): the full stack
    - ``layered_classes``, ``layered_instances`` int32 (``layers``, H, W): Liu et al.'s (2019) K-layer masks
    - ``order_edges`` int64 (E, 2): (front, back) region-id pairs

    With ``crop=True`` the four per-region maps are :class:`RegionCrops` (each region's amodal box, the ROI of
    SLN Sec. 4.4) instead of ``(N, H, W)`` arrays, and ``boxes`` (N, 4) is added: the cost then follows the
    regions' boxes rather than N full images.
    """
    stack = scene.layers
    rids = [r.id for r in scene.regions]
    if crop:
        boxes = RegionBoxes.of(stack, rids)
        amodal = region_crops(stack, rids, lambda rid: True, bool, boxes)
        visible = region_crops(stack, rids, lambda rid: stack.levels[rid] == 0, bool, boxes)
        semdist = semdist_crops(stack, rids, confidence, boxes)
        layering = instance_layering_crops(stack, rids, max_level, boxes)
    else:
        amodal = _dense_maps(stack, rids, lambda rid: True, bool)
        visible = _dense_maps(stack, rids, lambda rid: stack.levels[rid] == 0, bool)
        semdist = semdist_maps(stack, rids, confidence)
        layering = instance_layering_maps(stack, rids, max_level)
    lm = layered_masks(stack, layers, region_classes(scene))
    out: dict[str, Any] = {
        "region_ids": np.asarray(rids, dtype=np.int64),
        "occlusion_rate": np.asarray([stack.occlusion_rate(r) for r in rids], dtype=np.float32),
        "amodal": amodal,
        "visible": visible,
        "semdist": semdist,
        "instance_layering": layering,
        "global_layering": global_layering_map(stack, max_level),
        "layer_stack": stack.ids.astype(np.result_type(stack.ids.dtype, np.int32)),
        "layered_classes": lm.classes,
        "layered_instances": lm.instances,
        "order_edges": np.asarray(sorted(scene.order.edges), dtype=np.int64).reshape(-1, 2),
    }
    if crop:
        out["boxes"] = amodal.boxes
    return out
