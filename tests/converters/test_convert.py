"""`amodaldata convert`: targets and shards from real COCOA, exact decoding, atomic output, bad input."""

from __future__ import annotations

import json
import weakref
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from amodaldata import targets
from amodaldata.masks import Mask
from amodaldata.shards import read_shards
from amodaldata.stats import compute_stats
from cli import main
from converters.cocoa import read_cocoa
from converters.convert import convert


def run(*args: str):
    return CliRunner().invoke(main, [*map(str, args), "--no-progress"])


def test_semdist_targets_decode_to_the_release_masks(cocoa_json, cocoa_raw, tmp_path):
    result = run("convert", "cocoa", cocoa_json, "--to", "semdist", "--out", tmp_path / "sd")
    assert result.exit_code == 0, result.output
    assert "wrote 5 scenes (48 regions)" in result.output
    index = [json.loads(line) for line in (tmp_path / "sd" / "index.jsonl").read_text().splitlines()]
    assert len(index) == 5
    for entry, ann in zip(index, cocoa_raw["annotations"]):
        data = np.load(tmp_path / "sd" / entry["file"])
        assert entry["image_id"] == ann["image_id"]
        h, w = entry["height"], entry["width"]
        sd = data["semdist"]
        assert sd.shape == (len(ann["regions"]), h, w) and sd.dtype == np.float32
        for k, region in enumerate(ann["regions"]):
            amodal = Mask.from_polygons(region["segmentation"], h, w).to_bitmap()
            assert np.array_equal(targets.amodal_mask(sd[k]), amodal)
            if "visible_mask" in region:
                visible = Mask.from_rle(region["visible_mask"], h, w).to_bitmap()
                invisible = Mask.from_rle(region["invisible_mask"], h, w).to_bitmap()
                assert np.array_equal(targets.modal_mask(sd[k]), visible)
                assert np.array_equal(targets.visibility_level(sd[k]) > 0, invisible)
            else:
                assert np.array_equal(targets.modal_mask(sd[k]), amodal)
            assert data["occlusion_rate"][k] == pytest.approx(region["occlude_rate"], abs=1e-6)
        assert data["global_layering"].max() <= int(data["max_level"])
        assert float(data["confidence"]) == targets.GT_CONFIDENCE


def test_layered_targets_hold_k_layers(cocoa_json, tmp_path):
    result = run("convert", "cocoa", cocoa_json, "--to", "layered", "--layers", "3", "--out", tmp_path / "l")
    assert result.exit_code == 0, result.output
    scenes = list(read_cocoa(cocoa_json))
    for scene in scenes:
        data = np.load(tmp_path / "l" / f"{scene.id}.npz")
        assert data["instances"].shape == (3, scene.height, scene.width)
        assert np.array_equal(data["instances"], scene.layers.padded(3))
        # COCOA has no category ids: every region is class 1, background 0
        assert set(np.unique(data["classes"])) <= {0, 1}
        assert np.array_equal(data["classes"] > 0, data["instances"] > 0)


def test_parquet_output_embeds_images_and_reads_back(cocoa_json, cocoa_images, tmp_path):
    result = run("convert", "cocoa", cocoa_json, "--images", cocoa_images, "--to", "parquet",
                 "--out", tmp_path / "pq", "--split", "val", "--scenes-per-shard", "2")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "pq").iterdir())
    assert names == ["README.md", "validation-00000-of-00003.parquet", "validation-00001-of-00003.parquet",
                     "validation-00002-of-00003.parquet"]
    back = list(read_shards(tmp_path / "pq"))
    assert [s.id for s in back] == [s.id for s in read_cocoa(cocoa_json)]
    assert all(s.image_bytes == (cocoa_images / s.file_name).read_bytes() for s in back)
    again = run("convert", "parquet", tmp_path / "pq", "--to", "semdist", "--out", tmp_path / "sd")
    assert again.exit_code == 0, again.output


def test_existing_output_is_refused_then_overwritten(cocoa_json, tmp_path):
    out = tmp_path / "sd"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    refused = run("convert", "cocoa", cocoa_json, "--to", "semdist", "--out", out)
    assert refused.exit_code == 1 and "--overwrite" in refused.output
    assert (out / "keep.txt").exists()
    done = run("convert", "cocoa", cocoa_json, "--to", "semdist", "--out", out, "--overwrite")
    assert done.exit_code == 0, done.output
    assert not (out / "keep.txt").exists() and (out / "index.jsonl").exists()


def _broken(tmp_path: Path, cocoa_raw: dict, edit) -> Path:
    data = json.loads(json.dumps(cocoa_raw))
    edit(data)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    return path


