"""SLN, ARCNN and the layered embedding net on tiny inputs: loss terms, gradients, learning, predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from amodaldata.masks import Mask
from amodaldata.scene import Scene
from models import build_model
from models.data import ShardDataset, collate, scene_sample
from models.embedding import downsample_labels
from models.results import coco_results

#: Small widths so that a step takes a fraction of a second on CPU.
TINY = {"widths": [8, 16, 16, 16], "channels": 16, "anchor_sizes": [16, 32, 64]}
CONFIGS = {
    "sln": {**TINY, "hidden": 16, "roi_size": 8, "detections": 20},
    "arcnn": {**TINY, "num_classes": 3, "fc": 32, "mask_hidden": 16, "mask_roi": 7, "detections": 20},
    "embedding": {**{k: v for k, v in TINY.items() if k != "anchor_sizes"}, "num_classes": 3, "head": [16]},
}
TERMS = {
    "sln": {"rpn_objectness", "rpn_box", "global_layering", "instance_layering", "semdist"},
    "arcnn": {"rpn_objectness", "rpn_box", "box_cls", "box_reg", "amodal_mask", "visible_mask"},
    "embedding": {"semantic", "var", "dst", "reg"},
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    from .conftest import write_tiny_shards
    folder = tmp_path_factory.mktemp("shards")
    write_tiny_shards(folder, 2, 1)
    return collate(list(ShardDataset(folder, 64, num_classes=3)))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_loss_terms_are_finite_and_every_parameter_gets_a_gradient(name, batch):
    torch.manual_seed(0)
    model = build_model(name, CONFIGS[name])
    losses = model(batch)
    assert set(losses) == TERMS[name]
    assert all(v.shape == () and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_an_image_without_regions_still_reaches_every_parameter(name):
    # DistributedDataParallel needs a gradient for every parameter on every rank and step
    from .conftest import make_scene
    empty = Scene(id=9, height=64, width=64, image_bytes=make_scene(0).image_bytes)
    batch = collate([scene_sample(empty, (64, 64), num_classes=3)])
    assert batch["targets"][0]["boxes"].shape == (0, 4)
    torch.manual_seed(0)
    model = build_model(name, CONFIGS[name])
    losses = model(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_few_steps_on_one_batch_lower_the_loss(name, batch):
    torch.manual_seed(0)
    model = build_model(name, CONFIGS[name])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    totals = []
    for _ in range(6):
        loss = sum(model(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        totals.append(loss.item())
    assert totals[-1] < totals[0]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_predictions_have_the_results_layout(name, batch):
    torch.manual_seed(0)
    model = build_model(name, CONFIGS[name]).eval()
    sizes = [(48, 80), (64, 64)]                       # predictions come back at the original sizes
    detections = model.predict(batch["images"], sizes)
    assert len(detections) == 2
    for det, (h, w) in zip(detections, sizes):
        assert len(det.scores) == len(det.labels) == len(det.amodal) == len(det.visible)
        for a, v in zip(det.amodal, det.visible):
            assert a.shape == v.shape == (h, w) and a.dtype == v.dtype == bool
            assert not (v & ~a).any()
    records = [r for det, i in zip(detections, batch["image_ids"]) for r in coco_results(i, det)]
    for r in records:
        assert set(r) == {"image_id", "category_id", "segmentation", "visible", "score", "bbox"}
        h, w = r["segmentation"]["size"]
        assert Mask.from_rle(r["segmentation"], h, w).area() > 0
        assert 0.0 <= r["score"] <= 1.0 and r["category_id"] >= 1
    if name != "embedding":                             # box-based models return their top detections
        assert all(len(d) > 0 for d in detections)


def test_sln_semdist_decodes_amodal_and_visible(batch):
    torch.manual_seed(0)
    model = build_model("sln", CONFIGS["sln"]).eval()
    proposals, scores, semdist = model.semdist_rois(batch["images"])
    assert semdist.shape == (sum(len(p) for p in proposals), 8, 8)
    frac = semdist - torch.floor(semdist)
    assert ((frac >= 0) & (frac < 1)).all()
    assert all(((s > 0) & (s < 1)).all() for s in scores)


def test_arcnn_without_visible_head_reuses_the_amodal_mask(batch):
    torch.manual_seed(0)
    model = build_model("arcnn", {**CONFIGS["arcnn"], "visible_head": False})
    assert "visible_mask" not in model(batch)
    model.eval()
    det = model.predict(batch["images"], [(64, 64)] * 2)[0]
    assert all(np.array_equal(a, v) for a, v in zip(det.amodal, det.visible))


def test_unknown_model_and_option_are_refused():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("yolo", {})
    with pytest.raises(ValueError, match="bad option for model 'sln'"):
        build_model("sln", {"layers": 3})


def test_embedding_decoding_recovers_instances_from_perfect_outputs(batch):
    model = build_model("embedding", CONFIGS["embedding"]).eval()
    classes = downsample_labels(batch["layered_classes"], 16, 16).long()       # (B, K, 16, 16)
    inst = downsample_labels(batch["layered_instances"], 16, 16).long()
    semantic = F.one_hot(classes, 4).permute(0, 1, 4, 2, 3).float() * 20
    embedding = torch.zeros(2, 2, 6, 16, 16)
    embedding[:, :, 0] = inst.float() * 3                                       # centres 3 apart (L1)
    model.outputs = lambda images: (semantic, embedding)
    detections = model.predict(batch["images"], [(16, 16), (16, 16)])
    for det, ids, cls in zip(detections, inst, classes):
        expected = {int(r): ((ids == r).any(0).numpy(), (ids[0] == r).numpy(), int(cls[ids == r][0]))
                    for r in ids[0].unique() if r > 0}
        got = sorted(((a, v, lab) for a, v, lab in zip(det.amodal, det.visible, det.labels)),
                     key=lambda x: np.flatnonzero(x[0])[0])
        want = sorted(expected.values(), key=lambda x: np.flatnonzero(x[0])[0])
        assert len(got) == len(want) == 3
        for (a, v, lab), (ea, ev, elab) in zip(got, want):
            assert np.array_equal(a, ea) and np.array_equal(v, ev) and lab == elab
        assert all(s == pytest.approx(1.0) for s in det.scores)


def test_sln_decoding_of_ground_truth_semdist_maps_gives_the_masks(batch):
    # ROIs covering the whole image at one sample per pixel: the decoders (Eq. 2, 3) must give back the masks
    model = build_model("sln", CONFIGS["sln"]).eval()
    targets = batch["targets"]
    whole = [torch.tensor([[0.0, 0.0, 64.0, 64.0]]).repeat(len(t["semdist"]), 1) for t in targets]
    scores = [torch.linspace(0.9, 0.5, len(t["semdist"])) for t in targets]
    model.semdist_rois = lambda images: (whole, scores, torch.cat([t["semdist"] for t in targets]))
    detections = model.predict(batch["images"], [(64, 64), (64, 64)])
    for det, t, sc in zip(detections, targets, scores):
        assert det.scores == pytest.approx(sc.tolist())
        for a, v, ea, ev in zip(det.amodal, det.visible, t["amodal"], t["visible"]):
            assert np.array_equal(a, ea.numpy()) and np.array_equal(v, ev.numpy())
        assert any((ea & ~ev).any() for ea, ev in zip(t["amodal"], t["visible"]))   # occlusion is exercised
