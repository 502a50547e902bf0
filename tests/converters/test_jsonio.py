"""Element-wise JSON reading across buffer boundaries, its error messages, and the atomic COCO-layout writer."""

from __future__ import annotations

import json

import pytest

import converters.jsonio as jsonio
from amodaldata.data import COCOA_DEMO_JSON
from amodaldata.errors import AnnotationError
from converters.jsonio import CocoLayoutWriter, iter_json


def collect(path, stream=("annotations",)):
    out: dict = {}
    for kind, key, value in iter_json(path, stream):
        if kind == "start":
            out[key] = []
        elif kind == "item":
            out[key].append(value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("chunk", [3, 7, 64, 1 << 20])
def test_events_rebuild_the_file_whatever_the_buffer_size(chunk, monkeypatch):
    monkeypatch.setattr(jsonio, "CHUNK", chunk)
    expected = json.loads(COCOA_DEMO_JSON.read_text())
    assert collect(COCOA_DEMO_JSON, ("annotations", "images")) == expected


def test_numbers_cut_by_the_buffer_and_other_layouts(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonio, "CHUNK", 4)
    path = tmp_path / "n.json"
    path.write_text('{"annotations": [123456789, -1.5e-3, {"a": [1, 2]}], "x": 12345678}')
    assert collect(path) == {"annotations": [123456789, -1.5e-3, {"a": [1, 2]}], "x": 12345678}
    path.write_text(" [ ] ")
    assert list(iter_json(path)) == [("start", None, None)]
    path.write_text('[{"regions": []}, 2]')
    assert [v for kind, _, v in iter_json(path) if kind == "item"] == [{"regions": []}, 2]
    path.write_text("17")
    assert list(iter_json(path)) == [("value", None, 17)]


@pytest.mark.parametrize("text, message", [
    ('{"annotations": [1, 2,', "malformed JSON: Expecting value at line 1, column 23"),
    ('{"annotations": [1 2]}', "malformed JSON: expected ',' or ']' at line 1, column 20"),
    ('{\n"images": [],\n"annotations": []\n} x', "malformed JSON: extra data after the JSON value at line 4"),
    ('{"a" 1}', "malformed JSON: expected ':' at line 1, column 6"),
])
def test_malformed_json_is_located(text, message, tmp_path, monkeypatch):
    monkeypatch.setattr(jsonio, "CHUNK", 5)
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(AnnotationError, match=message):
        list(iter_json(path))


def test_writer_assembles_in_order_and_cleans_up_on_error(tmp_path):
    out = tmp_path / "o.json"
    with CocoLayoutWriter(out) as writer:
        writer.annotation({"id": 1})
        writer.image({"id": 9})
        writer.annotation({"id": 2, "name": "café"})
        writer.tail["categories"] = [{"id": 1, "name": "x"}]
    assert list(json.loads(out.read_text())) == ["images", "annotations", "categories"]
    assert json.loads(out.read_text())["annotations"][1]["name"] == "café"
    with pytest.raises(ValueError):
        with CocoLayoutWriter(tmp_path / "p.json") as writer:
            writer.annotation({"id": 1})
            raise ValueError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.json"]
