"""python -m models.train / models.predict end to end on CPU: logs, checkpoints, resume, bf16 autocast,
DistributedDataParallel with gloo over two local processes, and a results file that parses."""

from __future__ import annotations

import json

import pytest
import torch

from amodaldata.masks import Mask
from models import predict, train
from models.train import TrainConfig, launch, load_checkpoint

TINY = ["--set", "widths=[8,16,16,16]", "--set", "channels=16", "--set", "head=[16]"]


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_train_predict_end_to_end(shards, tmp_path, capsys):
    run = tmp_path / "run"
    train.main(["--model", "embedding", "--data", str(shards), "--out", str(run), "--epochs", "2",
                "--batch-size", "2", "--size", "64", "--num-classes", "3", "--lr", "3e-3", "--log-every", "1",
                "--device", "cpu", *TINY])
    assert f"checkpoint: {run / 'checkpoint.pt'}" in capsys.readouterr().out
    records = _log(run)
    steps = [r for r in records if "loss" in r]
    epochs = [r for r in records if "epoch_mean" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]            # 4 scenes, batches of 2, 2 epochs
    assert [r["batches"] for r in epochs] == [2, 2]
    assert all(set(r) >= {"loss", "semantic", "var", "dst", "reg"} for r in steps)
    assert epochs[1]["epoch_mean"]["loss"] < epochs[0]["epoch_mean"]["loss"]
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["epoch"] == 2 and state["step"] == 4 and state["model"] == "embedding"
    assert json.loads((run / "config.json").read_text())["options"]["channels"] == 16

    out = tmp_path / "preds.json"
    predict.main(["--checkpoint", str(run / "checkpoint.pt"), "--data", str(shards), "--out", str(out),
                  "--device", "cpu"])
    results = json.loads(out.read_text())
    assert isinstance(results, list)
    assert f"{len(results)} detections -> {out}" in capsys.readouterr().out
    for r in results:
        assert r["image_id"] in range(4)
        assert Mask.from_rle(r["segmentation"], 64, 64).area() > 0


def test_resume_continues_the_run_and_refuses_another(shards, tmp_path):
    run = tmp_path / "run"
    cfg = TrainConfig(model="sln", data=str(shards), out=str(run), epochs=1, batch_size=2, size=64,
                      device="cpu", log_every=1, options={"widths": [8, 16, 16, 16], "channels": 16,
                                                          "hidden": 16, "anchor_sizes": [16, 32, 64]})
    train.train(cfg)
    first = load_checkpoint(run / "checkpoint.pt")
    cfg.epochs = 2
    train.train(cfg)
    second = load_checkpoint(run / "checkpoint.pt")
    assert (first["epoch"], first["step"]) == (1, 2) and (second["epoch"], second["step"]) == (2, 4)
    assert [r["step"] for r in _log(run) if "loss" in r] == [1, 2, 3, 4]
    assert any(not torch.equal(first["state_dict"][k], second["state_dict"][k]) for k in first["state_dict"])
    train.train(cfg)                                              # finished: nothing more to do
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 4
    cfg.options = {**cfg.options, "hidden": 8}
    with pytest.raises(ValueError, match="holds a different run"):
        train.train(cfg)


def test_bf16_autocast_on_cpu(shards, tmp_path):
    cfg = TrainConfig(model="arcnn", data=str(shards), out=str(tmp_path / "run"), epochs=1, batch_size=2,
                      size=64, device="cpu", amp=True, amp_dtype="bf16", num_classes=3, log_every=1,
                      options={"widths": [8, 16, 16, 16], "channels": 16, "fc": 32, "mask_hidden": 16,
                               "anchor_sizes": [16, 32, 64]})
    assert train.autocast_settings(cfg, torch.device("cpu")) == (True, torch.bfloat16)
    train.train(cfg)
    steps = [r for r in _log(tmp_path / "run") if "loss" in r]
    assert len(steps) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in steps)


def test_ddp_on_cpu_with_gloo(shards, tmp_path):
    run = tmp_path / "run"
    cfg = TrainConfig(model="embedding", data=str(shards), out=str(run), epochs=1, batch_size=1, size=64,
                      device="cpu", log_every=1, num_classes=3,
                      options={"widths": [8, 16, 16, 16], "channels": 16, "head": [16]})
    assert launch(cfg, nproc=2) == run / "checkpoint.pt"
    records = _log(run)
    # 4 scenes over 2 ranks with batches of 1: two steps, each logged once (by rank 0, averaged over ranks)
    assert [r["step"] for r in records if "loss" in r] == [1, 2]
    assert [r["batches"] for r in records if "epoch_mean" in r] == [2]
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 2
    assert not any(k.startswith("module.") for k in state["state_dict"])   # the unwrapped model is saved


def test_bad_options_are_refused(shards, tmp_path):
    with pytest.raises(SystemExit):
        train.parse_args(["--model", "sln", "--data", "x", "--out", "y", "--set", "novalue"])
    cfg, nproc = train.parse_args(["--model", "sln", "--data", "x", "--out", "y", "--set", "hidden=8",
                                   "--set", "name=abc", "--no-amp", "--nproc", "2"])
    assert cfg.options == {"hidden": 8, "name": "abc"} and cfg.amp is False and nproc == 2
    assert train.select_device("cpu") == torch.device("cpu")
    assert train.select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        train.select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            train.select_device("cuda")


def test_commands_report_bad_input_in_one_line(shards, tmp_path):
    with pytest.raises(SystemExit, match="error: bad option for model 'embedding'.*anchor_sizes"):
        train.main(["--model", "embedding", "--data", str(shards), "--out", str(tmp_path / "run"),
                    "--device", "cpu", "--set", "anchor_sizes=[16]"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"error: .*empty.*no shards"):
        train.main(["--model", "sln", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run"),
                    "--device", "cpu"])
    with pytest.raises(SystemExit, match="error: .*missing.pt"):
        predict.main(["--checkpoint", str(tmp_path / "missing.pt"), "--data", str(shards),
                      "--out", str(tmp_path / "p.json")])
    assert not (tmp_path / "p.json").exists()
