"""models.boxes, models.roi: box coding, NMS, anchors, ROI-Align through grid_sample, crop and paste."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import boxes as B
from models.roi import crop_maps, paste, roi_align, sample_rois


def test_encode_decode_round_trip():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(20, 2, generator=g) * 50
    ref = torch.cat([ref, ref + 5 + torch.rand(20, 2, generator=g) * 30], dim=1)
    tgt = torch.rand(20, 2, generator=g) * 50
    tgt = torch.cat([tgt, tgt + 5 + torch.rand(20, 2, generator=g) * 30], dim=1)
    for weights in ((1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)):
        assert torch.allclose(B.decode(ref, B.encode(ref, tgt, weights), weights), tgt, atol=1e-4)


def test_iou_and_nms():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 5.]])
    iou = B.box_iou(boxes, boxes)
    assert iou[0, 1] == pytest.approx(90 / 110)
    assert iou[0, 3] == pytest.approx(0.5)
    assert iou[0, 2] == 0
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert B.nms(boxes, scores, 0.6).tolist() == [3, 0, 2]         # box 1 overlaps box 0 by 0.82
    assert B.nms(boxes, scores, 0.4).tolist() == [3, 2]
    assert B.batched_nms(boxes, scores, torch.tensor([0, 1, 0, 0]), 0.6).tolist() == [3, 0, 1, 2]


def test_anchors_are_centred_on_the_grid():
    a = B.anchors(2, 3, 8, (16,), (0.5, 1.0, 2.0))
    assert a.shape == (2 * 3 * 3, 4)
    square = a[1]                                     # location (0, 0), ratio 1
    assert square.tolist() == [-4.0, -4.0, 12.0, 12.0]
    tall = a[3 * 4 + 2]                               # location (1, 1), ratio 2 (height / width)
    w, h = tall[2] - tall[0], tall[3] - tall[1]
    assert float(h / w) == pytest.approx(2.0) and float(w * h) == pytest.approx(256.0)
    assert float((tall[0] + tall[2]) / 2) == pytest.approx(12.0) and float((tall[1] + tall[3]) / 2) == 12.0


def test_roi_align_samples_bin_centres():
    # feature value = feature column index; feature pixel i is centred at image x = 4 i + 2 (stride 4)
    feats = torch.arange(16.0).repeat(16, 1)[None, None].repeat(1, 2, 1, 1)
    out = roi_align(feats, [torch.tensor([[8.0, 8.0, 40.0, 40.0]])], 4, (64, 64), sampling=2)
    assert out.shape == (1, 2, 4, 4)
    centres = 8 + (torch.arange(4) + 0.5) * 8                      # bin centres in image x
    assert torch.allclose(out[0, 0, 0], centres / 4 - 0.5)
    assert torch.allclose(out[0, 1, 3], centres / 4 - 0.5)
    assert roi_align(feats, [torch.zeros(0, 4)], 4, (64, 64)).shape == (0, 2, 4, 4)


def test_crop_then_paste_gives_back_the_mask():
    mask = torch.zeros(1, 64, 64)
    mask[0, 10:30, 20:50] = 1
    box = torch.tensor([[16.0, 8.0, 56.0, 32.0]])
    crop = crop_maps(mask, box, 40)                               # 1 px per sample along x
    back = paste(crop[0], box[0].numpy(), 64, 64) >= 0.5
    assert np.array_equal(back, mask[0].numpy().astype(bool))
    levels = torch.zeros(1, 64, 64)
    levels[0, :, 32:] = 3
    near = crop_maps(levels, box, 10, mode="nearest")
    assert set(near.unique().tolist()) == {0.0, 3.0}


def test_sample_rois_foreground_only_matches_ground_truth():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0]])
    props = torch.tensor([[0.0, 0.0, 10.0, 11.0], [50.0, 50.0, 60.0, 60.0], [21.0, 20.0, 40.0, 40.0]])
    rois, idx, fg = sample_rois(props, gt, 8, 0.25, foreground_only=True)
    assert fg.all() and sorted(idx.tolist()) == [0, 1] and len(rois) == 2
    rois, idx, fg = sample_rois(props, gt, 4, 0.25)               # one foreground at most, then background
    assert fg.tolist() == [True, False]
    assert rois[1].tolist() == [50.0, 50.0, 60.0, 60.0]
