"""SLN, ARCNN and the layered embedding net on tiny inputs: loss terms, gradients, learning, predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from amodaldata.masks import Mask
from amodaldata.scene import Scene
from models import TWO_STAGE, build_model
from models.data import ShardDataset, collate, instance_sample, scene_sample
from models.embedding import downsample_labels
from models.results import coco_results
from models.train import make_sampler

#: The two-stage models: torchvision's ResNet-18 FPN with narrow heads, trained from scratch.
TINY_RCNN = {"backbone": "resnet18", "norm": "bn", "trainable_layers": 5, "num_classes": 3, "fpn_channels": 16,
             "box_fc": 32, "mask_channels": 16, "mask_convs": 2, "anchor_sizes": [8, 16, 32, 64, 128],
             "rpn_pre_nms_top_n_train": 200, "rpn_post_nms_top_n_train": 100, "rpn_pre_nms_top_n_test": 100,
             "rpn_post_nms_top_n_test": 50, "box_batch_size_per_image": 32, "box_detections_per_img": 20}
#: SLN on torchvision's ResNet-18 (undilated: basic blocks), narrow heads, few proposals.
TINY_SLN = {"backbone": "resnet18", "hidden": 16, "rpn_channels": 16, "roi_size": 8, "detections": 20,
            "anchor_sizes": [16, 32, 64], "rpn_pre_nms": [200, 100], "rpn_post_nms": [100, 20]}
CONFIGS = {
    "sln": TINY_SLN,
    "embedding": {"backbone": "resnet18", "num_classes": 3, "head": [16]},      # DeepLabv3 on ResNet-18
    **{name: TINY_RCNN for name in TWO_STAGE},
}
BOXES = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
TERMS = {
    "sln": {"rpn_objectness", "rpn_box", "global_layering", "instance_layering", "semdist"},
    "embedding": {"semantic", "var", "dst", "reg"},
    "arcnn": BOXES | {"loss_amodal_mask"},
    "orcnn": BOXES | {"loss_amodal_mask", "loss_visible_mask"},
    "jigsaw": BOXES | {"loss_amodal_mask", "loss_visible_mask", "loss_occluded_mask"},     # Yin (2021) Eq. 2
    "arcnn-add": BOXES | {"loss_amodal_mask", "loss_visible_mask", "loss_occluded_mask"},
}


def _batch_for(name: str, dense: dict, instances: dict) -> dict:
    return instances if name in TWO_STAGE else dense


@pytest.fixture(scope="module")
def batch(folder):
    return collate(list(ShardDataset(folder, 64, num_classes=3)))


@pytest.fixture(scope="module")
def instances(folder):
    """The same two scenes as two-stage inputs: aspect-preserving 64 px, [0, 1] images, amodal boxes."""
    sampler = make_sampler({"kind": "instances", "min_size": [64], "max_size": 64, "num_classes": 3}, train=False)
    return collate(list(ShardDataset(folder, sampler=sampler)))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_loss_terms_are_finite_and_every_parameter_gets_a_gradient(name, batch, instances):
    torch.manual_seed(0)
    model = build_model(name, CONFIGS[name])
    losses = model(_batch_for(name, batch, instances))
    assert set(losses) == TERMS[name]
    assert all(v.shape == () and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_an_image_without_regions_still_reaches_every_parameter(name):
    # DistributedDataParallel needs a gradient for every parameter on every rank and step
    from .conftest import make_scene
    empty = Scene(id=9, height=64, width=64, image_bytes=make_scene(0).image_bytes)
    sample = (instance_sample(empty, 64, 64, num_classes=3) if name in TWO_STAGE
              else scene_sample(empty, (64, 64), num_classes=3))
    batch = collate([sample])
    assert batch["targets"][0]["boxes"].shape == (0, 4)
    torch.manual_seed(0)
    model = build_model(name, CONFIGS[name])
    losses = model(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_few_steps_on_one_batch_lower_the_loss(name, batch, instances):
    torch.manual_seed(0)
    model = build_model(name, CONFIGS[name])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    totals = []
    for _ in range(6):
        loss = sum(model(_batch_for(name, batch, instances)).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        totals.append(loss.item())
    assert totals[-1] < totals[0]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_predictions_have_the_results_layout(name, batch, instances):
    torch.manual_seed(0)
    model = build_model(name, CONFIGS[name]).eval()
    sizes = [(48, 80), (64, 64)]                       # predictions come back at the original sizes
    batch = _batch_for(name, batch, instances)
    detections = model.predict(batch["images"], sizes)
    assert len(detections) == 2
    for det, (h, w) in zip(detections, sizes):
        assert len(det.scores) == len(det.labels) == len(det.amodal) == len(det.visible) == len(det.occluded)
        for a, v, o in zip(det.amodal, det.visible, det.occluded):
            assert a.shape == v.shape == o.shape == (h, w) and a.dtype == v.dtype == o.dtype == bool
            assert not (v & ~a).any()
    records = [r for det, i in zip(detections, batch["image_ids"]) for r in coco_results(i, det)]
    for r in records:                                   # SLN adds each detection's sem-dist map
        assert set(r) == {"image_id", "category_id", "segmentation", "visible", "occluded", "score", "bbox",
                          *(["semdist"] if name == "sln" else [])}
        h, w = r["segmentation"]["size"]
        assert Mask.from_rle(r["segmentation"], h, w).area() > 0
        assert 0.0 <= r["score"] <= 1.0 and r["category_id"] >= 1
    if name != "embedding":                             # box-based models return their top detections
        assert all(len(d) > 0 for d in detections)


def test_arcnn_has_no_visible_part_of_its_own(instances):
    # Follmann et al.'s amodal Mask R-CNN predicts the amodal mask only: visible = amodal, occluded empty
    torch.manual_seed(0)
    model = build_model("arcnn", CONFIGS["arcnn"]).eval()
    det = model.predict(instances["images"], [(64, 64)] * 2)[0]
    assert len(det) > 0
    assert all(np.array_equal(a, v) and not o.any() for a, v, o in zip(det.amodal, det.visible, det.occluded))


def _mask_logits(name: str, instances: dict) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = build_model(name, CONFIGS[name]).eval()
    images, _ = model.transform(list(instances["images"]))
    features = model.backbone(images.tensors)
    boxes = [t["boxes"] for t in instances["targets"]]
    with torch.no_grad():
        return model, model.roi_heads.mask_logits(features, boxes, images.image_sizes)


def test_jigsaw_amodal_logits_are_the_1x1_fusion_of_all_visible_and_occluded_logits(instances):
    # Yin (2021) Eq. 1: AM_T = sum_i VW_Ti VM_i + OW_Ti OM_i over the n classes (channel 0 is background)
    model, logits = _mask_logits("jigsaw", instances)
    conv = model.roi_heads.context.conv
    n = model.num_classes
    vw, ow = conv.weight[:, :n, 0, 0], conv.weight[:, n:, 0, 0]              # (T, i)
    expected = (torch.einsum("ti,rihw->rthw", vw, logits["visible"][:, 1:])
                + torch.einsum("ti,rihw->rthw", ow, logits["occluded"][:, 1:]) + conv.bias.view(1, -1, 1, 1))
    assert logits["amodal"].shape == logits["visible"].shape == (len(logits["visible"]), n + 1, 28, 28)
    assert torch.allclose(logits["amodal"][:, 1:], expected, atol=1e-5)
    assert (logits["amodal"][:, 0] == 0).all()
    with torch.no_grad():                     # the fusion mixes classes: class 1's amodal reads class 3's parts
        conv.weight.zero_()
        conv.weight[0, n + 2] = 1.0
        assert torch.equal(model.roi_heads.context(logits["visible"], logits["occluded"])[:, 1],
                           logits["occluded"][:, 3])


def test_arcnn_add_amodal_is_the_sum_of_visible_and_occluded(instances):
    model, logits = _mask_logits("arcnn-add", instances)
    assert set(logits) == {"visible", "occluded"}
    labels = [torch.full((len(t["boxes"]),), 2, dtype=torch.int64) for t in instances["targets"]]
    probs = model.roi_heads.mask_probabilities(logits, labels)
    visible, occluded = torch.cat(probs["visible_masks"]), torch.cat(probs["occluded_masks"])
    assert torch.allclose(torch.cat(probs["masks"]), (visible + occluded).clamp(max=1))
    assert torch.allclose(visible[:, 0], logits["visible"][:, 2].sigmoid())


def test_orcnn_occluded_is_amodal_minus_visible(instances):
    model, logits = _mask_logits("orcnn", instances)
    labels = [torch.ones(len(t["boxes"]), dtype=torch.int64) for t in instances["targets"]]
    probs = model.roi_heads.mask_probabilities(logits, labels)
    amodal, visible = torch.cat(probs["masks"]), torch.cat(probs["visible_masks"])
    assert torch.allclose(torch.cat(probs["occluded_masks"]), (amodal - visible).clamp(min=0))


def test_the_two_stage_models_are_torchvision_parts():
    from torchvision.models.detection.roi_heads import RoIHeads
    from torchvision.models.detection.rpn import RegionProposalNetwork
    from torchvision.ops import MultiScaleRoIAlign
    model = build_model("jigsaw", CONFIGS["jigsaw"])
    assert isinstance(model.rpn, RegionProposalNetwork) and isinstance(model.roi_heads, RoIHeads)
    assert isinstance(model.roi_heads.box_roi_pool, MultiScaleRoIAlign)
    assert isinstance(model.roi_heads.mask_roi_pool, MultiScaleRoIAlign)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model("arcnn", {"backbone": "vgg16"})


def test_unknown_model_and_option_are_refused():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("yolo", {})
    with pytest.raises(ValueError, match="bad option for model 'sln'.*unknown 'layers'.*valid options: backbone"):
        build_model("sln", {"layers": 3})
    with pytest.raises(ValueError, match="bad option for model 'jigsaw'.*'box_nms'.*box_nms_thresh"):
        build_model("jigsaw", {"box_nms": 0.7})


def test_embedding_decoding_recovers_instances_from_perfect_outputs(batch):
    model = build_model("embedding", {**CONFIGS["embedding"], "eval_size": None}).eval()    # decoded at 16 x 16
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


def test_arcnn_add_loss_takes_roi_aligned_targets_that_overshoot_one(instances):
    # ROI-Align's bilinear weights can sum to a hair over 1: the probability BCE must not refuse the target
    model, logits = _mask_logits("arcnn-add", instances)
    boxes = [t["boxes"] for t in instances["targets"]]
    idxs = [torch.arange(len(b)) for b in boxes]
    over = [t["amodal"].float() * (1 + 1e-6) for t in instances["targets"]]
    loss = model.roi_heads._added_amodal_loss(logits, boxes, idxs, over, [t["labels"] for t in instances["targets"]])
    assert torch.isfinite(loss) and loss > 0
