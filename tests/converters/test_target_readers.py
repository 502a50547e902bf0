"""Targets read back: ``semdist`` folders decoded with SLN Eq. 2-5 and ``layered`` folders rebuilt from their K
layers; on the real COCOA fixtures, annotation -> target -> annotation is exact for what the target holds, and
what it cannot hold was reported when it was written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from amodaldata.stack_runs import StackRuns
from cli import main
from converters import READERS, WRITERS
from converters.cocoa import read_cocoa
from converters.detect import detect_format
from converters.losses import LossReport


def run(*args: object):
    return CliRunner().invoke(main, [*map(str, args), "--no-progress"])


@pytest.mark.parametrize("target", ["semdist", "layered"])
def test_cocoa_through_a_target_and_back(target, cocoa_json, tmp_path, sig):
    before = list(read_cocoa(cocoa_json))
    losses = LossReport()
    options = {"layers": max(len(s.layers.ids) for s in before)} if target == "layered" else {}
    WRITERS[target](read_cocoa(cocoa_json), tmp_path / "t", losses=losses, **options)
    assert detect_format(tmp_path / "t") == target
    back = list(READERS[target](tmp_path / "t"))
    assert [sig(s) for s in back] == [sig(s) for s in before]
    for scene, again in zip(before, back):
        overlapping = {(int(a), int(b)) for a, b in StackRuns(scene.layers).overlapping_pairs()}
        assert overlapping <= again.order.edges
        assert (again.annotator, again.annotation_id, again.file_name) == (scene.annotator, scene.annotation_id,
                                                                           scene.file_name)
    lines = "\n".join(losses.lines())
    assert f"amodal polygons ({target} holds rasters; pixel-exact): 48" in lines
    assert f"depth ranks ({target} holds the order as overlaps" in lines
    assert f"annotation-level fields with no place in {target}: " in lines


def test_layered_with_fewer_layers_reports_what_lies_deeper(cocoa_json, tmp_path):
    losses = LossReport()
    WRITERS["layered"](read_cocoa(cocoa_json), tmp_path / "l", layers=1, losses=losses)
    assert any(line.startswith("regions deeper than the 1 layers") for line in losses.lines())
    back = {s.id: s for s in READERS["layered"](tmp_path / "l")}
    for scene in read_cocoa(cocoa_json):
        again = back[scene.id]
        for region in again.regions:           # with one layer, each region comes back as its visible part
            assert np.array_equal(region.amodal.to_bitmap(), scene.layers.visible(region.id))


def test_convert_semdist_and_layered_folders_to_annotations(cocoa_json, tmp_path, sig):
    assert run("convert", cocoa_json, "--to", "semdist", "--out", tmp_path / "sd").exit_code == 0
    result = run("convert", tmp_path / "sd", "--to", "cocoa", "--out", tmp_path / "c.json")
    assert result.exit_code == 0, result.output
    assert "wrote 5 scenes (48 regions)" in result.stdout and "(input read as semdist)" in result.stdout
    assert [sig(s) for s in read_cocoa(tmp_path / "c.json")] == [sig(s) for s in read_cocoa(cocoa_json)]
    assert run("convert", cocoa_json, "--to", "layered", "--layers", "3", "--out", tmp_path / "l").exit_code == 0
    result = run("convert", "layered", tmp_path / "l", "--to", "parquet", "--out", tmp_path / "pq")
    assert result.exit_code == 0, result.output


def test_a_model_output_without_region_metadata(cocoa_json, tmp_path):
    """Only the arrays a model predicts and a bare index: regions come from the maps, classes from the arrays."""
    WRITERS["layered"](read_cocoa(cocoa_json), tmp_path / "l", layers=2, label_map={"phone": 77})
    index = tmp_path / "l" / "index.jsonl"
    lines = [json.loads(line) for line in index.read_text().splitlines()]
    index.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "regions"}) + "\n" for r in lines))
    first = next(iter(READERS["layered"](tmp_path / "l")))
    assert [r.category_id for r in first.regions] == [77, 77] and all(r.name is None for r in first.regions)


def test_a_broken_target_folder_is_refused(cocoa_json, tmp_path):
    WRITERS["semdist"](read_cocoa(cocoa_json), tmp_path / "sd")
    first = json.loads((tmp_path / "sd" / "index.jsonl").read_text().splitlines()[0])["file"]
    (tmp_path / "sd" / first).write_bytes(b"not npz")
    result = run("convert", "semdist", tmp_path / "sd", "--to", "cocoa", "--out", tmp_path / "c.json")
    assert result.exit_code == 1 and f"{tmp_path / 'sd' / first}" in result.stderr
    assert "cannot read the arrays" in result.stderr and not (tmp_path / "c.json").exists()


@pytest.mark.parametrize("target", ["semdist", "layered"])
def test_a_target_folder_is_written_whole_or_not_at_all(target, cocoa_json, tmp_path):
    """A scene that fails half-way through leaves the folder as it was: no index, no arrays, no temporaries; a
    second write replaces the first one's files."""

    def failing():
        yield from list(read_cocoa(cocoa_json))[:2]
        raise RuntimeError("the source broke")

    out = tmp_path / "t"
    with pytest.raises(RuntimeError, match="the source broke"):
        WRITERS[target](failing(), out)
    assert list(out.iterdir()) == []
    assert WRITERS[target](read_cocoa(cocoa_json), out) == 5
    first = sorted(p.name for p in out.iterdir())
    assert "index.jsonl" in first and all(not name.startswith(".") for name in first)
    assert WRITERS[target](read_cocoa(cocoa_json), out) == 5
    assert sorted(p.name for p in out.iterdir()) == first
