"""`amodaldata convert` between annotation formats: detection, --from, --label-map, loss reports, refusals."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import main
from converters.convert import convert
from converters.kins import read_kins


def run(*args):
    return CliRunner().invoke(main, [*map(str, args), "--no-progress"])


def test_a_conversion_writing_no_region_says_why_and_how_to_fix_it(cocoa_json, tmp_path):
    result = run("convert", cocoa_json, "--to", "kins", "--out", tmp_path / "k.json")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {tmp_path / 'k.json'}: no region "
                                                                       f"written: all 48 regions read were dropped")
    assert "[no category named 'phone' x3, no category named 'elephant' x3, no category named 'espresso cup' x2, " \
           "and 30 more]" in result.stderr
    assert "map the names to kins categories with --label-map FILE" in result.stderr
    assert not (tmp_path / "k.json").exists() and not list(tmp_path.glob(".k.json*"))


def test_detected_input_and_reported_losses(cocoa_json, tmp_path):
    result = run("convert", cocoa_json, "--to", "kins", "--out", tmp_path / "k.json", "--allow-empty")
    assert result.exit_code == 0, result.output + result.stderr
    assert "wrote 5 scenes (0 regions)" in result.stdout and "(read 5 scenes, 48 regions)" in result.stdout
    assert "(input read as cocoa)" in result.stdout
    assert "lost: regions without a kins category, not written (map names with --label-map): 48 [" in result.stderr
    assert "no category named 'elephant' x3" in result.stderr and "no category named 'trash bin' x1" in result.stderr
    assert "lost: annotator names (kins has no annotator field): 5" in result.stderr
    assert json.loads((tmp_path / "k.json").read_text())["annotations"] == []


def test_label_map_file_fills_the_categories(cocoa_json, tmp_path):
    names = {r["name"] for a in json.loads(cocoa_json.read_text())["annotations"] for r in a["regions"]}
    label_map = tmp_path / "map.json"
    label_map.write_text(json.dumps({n: ("pedestrian" if "elephant" in n else 8) for n in names}))
    result = run("convert", "--from", "cocoa", cocoa_json, "--to", "kins-2020", "--label-map", label_map,
                 "--out", tmp_path / "k.json")
    assert result.exit_code == 0, result.stderr
    scenes = list(read_kins(tmp_path / "k.json"))
    assert sum(len(s.regions) for s in scenes) == 48
    assert sorted({r.name for s in scenes for r in s.regions}) == ["misc", "pedestrian"]
    assert "free-text names replaced by kins-2020 category names (via label map): 48" in result.stderr
    assert "'elephant' -> 'pedestrian' x3" in result.stderr


def test_source_gaps_are_reported(make_file, tmp_path):
    result = run("convert", "kins", make_file("kins"), "--to", "cocoa", "--out", tmp_path / "c.json")
    assert result.exit_code == 0, result.stderr
    assert "lost: kins has no thing/stuff flag: every region is written as a thing (isStuff 0)" in result.stderr
    assert "lost: category ids (cocoa holds free-text names only; the name is written): 6" in result.stderr


def test_refusals(cocoa_json, tmp_path):
    result = run("convert", cocoa_json, "--to", "cocoa", "--label-map", "cocoa-coco", "--out", tmp_path / "c.json")
    assert result.exit_code == 1
    assert "--label-map applies to formats with categories (cocoa-cls, d2sa, kins, kins-2020" in result.stderr
    assert "cocoa has none" in result.stderr
    result = run("convert", "kins", cocoa_json, "--from", "cocoa", "--to", "cocoa", "--out", tmp_path / "c.json")
    assert result.exit_code == 2 and "SRC_FORMAT 'kins' and --from 'cocoa' disagree" in result.stderr
    bad = tmp_path / "bad_map.json"
    bad.write_text("[]")
    result = run("convert", cocoa_json, "--to", "kins", "--label-map", bad, "--out", tmp_path / "k.json")
    assert result.exit_code == 1 and "label map must be a JSON object" in result.stderr
    (tmp_path / "exists.json").write_text("{}")
    result = run("convert", cocoa_json, "--to", "bsds", "--out", tmp_path / "exists.json")
    assert result.exit_code == 1 and "pass --overwrite" in result.stderr
    assert not (tmp_path / "k.json").exists() and not (tmp_path / "c.json").exists()


def test_library_report_carries_the_detected_format_and_losses(make_file, tmp_path):
    report = convert(None, make_file("bsds"), "cocoa-cls", tmp_path / "o.json")
    assert report.source_format == "bsds" and (report.read_scenes, report.scenes) == (3, 2)
    assert (report.read_regions, report.regions) == (10, 4)       # no COCO class for "grass" and "table"
    assert any(line.startswith("further annotations of an image already written (cocoa-cls holds one per image")
               for line in report.losses)


def test_layered_with_a_label_map_of_names(cocoa_json, tmp_path):
    """The built-in cocoa-coco map sends names to COCO class names: they become COCO class ids."""
    import numpy as np

    result = run("convert", cocoa_json, "--to", "layered", "--label-map", "cocoa-coco", "--out", tmp_path / "l")
    assert result.exit_code == 0, result.stderr
    index = [json.loads(line) for line in (tmp_path / "l" / "index.jsonl").read_text().splitlines()]
    donut = next(r for r in index if r["image_id"] == 343254)
    classes = np.load(tmp_path / "l" / donut["file"])["region_classes"]
    assert classes[0] == 60                      # 'doughnut' -> 'donut', COCO id 60
    assert "lost: regions whose name the label map lacks, written as class 1: 47" in result.stderr
    bad = tmp_path / "names.json"
    bad.write_text(json.dumps({"doughnut": "pastry"}))
    result = run("convert", cocoa_json, "--to", "layered", "--label-map", bad, "--out", tmp_path / "l2")
    assert result.exit_code == 1 and "label map sends 'doughnut' to 'pastry': layered masks hold integer " \
                                      "classes" in result.stderr
    assert not (tmp_path / "l2").exists()
