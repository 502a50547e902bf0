"""models.data: shard partitioning over ranks and workers, targets from the resized layer stack, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from amodaldata.errors import AnnotationError, MissingImageError
from amodaldata.shards import write_shard
from amodaldata.targets import scene_targets
from models.data import ShardDataset, collate, masks_to_boxes, scene_sample

from .conftest import make_scene, write_tiny_shards


def _ids(dataset: ShardDataset) -> list:
    return [s["image_id"] for s in dataset]


def test_ranks_get_equal_disjoint_contiguous_rows(tmp_path):
    """The partition itself is tested against ShardSet in tests/test_shards.py."""
    write_tiny_shards(tmp_path, 7, 3)                        # shards of 3, 2, 2 rows
    ranks = [ShardDataset(tmp_path, 64, rank=r, world_size=2, with_targets=False) for r in range(2)]
    assert [len(d) for d in ranks] == [3, 3]
    assert _ids(ranks[0]) == [0, 1, 2] and _ids(ranks[1]) == [3, 4, 5]


def test_workers_split_a_rank_and_every_row_is_read_once(tmp_path):
    write_tiny_shards(tmp_path, 7, 3)
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


#: The shuffled orders of 11 scenes in 3 shards (seed 5) per (world size, rank, drop_remainder, epoch), as
#: ShardDataset read them before its partition and row iteration moved to amodaldata.shards.ShardSet.
PINNED_ORDERS = {
    (1, 0, True, 0): [4, 5, 7, 6, 9, 8, 10, 2, 3, 1, 0], (1, 0, True, 1): [0, 1, 3, 2, 10, 9, 8, 7, 6, 4, 5],
    (1, 0, False, 0): [4, 5, 7, 6, 9, 8, 10, 2, 3, 1, 0], (1, 0, False, 1): [0, 1, 3, 2, 10, 9, 8, 7, 6, 4, 5],
    (2, 0, True, 0): [4, 2, 3, 0, 1], (2, 0, True, 1): [0, 1, 2, 3, 4],
    (2, 0, False, 0): [5, 4, 0, 1, 3, 2], (2, 0, False, 1): [0, 1, 2, 3, 5, 4],
    (2, 1, True, 0): [8, 9, 5, 6, 7], (2, 1, True, 1): [9, 8, 7, 6, 5],
    (2, 1, False, 0): [8, 9, 10, 6, 7], (2, 1, False, 1): [10, 9, 8, 7, 6],
}


def test_shuffle_orders_are_pinned(tmp_path):
    write_tiny_shards(tmp_path, 11, 3)
    for (world_size, rank, drop, epoch), order in PINNED_ORDERS.items():
        dataset = ShardDataset(tmp_path, 64, shuffle=True, seed=5, rank=rank, world_size=world_size,
                               with_targets=False, drop_remainder=drop)
        dataset.set_epoch(epoch)
        assert _ids(dataset) == order


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
