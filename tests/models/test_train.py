"""python -m models.train / models.predict end to end on CPU: logs, checkpoints, resume (also across AMP
settings), bf16 autocast, recipes and the learning-rate schedule, DistributedDataParallel with gloo over two
local processes, a non-finite loss, pretrained weights, and prediction in one process or several."""

from __future__ import annotations

import json

import pytest
import torch

from amodaldata.errors import AmodalDataError
from amodaldata.masks import Mask
from models import build_model, predict, train
from models.train import RECIPES, TrainConfig, WarmupStepSchedule, launch, load_checkpoint, resolve

from .test_models import TINY_RCNN

DENSE_TINY = ["--set", "backbone=resnet18", "--set", "head=[16]"]
RCNN_TINY = [arg for key, value in TINY_RCNN.items() if key not in ("backbone", "norm", "trainable_layers",
                                                                      "num_classes")
             for arg in ("--set", f"{key}={json.dumps(value)}")]


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _rcnn(shards, run, model: str = "jigsaw", **kw) -> TrainConfig:
    given = {"data": str(shards), "out": str(run), "max_iter": 2, "batch_size": 2, "backbone": "resnet18",
             "min_size": [64], "max_size": 64, "num_classes": 3, "device": "cpu", "log_every": 1,
             "progress": False, "warmup_iters": 0,
             "options": {k: v for k, v in TINY_RCNN.items() if k not in ("backbone", "norm", "trainable_layers",
                                                                          "num_classes")}}
    given.update(kw)
    return resolve(model, None, given)


def test_train_predict_end_to_end(shards, tmp_path, capsys):
    run = tmp_path / "run"
    train.main(["--model", "embedding", "--data", str(shards), "--out", str(run), "--max-iter", "4",
                "--batch-size", "2", "--size", "64", "--num-classes", "3", "--lr", "3e-3", "--log-every", "1",
                "--device", "cpu", "--no-progress", *DENSE_TINY])
    out = capsys.readouterr().out
    assert f"checkpoint: {run / 'checkpoint.pt'}" in out
    assert "lr 0.003 = 0.003 x global batch 2 / reference batch 2" in out
    records = _log(run)
    assert [r["iteration"] for r in records] == [1, 2, 3, 4]            # 4 scenes, batches of 2: 2 passes
    assert [r["epoch"] for r in records] == [0, 0, 1, 1]
    assert all(set(r) >= {"loss", "semantic", "var", "dst", "reg", "lr", "it_per_s"} for r in records)
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["iteration"] == 4 and state["epoch"] == 2 and state["model"] == "embedding"
    config = json.loads((run / "config.json").read_text())
    assert config["options"]["head"] == [16] and config["weight_decay"] == 0.0    # Liu et al.: no decay

    out = tmp_path / "preds.json"
    predict.main(["--checkpoint", str(run / "checkpoint.pt"), "--data", str(shards), "--out", str(out),
                  "--device", "cpu"])
    results = json.loads(out.read_text())
    assert isinstance(results, list)
    assert f"{len(results)} detections -> {out}" in capsys.readouterr().out
    for r in results:
        assert r["image_id"] in range(4)
        assert Mask.from_rle(r["segmentation"], 64, 64).area() > 0