BROKEN = {
    "missing field": (lambda d: d["annotations"][2]["regions"][4].pop("segmentation"),
                      "image 6608, annotation 12, region 5 (order 5): region has no 'segmentation' field"),
    "two-point polygon": (lambda d: d["annotations"][1]["regions"][0].update(segmentation=[1, 2, 3, 4]),
                          "region 1 (order 1): polygon 0 has 2 point(s); at least 3 are needed"),
    "rle of the wrong size": (lambda d: d["annotations"][3]["regions"][5]["visible_mask"].update(size=[10, 10]),
                              "image 328805, annotation 680, region 6 (order 7): RLE size [10, 10] disagrees"),
    "depth cycle": (lambda d: d["annotations"][4].update(depth_constraint="1-2,2-3,3-1"),
                    "depth order has a cycle through regions"),
    "unknown order in depth_constraint": (lambda d: d["annotations"][4].update(depth_constraint="1-99"),
                                          "names order 99"),
}


@pytest.mark.parametrize("problem", sorted(BROKEN))
def test_bad_input_fails_with_one_line_and_leaves_nothing(problem, cocoa_raw, tmp_path):
    edit, message = BROKEN[problem]
    path = _broken(tmp_path, cocoa_raw, edit)
    out = tmp_path / "out"
    result = run("convert", "cocoa", path, "--to", "semdist", "--out", out)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_malformed_json_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"images": [], "annotations": [')
    result = run("convert", "cocoa", path, "--to", "semdist", "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert "bad.json: malformed JSON" in result.output and "line 1" in result.output


def test_missing_image_is_named(cocoa_json, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    result = run("convert", "cocoa", cocoa_json, "--images", images, "--to", "parquet", "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert "image 188819" in result.output and "image file not found" in result.output
    assert not (tmp_path / "o").exists()


def test_skip_drops_bad_annotations_and_reports_them(cocoa_raw, tmp_path):
    def edit(d):
        d["annotations"][1]["regions"][0]["segmentation"] = [1, 2, 3, 4]
        d["annotations"][3]["depth_constraint"] = "1-2,2-1"

    path = _broken(tmp_path, cocoa_raw, edit)
    result = run("convert", "cocoa", path, "--to", "semdist", "--out", tmp_path / "o", "--on-error", "skip")
    assert result.exit_code == 0, result.output
    assert "wrote 3 scenes" in result.output
    assert "skipped 2 item(s)" in result.output
    assert "image 343254" in result.output and "image 328805" in result.output
    assert len((tmp_path / "o" / "index.jsonl").read_text().splitlines()) == 3


def test_a_rerun_after_a_killed_convert_removes_its_leftovers(cocoa_json, tmp_path):
    """A SIGKILLed run leaves its hidden partial output (and spool files); the next run removes them when their
    process is gone, keeps those of a run still going, and writes the same bytes as an undisturbed run."""
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "c.json"
    partial = tmp_path / f".c.json.partial-{dead.pid}"
    partial.mkdir()
    (partial / "half.npz").write_bytes(b"x")
    (tmp_path / f"..c.json.partial-{dead.pid}.annotations.{dead.pid}.tmp").write_text("[")   # a writer's spool
    (tmp_path / ".c.json.partial-1").mkdir()                  # pid 1 is always running: not touched
    result = run("convert", "cocoa", cocoa_json, "--to", "cocoa", "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c.json.partial-1", "c.json"]
    clean = tmp_path / "clean"
    clean.mkdir()
    assert run("convert", "cocoa", cocoa_json, "--to", "cocoa", "--out", clean / "c.json").exit_code == 0
    assert (clean / "c.json").read_bytes() == out.read_bytes()


@pytest.fixture
def live_scenes(monkeypatch) -> dict:
    """Every Scene made from now on, tracked weakly: ``most`` is the largest number alive at once."""
    from amodaldata.scene import Scene

    live: weakref.WeakSet = weakref.WeakSet()
    seen = {"most": 0, "made": 0}
    validate = Scene.__post_init__

    def tracked(self) -> None:
        validate(self)
        live.add(self)
        seen["made"] += 1
        seen["most"] = max(seen["most"], len(live))

    monkeypatch.setattr(Scene, "__post_init__", tracked)
    return seen


@pytest.fixture
def many_cocoa(cocoa_raw, tmp_path) -> Path:
    """A COCOA release file of 250 annotations: the demo's five repeated under fresh ids."""
    images = [{**cocoa_raw["images"][k % 5], "id": k + 1} for k in range(250)]
    annotations = [{**cocoa_raw["annotations"][k % 5], "image_id": k + 1, "id": k + 1} for k in range(250)]
    path = tmp_path / "many.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def test_convert_to_parquet_streams_its_scenes(many_cocoa, live_scenes, tmp_path):
    report = convert("cocoa", many_cocoa, "parquet", tmp_path / "shards")    # one shard of 1000 rows at most
    assert report.scenes == live_scenes["made"] == 250
    assert live_scenes["most"] <= 3     # the scene being read, the one being written, the one before it
    assert sum(1 for _ in read_shards(tmp_path / "shards")) == 250


def test_stats_streams_its_scenes(many_cocoa, live_scenes):
    result = compute_stats(read_cocoa(many_cocoa))
    assert result["summary"]["annotations"] == live_scenes["made"] == 250
    assert live_scenes["most"] <= 3
