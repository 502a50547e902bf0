"""Format detection from content: every format found, ambiguity and ignorance refused with a reason."""

from __future__ import annotations

import json

import pytest

from amodaldata.errors import FormatError
from amodaldata.data import COCOA_DEMO_DIR, COCOA_DEMO_JSON
from converters.detect import detect_format
from converters.parquet import write_parquet
from converters.cocoa import read_cocoa


@pytest.mark.parametrize("fmt, expected", [("cocoa", "cocoa"), ("bsds", "bsds"), ("cocoa-cls", "cocoa-cls"),
                                           ("kins", "kins"), ("kins-2020", "kins"), ("d2sa", "d2sa")])
def test_every_format_is_recognised(fmt, expected, make_file):
    assert detect_format(make_file(fmt)) == expected


def test_real_cocoa_files_and_shards(tmp_path):
    assert detect_format(COCOA_DEMO_JSON) == "cocoa"
    assert detect_format(COCOA_DEMO_DIR / "3.json") == "cocoa"          # one bare annotation object
    write_parquet(read_cocoa(COCOA_DEMO_JSON), tmp_path / "shards")
    assert detect_format(tmp_path / "shards") == "parquet"
    assert detect_format(next((tmp_path / "shards").glob("*.parquet"))) == "parquet"


def test_cocoa_schema_without_a_source_is_ambiguous(make_file, tmp_path):
    data = json.loads(make_file("cocoa").read_text())
    for image in data["images"]:
        del image["coco_url"]
    for ann in data["annotations"]:
        del ann["url"]
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match=r"fits several formats \(cocoa, bsds\): COCOA's schema, but nothing "
                                          r"names the image source.*pass --from"):
        detect_format(path)


def test_cocoa_cls_and_d2sa_need_file_names_or_categories(make_file, tmp_path):
    data = json.loads(make_file("d2sa").read_text())
    assert detect_format(make_file("d2sa")) == "d2sa"        # by the categories (none is a COCO class)
    mixed = data["categories"] + [{"id": 61, "name": "person"}]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps({**data, "categories": mixed}))
    with pytest.raises(FormatError, match=r"fits several formats \(cocoa-cls, d2sa\)"):
        detect_format(path)
    for image in data["images"]:
        image["file_name"] = f"D2S_{image['id']:06d}.jpg"
    path.write_text(json.dumps({**data, "categories": mixed}))
    assert detect_format(path) == "d2sa"


@pytest.mark.parametrize("content, message", [
    ({"images": [], "annotations": []}, "no annotation found"),
    ({"annotations": [{"bbox": [0, 0, 1, 1], "image_id": 1}]},
     r"the first annotation has none of the fields of a known format \(keys: bbox, image_id\)"),
    ([3, 4], "the first annotation is a int"),
])
def test_unknown_content_is_refused(content, message, tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(content))
    with pytest.raises(FormatError, match=f"cannot tell the format: {message}"):
        detect_format(path)


def test_an_empty_folder_is_refused(tmp_path):
    with pytest.raises(FormatError, match=r"a folder with neither \*.parquet shards nor a target index.jsonl"):
        detect_format(tmp_path)
