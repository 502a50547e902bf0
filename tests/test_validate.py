"""converters.validate on the real COCOA files, the report's shape, --fix with shapely's make_valid, and the
checks of Parquet shards written from COCOA and the shapes generator, clean and corrupted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from pycocotools import mask as cocomask

from amodaldata.data import COCOA_DEMO_DIR, COCOA_DEMO_JSON
from amodaldata.masks import Mask
from amodaldata.shards import SCHEMA, ShardSet, write_shards
from amodaldata.validate import EXAMPLES
from amodaldata.validate_shards import validate_shards
from cli import main
from converters import read
from converters.cocoa import read_cocoa
from converters.validate import LAYOUTS, validate_file
from generators.shapes import PAPER, generate_scene

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


@pytest.mark.parametrize("fmt", ["cocoa-cls", "kins", "d2sa"])
def test_written_files_validate_clean(fmt, tmp_path):
    from converters import WRITERS

    names = {r.name for s in read_cocoa(COCOA_DEMO_JSON) for r in s.regions}
    label_map = {n: 1 for n in names}
    WRITERS[fmt](read_cocoa(COCOA_DEMO_JSON), tmp_path / "o.json", label_map=label_map)
    assert validate_file(tmp_path / "o.json", LAYOUTS[fmt]).clean


# -- Parquet shards ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cocoa_shards(tmp_path_factory) -> Path:
    """The five real COCOA scenes with their images, two per shard: the first row is image 188819,
    annotation 377, region 1 in front of region 2 (whose visible mask is given)."""
    out = tmp_path_factory.mktemp("cocoa") / "shards"
    scenes = read(COCOA_DEMO_JSON, format="cocoa", images=COCOA_DEMO_DIR, load_images=True)
    write_shards(scenes, out, scenes_per_shard=2)
    return out


@pytest.fixture(scope="module")
def shapes_shards(tmp_path_factory) -> Path:
    """Four shapes scenes (the paper's settings): every visible mask given, PNG bytes embedded."""
    out = tmp_path_factory.mktemp("shapes") / "shards"
    rng = np.random.default_rng(2)
    write_shards((generate_scene(PAPER, rng, i) for i in range(4)), out)
    return out


def corrupted(src: Path, tmp_path: Path, change: Callable[[list[dict[str, Any]]], None]) -> Path:
    """A copy of the shard folder ``src`` whose first shard's rows went through ``change``."""
    out = tmp_path / "corrupted"
    shutil.copytree(src, out)
    shard = ShardSet(out).paths[0]
    rows = pq.read_table(shard).to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), shard)
    return out


