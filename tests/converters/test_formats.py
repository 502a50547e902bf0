"""Format specifics: KINS's two releases and their order, COCOA-cls's COCO classes, D2SA's categories from the file."""

from __future__ import annotations

import json

import pytest

from amodaldata.errors import AnnotationError
from converters.cocoa import read_cocoa
from converters.cocoa_cls import read_cocoa_cls, write_cocoa_cls
from converters.d2sa import read_d2sa, write_d2sa
from converters.kins import read_kins, write_kins, write_kins_2020
from amodaldata.shards import read_shards, write_shards
from converters import READERS, WRITERS
from converters.losses import LossReport


def test_kins_original_reads_visible_masks_names_and_derived_order(make_file):
    scenes = list(read_kins(make_file("kins")))
    assert [s.id for s in scenes] == [1, 2, 3]
    first = scenes[0]
    assert [(r.name, r.category_id) for r in first.regions] == [("pedestrian", 2), ("car", 4), ("van", 7),
                                                                 ("misc", 8)]
    assert all(r.visible is not None for r in first.regions)
    assert first.order.edges == {(1, 2), (2, 3)}                  # A over B over C; D overlaps nothing
    assert first.regions[0].extra == {"id": 100} and not any(r.is_crowd for r in first.regions)
    assert scenes[2].regions == []


def test_kins_names_come_from_the_table_when_the_file_has_no_categories(make_file, tmp_path):
    data = json.loads(make_file("kins").read_text())
    del data["categories"]
    path = tmp_path / "nocats.json"
    path.write_text(json.dumps(data))
    assert [r.name for r in next(iter(read_kins(path))).regions] == ["pedestrian", "car", "van", "misc"]


def test_kins_2020_order_follows_ico_id_inside_a_cluster(make_file, tmp_path):
    data = json.loads(make_file("kins-2020").read_text())
    first = [a for a in data["annotations"] if a["image_id"] == 1]
    assert [(a["oco_id"], a["ico_id"]) for a in first] == [(11, 1), (11, 2), (11, 3), (12, 0)]
    assert next(iter(read_kins(make_file("kins-2020")))).order.edges == {(1, 2), (2, 3)}
    first[0]["ico_id"], first[1]["ico_id"] = 2, 1          # the ids now put B in front of A, against the masks
    path = tmp_path / "swapped.json"
    path.write_text(json.dumps(data))
    assert (2, 1) in next(iter(read_kins(path))).order.edges
    first[2]["ico_id"] = 0
    first[0]["ico_id"], first[1]["ico_id"] = 1, 2
    first[2]["oco_id"] = 11
    first[0]["i_segm"] = first[0]["a_segm"]
    path.write_text(json.dumps(data))
    edges = next(iter(read_kins(path))).order.edges
    assert (1, 2) in edges and (2, 3) in edges             # ico 0 decides nothing: B over C comes from the masks


def test_kins_2020_cluster_ids_for_scenes_without_them(cocoa_json, tmp_path):
    scenes = list(read_cocoa(cocoa_json))[:2]
    label_map = {r.name: 8 for s in scenes for r in s.regions}
    write_kins_2020(scenes, tmp_path / "k.json", label_map=label_map)
    anns = json.loads((tmp_path / "k.json").read_text())["annotations"]
    phones = [a for a in anns if a["image_id"] == 188819]
    assert [(a["oco_id"], a["ico_id"]) for a in phones] == [(1, 1), (1, 2)]
    second = [a for a in anns if a["image_id"] == 343254]
    assert {a["oco_id"] for a in second}.isdisjoint({1})
    back = list(read_kins(tmp_path / "k.json"))
    for scene, again in zip(scenes, back):
        assert len(again.layers.front_to_back) == len(scene.regions)
        assert (again.layers.ids > 0).sum() == (scene.layers.ids > 0).sum()


def test_kins_original_writes_rle_visible_and_boxes(make_file, tmp_path):
    losses = LossReport()
    write_kins(read_kins(make_file("kins-2020")), tmp_path / "k.json", losses=losses)
    ann = json.loads((tmp_path / "k.json").read_text())["annotations"][1]
    assert set(ann) == {"id", "image_id", "segmentation", "bbox", "area", "inmodal_seg", "inmodal_bbox", "iscrowd",
                        "category_id"}
    assert isinstance(ann["inmodal_seg"], dict) and ann["inmodal_bbox"][0] == 20.0
    # the 2020 order fields have no place in the original release: not written, reported
    assert "instance fields with no place in kins, not written: 12 [ico_id x6, oco_id x6]" in "\n".join(losses.lines())


