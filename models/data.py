"""Training data from amodaldata Parquet shards: rows -> Scenes -> resized targets -> torch tensors.

Each row becomes a :class:`~amodaldata.scene.Scene` (:func:`amodaldata.shards.row_to_scene`); its image is decoded
with PIL and resized (bilinear) to the chosen size, and its amodal masks are resampled (nearest, at pixel centres,
:func:`amodaldata.resize.resize_scene`) to the same size *before* the layer stack is built, so every target —
sem-dist maps (SLN Eq. 1), global and instance layering maps (SLN Sec. 4.3-4.4), K-layer masks (Liu et al. 2019,
Sec. 3), amodal and visible masks, boxes — comes from one small layer stack
(:func:`amodaldata.targets.scene_targets`). Two input policies: the dense models (SLN, the layered embedding net)
take a square of ``size`` (images stretched, no letterbox, :func:`scene_sample`); the two-stage models take the
aspect-preserving scale of torchvision and detectron2 (shorter side ``min_size``, longer side at most ``max_size``;
one ``min_size`` drawn per image in multi-scale training), horizontal flips in training, and batches padded by the
model (:func:`instance_sample`). Predictions are mapped back to the original size.

Partitioning (DESIGN.md, "Scale") is :class:`amodaldata.shards.ShardSet`'s: each DDP rank reads a contiguous
slice of the rows, so its own shards, split again for its DataLoader workers. Shuffling permutes the slices,
their row groups and the rows inside each group, seeded by (seed, epoch, rank, worker).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from amodaldata.errors import AmodalDataError, AnnotationError, MissingImageError
from amodaldata.resize import resize_scene
from amodaldata.scene import Scene
from amodaldata.shards import RowSlice, ShardSet, row_to_scene
from amodaldata.targets import GT_CONFIDENCE, region_classes, scene_targets

#: Per-channel mean and standard deviation of the input normalisation (ImageNet statistics).
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


# -- one scene -> tensors ------------------------------------------------------------------------------
def decode_image(scene: Scene, height: int, width: int, images: Path | None = None, *,
                 normalize: bool = True) -> torch.Tensor:
    """The scene's RGB image resized (bilinear) to ``height x width``, float32 ``(3, H, W)``: normalised with
    :data:`IMAGE_MEAN` / :data:`IMAGE_STD`, or in [0, 1] with ``normalize=False`` (torchvision's detection
    models normalise inside)."""
    data = scene.image_bytes
    if data is None and images is not None and scene.file_name:
        path = Path(images) / scene.file_name
        if path.is_file():
            data = path.read_bytes()
    if data is None:
        raise MissingImageError("the row has no image bytes and no image file was found",
                                image_id=scene.id, annotation_id=scene.annotation_id)
    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB")
        if rgb.size != (width, height):
            rgb = rgb.resize((width, height), Image.BILINEAR)
    if not normalize:
        return torch.from_numpy(np.asarray(rgb).transpose(2, 0, 1).copy()).float().div_(255)
    scale = np.float32(1 / 255) / np.asarray(IMAGE_STD, dtype=np.float32)
    shift = np.asarray(IMAGE_MEAN, dtype=np.float32) / np.asarray(IMAGE_STD, dtype=np.float32)
    arr = np.asarray(rgb, dtype=np.float32) * scale - shift
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def scene_labels(scene: Scene, num_classes: int) -> dict[int, int]:
    """Region id -> class in ``1..num_classes``: all 1 when ``num_classes == 1`` (class-agnostic, the COCOA
    protocol), else the region's category id (:func:`amodaldata.targets.region_classes`), checked."""
    classes = region_classes(scene)
    if num_classes == 1:
        return {rid: 1 for rid in classes}
    for rid, c in classes.items():
        if not 1 <= c <= num_classes:
            raise AnnotationError(f"category id {c} is outside 1..{num_classes} (raise --num-classes)",
                                  image_id=scene.id, annotation_id=scene.annotation_id, region_id=rid)
    return classes


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight ``(x0, y0, x1, y1)`` boxes (pixel edges, exclusive ends) of non-empty bool masks ``(N, H, W)``."""
    if masks.shape[0] == 0:
        return np.zeros((0, 4), np.float32)
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    h, w = masks.shape[1:]
    y0, y1 = rows.argmax(1), h - rows[:, ::-1].argmax(1)
    x0, x1 = cols.argmax(1), w - cols[:, ::-1].argmax(1)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)


def scene_sample(scene: Scene, size: tuple[int, int], *, max_level: int = 4, layers: int = 2,
                 num_classes: int = 1, images: Path | None = None, with_targets: bool = True) -> dict[str, Any]:
    """One sample: the resized image and, unless ``with_targets`` is False, every target, from the resized
    scene's layer stack.

    Instance tensors list the regions whose resized amodal mask is not empty. Keys: ``image`` (3, H, W);
    ``image_id``; ``orig_size``; with targets also ``global_layering`` (H, W) uint8; ``layered_classes``,
    ``layered_instances`` (K, H, W) int32; ``boxes`` (N, 4); ``labels`` (N,) int64; ``region_ids`` (N,);
    ``amodal``, ``visible`` (N, H, W) bool; ``semdist`` (N, H, W) float (C = ``GT_CONFIDENCE``);
    ``instance_layering`` (N, H, W) uint8. Label maps stay narrow (less to copy to the device); the losses
    widen them.
    """
    h, w = size
    if not with_targets:
        return {"image": decode_image(scene, h, w, images), "image_id": scene.id,
                "orig_size": (scene.height, scene.width)}
    try:
        small = resize_scene(scene, h, w)
        labels = scene_labels(scene, num_classes)
        t = scene_targets(small, max_level=max_level, layers=layers, confidence=GT_CONFIDENCE)
    except AmodalDataError as err:
        raise err.located(image_id=scene.id, annotation_id=scene.annotation_id)
    keep = t["amodal"].any(axis=(1, 2))
    rids = t["region_ids"][keep]
    layered_classes = t["layered_classes"] if num_classes > 1 else (t["layered_classes"] > 0)
    return {
        "image": decode_image(scene, h, w, images),
        "global_layering": torch.from_numpy(t["global_layering"]),
        "layered_classes": torch.from_numpy(layered_classes.astype(np.int32, copy=False)),
        "layered_instances": torch.from_numpy(t["layered_instances"]),
        "boxes": torch.from_numpy(masks_to_boxes(t["amodal"][keep])),
        "labels": torch.tensor([labels[int(r)] for r in rids], dtype=torch.int64),
        "region_ids": torch.from_numpy(rids),
        "amodal": torch.from_numpy(t["amodal"][keep]),
        "visible": torch.from_numpy(t["visible"][keep]),
        "semdist": torch.from_numpy(t["semdist"][keep]),
        "instance_layering": torch.from_numpy(t["instance_layering"][keep]),
        "image_id": scene.id,
        "orig_size": (scene.height, scene.width),
    }


def scaled_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """The size of the aspect-preserving resize that brings the shorter side to ``min_size`` unless the longer
    one would pass ``max_size`` (torchvision's ``GeneralizedRCNNTransform``, detectron2's
    ``ResizeShortestEdge``)."""
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def instance_sample(scene: Scene, min_size: int | Sequence[int], max_size: int, *, num_classes: int = 1,
                    images: Path | None = None, rng: np.random.Generator | None = None, flip: bool = False,
                    with_targets: bool = True) -> dict[str, Any]:
    """One sample for the two-stage models: the image in [0, 1] at :func:`scaled_size` and, unless
    ``with_targets`` is False, the instances of the resized scene's layer stack.

    ``min_size`` may list several shorter sides: one is drawn with ``rng`` (multi-scale training, the largest
    without ``rng``). With ``flip`` and an ``rng``, the sample is mirrored left-right with probability 1/2.
    Keys: ``image`` (3, h, w); ``image_id``; ``orig_size``; with targets ``boxes`` (N, 4) tight amodal boxes,
    ``labels`` (N,), ``region_ids`` (N,), ``amodal``, ``visible`` (N, h, w) bool, for the regions whose
    resized amodal mask is not empty.
    """
    sizes = (min_size,) if isinstance(min_size, int) else tuple(min_size)
    shorter = int(sizes[rng.integers(len(sizes))]) if rng is not None and len(sizes) > 1 else max(sizes)
    h, w = scaled_size(scene.height, scene.width, shorter, max_size)
    mirror = bool(flip and rng is not None and rng.random() < 0.5)
    image = decode_image(scene, h, w, images, normalize=False)
    sample: dict[str, Any] = {"image": image.flip(-1) if mirror else image, "image_id": scene.id,
                              "orig_size": (scene.height, scene.width)}
    if not with_targets:
        return sample
    try:
        small = resize_scene(scene, h, w)
        labels = scene_labels(scene, num_classes)
        stack = small.layers
    except AmodalDataError as err:
        raise err.located(image_id=scene.id, annotation_id=scene.annotation_id)
    rids = np.array([r.id for r in small.regions], dtype=np.int64)
    amodal = np.stack([stack.amodal(int(r)) for r in rids]) if len(rids) else np.zeros((0, h, w), bool)
    visible = np.stack([stack.visible(int(r)) for r in rids]) if len(rids) else np.zeros((0, h, w), bool)
    keep = amodal.any(axis=(1, 2))
    amodal, visible, rids = amodal[keep], visible[keep], rids[keep]
    if mirror:
        amodal, visible = amodal[..., ::-1], visible[..., ::-1]
    sample.update({
        "boxes": torch.from_numpy(masks_to_boxes(amodal)),
        "labels": torch.tensor([labels[int(r)] for r in rids], dtype=torch.int64),
        "region_ids": torch.from_numpy(rids),
        "amodal": torch.from_numpy(np.ascontiguousarray(amodal)),
        "visible": torch.from_numpy(np.ascontiguousarray(visible)),
    })
    return sample


class ShardDataset(IterableDataset):
    """Samples (:func:`scene_sample`) streamed from a shard file or folder, partitioned over DDP ranks and
    DataLoader workers (module docstring). ``rank``/``world_size`` default to the initialised process group."""

    def __init__(self, path: str | Path, size: int | tuple[int, int] = 256, *, split: str | None = None,
                 max_level: int = 4, layers: int = 2, num_classes: int = 1, images: str | Path | None = None,
                 shuffle: bool = False, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None, with_targets: bool = True,
                 sampler: Callable[[Scene, np.random.Generator | None], dict[str, Any]] | None = None,
                 drop_remainder: bool = True) -> None:
        super().__init__()
        self.sampler = sampler
        self.drop_remainder = drop_remainder
        self.shards = ShardSet(path, split)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.max_level, self.layers, self.num_classes = max_level, layers, num_classes
        self.images = Path(images) if images is not None else None
        self.shuffle, self.seed, self.epoch, self._passes = shuffle, seed, 0, 0
        self.with_targets = with_targets
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = rank if rank is not None else (torch.distributed.get_rank() if dist else 0)
        self.world_size = world_size if world_size is not None else (
            torch.distributed.get_world_size() if dist else 1)
        if drop_remainder and len(self.shards) < self.world_size:
            raise ValueError(f"{len(self.shards)} scenes cannot feed {self.world_size} ranks")

    def __len__(self) -> int:
        """Samples per rank and epoch."""
        return sum(p.stop - p.start for p in self.pieces())

    def set_epoch(self, epoch: int) -> None:
        """Reseed the shuffle for the next pass (call before iterating, as with ``DistributedSampler``). A copy
        held by a persistent DataLoader worker never sees this call: it counts its own passes from the epoch
        it was copied at, so its shuffle changes every epoch too."""
        self.epoch, self._passes = epoch, 0

    def pieces(self, worker: int = 0, num_workers: int = 1) -> list[RowSlice]:
        """The row slices of this rank's ``worker``."""
        return self.shards.partition(rank=self.rank, world_size=self.world_size, worker=worker,
                                     num_workers=num_workers, drop_remainder=self.drop_remainder)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch = self.epoch + self._passes
        self._passes += 1
        rng = (np.random.default_rng([self.seed, epoch, self.rank, worker]) if self.shuffle else None)
        for shard, row in ShardSet.slice_rows(self.pieces(worker, num_workers), rng):
            try:
                scene = row_to_scene(row)
            except AmodalDataError as err:
                raise err.located(file=str(shard), image_id=json.loads(row.get("image_id") or "null"))
            try:
                if self.sampler is not None:
                    sample = self.sampler(scene, rng)
                else:
                    sample = scene_sample(scene, self.size, max_level=self.max_level, layers=self.layers,
                                          num_classes=self.num_classes, images=self.images,
                                          with_targets=self.with_targets)
            except AmodalDataError as err:
                raise err.located(file=str(shard))
            yield sample                # outside the try: closing an unfinished iteration raises nothing here


