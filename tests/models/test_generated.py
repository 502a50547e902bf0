"""Scenes generated while training (models.generated): the same scenes for a seed whatever the ranks and
workers, none repeated, new ones every epoch (persistent workers too), the fixed set equal to what
``amodaldata gen`` writes, and ``python -m models.train --generate`` end to end."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

from amodaldata.errors import AmodalDataError
from amodaldata.shards import read_shards
from cli import main as cli_main
from models import train
from models.data import ShardDataset
from models.generated import FixedScenesDataset, GeneratedDataset, fixed_scenes
from models.train import load_checkpoint, make_sampler

from .test_train import DENSE_TINY

SPEC = "shapes --size 32 --per-class 1 --outline 0.05 --mask-size 0"
DENSE = {"kind": "dense", "size": 32, "max_level": 4, "layers": 2, "num_classes": 3}


def _key(scene) -> tuple:
    return scene.id, scene.image_bytes, tuple(r.amodal.to_rle()["counts"] for r in scene.regions)


def _as_list(batch: list) -> list:
    return batch


def _scenes(dataset: GeneratedDataset, workers: int = 0, epochs: int = 1, start: int = 0) -> list[list[tuple]]:
    """The scene keys of each epoch, read through a DataLoader (persistent workers when ``workers`` > 0)."""
    loader = DataLoader(dataset, batch_size=1, num_workers=workers, collate_fn=_as_list,
                        persistent_workers=workers > 0)
    out = []
    for epoch in range(start, start + epochs):
        dataset.set_epoch(epoch)
        out.append(sorted(_key(s) for batch in loader for s in batch))
    return out


def test_the_same_scenes_in_one_and_two_workers_and_two_ranks_none_repeated():
    one = _scenes(GeneratedDataset(SPEC, scenes_per_epoch=6, seed=3, rank=0, world_size=1))[0]
    assert len(one) == 6 and len({k[1] for k in one}) == 6                  # six different images
    assert [k[0] for k in one] == list(range(6))
    two_workers = _scenes(GeneratedDataset(SPEC, scenes_per_epoch=6, seed=3, rank=0, world_size=1), workers=2)[0]
    assert two_workers == one
    ranks = [_scenes(GeneratedDataset(SPEC, scenes_per_epoch=6, seed=3, rank=r, world_size=2))[0] for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 3
    assert not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == one
    other_seed = _scenes(GeneratedDataset(SPEC, scenes_per_epoch=6, seed=4, rank=0, world_size=1))[0]
    assert not {k[1] for k in other_seed} & {k[1] for k in one}


def test_every_epoch_is_new_also_in_persistent_workers():
    dataset = GeneratedDataset(SPEC, scenes_per_epoch=4, seed=0, rank=0, world_size=1)
    here = _scenes(dataset, epochs=2, start=5)
    assert not {k[1] for k in here[0]} & {k[1] for k in here[1]}
    assert [k[0] for k in here[1]] == [24, 25, 26, 27]                      # ids count through the run
    workers = _scenes(GeneratedDataset(SPEC, scenes_per_epoch=4, seed=0, rank=0, world_size=1), workers=2,
                      epochs=2, start=5)
    assert workers == here


def test_the_rank_remainder_is_dropped_and_too_few_scenes_refused():
    assert [len(GeneratedDataset(SPEC, scenes_per_epoch=7, rank=r, world_size=3)) for r in range(3)] == [2, 2, 2]
    assert list(GeneratedDataset(SPEC, scenes_per_epoch=7, rank=2, world_size=3).indices()) == [4, 5]
    with pytest.raises(ValueError, match="2 scenes per epoch cannot feed 3 ranks"):
        GeneratedDataset(SPEC, scenes_per_epoch=2, rank=0, world_size=3)
    with pytest.raises(AmodalDataError, match="No such option '--bogus'"):
        GeneratedDataset("shapes --bogus")


def test_samples_are_the_shard_paths_and_the_fixed_set_is_what_gen_writes(tmp_path):
    out = tmp_path / "val"
    result = CliRunner().invoke(cli_main, ["gen", *SPEC.split(), "--n", "5", "--seed", "7", "--split", "validation",
                                           "--scenes-per-shard", "2", "--workers", "1", "--no-progress",
                                           "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = list(read_shards(out))
    fixed = fixed_scenes(SPEC, 5, seed=7, scenes_per_shard=2)
    assert [_key(s) for s in fixed] == [_key(s) for s in written]
    sampler = make_sampler(DENSE, train=False)
    from_shards = list(ShardDataset(out, sampler=sampler, rank=0, world_size=1))
    from_list = list(FixedScenesDataset(fixed, sampler, rank=0, world_size=1))
    assert len(from_list) == 5
    for a, b in zip(from_list, from_shards):
        assert a["image_id"] == b["image_id"]
        for key in ("image", "layered_classes", "layered_instances", "amodal", "labels"):
            assert torch.equal(a[key], b[key]), key
    shares = [list(FixedScenesDataset(fixed, sampler, rank=r, world_size=2)) for r in (0, 1)]
    assert sorted(s["image_id"] for share in shares for s in share) == list(range(5))


def test_train_embedding_on_generated_scenes(tmp_path, capsys):
    run = tmp_path / "run"
    train.main(["--model", "embedding", "--generate", SPEC, "--scenes-per-epoch", "3", "--out", str(run),
                "--max-iter", "2", "--batch-size", "2", "--size", "64", "--num-classes", "3", "--log-every", "1",
                "--device", "cpu", "--no-progress", *DENSE_TINY])
    out = capsys.readouterr().out
    assert "3 training scenes" in out
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [(r["iteration"], r["epoch"]) for r in records] == [(1, 0), (2, 0)]   # batches of 2 and 1 scenes
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    config = json.loads((run / "config.json").read_text())
    assert config["generate"] == SPEC and config["data"] is None
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 2
    with pytest.raises(SystemExit, match="give either --data .* or --generate"):
        train.main(["--model", "embedding", "--out", str(tmp_path / "none"), "--device", "cpu"])
    with pytest.raises(SystemExit, match="error: generator options 'shapes --size 4'"):
        train.main(["--model", "embedding", "--generate", "shapes --size 4", "--out", str(tmp_path / "bad"),
                    "--device", "cpu", "--no-progress", *DENSE_TINY])


def test_overlay_scenes_are_generated_the_same_way():
    spec = "overlay --objects 1 --image-format png"                     # the built-in COCOA demo data
    one = [_key(s) for s in GeneratedDataset(spec, scenes_per_epoch=2, seed=1, rank=0, world_size=1)]
    ranks = [_key(s) for r in (0, 1) for s in GeneratedDataset(spec, scenes_per_epoch=2, seed=1, rank=r, world_size=2)]
    assert ranks == one and len({k[1] for k in one}) == 2