def test_cocoa_cls_maps_cocoa_names_with_the_builtin_synonyms(make_file, tmp_path):
    losses = LossReport()
    n = write_cocoa_cls(read_cocoa(make_file("cocoa")), tmp_path / "c.json", losses=losses)
    data = json.loads((tmp_path / "c.json").read_text())
    assert n == 4 and len(data["categories"]) == 80
    assert [a["category_id"] for a in data["annotations"]] == [1, 3, 18, 60]     # person, car, dog, donut
    assert all("visible_mask" in a for a in data["annotations"])
    assert ["invisible_mask" in a for a in data["annotations"]] == [False, True, True, False]
    text = "\n".join(losses.lines())
    assert "no category named 'grass' x1" in text and "no category named 'table' x1" in text
    assert "'doughnut' -> 'donut' x1" in text
    scenes = list(read_cocoa_cls(tmp_path / "c.json"))
    assert [r.name for r in scenes[1].regions] == ["donut"]


def test_cocoa_cls_reads_cocoa_flat_polygons(make_file, tmp_path):
    data = json.loads(make_file("cocoa-cls", rle_amodal=False).read_text())
    for ann in data["annotations"]:
        if len(ann["segmentation"]) == 1:
            ann["segmentation"] = ann["segmentation"][0]
    path = tmp_path / "flat.json"
    path.write_text(json.dumps(data))
    flat, nested = list(read_cocoa_cls(path)), list(read_cocoa_cls(make_file("cocoa-cls", "nested.json",
                                                                          rle_amodal=False)))
    for a, b in zip(flat, nested):
        assert [r.amodal for r in a.regions] == [r.amodal for r in b.regions]


def test_d2sa_categories_come_from_the_file_and_are_written_from_the_scenes(make_file, tmp_path):
    scenes = list(read_d2sa(make_file("d2sa")))
    assert [r.name for r in scenes[0].regions] == ["avocado", "banana_single", "kiwi", "pear"]
    write_d2sa(scenes, tmp_path / "d.json")
    cats = json.loads((tmp_path / "d.json").read_text())["categories"]
    assert cats == [{"id": 29, "name": "avocado"}, {"id": 31, "name": "banana_single"}, {"id": 36, "name": "kiwi"},
                    {"id": 39, "name": "pear"}, {"id": 60, "name": "zucchini"}]


def test_d2sa_label_map_values_must_be_ids(make_file, tmp_path):
    losses = LossReport()
    assert write_d2sa(read_cocoa(make_file("cocoa")), tmp_path / "d.json", label_map={"car": "vehicle"},
                      losses=losses) == 0
    assert "label map values must be category ids" in "\n".join(losses.lines())


def test_a_category_missing_from_the_file_fails_its_image(make_file, tmp_path):
    data = json.loads(make_file("d2sa").read_text())
    data["annotations"][0]["category_id"] = 5
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"image 1, annotation 100, region 1: category_id 5 is not in"):
        list(read_d2sa(path))


@pytest.mark.parametrize("fmt, written", [("kins", 1), ("d2sa", True), ("cocoa-cls", 1)])
def test_the_crowd_flag_is_read_kept_and_written_in_each_format_type(make_file, tmp_path, fmt, written):
    data = json.loads(make_file(fmt).read_text())
    data["annotations"][0]["iscrowd"] = True if fmt == "d2sa" else 1
    src = tmp_path / "in.json"
    src.write_text(json.dumps(data))
    scenes = list(READERS[fmt](src))
    flags = [r.is_crowd for s in scenes for r in s.regions]
    assert flags[0] and not any(flags[1:]) and all("iscrowd" not in r.extra for s in scenes for r in s.regions)
    write_shards(scenes, tmp_path / "shards")
    back = list(read_shards(tmp_path / "shards"))
    assert [r.is_crowd for s in back for r in s.regions] == flags
    WRITERS[fmt](back, tmp_path / "out.json")
    anns = json.loads((tmp_path / "out.json").read_text())["annotations"]
    assert [a["iscrowd"] for a in anns][:2] == [written, type(written)(0)]
    assert all(type(a["iscrowd"]) is type(written) for a in anns)
    losses = LossReport()
    WRITERS["cocoa"](back, tmp_path / "cocoa.json", losses=losses)
    assert "crowd flags (cocoa has none: crowd regions are written as regions): 1" in "\n".join(losses.lines())


def test_a_crowd_flag_that_is_not_0_or_1_is_refused(make_file, tmp_path):
    data = json.loads(make_file("kins").read_text())
    data["annotations"][1]["iscrowd"] = 2
    src = tmp_path / "in.json"
    src.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"'iscrowd' must be 0 / 1 or a bool, got 2"):
        list(READERS["kins"](src))
