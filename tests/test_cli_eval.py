"""`amodaldata eval`: the default segmentation form, `eval order`, `eval oracle`, outputs and errors."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from amodaldata.evaluation.order import ground_truth_predictions
from cli import main
from converters import read, write


@pytest.fixture
def results_file(cocoa_json, tmp_path):
    """The real COCOA regions as a COCO results file, with depth ranks and distinct scores."""
    entries = []
    for scene in read(cocoa_json, format="cocoa"):
        for p in ground_truth_predictions(scene):
            entries.append({"image_id": p.image_id, "segmentation": p.mask.to_rle(), "score": 1 - 0.01 * p.order,
                            "order": p.order})
    path = tmp_path / "results.json"
    path.write_text(json.dumps(entries))
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_eval_gt_pred_is_the_segmentation_form(cocoa_json, results_file, tmp_path):
    out_json, out_csv = tmp_path / "out" / "scores.json", tmp_path / "matches.csv"
    res = run("eval", cocoa_json, results_file, "--json", out_json, "--csv", out_csv)
    assert res.exit_code == 0, res.output
    for text in ("class-agnostic", "first annotation of each image", "AP at 1000 detections",
                 "all, partial [1e-05, 0.25]", "things, heavy [0.25, 1]", "all, occluded > 0.15", "AR1000"):
        assert text in res.output
    data = json.loads(out_json.read_text())
    assert data["protocol"]["annotator"] == "first" and data["buckets"][0]["AP"] == pytest.approx(1.0)
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 48 and {r["at50"] for r in rows} == {"tp"}
    explicit = run("eval", "segm", cocoa_json, results_file)
    assert explicit.exit_code == 0 and explicit.output.splitlines()[:8] == res.output.splitlines()[:8]


def test_options_before_the_paths(cocoa_json, results_file):
    res = run("eval", "--gt-mask", "visible", "--annotator", "each", "--max-dets", "100,1", cocoa_json,
              results_file)
    assert res.exit_code == 0, res.output
    assert "visible masks" in res.output and "each annotator" in res.output and "AR1000" not in res.output


def test_eval_order(cocoa_json, results_file, tmp_path):
    res = run("eval", "order", cocoa_json, results_file, "--json", tmp_path / "o.json", "--csv", tmp_path / "p.csv")
    assert res.exit_code == 0, res.output
    assert "predicted order from: order" in res.output and "ground truth as input" in res.output
    data = json.loads((tmp_path / "o.json").read_text())
    assert data["model"]["accuracy"] == 1.0 and data["baselines"][2]["accuracy"] == 1.0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert rows and {r["verdict"] for r in rows} == {"correct"}


def test_eval_oracle_on_json_and_shards(cocoa_json, tmp_path):
    res = run("eval", "oracle", cocoa_json, "--layers", "1-2", "--json", tmp_path / "k.json")
    assert res.exit_code == 0, res.output
    lines = [line.split() for line in res.output.splitlines()]
    assert [line[0] for line in lines if line and line[0] in ("1", "2", "3")] == ["1", "2"]
    write(read(cocoa_json, format="cocoa"), tmp_path / "shards", format="parquet")
    shards = run("eval", "oracle", tmp_path / "shards", "--layers", "1,2")
    assert shards.exit_code == 0, shards.output
    assert shards.output.splitlines()[-2:] == res.output.splitlines()[-3:-1]


def test_bad_predictions_fail_in_one_line(cocoa_json, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 6608, "segmentation": [1, 2, 3], "score": 0.5}]))
    res = CliRunner().invoke(main, ["eval", str(cocoa_json), str(bad), "--json", str(tmp_path / "x.json")])
    assert res.exit_code == 1
    assert "bad.json" in res.output and "image 6608" in res.output and "entry 0" in res.output
    assert not (tmp_path / "x.json").exists()


def test_group_help_and_bad_options(cocoa_json):
    helped = run("eval", "--help")
    assert helped.exit_code == 0 and "order" in helped.output and "oracle" in helped.output
    res = CliRunner().invoke(main, ["eval", "oracle", str(cocoa_json), "--layers", "0-2"])
    assert res.exit_code == 2 and "layer counts start at 1" in res.output
