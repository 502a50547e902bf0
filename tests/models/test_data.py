"""models.data: shard partitioning over ranks and workers, targets from the resized layer stack, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from amodaldata.errors import AnnotationError, MissingImageError
from amodaldata.shards import write_shard
from amodaldata.targets import scene_targets
from models.data import (ShardDataset, collate, masks_to_boxes, partition_rows, resize_scene, scene_sample,
                         shard_row_counts)

from .conftest import make_scene, write_tiny_shards


def _ids(dataset: ShardDataset) -> list:
    return [s["image_id"] for s in dataset]


def test_ranks_get_equal_disjoint_contiguous_rows(tmp_path):
    paths = write_tiny_shards(tmp_path, 7, 3)                # shards of 3, 2, 2 rows
    counts = shard_row_counts(paths)
    assert counts == [3, 2, 2]
    per_rank = [partition_rows(paths, counts, rank=r, world_size=2) for r in range(2)]
    rows = [[(p.path.name, i) for p in piece for i in range(p.start, p.stop)] for piece in per_rank]
    assert len(rows[0]) == len(rows[1]) == 3                   # 7 // 2, the last row dropped
    assert not set(rows[0]) & set(rows[1])
    assert {p.path for p in per_rank[0]} == {paths[0]}         # rank 0 reads shard 0 only
    ranks = [ShardDataset(tmp_path, 64, rank=r, world_size=2, with_targets=False) for r in range(2)]
    assert [len(d) for d in ranks] == [3, 3]
    assert _ids(ranks[0]) == [0, 1, 2] and _ids(ranks[1]) == [3, 4, 5]


def test_workers_split_a_rank_and_every_row_is_read_once(tmp_path):
    paths = write_tiny_shards(tmp_path, 7, 3)
    counts = shard_row_counts(paths)
    pieces = [partition_rows(paths, counts, worker=w, num_workers=3) for w in range(3)]
    seen = sorted((p.path.name, i) for ps in pieces for p in ps for i in range(p.start, p.stop))
    assert seen == sorted({(p.name, i) for p, n in zip(paths, counts) for i in range(n)})
    dataset = ShardDataset(tmp_path, 64, with_targets=False)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate)
    assert sorted(i for b in loader for i in b["image_ids"]) == list(range(7))


def test_shuffle_changes_with_epoch_and_keeps_the_rows(tmp_path):
    write_tiny_shards(tmp_path, 8, 2)
    dataset = ShardDataset(tmp_path, 64, shuffle=True, seed=3, with_targets=False)
    first = _ids(dataset)
    dataset.set_epoch(0)
    assert _ids(dataset) == first                                # same epoch, same order
    dataset.set_epoch(1)
    second = _ids(dataset)
    assert sorted(first) == sorted(second) == list(range(8))
    assert first != second


def test_sample_at_native_size_equals_the_scene_targets():
    scene = make_scene(5)
    sample = scene_sample(scene, (64, 64), num_classes=3)
    t = scene_targets(scene)
    assert torch.equal(sample["global_layering"], torch.from_numpy(t["global_layering"]))
    assert torch.equal(sample["semdist"], torch.from_numpy(t["semdist"]))
    assert torch.equal(sample["amodal"], torch.from_numpy(t["amodal"]))
    assert torch.equal(sample["visible"], torch.from_numpy(t["visible"]))
    assert torch.equal(sample["layered_classes"], torch.from_numpy(t["layered_classes"]))
    assert torch.equal(sample["instance_layering"], torch.from_numpy(t["instance_layering"]))
    assert sample["labels"].tolist() == [1, 2, 3]
    assert sample["image"].shape == (3, 64, 64) and sample["image"].dtype == torch.float32
    for box, mask in zip(sample["boxes"], t["amodal"]):
        ys, xs = np.nonzero(mask)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_resized_targets_are_the_resampled_stack():
    scene = make_scene(2)
    sample = scene_sample(scene, (32, 16))
    idx_y, idx_x = np.arange(32) * 2 + 1, np.arange(16) * 4 + 2     # pixel centres of the 64x64 grid
    full = scene_targets(scene)
    assert np.array_equal(sample["global_layering"].numpy(), full["global_layering"][np.ix_(idx_y, idx_x)])
    assert np.array_equal(sample["layered_instances"].numpy(),
                          full["layered_instances"][:, idx_y][:, :, idx_x])
    assert sample["layered_classes"].max() == 1                      # class-agnostic by default
    assert resize_scene(scene, 32, 16).order.edges == scene.order.edges


@pytest.mark.parametrize("size", [(37, 50), (13, 7), (60, 90), (1, 1), (30, 200)])
def test_resize_samples_every_mask_at_pixel_centres(size):
    """Down (kernel over the RLE runs) and up (decoded bitmaps): each mask is the original read at the target
    pixels' centres; masks with runs that wrap columns, full and empty ones included."""
    from amodaldata.masks import Mask
    from amodaldata.order import OcclusionOrder
    from amodaldata.scene import Region, Scene

    rng = np.random.default_rng(sum(size))
    height, width = 60, 90
    bitmaps = [rng.random((height, width)) < 0.3, np.ones((height, width), bool), np.zeros((height, width), bool)]
    block = np.zeros((height, width), bool)
    block[5:, 10:40] = True
    bitmaps.append(block)
    regions = [Region(i + 1, Mask.from_rle(Mask.from_bitmap(b).to_rle(), height, width), depth_rank=i + 1)
               for i, b in enumerate(bitmaps)]
    scene = Scene(1, height, width, regions, OcclusionOrder.from_ranks({r.id: r.depth_rank for r in regions}))
    h, w = size
    ys = np.minimum(((np.arange(h) + 0.5) * height / h).astype(np.int64), height - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * width / w).astype(np.int64), width - 1)
    resized = resize_scene(scene, h, w)
    for bitmap, region in zip(bitmaps, resized.regions):
        assert np.array_equal(region.amodal.to_bitmap(), bitmap[np.ix_(ys, xs)])


