"""Loss functions: the discriminative embedding loss (Liu et al. 2019), the layering BCE (SLN Eq. 6), the sem-dist
map derived from layering probabilities (SLN Eq. 1), and mean-shift decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.embedding import discriminative_loss, downsample_labels, mean_shift
from models.sln import derived_semdist, layering_bce


def _scene_maps():
    """Two layers of 4x6: instances 1, 2 (class 1) and 3 (class 2); instance 2 also in the occlusion layer."""
    inst = torch.zeros(2, 4, 6, dtype=torch.int64)
    inst[0, :, :2] = 1
    inst[0, :, 2:4] = 2
    inst[0, :2, 4:] = 3
    inst[1, :, :2] = 2                         # instance 2 hidden behind instance 1
    classes = torch.where(inst == 3, 2, (inst > 0).long())
    return inst, classes


def _perfect(inst: torch.Tensor, centres: dict[int, list[float]]) -> torch.Tensor:
    emb = torch.zeros(2, 3, 4, 6)
    for rid, c in centres.items():
        emb.permute(0, 2, 3, 1)[inst == rid] = torch.tensor(c, dtype=torch.float32)
    return emb


def test_embedding_loss_is_zero_for_perfect_embeddings():
    inst, classes = _scene_maps()
    emb = _perfect(inst, {1: [3.1, 0, 0], 2: [0, 0, 0], 3: [0.5, 0, 0]})   # 3 may sit close: other class
    l_var, l_dst, l_reg = discriminative_loss(emb, inst, classes, d_var=0.5, d_dst=1.5)
    assert float(l_var) == 0 and float(l_dst) == 0
    assert float(l_reg) == pytest.approx((3.1 + 0 + 0.5) / 3)
    jitter = emb + 0.1 * (inst > 0)[:, None]                    # within d_var of the centre: still zero
    assert float(discriminative_loss(jitter, inst, classes)[0]) == 0


def test_embedding_loss_is_positive_otherwise():
    inst, classes = _scene_maps()
    close = _perfect(inst, {1: [1.0, 0, 0], 2: [0, 0, 0], 3: [9, 9, 9]})
    l_var, l_dst, _ = discriminative_loss(close, inst, classes, d_var=0.5, d_dst=1.5)
    assert float(l_var) == 0
    assert float(l_dst) == pytest.approx(2 * (3.0 - 1.0) ** 2 / 2)   # one class-1 pair, both orders
    spread = _perfect(inst, {1: [3.1, 0, 0], 2: [0, 0, 0], 3: [0.5, 0, 0]})
    spread[1, 0, 0, 0] += 2.0                                   # one pixel of instance 2 pulled away
    l_var, _, _ = discriminative_loss(spread, inst, classes)
    assert float(l_var) > 0
    none = discriminative_loss(torch.zeros(2, 3, 4, 6, requires_grad=True), torch.zeros(2, 4, 6).long(),
                               torch.zeros(2, 4, 6).long())
    assert all(float(t.detach()) == 0 for t in none) and none[0].requires_grad


def test_embedding_loss_gradients_pull_and_push():
    inst, classes = _scene_maps()
    emb = _perfect(inst, {1: [1.0, 0, 0], 2: [0, 0, 0], 3: [9, 9, 9]}).requires_grad_()
    _, l_dst, _ = discriminative_loss(emb, inst, classes)
    l_dst.backward()
    g = emb.grad.permute(0, 2, 3, 1)
    assert (g[inst == 1][:, 0] < 0).all() and (g[inst == 2][:, 0] > 0).all()   # descent moves them apart


def test_layering_bce_is_the_bce_of_the_softmax():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 3, 4, generator=g) * 3
    target = torch.randint(0, 5, (2, 3, 4), generator=g)
    onehot = F.one_hot(target, 5).permute(0, 3, 1, 2).float()
    expected = F.binary_cross_entropy(torch.softmax(logits, dim=1), onehot)
    assert float(layering_bce(logits, target)) == pytest.approx(float(expected), rel=1e-5)
    huge = torch.zeros(1, 3, 1, 1)
    huge[0, 0] = 200.0                                           # saturated softmax stays finite
    assert torch.isfinite(layering_bce(huge, torch.ones(1, 1, 1).long()))


def test_derived_semdist_follows_eq1():
    probs = torch.zeros(3, 4, 1, 1)
    probs[0, 0] = 1.0                                            # surely outside: M = 0
    probs[1, 1] = 0.8                                            # visible with confidence 0.8
    probs[1, 0] = 0.2
    probs[2, 3] = 0.9                                            # level 2 with confidence 0.9
    probs[2, 0] = 0.1
    m = derived_semdist(probs)[:, 0, 0, 0]
    assert m.tolist() == pytest.approx([0.0, 0.8, 0.9 - 2])


def test_mean_shift_groups_by_threshold():
    pts = np.array([[0, 0], [0.2, 0.1], [5, 5], [5.3, 5], [0.1, 0.3], [10, 0]], dtype=np.float32)
    labels = mean_shift(pts, 1.5)
    assert labels[0] == labels[1] == labels[4]
    assert labels[2] == labels[3] != labels[0]
    assert len(set(labels.tolist())) == 3


def test_downsample_labels_at_pixel_centres():
    maps = torch.arange(64).reshape(1, 8, 8)
    assert downsample_labels(maps, 2, 4).tolist() == [[[17, 19, 21, 23], [49, 51, 53, 55]]]   # rows 2, 6