def test_shards_written_from_cocoa_and_shapes_are_clean(cocoa_shards, shapes_shards):
    report = validate_shards(cocoa_shards, images=COCOA_DEMO_DIR)
    assert report.clean and (report.images, report.annotations, report.regions) == (5, 5, 48)
    assert validate_shards(shapes_shards).clean
    runner = CliRunner()
    result = runner.invoke(main, ["validate", str(cocoa_shards)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"{cocoa_shards} (parquet): 5 images, 5 annotations, 48 regions checked",
                                          "clean: no problem found"]
    one = ShardSet(shapes_shards).paths[0]
    assert runner.invoke(main, ["validate", str(one), "--from", "parquet"]).exit_code == 0


def _full(rows: list[dict]) -> dict:
    """An RLE covering the first row's whole image."""
    h, w = rows[0]["height"], rows[0]["width"]
    rle = cocomask.encode(np.ones((h, w), dtype=np.uint8, order="F"))
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def _set(rows: list[dict], region: int, key: str, value: Any) -> None:
    rows[0]["regions"][region - 1][key] = value


FIRST = "train-00000-of-00003.parquet, image 188819, annotation 377"
CORRUPTIONS: dict[str, tuple[Callable[[list[dict]], None], dict[str, int], str]] = {
    # name: (change to the first shard's rows, expected counts, where the first example is)
    "wrong RLE size": (lambda rows: _set(rows, 1, "amodal", {**rows[0]["regions"][0]["amodal"], "size": [1, 1]}),
                       {"rle": 1}, FIRST + ", region 1"),
    "truncated counts": (lambda rows: _set(rows, 2, "visible", {**rows[0]["regions"][1]["visible"],
                                           "counts": rows[0]["regions"][1]["visible"]["counts"][:-7]}),
                         {"rle": 1}, FIRST + ", region 2"),
    "visible outside amodal": (lambda rows: _set(rows, 1, "visible", _full(rows)),
                               {"visible-outside-amodal": 1, "visible-order": 1}, FIRST + ", region 1"),
    "wrong area": (lambda rows: _set(rows, 2, "area", rows[0]["regions"][1]["area"] + 1), {"area": 1},
                   FIRST + ", region 2"),
    "wrong occlusion rate": (lambda rows: _set(rows, 2, "occlusion_rate", 0.5), {"occlude-rate": 1},
                             FIRST + ", region 2"),
    "NaN occlusion rate": (lambda rows: _set(rows, 1, "occlusion_rate", float("nan")), {"occlude-rate": 1},
                           FIRST + ", region 1"),
    "edge to a missing region": (lambda rows: rows[0]["order"].append({"front": 1, "back": 99}),
                                 {"unknown-region": 1}, FIRST),
    "cycle": (lambda rows: rows[0]["order"].append({"front": 2, "back": 1}), {"depth-cycle": 1}, FIRST),
    "polygons disagreeing with the RLE": (
        lambda rows: _set(rows, 2, "amodal_polygons",
                          [[v + 5 * (i % 2 == 0) for i, v in enumerate(p)]
                           for p in rows[0]["regions"][1]["amodal_polygons"]]),
        {"polygons-rle": 1}, FIRST + ", region 2"),
    "visible disagreeing with the order": (
        lambda rows: rows[0]["regions"][1].update(visible_given=False, visible=rows[0]["regions"][1]["amodal"]),
        {"visible-order": 1}, FIRST + ", region 2"),
    "duplicate row": (lambda rows: rows.append(rows[0]), {"duplicate-id": 1}, FIRST),
    "undecodable image": (lambda rows: rows[0]["image"].update(bytes=b"not a JPEG"), {"image": 1}, FIRST),
    "missing image": (lambda rows: (rows[0]["image"].update(bytes=None), rows[0].update(file_name="gone.jpg")),
                      {"missing-image": 1}, FIRST),
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corrupted_shards_are_reported_located(name, cocoa_shards, tmp_path):
    change, counts, where = CORRUPTIONS[name]
    folder = corrupted(cocoa_shards, tmp_path, change)
    report = validate_shards(folder, images=COCOA_DEMO_DIR)
    assert dict(report.counts) == counts
    kind = next(iter(counts))
    assert report.examples[kind][0].where() == where
    result = CliRunner().invoke(main, ["validate", str(folder), "--images", str(COCOA_DEMO_DIR)])
    assert result.exit_code == 1
    assert f"[{kind}]" in result.stdout and f"    {where}: " in result.stdout


def test_shard_messages_name_the_problem(cocoa_shards, tmp_path):
    cycle = validate_shards(corrupted(cocoa_shards, tmp_path, CORRUPTIONS["cycle"][0]))
    assert cycle.examples["depth-cycle"][0].message in ("depth order has a cycle through regions 1 -> 2 -> 1",
                                                        "depth order has a cycle through regions 2 -> 1 -> 2")
    shutil.rmtree(tmp_path / "corrupted")
    truncated = validate_shards(corrupted(cocoa_shards, tmp_path, CORRUPTIONS["truncated counts"][0]))
    assert truncated.examples["rle"][0].message.startswith("visible RLE: RLE counts")


def test_overlapping_given_visible_masks(shapes_shards, tmp_path):
    widened = []

    def widen(rows: list[dict]) -> None:       # an occluded shape claims its hidden part too
        hidden = next(r for r in rows[0]["regions"] if r["occlusion_rate"] > 0)
        hidden["visible"] = hidden["amodal"]
        widened.append(hidden["id"])

    report = validate_shards(corrupted(shapes_shards, tmp_path, widen))
    assert set(report.counts) == {"visible-overlap"}
    assert all(any(f"overlaps region {rid}'s in" in p.message for rid in widened)
               for p in report.examples["visible-overlap"])


def test_files_that_are_not_shards(cocoa_shards, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(cocoa_shards, folder)
    (folder / "notes.parquet").write_text("not Parquet")
    pq.write_table(pa.table({"image_id": ["1"], "caption": ["a cat"]}), folder / "captions.parquet")
    pq.write_table(pa.table({"image_id": ["1"], "height": ["tall"], "width": [3], "regions": [[]]}),
                   folder / "texts.parquet")
    report = validate_shards(folder)
    assert dict(report.counts) == {"parquet": 1, "schema": 3}
    assert report.examples["parquet"][0].where() == "notes.parquet"
    assert report.examples["parquet"][0].message.startswith("not a Parquet file: ")
    assert report.examples["schema"][0].where() == "captions.parquet"
    assert report.examples["schema"][0].message == "not an amodaldata shard: no column(s) height, width, regions"
    assert report.examples["schema"][1].where() == "texts.parquet"
    assert report.examples["schema"][1].message == "column 'height' is stored as string, the shard type is int32"
    assert report.examples["schema"][2].message.startswith("columns do not read as the shard types: ")
    assert report.annotations == 5          # the real shards were still checked
    runner = CliRunner()
    result = runner.invoke(main, ["validate", str(folder / "notes.parquet")])
    assert result.exit_code == 1 and "1 x files that are not Parquet [parquet]" in result.stdout
    result = runner.invoke(main, ["validate", str(folder / "captions.parquet")])
    assert result.exit_code == 1 and "captions.parquet: not an amodaldata shard" in result.stdout


def test_shards_refuse_fix(cocoa_shards, tmp_path):
    result = CliRunner().invoke(main, ["validate", str(cocoa_shards), "--fix", "--out", str(tmp_path / "f.json")])
    assert result.exit_code == 2 and "--fix repairs annotation files only" in result.stderr


def test_column_major_pixels_read_from_the_runs_match_the_bitmap():
    from amodaldata.validate_shards import _column_major_pixels

    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        bitmap = rng.random((h, w)) < rng.random()
        assert np.array_equal(_column_major_pixels(Mask.from_bitmap(bitmap)), np.flatnonzero(bitmap.T))
