"""Training data from amodaldata Parquet shards: rows -> Scenes -> resized targets -> torch tensors.

Each row becomes a :class:`~amodaldata.scene.Scene` (:func:`amodaldata.shards.row_to_scene`); its image is
decoded with PIL and resized (bilinear) to the chosen size, and its amodal masks are resampled (nearest, at
pixel centres) to the same size *before* the layer stack is built, so every target — sem-dist maps (SLN Eq. 1),
global and instance layering maps (SLN Sec. 4.3-4.4), K-layer masks (seed 002, Sec. 3), amodal and visible
masks, boxes — comes from one small layer stack (:func:`amodaldata.targets.scene_targets`). Images are
stretched to the target size (no letterbox); predictions are mapped back to the original size.

Partitioning (DESIGN.md, "Scale"): the shards' rows, in shard order, form one sequence; DDP rank ``r`` of
``R`` reads the contiguous slice ``[r * n, (r + 1) * n)`` with ``n = total // R`` (the last ``total % R`` rows
are dropped so every rank takes the same number of steps, as ``DistributedSampler(drop_last=True)``), so each
rank reads its own shards; a rank's slice is split again into contiguous pieces for its DataLoader workers.
Only the row groups that overlap a piece are read. Shuffling permutes row groups and the rows inside each
group, seeded by (seed, epoch, rank, worker).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from amodaldata.errors import AmodalDataError, AnnotationError, GeometryError, MissingImageError
from amodaldata.masks import Mask
from amodaldata.scene import Region, Scene
from amodaldata.shards import row_to_scene, shard_paths
from amodaldata.targets import GT_CONFIDENCE, region_classes, scene_targets

#: Per-channel mean and standard deviation of the input normalisation (ImageNet statistics).
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class RowSlice:
    """Rows ``[start, stop)`` of one shard file."""

    path: Path
    start: int
    stop: int


def shard_row_counts(paths: Sequence[Path]) -> list[int]:
    """Row count of every shard, read from the Parquet footers only."""
    return [pq.ParquetFile(p).metadata.num_rows for p in paths]


def _split(start: int, stop: int, parts: int, index: int) -> tuple[int, int]:
    """The ``index``-th of ``parts`` contiguous, near-equal pieces of ``[start, stop)``."""
    bounds = np.linspace(start, stop, parts + 1).round().astype(int)
    return int(bounds[index]), int(bounds[index + 1])


def partition_rows(paths: Sequence[Path], counts: Sequence[int], *, rank: int = 0, world_size: int = 1,
                   worker: int = 0, num_workers: int = 1) -> list[RowSlice]:
    """The row slices read by one (rank, worker); see the module docstring for the rule.

    Every rank gets ``sum(counts) // world_size`` rows; ``world_size == 1`` keeps every row.
    """
    if not 0 <= rank < world_size or not 0 <= worker < num_workers:
        raise ValueError(f"bad partition index: rank {rank}/{world_size}, worker {worker}/{num_workers}")
    per_rank = sum(counts) // world_size
    lo, hi = _split(rank * per_rank, (rank + 1) * per_rank, num_workers, worker)
    out = []
    offset = 0
    for path, n in zip(paths, counts):
        a, b = max(lo, offset), min(hi, offset + n)
        if a < b:
            out.append(RowSlice(Path(path), a - offset, b - offset))
        offset += n
    return out


def iter_rows(piece: RowSlice, rng: np.random.Generator | None = None) -> Iterator[dict[str, Any]]:
    """The rows of a slice as dicts, reading only the row groups it overlaps; shuffled when ``rng`` is given."""
    parquet = pq.ParquetFile(piece.path)
    groups = []
    offset = 0
    for g in range(parquet.metadata.num_row_groups):
        n = parquet.metadata.row_group(g).num_rows
        a, b = max(piece.start, offset), min(piece.stop, offset + n)
        if a < b:
            groups.append((g, a - offset, b - offset))
        offset += n
    if rng is not None:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    for g, a, b in groups:
        rows = parquet.read_row_group(g).slice(a, b - a).to_pylist()
        order = rng.permutation(len(rows)) if rng is not None else range(len(rows))
        for i in order:
            yield rows[i]


# -- one scene -> tensors ------------------------------------------------------------------------------
def resize_scene(scene: Scene, height: int, width: int) -> Scene:
    """The scene with every amodal mask resampled (nearest, at pixel centres) to ``height x width``.

    The occlusion order and depth ranks are kept, so the resized layer stack is the resampled original one.
    Given visible masks are not carried over: targets derive visible masks from the layer stack.
    """
    ys = np.minimum(((np.arange(height) + 0.5) * scene.height / height).astype(np.int64), scene.height - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * scene.width / width).astype(np.int64), scene.width - 1)
    if height <= scene.height and width <= scene.width:
        # downsampling: each source row/column feeds at most one target one, so invert the maps and walk the
        # masks' RLE runs (no full-size bitmap is decoded)
        from amodaldata.stack_kernels import decode_runs, resample_runs

        row = np.full(scene.height, -1, np.int64)
        col = np.full(scene.width, -1, np.int64)
        row[ys], col[xs] = np.arange(height), np.arange(width)
        raw = [r.amodal.to_pycocotools()["counts"] for r in scene.regions]
        starts, ends, run_offsets, bad = decode_runs(np.frombuffer(b"".join(raw), dtype=np.uint8),
                                                     np.cumsum([len(c) for c in raw], dtype=np.int64),
                                                     scene.height * scene.width)
        if bad >= 0:
            raise GeometryError("amodal RLE counts are not a valid mask of the image",
                                region_id=scene.regions[bad].id)
        resampled = np.zeros((len(raw), width, height), dtype=bool)
        resample_runs(starts, ends, run_offsets, scene.height, row, col, resampled)
        bitmaps = [m.T for m in resampled]                     # (height, width) views, column-major in memory
    else:
        bitmaps = [r.amodal.to_bitmap()[np.ix_(ys, xs)] for r in scene.regions]
    regions = [Region(r.id, Mask.from_bitmap(bitmap), name=r.name, category_id=r.category_id,
                      is_stuff=r.is_stuff, depth_rank=r.depth_rank) for r, bitmap in zip(scene.regions, bitmaps)]
    return Scene(id=scene.id, height=height, width=width, regions=regions, order=scene.order,
                 annotation_id=scene.annotation_id)


def decode_image(scene: Scene, height: int, width: int, images: Path | None = None) -> torch.Tensor:
    """The scene's RGB image resized (bilinear) to ``height x width``, normalised, float32 ``(3, H, W)``."""
    data = scene.image_bytes
    if data is None and images is not None and scene.file_name:
        path = Path(images) / scene.file_name
        if path.is_file():
            data = path.read_bytes()
    if data is None:
        raise MissingImageError("the row has no image bytes and no image file was found",
                                image_id=scene.id, annotation_id=scene.annotation_id)
    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB").resize((width, height), Image.BILINEAR)
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


