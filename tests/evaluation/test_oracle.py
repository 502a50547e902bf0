"""The K-layer oracle (Liu et al. 2019, Table 2): masks from the first K layers of the stack, scored against the GT."""

from __future__ import annotations

import numpy as np
import pytest

from amodaldata.evaluation import evaluate_oracle, layer_predictions
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from converters import read, write


@pytest.fixture
def half_hidden(make_box) -> Scene:
    """Region 1 in front hides the left half of region 2; region 3, behind both, is hidden under two layers
    on its left quarter; region 4 lies under all three (visibility level 3)."""
    return Scene(1, 20, 40, [
        Region(1, make_box(20, 40, 0, 0, 10, 10)),
        Region(2, make_box(20, 40, 0, 0, 10, 20)),
        Region(3, make_box(20, 40, 0, 0, 10, 40)),
        Region(4, make_box(20, 40, 2, 2, 8, 8)),
    ], OcclusionOrder({(1, 2), (2, 3), (1, 4)}))


def test_layer_predictions_read_the_stack(half_hidden):
    stack = half_hidden.layers
    one = layer_predictions(half_hidden, 1)
    assert [p.index for p in one] == [0, 1, 2]              # region 4 has nothing in the first layer
    for pred, region in zip(one, half_hidden.regions):
        assert np.array_equal(pred.mask.to_bitmap(), stack.visible(region.id))
    assert [p.score for p in one] == [1.0, 0.5, 0.5]
    two = layer_predictions(half_hidden, 2)
    assert [p.score for p in two] == [1.0, 1.0, 0.75]
    assert two[0].mask is half_hidden.regions[0].amodal      # nothing deeper: the amodal mask itself
    assert [p.score for p in layer_predictions(half_hidden, 4)] == [1.0] * 4
    with pytest.raises(ValueError):
        layer_predictions(half_hidden, 0)


def test_scores_per_k_by_hand(half_hidden):
    res = evaluate_oracle([half_hidden], layers=[4, 1, 2])
    assert res.layers == [1, 2, 4]
    k1, k2, k4 = (r.overall for r in res.results)
    # K=1: region 1 exact, regions 2 and 3 at IoU 0.5 (true positives at .50 only), region 4 missed
    assert k1.ap50 == pytest.approx(76 / 101)              # precision 1 up to recall 0.75
    assert k1.ar[100] == pytest.approx((3 / 4 + 9 * 1 / 4) / 10)
    # K=2: regions 1 and 2 exact, region 3 at IoU 0.75 (true positive up to .75), region 4 missed
    assert k2.ar[100] == pytest.approx((6 * 3 / 4 + 4 * 2 / 4) / 10)
    assert k4.ap == pytest.approx(1.0) and k4.ar[100] == 1.0
    assert k1.ap < k2.ap < k4.ap


def test_real_cocoa_and_shards_agree(cocoa_json, tmp_path):
    scenes = list(read(cocoa_json, format="cocoa"))
    res = evaluate_oracle(scenes)
    aps = [r.overall.ap for r in res.results]
    assert res.layers == [1, 2, 3, 4, 5]
    assert aps == sorted(aps) and aps[0] < 0.9 and aps[-1] == pytest.approx(1.0)
    assert res.results[0].bucket("all, none [0, 1e-05]").ap == pytest.approx(1.0)   # unoccluded: exact at K=1
    write(scenes, tmp_path / "shards", format="parquet")
    again = evaluate_oracle(read(tmp_path / "shards", format="parquet"))
    assert [r.overall.ap for r in again.results] == aps
    assert again.to_dict()["layers"][0]["K"] == 1


def test_each_annotator(half_hidden, make_box):
    other = Scene(1, 20, 40, [Region(1, make_box(20, 40, 0, 0, 10, 10))], annotator="b")
    res = evaluate_oracle([half_hidden, other], layers=[1], annotator="each")
    assert res.results[0].annotator_sets == 2
    first = evaluate_oracle([half_hidden], layers=[1]).results[0].overall.ap
    assert res.results[0].overall.ap == pytest.approx((first + 1.0) / 2)


def test_generated_shapes_class_aware():
    from generators.shapes import ShapesConfig, generate_scene

    rng = np.random.default_rng(0)
    scenes = [generate_scene(ShapesConfig(size=64, per_class=(2, 2)), rng, i) for i in range(4)]
    res = evaluate_oracle(scenes, layers=[1, 2, 10], class_aware=True)
    aps = [r.overall.ap for r in res.results]
    assert aps[0] < aps[1] <= aps[2] == pytest.approx(1.0)
    assert res.results[0].class_aware and res.results[0].overall.n_gt == sum(len(s.regions) for s in scenes)


#: Liu et al. (2019), Table 2 (N = 6 instances per class): K -> (AP, AP50, AP75, AR100) of the K-layer oracle.
PAPER_TABLE_2 = {2: (0.8584, 0.9604, 0.8614, 0.8627), 3: (0.9703, 0.9901, 0.9802, 0.9744)}


def test_paper_shapes_oracle_reproduces_table_2():
    """On 200 scenes of the paper's shapes setting, the K-layer oracle scores what Liu et al.'s (2019) Table 2 reports,
    to 0.02 (the paper's own test set was 1,000 other random scenes)."""
    from generators.shapes import PAPER, generate_scene

    rng = np.random.default_rng(0)
    scenes = [generate_scene(PAPER, rng, i) for i in range(200)]
    res = evaluate_oracle(scenes, layers=list(PAPER_TABLE_2))
    for k, result in zip(res.layers, res.results):
        o = result.overall
        ours = (o.ap, o.ap50, o.ap75, o.ar[100])
        assert ours == pytest.approx(PAPER_TABLE_2[k], abs=0.02), (k, ours)