def test_two_stage_training_validates_and_predicts_in_two_processes(shards, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = _rcnn(shards, run, max_iter=4, val=str(shards), eval_every=2)
    train.train(cfg)
    records = _log(run)
    steps = [r for r in records if "loss" in r]
    assert [r["iteration"] for r in steps] == [1, 2, 3, 4]
    assert set(steps[0]) >= {"loss_amodal_mask", "loss_visible_mask", "loss_occluded_mask", "loss_classifier"}
    validations = [r for r in records if "validation" in r]
    assert [r["iteration"] for r in validations] == [2, 4]
    assert set(validations[0]["validation"]) == {"AP", "AP50", "AP75", "AR100", "AP_heavy"}
    assert "validation on" in capsys.readouterr().out

    one, two = tmp_path / "one.json", tmp_path / "two.json"
    common = ["--checkpoint", str(run / "checkpoint.pt"), "--data", str(shards), "--device", "cpu"]
    predict.main([*common, "--out", str(one)])
    predict.main([*common, "--out", str(two), "--nproc", "2"])
    first, second = json.loads(one.read_text()), json.loads(two.read_text())
    assert len(first) > 0
    assert [r["image_id"] for r in first] == [r["image_id"] for r in second]        # every row once, in order
    assert [r["segmentation"] for r in first] == [r["segmentation"] for r in second]
    assert {r["image_id"] for r in first} <= set(range(4))
    assert all(set(r) >= {"visible", "occluded"} for r in first)


def test_resume_continues_the_run_and_refuses_another(shards, tmp_path):
    run = tmp_path / "run"
    cfg = TrainConfig(model="sln", data=str(shards), out=str(run), max_iter=2, batch_size=2, size=64,
                      device="cpu", log_every=1, progress=False, warmup_iters=0,
                      options={"backbone": "resnet18", "rpn_channels": 16, "hidden": 16, "anchor_sizes": [16, 32, 64]})
    train.train(cfg)
    first = load_checkpoint(run / "checkpoint.pt")
    cfg.max_iter = 4
    train.train(cfg)
    second = load_checkpoint(run / "checkpoint.pt")
    assert (first["iteration"], second["iteration"]) == (2, 4)
    assert [r["iteration"] for r in _log(run)] == [1, 2, 3, 4]
    assert any(not torch.equal(first["state_dict"][k], second["state_dict"][k]) for k in first["state_dict"])
    train.train(cfg)                                              # finished: nothing more to do
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 4
    cfg.options = {**cfg.options, "hidden": 8}
    with pytest.raises(ValueError, match="holds a different run"):
        train.train(cfg)


def test_resume_across_amp_settings(shards, tmp_path):
    run = tmp_path / "run"
    cfg = _rcnn(shards, run, max_iter=1, amp=True, amp_dtype="bf16")
    assert train.autocast_settings(cfg, torch.device("cpu")) == (True, torch.bfloat16)
    train.train(cfg)
    train.train(_rcnn(shards, run, max_iter=2, amp=False))                 # the same run, AMP switched off
    steps = [r for r in _log(run) if "loss" in r]
    assert [r["iteration"] for r in steps] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in steps)


def test_a_resumed_run_follows_the_command_that_resumes_it(shards, tmp_path, capsys):
    # a run extended with a learning-rate step and another weight decay: the checkpoint's moments carry over,
    # the hyper-parameters are the new command's (as config.json says), not the checkpoint's
    run = tmp_path / "run"
    train.train(_rcnn(shards, run, max_iter=2, lr=0.01, optimizer="sgd", weight_decay=1e-4, ref_batch=2))
    moments = load_checkpoint(run / "checkpoint.pt")["optimizer"]["state"]
    assert moments and all("momentum_buffer" in m for m in moments.values())
    train.train(_rcnn(shards, run, max_iter=4, lr=0.02, optimizer="sgd", weight_decay=0.0, lr_steps=[3], gamma=0.1,
                       ref_batch=2))
    assert "learning rate, schedule and weight decay as this command gives them" in capsys.readouterr().out
    lrs = [r["lr"] for r in _log(run) if "loss" in r]          # logged after each step: the next step's rate
    assert lrs == pytest.approx([0.01, 0.01, 0.002, 0.002])
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["iteration"] == 4 and "scheduler" not in state
    assert [g["weight_decay"] for g in state["optimizer"]["param_groups"]] == [0.0, 0.0]
    assert json.loads((run / "config.json").read_text())["lr_steps"] == [3]


def test_ddp_on_cpu_with_gloo(shards, tmp_path):
    run = tmp_path / "run"
    cfg = TrainConfig(model="embedding", data=str(shards), out=str(run), max_iter=2, batch_size=1, size=64,
                      device="cpu", log_every=1, num_classes=3, progress=False, ref_batch=1,
                      options={"backbone": "resnet18", "head": [16]})
    assert launch(cfg, nproc=2) == run / "checkpoint.pt"
    records = _log(run)
    # 4 scenes over 2 ranks with batches of 1: each logged step is averaged over the ranks by rank 0
    assert [r["iteration"] for r in records] == [1, 2]
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["iteration"] == 2
    assert not any(k.startswith("module.") for k in state["state_dict"])   # the unwrapped model is saved
    assert json.loads((run / "config.json").read_text())["model"] == "embedding"