def test_collate_stacks_images_and_keeps_instances_per_image(shards):
    batch = collate(list(ShardDataset(shards, 64, num_classes=3))[:2])
    assert batch["images"].shape == (2, 3, 64, 64)
    assert batch["layered_instances"].shape == (2, 2, 64, 64)
    assert len(batch["targets"]) == 2 and batch["targets"][0]["amodal"].shape == (3, 64, 64)
    assert batch["image_ids"] == [0, 1] and batch["orig_sizes"] == [(64, 64), (64, 64)]


def test_masks_to_boxes_of_no_mask():
    assert masks_to_boxes(np.zeros((0, 4, 4), bool)).shape == (0, 4)


def test_bad_rows_raise_located_errors(tmp_path):
    scene = make_scene(1)
    scene.image_bytes = None
    write_shard([scene], tmp_path / "a.parquet")
    with pytest.raises(MissingImageError) as err:
        list(ShardDataset(tmp_path / "a.parquet", 64))
    assert err.value.image_id == 1 and "a.parquet" in str(err.value)
    with pytest.raises(AnnotationError, match="category id 3 is outside 1..2") as err:
        scene_sample(make_scene(1), (64, 64), num_classes=2)
    assert err.value.region_id == 3


def test_images_folder_supplies_missing_bytes(tmp_path):
    scene = make_scene(1)
    (tmp_path / "1.png").write_bytes(scene.image_bytes)
    with_bytes = scene_sample(scene, (64, 64))["image"]
    scene.image_bytes = None
    assert torch.equal(scene_sample(scene, (64, 64), images=tmp_path)["image"], with_bytes)


def test_too_few_scenes_for_the_ranks(tmp_path):
    write_tiny_shards(tmp_path, 1, 1)
    with pytest.raises(ValueError, match="1 scenes cannot feed 2 ranks"):
        ShardDataset(tmp_path, 64, rank=0, world_size=2)


def test_persistent_workers_shuffle_anew_every_epoch(tmp_path):
    # a persistent worker's copy of the dataset never sees set_epoch: it counts its own passes
    write_tiny_shards(tmp_path, 8, 2)
    dataset = ShardDataset(tmp_path, 64, shuffle=True, seed=3, with_targets=False)
    loader = DataLoader(dataset, batch_size=8, num_workers=1, collate_fn=collate, persistent_workers=True)
    orders = []
    for epoch in range(3):
        dataset.set_epoch(epoch)
        orders.append([i for b in loader for i in b["image_ids"]])
    in_process = []
    for epoch in range(3):
        dataset.set_epoch(epoch)
        in_process.append(_ids(dataset))
    assert orders == in_process                              # the same epochs, in workers or not
    assert all(sorted(o) == list(range(8)) for o in orders) and len({tuple(o) for o in orders}) == 3
