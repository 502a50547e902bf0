"""The layered embedding net (Liu et al. 2019) on torchvision's DeepLabv3: the discriminative loss against
hand-computed values, 256 in / 64 out, torchvision's layout and weights, K = 3 layers, the evaluation size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP

from amodaldata.errors import AmodalDataError
from models import build_model
from models.data import collate, scene_sample
from models.embedding import discriminative_loss
from models.weights import load_pretrained

from .conftest import make_scene

TINY = {"backbone": "resnet18", "num_classes": 3, "head": [16]}


def test_discriminative_loss_equals_the_hand_computed_terms():
    # one layer, 1 x 5 pixels, C = 2; instances 1 and 2 of class 1, instance 3 of class 2
    emb = torch.tensor([[[0.0, 2.0, 1.0, 1.0, 1.0],
                         [0.0, 0.0, 1.0, 1.0, 0.0]]]).reshape(1, 2, 1, 5)
    inst = torch.tensor([[[1, 1, 2, 2, 3]]])
    classes = torch.tensor([[[1, 1, 1, 1, 2]]])
    l_var, l_dst, l_reg = discriminative_loss(emb, inst, classes, d_var=0.5, d_dst=1.5)
    # mu_1 = (1, 0): both pixels at L1 distance 1, [1 - 0.5]^2 = 0.25 each, mean 0.25; mu_2 = (1, 1), mu_3 = (1, 0)
    assert float(l_var) == pytest.approx((0.25 + 0 + 0) / 3)
    # class 1: ||mu_1 - mu_2|| = 1, [2 * 1.5 - 1]^2 = 4 for each ordered pair, / (N_k (N_k - 1)) = 2; instance 3
    # shares mu_1 but is of another class, so it is not pushed
    assert float(l_dst) == pytest.approx(2 * 4 / 2)
    assert float(l_reg) == pytest.approx((1 + 2 + 1) / 3)


def test_deeplabv3_features_give_a_64_output_for_a_256_input():
    torch.manual_seed(0)
    model = build_model("embedding", TINY).eval()
    assert isinstance(model.backbone, IntermediateLayerGetter) and isinstance(model.classifier[0], ASPP)
    assert [m.out_channels for m in model.embed[0] if isinstance(m, torch.nn.Conv2d)] == [16, 6]
    semantic, embedding = model.outputs(torch.zeros(1, 3, 256, 256))
    assert semantic.shape == (1, 2, 4, 64, 64) and embedding.shape == (1, 2, 6, 64, 64)
    with pytest.raises(AmodalDataError, match="multiple of 8"):
        model.outputs(torch.zeros(1, 3, 60, 60))
    paper = build_model("embedding", {})                # Liu et al. Sec. 4: 256, 256, 128, C filters; C = 6
    assert [m.out_channels for m in paper.embed[0] if isinstance(m, torch.nn.Conv2d)] == [256, 256, 128, 6]
    assert paper.feature_stride == 8 and paper.cluster_threshold == 1.5


def test_torchvisions_deeplabv3_state_dict_loads_by_name_and_gives_the_same_features(tmp_path):
    from torchvision.models.segmentation import deeplabv3_resnet50
    torch.manual_seed(0)
    reference = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21).eval()
    path = tmp_path / "deeplab.pt"
    torch.save(reference.state_dict(), path)
    model = build_model("embedding", {"num_classes": 3}).eval()
    report = load_pretrained(model, str(path))
    assert not report.skipped
    assert {k.rsplit(".", 1)[0] for k in report.unexpected} == {"classifier.4"}   # the 21-class convolution
    assert all(k.startswith(("semantic.", "embed.")) for k in report.missing)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = torch.nn.Sequential(*list(reference.classifier)[:4])(reference.backbone(x)["out"])
        assert torch.allclose(model.features(x), F.interpolate(expected, size=(16, 16), mode="bilinear"), atol=1e-5)


def test_three_layers_train_and_a_single_image_batch_works():
    sample = scene_sample(make_scene(0), (64, 64), layers=3, num_classes=3)
    batch = collate([sample])
    assert batch["layered_instances"].shape == (1, 3, 64, 64)
    torch.manual_seed(0)
    model = build_model("embedding", {**TINY, "layers": 3})
    losses = model(batch)                               # one image: ASPP's pooled batch norm still trains
    assert set(losses) == {"semantic", "var", "dst", "reg"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.semantic[2][-1].weight.grad.abs().sum() > 0            # the third layer's head learns


def test_eval_size_decodes_at_64_or_at_full_size():
    model = build_model("embedding", TINY).eval()
    semantic = torch.zeros(1, 2, 4, 2, 2)
    semantic[0, :, 0] = 10.0                            # background everywhere but at the top-left output pixel
    semantic[0, 0, 1, 0, 0] = 20.0
    model.outputs = lambda images: (semantic, torch.zeros(1, 2, 6, 2, 2))
    model.min_pixels = 1
    model.eval_size = 2                                 # the native output size: one 2 x 2 cell, enlarged
    (native,) = model.predict(torch.zeros(1, 3, 8, 8), [(8, 8)])
    quadrant = np.zeros((8, 8), bool)
    quadrant[:4, :4] = True
    assert len(native) == 1 and np.array_equal(native.amodal[0], quadrant)
    model.eval_size = None                              # full size: logits upsampled, then decoded
    (full,) = model.predict(torch.zeros(1, 3, 8, 8), [(8, 8)])
    assert len(full) == 1 and full.amodal[0][0, 0] and not full.amodal[0][3, 3]
    assert not (full.amodal[0] & ~quadrant).any()
    with pytest.raises(ValueError, match="eval_size"):
        build_model("embedding", {**TINY, "eval_size": 0})
