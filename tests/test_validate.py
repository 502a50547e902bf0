"""amodaldata.validate on the real COCOA files, the report's shape, and --fix with shapely's make_valid."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from pycocotools import mask as cocomask

from amodaldata.data import COCOA_DEMO_DIR, COCOA_DEMO_JSON
from amodaldata.validate import EXAMPLES, LAYOUTS, validate_file
from cli import main
from converters.cocoa import read_cocoa

BOWTIE = [30.0, 23.0, 36.0, 28.0, 36.0, 23.0, 30.0, 28.0]


def test_the_real_release_and_per_image_files_are_clean():
    report = validate_file(COCOA_DEMO_JSON, LAYOUTS["cocoa"], images=COCOA_DEMO_DIR)
    assert report.clean and (report.images, report.annotations, report.regions) == (5, 5, 48)
    for n in range(1, 6):
        assert validate_file(COCOA_DEMO_DIR / f"{n}.json", LAYOUTS["cocoa"], images=COCOA_DEMO_DIR).clean
    single = validate_file(COCOA_DEMO_DIR / "1.json", LAYOUTS["cocoa"])
    assert single.counts == {"schema": 1}
    assert "image size unknown" in single.examples["schema"][0].message


def test_counts_and_first_examples(cocoa_raw, tmp_path):
    for ann in cocoa_raw["annotations"]:
        for region in ann["regions"]:
            region["area"] += 1
    path = tmp_path / "areas.json"
    path.write_text(json.dumps(cocoa_raw))
    report = validate_file(path, LAYOUTS["cocoa"])
    assert report.counts == {"area": 48}
    assert len(report.examples["area"]) == EXAMPLES
    lines = report.lines()
    assert lines[1] == "48 x stored area disagreeing with the mask [area]"
    assert lines[2] == "    image 188819, annotation 377, region 1: area 103075 but the mask has 103074 pixel(s)"


def test_fix_repairs_self_intersections_into_a_readable_file(cocoa_raw, tmp_path):
    first = cocoa_raw["annotations"][0]["regions"][0]["segmentation"]
    cocoa_raw["annotations"][0]["regions"][0]["segmentation"] = first[:8] + [first[2], first[3] + 40.0] + first[8:]
    cocoa_raw["annotations"][2]["regions"][3]["segmentation"] = [v + 100.0 for v in BOWTIE]
    path = tmp_path / "twisted.json"
    path.write_text(json.dumps(cocoa_raw))
    before = validate_file(path, LAYOUTS["cocoa"])
    assert before.counts["self-intersection"] == 2 and not before.clean
    fixed = tmp_path / "fixed.json"
    report = validate_file(path, LAYOUTS["cocoa"], fix_out=fixed)
    assert report.fixed == 2 and report.fixed_file == fixed
    after = validate_file(fixed, LAYOUTS["cocoa"])
    assert "self-intersection" not in after.counts
    bowtie = json.loads(fixed.read_text())["annotations"][2]["regions"][3]["segmentation"]
    assert len(bowtie) == 2 and all(len(p) == 6 for p in bowtie)      # two triangles, a list of lists
    assert len(list(read_cocoa(fixed))) == 5


def test_cli_fix_and_refusals(tmp_path):
    area = int(cocomask.area(cocomask.frPyObjects([BOWTIE], 30, 40))[0])
    region = {"segmentation": BOWTIE, "name": "bow", "area": area, "isStuff": 0, "occlude_rate": 0, "order": 1}
    path = tmp_path / "twisted.json"
    path.write_text(json.dumps({"images": [{"id": 1, "width": 40, "height": 30}],
                                "annotations": [{"id": 1, "image_id": 1, "regions": [region]}]}))
    runner = CliRunner()
    result = runner.invoke(main, ["validate", str(path)])
    assert result.exit_code == 1 and "fits several formats (cocoa, bsds)" in result.stderr
    result = runner.invoke(main, ["validate", str(path), "--from", "cocoa", "--fix", "--out", str(tmp_path / "f.json")])
    assert result.exit_code == 0, result.output
    assert "repaired 1 self-intersecting polygon(s) with shapely.make_valid" in result.stdout
    result = runner.invoke(main, ["validate", str(path), "--from", "bsds"])
    assert result.exit_code == 1 and "1 x self-intersecting polygons [self-intersection]" in result.stdout
    result = runner.invoke(main, ["validate", str(path), "--fix"])
    assert result.exit_code == 2 and "--fix and --out go together" in result.stderr


def test_shards_are_not_validated_here(tmp_path):
    from converters.parquet import write_parquet

    write_parquet(read_cocoa(COCOA_DEMO_JSON), tmp_path / "s")
    shard = next((tmp_path / "s").glob("*.parquet"))
    result = CliRunner().invoke(main, ["validate", str(shard)])
    assert result.exit_code == 1 and "validate checks the annotation formats" in result.stderr


@pytest.mark.parametrize("fmt", ["cocoa-cls", "kins", "d2sa"])
def test_written_files_validate_clean(fmt, tmp_path):
    from converters import WRITERS

    names = {r.name for s in read_cocoa(COCOA_DEMO_JSON) for r in s.regions}
    label_map = {n: 1 for n in names}
    WRITERS[fmt](read_cocoa(COCOA_DEMO_JSON), tmp_path / "o.json", label_map=label_map)
    assert validate_file(tmp_path / "o.json", LAYOUTS[fmt]).clean