class ShardDataset(IterableDataset):
    """Samples (:func:`scene_sample`) streamed from a shard file or folder, partitioned over DDP ranks and
    DataLoader workers (module docstring). ``rank``/``world_size`` default to the initialised process group."""

    def __init__(self, path: str | Path, size: int | tuple[int, int] = 256, *, split: str | None = None,
                 max_level: int = 4, layers: int = 2, num_classes: int = 1, images: str | Path | None = None,
                 shuffle: bool = False, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None, with_targets: bool = True) -> None:
        super().__init__()
        self.paths = shard_paths(path, split)
        self.counts = shard_row_counts(self.paths)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.max_level, self.layers, self.num_classes = max_level, layers, num_classes
        self.images = Path(images) if images is not None else None
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.with_targets = with_targets
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = rank if rank is not None else (torch.distributed.get_rank() if dist else 0)
        self.world_size = world_size if world_size is not None else (
            torch.distributed.get_world_size() if dist else 1)
        if sum(self.counts) < self.world_size:
            raise ValueError(f"{sum(self.counts)} scenes cannot feed {self.world_size} ranks")

    def __len__(self) -> int:
        """Samples per rank and epoch."""
        return sum(self.counts) // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Reseed the shuffle for a new epoch (call before iterating, as with ``DistributedSampler``)."""
        self.epoch = epoch

    def pieces(self, worker: int = 0, num_workers: int = 1) -> list[RowSlice]:
        """The row slices of this rank's ``worker``."""
        return partition_rows(self.paths, self.counts, rank=self.rank, world_size=self.world_size,
                              worker=worker, num_workers=num_workers)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = (np.random.default_rng([self.seed, self.epoch, self.rank, worker]) if self.shuffle else None)
        pieces = self.pieces(worker, num_workers)
        if rng is not None:
            pieces = [pieces[i] for i in rng.permutation(len(pieces))]
        for piece in pieces:
            for row in iter_rows(piece, rng):
                try:
                    scene = row_to_scene(row)
                except AmodalDataError as err:
                    raise err.located(file=str(piece.path), image_id=json.loads(row.get("image_id") or "null"))
                try:
                    yield scene_sample(scene, self.size, max_level=self.max_level, layers=self.layers,
                                       num_classes=self.num_classes, images=self.images,
                                       with_targets=self.with_targets)
                except AmodalDataError as err:
                    raise err.located(file=str(piece.path))


#: Keys stacked into one batch tensor; every other key stays a per-image list.
STACKED = ("image", "global_layering", "layered_classes", "layered_instances")


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch samples: ``images`` and (with targets) ``global_layering``, ``layered_classes``,
    ``layered_instances`` stacked; ``targets`` a list of per-image dicts of instance tensors (empty dicts
    without targets); ``image_ids``, ``orig_sizes`` lists."""
    batch: dict[str, Any] = {("images" if k == "image" else k): torch.stack([s[k] for s in samples])
                             for k in STACKED if k in samples[0]}
    batch["targets"] = [{k: v for k, v in s.items() if k not in STACKED and k not in ("image_id", "orig_size")}
                        for s in samples]
    batch["image_ids"] = [s["image_id"] for s in samples]
    batch["orig_sizes"] = [s["orig_size"] for s in samples]
    return batch


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch with every tensor (also inside ``targets``) moved to ``device``."""
    out = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
    out["targets"] = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in batch["targets"]]
    return out
