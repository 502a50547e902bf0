"""Round trips: X -> X, X -> parquet -> X and X -> Y -> X keep the masks pixel for pixel, the order and the labels.

On the real COCOA fixtures and on the small files of every format built in ``conftest.py``.
"""

from __future__ import annotations

import json

import pytest

from amodaldata.masks import Mask
from converters import READERS, WRITERS
from converters.cocoa import read_cocoa, write_cocoa
from converters.kins import read_kins
from converters.losses import LossReport
from converters.parquet import read_parquet, write_parquet

READ_AS = {"kins-2020": "kins"}
FORMATS = ["cocoa", "bsds", "cocoa-cls", "kins", "kins-2020", "d2sa"]


def through(fmt, scenes, path, **options):
    WRITERS[fmt](scenes, path, **options)
    return list(READERS[READ_AS.get(fmt, fmt)](path))


def test_cocoa_to_cocoa_on_the_release(cocoa_json, tmp_path, sig):
    before = list(read_cocoa(cocoa_json))
    after = through("cocoa", read_cocoa(cocoa_json), tmp_path / "c.json")
    assert [sig(s) for s in after] == [sig(s) for s in before]
    assert [[r.depth_rank for r in s.regions] for s in after] == [[r.depth_rank for r in s.regions] for s in before]


def test_cocoa_to_parquet_to_cocoa_gives_the_same_file(cocoa_json, tmp_path, sig):
    direct = tmp_path / "direct.json"
    write_cocoa(read_cocoa(cocoa_json), direct)
    write_parquet(read_cocoa(cocoa_json), tmp_path / "shards")
    via = tmp_path / "via.json"
    write_cocoa(read_parquet(tmp_path / "shards"), via)
    assert json.loads(via.read_text()) == json.loads(direct.read_text())
    assert [sig(s) for s in read_cocoa(via)] == [sig(s) for s in read_cocoa(cocoa_json)]


@pytest.mark.parametrize("kins", ["kins", "kins-2020"])
def test_cocoa_to_kins_to_cocoa_keeps_masks_order_and_mapped_labels(kins, cocoa_json, tmp_path, sig):
    names = {r.name for s in read_cocoa(cocoa_json) for r in s.regions}
    label_map = {name: "misc" for name in names}
    losses = LossReport()
    WRITERS[kins](read_cocoa(cocoa_json), tmp_path / "k.json", label_map=label_map, losses=losses)
    back = through("cocoa", read_kins(tmp_path / "k.json"), tmp_path / "c.json")
    before = list(read_cocoa(cocoa_json))
    # KINS holds no stuff flag and replaces names by its categories: both are reported, the rest comes back
    assert [sig(s, labels=False, stuff=False) for s in back] == [sig(s, labels=False, stuff=False) for s in before]
    assert all(r.name == "misc" for s in back for r in s.regions)
    lines = "\n".join(losses.lines())
    assert "thing/stuff flag" in lines and "free-text names replaced by" in lines


def test_cocoa_to_d2sa_to_cocoa_keeps_names_through_category_ids(cocoa_json, tmp_path, sig):
    names = sorted({r.name.strip() for s in read_cocoa(cocoa_json) for r in s.regions})
    ids = {name: i + 1 for i, name in enumerate(names)}
    WRITERS["d2sa"](read_cocoa(cocoa_json), tmp_path / "d.json", label_map=ids)
    categories = json.loads((tmp_path / "d.json").read_text())["categories"]
    assert {c["name"]: c["id"] for c in categories} == ids
    back = through("cocoa", READERS["d2sa"](tmp_path / "d.json"), tmp_path / "c.json")
    before = list(read_cocoa(cocoa_json))
    assert [sig(s, stuff=False) for s in back] == [sig(s, stuff=False) for s in before]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_to_itself_and_through_parquet(fmt, make_file, tmp_path, sig):
    source = make_file(fmt)
    before = list(READERS[READ_AS.get(fmt, fmt)](source))
    same = through(fmt, before, tmp_path / "same.json")
    write_parquet(before, tmp_path / "shards")
    via = through(fmt, read_parquet(tmp_path / "shards"), tmp_path / "via.json")
    assert [sig(s) for s in same] == [sig(s) for s in before]
    assert [sig(s) for s in via] == [sig(s) for s in before]
    via_file, same_file = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("via", "same"))
    if fmt == "kins-2020":      # shards keep visible masks as RLE: KINS 2020's visible polygons are traced again
        for data in (via_file, same_file):
            for ann in data["annotations"]:
                visible = Mask.from_segmentation(ann["i_segm"], 30, 40)
                ann["i_segm"], ann["i_bbox"] = visible.to_rle()["counts"], list(Mask.from_rle(visible.to_rle(),
                                                                                              30, 40).bbox())
    assert via_file == same_file


@pytest.mark.parametrize("fmt", ["cocoa-cls", "kins", "kins-2020", "d2sa"])
def test_instance_formats_write_back_their_own_records(fmt, make_file, tmp_path):
    source = make_file(fmt)
    original = json.loads(source.read_text())
    through(fmt, READERS[READ_AS.get(fmt, fmt)](source), tmp_path / "same.json")
    written = json.loads((tmp_path / "same.json").read_text())
    assert written["images"] == original["images"]
    assert [c["id"] for c in written["categories"]] == [c["id"] for c in original["categories"]]
    key = lambda a: a["id"]  # noqa: E731
    for ann, orig in zip(sorted(written["annotations"], key=key), sorted(original["annotations"], key=key)):
        assert ann.keys() == orig.keys()
        for field in ann:
            if isinstance(orig[field], float):
                assert ann[field] == pytest.approx(orig[field]), field
            else:
                assert ann[field] == orig[field], field


def test_rle_amodal_masks_survive_d2sa_and_kins(make_file, tmp_path, sig):
    source = make_file("d2sa", rle_amodal=True)
    before = list(READERS["d2sa"](source))
    assert all(r.amodal.encoding == "rle" for s in before for r in s.regions)
    assert [sig(s) for s in through("d2sa", before, tmp_path / "d.json")] == [sig(s) for s in before]
    kins = through("kins", before, tmp_path / "k.json", label_map={"avocado": 4, "banana_single": 2, "kiwi": 7,
                                                                   "pear": 8, "zucchini": 1})
    assert [sig(s, labels=False) for s in kins] == [sig(s, labels=False) for s in before]


def test_kins_to_cocoa_to_kins(make_file, tmp_path, sig):
    before = list(read_kins(make_file("kins")))
    cocoa = through("cocoa", before, tmp_path / "c.json")
    # COCOA's reader makes Scenes of annotation objects: image 3 (no instances) is an image record only
    assert json.loads((tmp_path / "c.json").read_text())["images"][2]["id"] == 3
    assert [sig(s, stuff=False) for s in cocoa] == [sig(s, stuff=False) for s in before if s.regions]
    again = through("kins", cocoa, tmp_path / "k.json")
    assert [sig(s) for s in again if s.regions] == [sig(s) for s in before if s.regions]
    assert [r.category_id for s in again for r in s.regions] == [r.category_id for s in before for r in s.regions]


def test_cocoa_cls_to_bsds_to_cocoa_cls(make_file, tmp_path, sig):
    before = list(READERS["cocoa-cls"](make_file("cocoa-cls")))
    again = through("cocoa-cls", through("bsds", before, tmp_path / "b.json"), tmp_path / "c.json")
    assert [sig(s) for s in again] == [sig(s) for s in before if s.regions]