def test_ddp_two_stage_with_validation_shared_by_the_ranks(shards, tmp_path):
    run = tmp_path / "run"
    cfg = _rcnn(shards, run, model="arcnn-add", batch_size=1, max_iter=1, val=str(shards))
    assert launch(cfg, nproc=2) == run / "checkpoint.pt"
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 1
    validations = [r for r in _log(run) if "validation" in r]
    assert len(validations) == 1 and set(validations[0]["validation"]) >= {"AP", "AP_heavy"}


def test_a_non_finite_loss_stops_the_run_with_one_message(shards, tmp_path):
    with pytest.raises(SystemExit, match=r"error: non-finite loss at iteration \d+"):
        train.main(["--model", "embedding", "--data", str(shards), "--out", str(tmp_path / "run"), "--max-iter",
                    "20", "--size", "64", "--num-classes", "3", "--lr", "1e30", "--optimizer", "sgd", "--device",
                    "cpu", "--no-progress", *DENSE_TINY])


def test_recipes_schedule_and_linear_scaling():
    cfg = resolve("jigsaw", "kins", {"data": "d", "out": "o"})
    assert (cfg.batch_size, cfg.lr, cfg.max_iter, cfg.optimizer, cfg.num_classes) == (4, 0.0025, 48000, "sgd", 7)
    assert resolve("jigsaw", "cocoa-cls", {"data": "d", "out": "o"}).lr == 0.0005
    assert resolve("jigsaw", "kins", {"data": "d", "out": "o", "lr": 0.01}).lr == 0.01      # a flag wins
    shapes = resolve("arcnn", "shapes", {"data": "d", "out": "o"})
    assert shapes.options == {"box_nms_thresh": 0.7} and shapes.optimizer == "adam"
    assert resolve("embedding", "shapes", {"data": "d", "out": "o"}).options == {}    # no NMS in the embedding net
    assert set(RECIPES) == {"kins", "cocoa-cls", "d2sa", "shapes"}
    schedule = WarmupStepSchedule(warmup_iters=10, warmup_factor=0.001, steps=(20, 30), gamma=0.1)
    assert schedule(0) == pytest.approx(0.001)
    assert schedule(5) == pytest.approx(0.001 * 0.5 + 0.5)
    assert [schedule(i) for i in (10, 19, 20, 30)] == pytest.approx([1, 1, 0.1, 0.01])
    cfg, _ = train.parse_args(["--model", "arcnn", "--data", "d", "--out", "o", "--recipe", "kins",
                               "--batch-size", "8"])
    assert cfg.batch_size == 8 and cfg.ref_batch == 4 and cfg.lr == 0.0025       # scaled at run time: 0.005


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "(default: 1000)" in text and "--recipe" in text and "kins" in text


def test_pretrained_torchvision_state_dict_round_trips(tmp_path, capsys):
    # a torchvision Mask R-CNN saved as a state dict loads into every branch of the jigsaw model
    from torchvision.models.detection import MaskRCNN
    from torchvision.ops import FrozenBatchNorm2d

    from models.rcnn import resnet_fpn
    from models.weights import load_pretrained
    torch.manual_seed(1)
    reference = MaskRCNN(resnet_fpn("resnet18", FrozenBatchNorm2d), num_classes=91)
    path = tmp_path / "maskrcnn.pt"
    torch.save(reference.state_dict(), path)
    model = build_model("jigsaw", {"backbone": "resnet18", "num_classes": 3})
    report = load_pretrained(model, str(path))
    assert report.unexpected == [] and report.missing == ["roi_heads.context.conv.weight", "roi_heads.context.conv.bias"]
    assert sorted(report.skipped) == sorted([
        "roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias",
        "roi_heads.box_predictor.bbox_pred.weight", "roi_heads.box_predictor.bbox_pred.bias",
        *[f"roi_heads.branches.{p}.predictor.mask_fcn_logits.{k}" for p in ("visible", "occluded")
          for k in ("weight", "bias")]])
    ours, theirs = model.state_dict(), reference.state_dict()
    assert torch.equal(ours["backbone.body.layer3.1.conv2.weight"], theirs["backbone.body.layer3.1.conv2.weight"])
    for part in ("visible", "occluded"):
        assert torch.equal(ours[f"roi_heads.branches.{part}.head.0.0.weight"], theirs["roi_heads.mask_head.0.0.weight"])
    assert "pretrained" in report.summary() and "skipped for their shape" in report.summary()


