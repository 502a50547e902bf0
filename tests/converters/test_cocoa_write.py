"""Writing COCOA / BSDS-amodal: the release's conventions, checked against the real release records."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from converters.bsds import read_bsds, write_bsds
from converters.cocoa import read_cocoa, write_cocoa
from converters.losses import LossReport


def test_rewriting_the_release_reproduces_every_region_record(cocoa_json, cocoa_raw, tmp_path):
    out = tmp_path / "out.json"
    assert write_cocoa(read_cocoa(cocoa_json), out) == 5
    written = json.loads(out.read_text())
    assert written["images"] == cocoa_raw["images"]
    for ann, orig in zip(written["annotations"], cocoa_raw["annotations"]):
        for key in ("author", "url", "image_id", "id", "size"):
            assert ann[key] == orig[key]
        assert len(ann["regions"]) == len(orig["regions"])
        for region, expected in zip(ann["regions"], orig["regions"]):
            for key in ("segmentation", "name", "area", "isStuff", "order"):
                assert region[key] == expected[key], key
            assert ("visible_mask" in region) == ("visible_mask" in expected)
            if "visible_mask" in expected:
                assert region["visible_mask"] == expected["visible_mask"]
                assert region["invisible_mask"] == expected["invisible_mask"]
            assert type(region["occlude_rate"]) is type(expected["occlude_rate"])
            assert region["occlude_rate"] == pytest.approx(expected["occlude_rate"], abs=1e-9)


def test_depth_constraint_lists_overlapping_pairs_numbered_by_order(cocoa_json, cocoa_raw, tmp_path):
    out = tmp_path / "out.json"
    write_cocoa(read_cocoa(cocoa_json), out)
    annotations = json.loads(out.read_text())["annotations"]
    image = {i["id"]: i for i in cocoa_raw["images"]}
    # image 328805's demo record lacks order 3 (a region was removed): numbers are order values, not positions
    gapped = next(a for a in annotations if a["image_id"] == 328805)
    assert 3 not in [r["order"] for r in gapped["regions"]]
    for ann in annotations:
        h, w = image[ann["image_id"]]["height"], image[ann["image_id"]]["width"]
        bitmaps = {r["order"]: Mask.from_polygons(r["segmentation"], h, w).to_bitmap() for r in ann["regions"]}
        expected = {(a, b) for a in bitmaps for b in bitmaps if a < b and (bitmaps[a] & bitmaps[b]).any()}
        pairs = {tuple(int(v) for v in item.split("-")) for item in ann["depth_constraint"].split(",") if item}
        assert pairs == expected
    # read back: the edges between overlapping regions are the same as the ones the ranks gave
    for scene, again in zip(read_cocoa(cocoa_json), read_cocoa(out)):
        assert again.layers.front_to_back == scene.layers.front_to_back
        assert np.array_equal(again.layers.ids, scene.layers.ids)


def test_regions_are_sorted_front_to_back_from_the_order(cocoa_json, tmp_path):
    scene = list(read_cocoa(cocoa_json))[2]                    # image 6608: 19 regions
    front_to_back = list(scene.layers.front_to_back)
    shuffled = scene.regions[:]
    random.Random(0).shuffle(shuffled)
    stripped = [Region(id=r.id, amodal=r.amodal, name=r.name, is_stuff=r.is_stuff) for r in shuffled]
    edges = {(a, b) for i, a in enumerate(front_to_back) for b in front_to_back[i + 1:]}
    unranked = Scene(id=scene.id, height=scene.height, width=scene.width, regions=stripped,
                     order=OcclusionOrder(edges))
    out = tmp_path / "out.json"
    losses = LossReport()
    write_cocoa([unranked], out, losses=losses)
    (ann,) = json.loads(out.read_text())["annotations"]
    by_id = {r.id: r for r in scene.regions}
    assert [r["name"] for r in ann["regions"]] == [by_id[rid].name for rid in front_to_back]
    assert [r["order"] for r in ann["regions"]] == list(range(1, 20))
    assert not losses            # no ranks were given, so none was renumbered


def test_inconsistent_ranks_are_renumbered_and_reported(tmp_path):
    square = [[0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0]]
    regions = [Region(1, Mask.from_polygons(square, 20, 20), name="a", depth_rank=1),
               Region(2, Mask.from_polygons(square, 20, 20), name="b", depth_rank=2)]
    scene = Scene(id=7, height=20, width=20, regions=regions, order=OcclusionOrder({(2, 1)}))
    losses = LossReport()
    write_cocoa([scene], tmp_path / "o.json", losses=losses)
    (ann,) = json.loads((tmp_path / "o.json").read_text())["annotations"]
    assert [(r["name"], r["order"]) for r in ann["regions"]] == [("b", 1), ("a", 2)]
    assert ann["depth_constraint"] == "1-2"
    assert any(line.startswith("depth ranks renumbered") for line in losses.lines())


def test_polygon_layout_extra_fields_and_image_only_scenes(tmp_path):
    two = [[0.0, 0.0, 5.0, 0.0, 5.0, 5.0], [10.0, 10.0, 15.0, 10.0, 15.0, 15.0]]
    one = [[1.0, 1.0, 8.0, 1.0, 8.0, 8.0, 1.0, 8.0]]
    regions = [Region(1, Mask.from_polygons(two, 20, 20), name="pair", extra={"note": "kept"}),
               Region(2, Mask.from_polygons(one, 20, 20), name="single", is_stuff=True)]
    scene = Scene(id=3, height=20, width=20, regions=regions, order=OcclusionOrder({(1, 2)}), file_name="3.jpg",
                  annotator="zoe", annotation_id=11, extra={"url": "u", "image": {"license": 2}})
    empty = Scene(id=4, height=20, width=20, file_name="4.jpg")
    out = tmp_path / "o.json"
    assert write_cocoa([scene, empty], out) == 1
    data = json.loads(out.read_text())
    assert data["images"] == [{"id": 3, "file_name": "3.jpg", "width": 20, "height": 20, "license": 2},
                              {"id": 4, "file_name": "4.jpg", "width": 20, "height": 20}]
    (ann,) = data["annotations"]
    assert (ann["author"], ann["url"], ann["id"], ann["size"]) == ("zoe", "u", 11, 2)
    pair, single = ann["regions"]
    assert pair["segmentation"] == two and pair["note"] == "kept"
    assert single["segmentation"] == one[0] and single["isStuff"] == 1
    assert single["occlude_rate"] > 0 and "visible_mask" in single and "visible_mask" not in pair


def test_bsds_annotators_stay_separate_objects_of_one_image(make_file, tmp_path):
    path = make_file("bsds")
    scenes = list(read_bsds(path))
    assert [(s.id, s.annotator) for s in scenes] == [(1, "alice"), (1, "bob"), (2, "alice")]
    out = tmp_path / "o.json"
    assert write_bsds(scenes, out) == 3
    data = json.loads(out.read_text())
    assert [i["id"] for i in data["images"]] == [1, 2]
    assert [(a["image_id"], a["author"]) for a in data["annotations"]] == [(1, "alice"), (1, "bob"), (2, "alice")]
    assert data["images"][0]["bsds_url"] == "http://example.org/1.jpg"
    assert [r["name"] for r in data["annotations"][1]["regions"]][-1] == "lawn"


def test_bsds_groups_the_annotators_of_an_image(make_file, tmp_path):
    data = json.loads(make_file("bsds").read_text())
    bob = data["annotations"].pop(1)
    data["annotations"].append(bob)                      # alice 1, alice 2, bob 1 in the file
    path = tmp_path / "interleaved.json"
    path.write_text(json.dumps(data))
    assert [(s.id, s.annotator) for s in read_bsds(path)] == [(1, "alice"), (1, "bob"), (2, "alice")]


def test_a_failing_source_leaves_nothing_behind(cocoa_json, tmp_path):
    def scenes():
        yield from read_cocoa(cocoa_json)
        raise RuntimeError("source broke")

    out = tmp_path / "o.json"
    with pytest.raises(RuntimeError):
        write_cocoa(scenes(), out)
    assert list(tmp_path.iterdir()) == []
