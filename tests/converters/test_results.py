"""The COCO results format, read and written: masks as RLE or polygons, optional fields, typed errors naming the entry."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from amodaldata.errors import AnnotationError, GeometryError
from amodaldata.evaluation.predictions import image_sizes
from converters.results import (as_results, decode_semdist, encode_semdist, quantise_semdist, read_results,
                                write_results)
from amodaldata.masks import Mask
from amodaldata.scene import Scene


def write(tmp_path, entries) -> str:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(entries))
    return path


def test_reads_rle_polygons_and_optional_fields(tmp_path, make_box):
    square = make_box(20, 30, 2, 2, 8, 8)
    np.save(tmp_path / "sd.npy", np.zeros((20, 30), np.float32))
    path = write(tmp_path, [
        {"image_id": 7, "segmentation": square.to_rle(), "score": 0.9, "category_id": 3,
         "visible": make_box(20, 30, 2, 2, 8, 5).to_rle(), "order": 2, "semdist": "sd.npy"},
        {"image_id": 7, "segmentation": [[2, 2, 8, 2, 8, 8, 2, 8]], "score": 1, "visible_mask": [2, 2, 5, 2, 5, 5]},
        {"image_id": 8, "segmentation": [1, 1, 4, 1, 4, 4], "score": 0.1},
    ])
    got = read_results(path, {"7": (20, 30)})
    first, second = got.predictions
    assert first.mask == square and first.score == 0.9 and first.category_id == 3 and first.order == 2
    assert first.visible.area() == 18 and first.load_semdist().shape == (20, 30)
    assert (first.index, second.index) == (0, 1)
    assert second.mask.encoding == "polygon" and second.visible is not None and second.order is None
    assert got.unknown_images == {"8": 1} and got.dropped == 1


def test_image_ids_match_by_text(tmp_path, make_box):
    scenes = [Scene("12", 20, 30, [])]
    path = write(tmp_path, [{"image_id": 12, "segmentation": make_box(20, 30, 0, 0, 3, 3).to_rle(), "score": 1}])
    assert len(read_results(path, image_sizes(scenes)).predictions) == 1
    assert len(read_results(path, scenes).predictions) == 1                # the scenes themselves will do


@pytest.mark.parametrize("entry, error, message", [
    ({"image_id": 7, "segmentation": [1, 1, 4, 1, 4, 4]}, AnnotationError, "no 'score'"),
    ({"image_id": 7, "score": 0.5}, AnnotationError, "no 'segmentation'"),
    ({"segmentation": [1, 1, 4, 1, 4, 4], "score": 0.5}, AnnotationError, "no 'image_id'"),
    ({"image_id": 7, "segmentation": [1, 1, 4, 1], "score": 0.5}, GeometryError, "'segmentation': polygon 0"),
    ({"image_id": 7, "segmentation": {"size": [10, 10], "counts": "a"}, "score": 0.5}, GeometryError,
     "disagrees with the image size"),
    ({"image_id": 7, "segmentation": [1, 1, 4, 1, 4, 4], "score": "high"}, AnnotationError, "must be int/float"),
    ({"image_id": 7, "segmentation": [1, 1, 4, 1, 4, 4], "score": float("nan")}, AnnotationError, "finite"),
    ({"image_id": 7, "segmentation": [1, 1, 4, 1, 4, 4], "score": 1, "order": 0}, AnnotationError, "positive rank"),
    ({"image_id": 7, "segmentation": [1, 1, 4, 1, 4, 4], "score": 1, "visible": [1, 2]}, GeometryError,
     "'visible'"),
    ({"image_id": 7, "segmentation": [1, 1, 4, 1, 4, 4], "score": 1, "semdist": "missing.npy"}, AnnotationError,
     "not found"),
])
def test_bad_entries_name_file_image_and_entry(tmp_path, entry, error, message):
    path = write(tmp_path, [{"image_id": 7, "segmentation": [1, 1, 4, 1, 4, 4], "score": 1}, entry])
    with pytest.raises(error, match=message) as err:
        read_results(path, {"7": (20, 30)})
    text = str(err.value)
    assert str(path) in text and "annotation entry 1" in text
    if "image_id" in entry:
        assert "image 7" in text


def test_bad_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    with pytest.raises(AnnotationError, match="malformed JSON"):
        read_results(bad, {})
    bad.write_text('{"x": 1}')
    with pytest.raises(AnnotationError, match="JSON list of detections"):
        read_results(bad, {})
    with pytest.raises(AnnotationError, match="no such file"):
        read_results(tmp_path / "none.json", {})


def test_semdist_of_the_wrong_shape(tmp_path):
    np.save(tmp_path / "sd.npy", np.zeros((5, 5), np.float32))
    path = write(tmp_path, [{"image_id": 7, "segmentation": [1, 1, 4, 1, 4, 4], "score": 1, "semdist": "sd.npy"}])
    pred, = read_results(path, {"7": (20, 30)}).predictions
    with pytest.raises(AnnotationError, match="shape"):
        pred.load_semdist()
    assert isinstance(pred.mask, Mask)


def test_inline_semdist_keeps_the_levels_and_the_confidence_to_1_256():
    m = np.zeros((20, 30), np.float32)
    m[2:12, 5:25] = 0.7                                       # visible, C = 0.7
    m[6:10, 8:14] = 0.6 - 2                                   # hidden behind two regions
    m[15, 1] = -1.0                                           # level 1, C = 0
    enc = encode_semdist(m)
    assert enc["size"] == [20, 30] and enc["box"] == [1, 2, 25, 16]
    back = decode_semdist(json.loads(json.dumps(enc)))
    assert np.array_equal(np.floor(back), np.floor(m))                   # levels exact
    assert np.abs(back - m).max() <= 0.5 / 256 + 1e-6                    # confidence to 1/256
    assert np.array_equal(back, quantise_semdist(m)) and np.array_equal(decode_semdist(encode_semdist(back)), back)
    assert np.array_equal(quantise_semdist(np.full((2, 2), 0.999, np.float32)), np.full((2, 2), 255 / 256))
    assert not decode_semdist(encode_semdist(np.zeros((4, 4)))).any()
    with pytest.raises(ValueError, match="levels must lie in 0..255"):
        encode_semdist(np.full((2, 2), -300.0))


def test_inline_semdist_errors_name_the_entry(tmp_path):
    enc = encode_semdist(np.full((20, 30), 0.75, np.float32))
    entry = {"image_id": 7, "segmentation": [1, 1, 4, 1, 4, 4], "score": 1}
    with pytest.raises(AnnotationError, match=r"inline sem-dist map has size \[20, 30\], the image \[10, 30\]"):
        read_results(write(tmp_path, [{**entry, "semdist": enc}]), {"7": (10, 30)})
    path = write(tmp_path, [{**entry, "semdist": {**enc, "png": "not base64!"}},
                            {**entry, "semdist": {**enc, "box": [0, 0, 31, 20]}}])
    bad_png, bad_box = read_results(path, {"7": (20, 30)}).predictions
    with pytest.raises(AnnotationError, match="entry 0.*bad inline sem-dist map: 'png' is not a base64 PNG"):
        bad_png.load_semdist()
    with pytest.raises(AnnotationError, match="entry 1.*outside the 20x30 map"):
        bad_box.load_semdist()


def test_prediction_shards_score_like_the_json_results(tmp_path, cocoa_json):
    from amodaldata.evaluation import evaluate_segmentation
    from amodaldata.shards import write_shards
    from converters.cocoa import read_cocoa

    gt = list(read_cocoa(cocoa_json))
    preds = list(read_cocoa(cocoa_json))
    for scene in preds:
        for k, region in enumerate(scene.regions):
            region.extra = {"score": 1.0 - 0.01 * k}
    write_shards(preds, tmp_path / "preds", split="test")
    from_shards = read_results(tmp_path / "preds", image_sizes(gt))
    assert len(from_shards.predictions) == sum(len(s.regions) for s in gt)
    assert from_shards.predictions[1].score == pytest.approx(0.99)
    entries = [{"image_id": s.id, "segmentation": r.amodal.to_rle(), "score": r.extra["score"]}
               for s in preds for r in s.regions]
    from_json = read_results(write(tmp_path, entries), image_sizes(gt))
    a = [b.to_dict() for b in evaluate_segmentation(gt, from_shards).buckets]
    b = [b.to_dict() for b in evaluate_segmentation(gt, from_json).buckets]
    assert a == b and a[0]["AP"] == pytest.approx(1.0)


def test_prediction_shards_with_a_bad_score_name_the_region(tmp_path, cocoa_json):
    from amodaldata.shards import write_shards
    from converters.cocoa import read_cocoa

    preds = list(read_cocoa(cocoa_json))
    preds[0].regions[1].extra = {"score": "high"}
    write_shards(preds, tmp_path / "preds")
    with pytest.raises(AnnotationError, match="image 188819, region 2: 'score' must be a finite number"):
        read_results(tmp_path / "preds", image_sizes(preds))


def test_written_results_read_back_field_for_field(tmp_path, make_box):
    from amodaldata.evaluation.predictions import Prediction

    semdist = quantise_semdist(np.where(make_box(20, 30, 2, 2, 8, 8).to_bitmap(), 0.75, 0.0))
    preds = [Prediction(7, make_box(20, 30, 2, 2, 8, 8), 0.9, 3, make_box(20, 30, 2, 2, 8, 5),
                        make_box(20, 30, 2, 5, 8, 8), order=1, semdist=semdist),
             Prediction(7, make_box(20, 30, 0, 0, 3, 3), 0.25)]
    path = write_results(preds, tmp_path / "out" / "results.json")
    entries = json.loads(path.read_text())
    assert entries == as_results(preds)
    assert entries[0]["bbox"] == [2.0, 2.0, 6.0, 6.0] and "visible" not in entries[1]
    back = read_results(path, {"7": (20, 30)}).predictions
    for a, b in zip(preds, back):
        assert (b.image_id, b.mask, b.score, b.category_id, b.order) == (a.image_id, a.mask, a.score,
                                                                          a.category_id, a.order)
        assert b.visible == a.visible and b.occluded == a.occluded
    assert np.array_equal(back[0].load_semdist(), semdist) and back[1].semdist is None
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]        # no temporary left


def test_eval_simulate_writes_results_that_eval_scores(tmp_path, cocoa_json):
    from click.testing import CliRunner

    from cli import main

    out = tmp_path / "pred.json"
    res = CliRunner().invoke(main, ["eval", "simulate", str(cocoa_json), "--out", str(out), "--seed", "1"])
    assert res.exit_code == 0, res.output
    n = len(json.loads(out.read_text()))
    assert f"({n} detections)" in res.output and n > 0
    scored = CliRunner().invoke(main, ["eval", str(cocoa_json), str(out)])
    assert scored.exit_code == 0, scored.output
    ap = float(re.search(r"^all\s+\d+\s+([\d.]+)", scored.output, re.M)[1])
    assert 0.0 < ap < 1.0                         # the simulated errors cost AP, and it still finds most regions
