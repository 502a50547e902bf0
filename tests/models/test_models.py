"""SLN, ARCNN and the layered embedding net on tiny inputs: loss terms, gradients, learning, predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amodaldata.masks import Mask
from amodaldata.scene import Scene
from models import build_model
from models.data import ShardDataset, collate, scene_sample
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
