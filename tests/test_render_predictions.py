"""`show --pred`: matched, missed and false-positive regions in their documented colours (pixels of a rendered
synthetic case), the counts and recall, and the `--worst` gallery ordered by recall."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from amodaldata import render as R
from amodaldata.evaluation.predictions import Prediction
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from amodaldata.shards import write_shards
from cli import main

STYLE = R.RenderStyle()
H, W = 40, 60


def _box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    out = np.zeros((H, W), bool)
    out[y0:y1, x0:x1] = True
    return out


def _scene(image_id: object = "case") -> Scene:
    """Region 1 (found), region 2 (missed), no image (a grey canvas)."""
    return Scene(id=image_id, height=H, width=W,
                 regions=[Region(1, Mask.from_bitmap(_box(4, 20, 4, 28)), name="found"),
                          Region(2, Mask.from_bitmap(_box(24, 38, 34, 56)), name="missed")],
                 order=OcclusionOrder(set()))


def _predictions(image_id: object = "case") -> list[Prediction]:
    """A match of region 1 whose predicted visible part is its left half, and a false positive without one."""
    return [Prediction(image_id, Mask.from_bitmap(_box(4, 20, 4, 28)), 0.9,
                       visible=Mask.from_bitmap(_box(4, 20, 4, 16)),
                       index=0),
            Prediction(image_id, Mask.from_bitmap(_box(26, 38, 4, 24)), 0.8, index=1)]


def _inside(mask: np.ndarray, margin: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(margin):
        p = np.pad(out, 1)
        out = out & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return out


def _blend(colour: tuple[int, int, int]) -> np.ndarray:
    grey = np.asarray(R.BACKGROUND_GREY, float)
    return (grey * (1 - STYLE.fill_alpha) + np.asarray(colour, float) * STYLE.fill_alpha).astype(np.uint8)


def test_matched_missed_and_false_positives_in_their_colours():
    overlay = R.render_predictions(_scene(), _predictions(), zoom=3)
    assert (overlay.matched, overlay.missed, overlay.false_positives, overlay.recall) == (1, 1, 1, 0.5)
    x0, y0 = overlay.origin
    picture = np.asarray(overlay.picture)[y0:y0 + 3 * H:3, x0:x0 + 3 * W:3]      # one pixel per image pixel
    ys, xs = np.mgrid[:H, :W]
    stripe = (xs + ys) % STYLE.hatch_period < STYLE.hatch_width
    grey = np.asarray(R.BACKGROUND_GREY, np.uint8)
    margin = STYLE.outline + 1
    # matched: the predicted visible part filled, the predicted occluded part hatched, in MATCHED
    visible = _inside(_box(4, 20, 4, 16), margin)
    assert (picture[visible] == _blend(R.MATCHED)).all()
    occluded = _inside(_box(4, 20, 16, 28), margin)
    assert (picture[occluded & stripe] == R.MATCHED).all() and (picture[occluded & ~stripe] == grey).all()
    # ... with the ground truth's outline in white over the prediction's
    assert (picture[_box(4, 20, 4, 28) & ~_inside(_box(4, 20, 4, 28), 1)] == R.GT_OUTLINE).all()
    # missed: hatched in MISSED
    missed = _inside(_box(24, 38, 34, 56), margin)
    assert (picture[missed & stripe] == R.MISSED).all() and (picture[missed & ~stripe] == grey).all()
    # false positive without a visible mask: filled whole in FALSE_POSITIVE, outlined
    false_pos = _box(26, 38, 4, 24)
    assert (picture[_inside(false_pos, margin)] == _blend(R.FALSE_POSITIVE)).all()
    assert (picture[false_pos & ~_inside(false_pos, STYLE.outline)] == R.FALSE_POSITIVE).all()
    # and nothing else is coloured
    drawn = _box(4, 20, 4, 28) | _box(24, 38, 34, 56) | false_pos
    assert (picture[~drawn] == grey).all()


def test_class_aware_matching_turns_a_wrong_class_into_a_miss_and_a_false_positive():
    scene = _scene()
    for region in scene.regions:
        region.category_id = 1
    preds = _predictions()
    preds[0].category_id = 2
    preds[1].category_id = 1
    assert R.render_predictions(scene, preds).matched == 1
    aware = R.render_predictions(scene, preds, class_aware=True)
    assert (aware.matched, aware.missed, aware.false_positives) == (0, 2, 2)


def _write_case(tmp_path) -> tuple:
    """Three images: all found, one of two found, none found (recall 1, .5, 0)."""
    scenes = [_scene(1), _scene(2), _scene(3)]
    entries = []
    for image_id, keep in ((1, (0, 1)), (2, (0,)), (3, ())):
        for rid in keep:
            mask = scenes[0].regions[rid].amodal
            entries.append({"image_id": image_id, "segmentation": mask.to_rle(), "score": 0.9})
    write_shards(scenes, tmp_path / "gt")
    (tmp_path / "pred.json").write_text(json.dumps(entries))
    return tmp_path / "gt", tmp_path / "pred.json"


def test_show_pred_draws_one_image_and_worst_draws_the_gallery(tmp_path):
    gt, pred = _write_case(tmp_path)
    runner = CliRunner()
    out = tmp_path / "one.png"
    res = runner.invoke(main, ["show", str(gt), "--from", "parquet", "--pred", str(pred), "--image-id", "2",
                               "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "recall 0.50" in res.output
    colours = {tuple(c) for c in np.asarray(Image.open(out).convert("RGB")).reshape(-1, 3)}
    assert tuple(_blend(R.MATCHED)) in colours and R.MISSED in colours
    res = runner.invoke(main, ["show", str(gt), "--from", "parquet", "--pred", str(pred), "--worst", "2",
                               "--out", str(tmp_path / "gallery")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "gallery").iterdir()) == ["worst-001-image-3.png",
                                                                       "worst-002-image-2.png"]
    assert "(recall 0/2)" in res.output and "(recall 1/2)" in res.output


@pytest.mark.parametrize("args, message", [([], "either --image-id or --worst"),
                                           (["--image-id", "1", "--worst", "2"], "either --image-id or --worst"),
                                           (["--worst", "2", "--no-pred"], "ranks the images")])
def test_show_refuses_unclear_requests(tmp_path, args, message):
    gt, pred = _write_case(tmp_path)
    with_pred = [] if "--no-pred" in args else ["--pred", str(pred)]
    args = [a for a in args if a != "--no-pred"]
    res = CliRunner().invoke(main, ["show", str(gt), "--from", "parquet", *with_pred, *args, "--out",
                                    str(tmp_path / "x.png")])
    assert res.exit_code == 2 and message in res.output
