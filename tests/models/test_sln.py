"""SLN (Zhang et al. 2019): the staged schedule of Sec. 4.6, ROI sampling, decoding, and its sem-dist maps in
the results file scored by ``amodaldata eval order --source semdist``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from amodaldata.evaluation import evaluate_order
from amodaldata.evaluation.predictions import Prediction, image_sizes
from amodaldata.masks import Mask
from amodaldata.shards import read_shards
from amodaldata.targets import GT_CONFIDENCE
from cli import main as cli_main
from models import build_model
from models.data import ShardDataset, collate
from converters.results import read_results
from models.results import coco_results
from models.sln import STAGE_LOSSES, STAGE_MODULES, SLN
from models.train import TrainConfig, load_checkpoint, train

from .test_models import TINY_SLN

MODULES = ("backbone", "glm", "rpn", "ilm", "refine")


@pytest.fixture(scope="module")
def batch(folder):
    return collate(list(ShardDataset(folder, 64)))


def _trainable(model: SLN) -> set[str]:
    return {name for name in MODULES if any(p.requires_grad for p in getattr(model, name).parameters())}


@pytest.mark.parametrize("stage, trained, frozen", [
    ("glm", {"backbone", "glm"}, set()),                 # ENC trains with the first module
    ("rpn", {"rpn"}, {"backbone", "glm"}),
    ("ilm", {"ilm", "refine"}, {"backbone", "glm", "rpn"}),
    ("joint", set(MODULES), set()),
])
def test_the_staged_schedule_trains_one_module_after_another(stage, trained, frozen, batch):
    # Sec. 4.6: GLM, RPN and ILM optimised one after another, the former ones fixed, then all jointly
    torch.manual_seed(0)
    model = build_model("sln", TINY_SLN)
    model.set_stage(stage)
    model.train()
    assert _trainable(model) == trained
    assert trained == set(STAGE_MODULES.get(stage, MODULES))
    for name in MODULES:                                  # frozen modules keep their batch-norm statistics
        assert getattr(model, name).training == (name not in frozen)
    losses = model(batch)
    assert tuple(losses) == STAGE_LOSSES[stage]
    sum(losses.values()).backward()                       # the trainer's loss reaches every trainable parameter
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)       # (as DDP needs)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_a_later_stage_leaves_the_earlier_modules_untouched(batch):
    torch.manual_seed(0)
    model = build_model("sln", TINY_SLN)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.set_stage("ilm")
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        sum(model(batch).values()).backward()
        opt.step()
    after = model.state_dict()
    for key in before:                                     # parameters and running statistics alike
        changed = not torch.equal(before[key], after[key])
        assert changed == key.startswith(("ilm.", "refine.")) or key.endswith("num_batches_tracked"), key
    model.set_stage("joint")
    assert _trainable(model) == set(MODULES) and all(getattr(model, n).training for n in MODULES)
    with pytest.raises(ValueError, match="unknown SLN stage 'enc'.*glm, rpn, ilm, joint"):
        model.set_stage("enc")


def test_train_applies_the_stage_and_optimises_only_its_modules(shards, tmp_path):
    options = {k: v for k, v in TINY_SLN.items() if k != "backbone"}
    cfg = TrainConfig(model="sln", out=str(tmp_path / "run"), data=str(shards), max_iter=1, batch_size=2, size=64,
                      device="cpu", progress=False, warmup_iters=0, backbone="resnet18", stage="rpn",
                      options=options)
    state = load_checkpoint(train(cfg))
    assert state["config"]["backbone"] == "resnet18"
    torch.manual_seed(cfg.seed)                            # the same initialisation train() started from
    start = build_model("sln", cfg.model_config()).state_dict()
    changed = {k.split(".")[0] for k in start if not torch.equal(start[k], state["state_dict"][k])}
    assert changed == {"rpn"}
    cfg.stage = "ilm"                                      # another stage is another run: its own --out
    with pytest.raises(ValueError, match="holds a different run.*stage rpn"):
        train(cfg)
    with pytest.raises(ValueError, match="--stage is SLN's staged schedule"):
        train(TrainConfig(model="arcnn", out=str(tmp_path / "r2"), data=str(shards), max_iter=1, device="cpu",
                          backbone="resnet18", stage="rpn", progress=False))


def test_the_paper_recipes_hold_its_sgd_settings():
    from models.train import resolve
    cfg = resolve("sln", "cocoa", {"data": "d", "out": "o"})
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.num_classes) == ("sgd", 0.2, 0.9, 5e-4, 1)
    assert resolve("sln", "d2sa", {"data": "d", "out": "o"}).lr == 0.2
    assert resolve("arcnn", "d2sa", {"data": "d", "out": "o"}).lr == 0.02         # the two-stage D2SA recipe
    with pytest.raises(ValueError, match="unknown recipe 'cocoa' for arcnn"):
        resolve("arcnn", "cocoa", {"data": "d", "out": "o"})


def test_dilation_follows_the_backbone():
    model = SLN(backbone="resnet50", hidden=8, rpn_channels=8)
    assert model.backbone.strides == (4, 8, 8, 8) and model.backbone.out_channels == 256 + 512 + 1024 + 2048
    with pytest.raises(ValueError, match="basic blocks"):
        SLN(backbone="resnet18", dilation=[False, True, True])
    with pytest.raises(ValueError, match="unknown backbone"):
        SLN(backbone="vgg16")
    feats = build_model("sln", TINY_SLN).backbone(torch.zeros(1, 3, 64, 96))
    assert feats.shape == (1, 64 + 128 + 256 + 512, 8, 12)                     # four stages at stride 8
    with pytest.raises(ValueError, match="multiple of 32"):
        build_model("sln", TINY_SLN).backbone(torch.zeros(1, 3, 48, 48))


def test_new_modules_have_he_initialisation():
    torch.manual_seed(0)
    model = SLN(backbone="resnet18", hidden=64, rpn_channels=64)
    conv = model.glm[1][0]                                  # 64 -> 64, 3x3: He std = sqrt(2 / fan_out)
    assert float(conv.weight.detach().std()) == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.1)
    cls = model.rpn.head.head.cls_logits                    # not torchvision's N(0, 0.01)
    assert float(cls.weight.detach().std()) == pytest.approx((2 / cls.out_channels) ** 0.5, rel=0.2)


def test_training_rois_are_the_foreground_with_their_layering_targets(batch):
    torch.manual_seed(0)
    model = build_model("sln", {**TINY_SLN, "roi_size": 8})
    t = batch["targets"][0]
    gt = t["boxes"]
    near = gt + torch.tensor([1.0, 0.0, 1.0, 0.0])          # IoU > 0.5 with its ground truth
    far = torch.tensor([[0.0, 0.0, 3.0, 3.0]])              # overlaps nothing
    rois, layer_t = model._sample([torch.cat([near, far])], [t])
    assert len(rois[0]) == 2 * len(gt) and len(layer_t) == len(rois[0])
    assert not (box_in(rois[0], far[0])).any()
    # the rectangle (region 1) fills its box: its ground-truth ROI is inside everywhere, at visibility level 0
    own = [k for k, r in enumerate(rois[0]) if torch.equal(r, gt[0])]
    assert len(own) == 1 and (layer_t[own[0]] == 1).all()
    assert int(layer_t.max()) >= 2                          # an occluded part (level >= 1) is supervised
    empty = {**t, "boxes": gt[:0], "instance_layering": t["instance_layering"][:0]}
    rois, layer_t = model._sample([near], [empty])
    assert len(rois[0]) == 0 and layer_t.shape == (0, 8, 8)


def box_in(boxes: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    return (boxes == box).all(dim=1)


def test_roi_maps_have_the_paper_ranges(batch):
    torch.manual_seed(0)
    model = build_model("sln", TINY_SLN).eval()
    boxes, scores, conf, probs = model.roi_maps(batch["images"])
    n = sum(len(b) for b in boxes)
    assert conf.shape == (n, 8, 8) and probs.shape == (n, 5, 8, 8)
    assert ((conf >= 0) & (conf <= 1)).all() and torch.allclose(probs.sum(dim=1), torch.ones(n, 8, 8))
    assert all(((s >= 0) & (s <= 1)).all() for s in scores)            # objectness probabilities


def _ground_truth_model(batch) -> SLN:
    """An SLN whose ROI outputs are the ground truth: boxes, instance layering maps and confidence C."""
    torch.manual_seed(0)
    model = build_model("sln", {**TINY_SLN, "roi_size": 14}).eval()
    rois, levels, scores = [], [], []
    for t in batch["targets"]:
        r, lev = model._sample([t["boxes"][:0]], [t])
        rois += r
        levels.append(lev)
        scores.append(torch.linspace(0.9, 0.5, len(r[0])))
    levels = torch.cat(levels)
    probs = F.one_hot(levels, 5).permute(0, 3, 1, 2).float()
    model.roi_maps = lambda images: (rois, scores, (levels > 0).float() * GT_CONFIDENCE, probs)
    return model


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max((a | b).sum(), 1)


def test_decoding_ground_truth_roi_maps_gives_the_masks(batch):
    # the Eq. 2 / 3 decoders on the pasted maps give back the ground truth, up to the ROI resampling
    model = _ground_truth_model(batch)
    detections = model.predict(batch["images"], [(64, 64), (64, 64)])
    for det, t in zip(detections, batch["targets"]):
        assert len(det) == len(t["amodal"])
        for a, v, m in zip(det.amodal, det.visible, det.semdist):
            k = max(range(len(t["amodal"])), key=lambda i: _iou(a, t["amodal"][i].numpy()))
            assert _iou(a, t["amodal"][k].numpy()) > 0.85
            assert _iou(v, t["visible"][k].numpy()) > 0.75
            assert m.dtype == np.float32 and np.array_equal(m * 256, np.round(m * 256))   # on the 1/256 grid
        assert any((a & ~v).any() for a, v in zip(det.amodal, det.visible))             # occlusion exercised


def test_semdist_maps_round_trip_and_eval_order_scores_them(batch, folder, tmp_path):
    model = _ground_truth_model(batch)
    detections = model.predict(batch["images"], [(64, 64), (64, 64)])
    records = [r for det, i in zip(detections, batch["image_ids"]) for r in coco_results(i, det)]
    assert len(records) == sum(len(d) for d in detections)
    pred = tmp_path / "sln.json"
    pred.write_text(json.dumps(records))
    assert pred.stat().st_size < 64 * 64 * 4 * len(records)                           # smaller than float maps
    scenes = list(read_shards(folder))
    read = read_results(pred, image_sizes(scenes)).predictions
    maps = [m for det in detections for m in det.semdist]
    assert all(np.array_equal(p.load_semdist(), m) for p, m in zip(read, maps))       # bit for bit
    in_memory = [Prediction(i, Mask.from_bitmap(a), s, semdist=m, index=k)
                 for k, (i, a, s, m) in enumerate((i, a, s, m) for det, i in zip(detections, batch["image_ids"])
                                                  for a, s, m in zip(det.amodal, det.scores, det.semdist))]
    expected = evaluate_order(scenes, in_memory, source="semdist").to_dict()
    out = tmp_path / "order.json"
    result = CliRunner().invoke(cli_main, ["eval", "order", str(folder), str(pred), "--source", "semdist",
                                           "--json", str(out)])
    assert result.exit_code == 0, result.output
    got = json.loads(out.read_text())
    assert got == json.loads(json.dumps(expected))
    assert got["model"]["correct"] > 0 and got["model"]["accuracy"] == 1.0   # the ground truth's order


def test_torchvision_backbone_weights_load_into_the_encoder():
    # --pretrained: torchvision's names under backbone.body (its detection backbones, or a classification ResNet)
    from torchvision.models import resnet18
    from models.weights import load_state
    torch.manual_seed(1)
    body = {f"backbone.body.{k}": v for k, v in resnet18().state_dict().items() if not k.startswith("fc.")}
    model = build_model("sln", TINY_SLN)
    report = load_state(model, body, "resnet18")
    assert sorted(report.loaded) == sorted(body) and not report.unexpected and not report.skipped
    key = "backbone.body.layer4.1.conv2.weight"
    assert torch.equal(model.state_dict()[key], body[key])
    assert all(k.startswith(("glm.", "rpn.", "ilm.", "refine.")) for k in report.missing)
