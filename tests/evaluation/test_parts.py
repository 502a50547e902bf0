"""Scoring the visible and occluded parts (Yin 2021, Table 1): predicted parts against the same parts of the
ground truth, unoccluded regions ignored for the occluded part, and the command's --part all summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from amodaldata.errors import AnnotationError
from amodaldata.evaluation import Prediction, evaluate_segmentation
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from cli import main

ONE = pytest.approx(1.0, abs=1e-12)


def _box(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((30, 40), bool)
    m[y0:y1, x0:x1] = True
    return m


def scene() -> Scene:
    """Region 1 (front) hides the right part of region 2; region 3 stands alone."""
    front, back, alone = _box(5, 12, 20, 24), _box(5, 2, 20, 18), _box(22, 30, 28, 38)
    regions = [Region(1, Mask.from_bitmap(front)), Region(2, Mask.from_bitmap(back)), Region(3, Mask.from_bitmap(alone))]
    return Scene(1, 30, 40, regions, order=OcclusionOrder({(1, 2)}))


def perfect(s: Scene, with_occluded: bool = True) -> list[Prediction]:
    stack = s.layers
    out = []
    for k, r in enumerate(s.regions):
        visible = stack.visible(r.id)
        occluded = Mask.from_bitmap(stack.amodal(r.id) & ~visible) if with_occluded else None
        out.append(Prediction(1, r.amodal, 0.9 - 0.1 * k, visible=Mask.from_bitmap(visible), occluded=occluded))
    return out


@pytest.mark.parametrize("with_occluded", [True, False])
def test_perfect_parts_score_one_and_the_occluded_part_ignores_unoccluded_regions(with_occluded):
    s = scene()
    preds = perfect(s, with_occluded)
    for part in ("amodal", "visible", "occluded"):
        res = evaluate_segmentation([s], preds, part=part)
        assert res.overall.ap == ONE, part
        assert res.gt_mask == ("amodal" if part == "amodal" else part)
    occluded = evaluate_segmentation([s], preds, part="occluded")
    assert occluded.overall.n_gt == 1                   # only region 2 has an occluded part


def test_a_wrong_visible_part_costs_visible_ap_only():
    s = scene()
    preds = perfect(s)
    preds[1].visible = preds[1].mask                   # region 2 predicted fully visible
    assert evaluate_segmentation([s], preds).overall.ap == ONE
    assert evaluate_segmentation([s], preds, part="visible").overall.ap < 0.7
    # an occluded part predicted where the region has none is a false positive, not ignored
    preds = perfect(s)
    preds[2].occluded = Mask.from_bitmap(_box(22, 30, 28, 34))
    res = evaluate_segmentation([s], preds, part="occluded")
    assert res.overall.ap == ONE                        # ranked after the true positive: AP keeps 1
    preds[2].score = 0.99                               # ranked first: precision drops
    assert evaluate_segmentation([s], preds, part="occluded").overall.ap < 1


def test_a_part_needs_visible_masks():
    s = scene()
    with pytest.raises(AnnotationError, match="needs a 'visible' mask"):
        evaluate_segmentation([s], [Prediction(1, s.regions[0].amodal, 0.9)], part="visible")


def test_eval_part_all_prints_the_table_1_summary(tmp_path):
    from converters import write
    s = scene()
    gt = tmp_path / "gt.json"
    write([s], gt, format="cocoa")
    records = [{"image_id": 1, "segmentation": p.mask.to_rle(), "visible": p.visible.to_rle(),
                "occluded": p.occluded.to_rle(), "score": p.score} for p in perfect(s)]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(records))
    out = tmp_path / "parts.json"
    result = CliRunner().invoke(main, ["eval", str(gt), str(pred), "--from", "cocoa", "--part", "all", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "-- visible part" in result.output and "-- occluded part" in result.output
    assert "summary (Yin 2021, Table 1 layout" in result.output
    assert "amodal AP of regions occluded > 0.15: 1.0000" in result.output
    data = json.loads(out.read_text())
    assert set(data) == {"amodal", "visible", "occluded"}
    assert data["occluded"]["protocol"]["gt_mask"] == "occluded"