#: Keys stacked into one batch tensor; every other key stays a per-image list.
STACKED = ("image", "global_layering", "layered_classes", "layered_instances")


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch samples: ``images`` (a list when their sizes differ) and (with dense targets)
    ``global_layering``, ``layered_classes``, ``layered_instances`` stacked; ``targets`` a list of per-image
    dicts of instance tensors (empty dicts without targets); ``image_ids``, ``orig_sizes`` lists."""
    same = len({tuple(s["image"].shape) for s in samples}) == 1
    batch: dict[str, Any] = {("images" if k == "image" else k): torch.stack([s[k] for s in samples])
                             for k in STACKED if k in samples[0] and same}
    if not same:                                  # two-stage inputs of several sizes: the model pads them
        batch["images"] = [s["image"] for s in samples]
    batch["targets"] = [{k: v for k, v in s.items() if k not in STACKED and k not in ("image_id", "orig_size")}
                        for s in samples]
    batch["image_ids"] = [s["image_id"] for s in samples]
    batch["orig_sizes"] = [s["orig_size"] for s in samples]
    return batch


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch with every tensor (also inside ``targets``) moved to ``device``."""
    out = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
    if isinstance(batch["images"], list):
        out["images"] = [im.to(device, non_blocking=True) for im in batch["images"]]
    out["targets"] = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in batch["targets"]]
    return out