def test_pretrained_detectron2_layout_is_renamed_and_made_rgb(tmp_path):
    from models.weights import from_detectron2, is_detectron2
    conv = torch.randn(64, 3, 7, 7)
    state = {"backbone.bottom_up.stem.conv1.weight": conv,
             "backbone.bottom_up.stem.conv1.norm.running_mean": torch.zeros(64),
             "backbone.bottom_up.res2.0.shortcut.norm.bias": torch.zeros(256),
             "backbone.bottom_up.res3.1.conv2.weight": torch.zeros(128, 128, 3, 3),
             "backbone.fpn_lateral2.weight": torch.zeros(256, 256, 1, 1),
             "proposal_generator.rpn_head.objectness_logits.bias": torch.zeros(3),
             "roi_heads.box_head.fc1.weight": torch.zeros(1024, 12544),
             "roi_heads.mask_head.mask_fcn2.weight": torch.zeros(256, 256, 3, 3),
             "roi_heads.mask_head.predictor.bias": torch.zeros(80)}
    assert is_detectron2(state)
    out = from_detectron2(state, [0.229, 0.224, 0.225])
    assert set(out) == {"backbone.body.conv1.weight", "backbone.body.bn1.running_mean",
                        "backbone.body.layer1.0.downsample.1.bias", "backbone.body.layer2.1.conv2.weight",
                        "backbone.fpn.inner_blocks.0.0.weight", "rpn.head.cls_logits.bias",
                        "roi_heads.box_head.fc6.weight", "roi_heads.mask_head.1.0.weight",
                        "roi_heads.mask_predictor.mask_fcn_logits.bias"}
    # the stem reads RGB normalised by torchvision's statistics: same response as detectron2's on BGR * 255
    x = torch.rand(1, 3, 16, 16)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    d2_input = (x * 255 - mean * 255).flip(1)                                   # BGR minus detectron2's mean
    ours = torch.nn.functional.conv2d((x - mean) / std, out["backbone.body.conv1.weight"])
    assert torch.allclose(ours, torch.nn.functional.conv2d(d2_input, conv), rtol=1e-4, atol=1e-3)


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
    with pytest.raises(ValueError, match="unknown recipe"):
        resolve("arcnn", "coco", {"data": "d", "out": "o"})


def test_commands_report_bad_input_in_one_line(shards, tmp_path):
    with pytest.raises(SystemExit, match="error: bad option for model 'embedding'.*anchor_sizes.*valid options"):
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
    with pytest.raises(SystemExit, match="error: pretrained weights not found"):
        train.main(["--model", "arcnn", "--data", str(shards), "--out", str(tmp_path / "run2"), "--device", "cpu",
                    "--backbone", "resnet18", "--pretrained", str(tmp_path / "nothing.pt"), "--no-progress"])


def test_tensorboard_events_hold_the_logged_losses(shards, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run = tmp_path / "run"
    train.main(["--model", "embedding", "--data", str(shards), "--out", str(run), "--max-iter", "2",
                "--batch-size", "2", "--size", "64", "--num-classes", "3", "--log-every", "1", "--device", "cpu",
                "--no-progress", "--tensorboard", *DENSE_TINY])
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    logged = _log(run)
    loss = events.Scalars("loss")
    assert [e.step for e in loss] == [1, 2]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in logged])
    assert {"lr", "var", "images_per_s"} <= set(events.Tags()["scalars"])


def test_torchvision_weights_without_a_network_are_a_clear_error(monkeypatch):
    import torchvision.models._api as api

    from models.weights import load_pretrained

    def offline(*args, **kwargs):
        raise OSError("no network")
    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    model = build_model("arcnn", {"backbone": "resnet18", "num_classes": 3})
    with pytest.raises(AmodalDataError, match=r"cannot get torchvision's weights for resnet18 .*no network.*TORCH_HOME"):
        load_pretrained(model, "torchvision", "resnet18")
