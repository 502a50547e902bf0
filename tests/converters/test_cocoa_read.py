"""Reading COCOA / BSDS-amodal: the real demo files in every accepted layout, and bad input, named precisely."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from amodaldata.data import COCOA_DEMO_DIR
from amodaldata.errors import (AnnotationError, DepthCycleError, ErrorPolicy, GeometryError, MissingImageError)
from converters import read
from converters.cocoa import depth_constraint_order, read_cocoa


def test_release_file_reads_every_annotation(cocoa_json, cocoa_raw):
    scenes = list(read(cocoa_json, format="cocoa"))
    assert [s.id for s in scenes] == [a["image_id"] for a in cocoa_raw["annotations"]]
    for scene, ann, image in zip(scenes, cocoa_raw["annotations"], cocoa_raw["images"]):
        assert (scene.height, scene.width, scene.file_name) == (image["height"], image["width"], image["file_name"])
        assert scene.annotation_id == ann["id"] and scene.annotator == ann["author"]
        assert [r.id for r in scene.regions] == list(range(1, len(ann["regions"]) + 1))
        assert [r.depth_rank for r in scene.regions] == [r["order"] for r in ann["regions"]]
        assert [r.name for r in scene.regions] == [r["name"] for r in ann["regions"]]
        assert scene.extra["url"] == ann["url"] and scene.extra["size"] == ann["size"]
        assert scene.image_bytes is None
        ranks = {r.id: r.depth_rank for r in scene.regions}
        assert all(ranks[a] < ranks[b] for a, b in scene.order.edges)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_per_image_file_with_the_image_folder(n, cocoa_raw):
    path = COCOA_DEMO_DIR / f"{n}.json"
    (scene,) = read_cocoa(path, images=COCOA_DEMO_DIR, load_images=True)
    image = cocoa_raw["images"][n - 1]
    assert (scene.id, scene.height, scene.width) == (image["id"], image["height"], image["width"])
    assert scene.image_bytes == (COCOA_DEMO_DIR / f"{n}.jpg").read_bytes()
    assert scene.file_name == f"{n}.jpg"
    assert len(scene.regions) == len(json.loads(path.read_text())["regions"])


def test_per_image_file_without_images_needs_the_folder():
    with pytest.raises(AnnotationError) as info:
        list(read_cocoa(COCOA_DEMO_DIR / "1.json"))
    assert "pass the image folder" in str(info.value) and "image 188819" in str(info.value)


def test_list_of_annotations_and_several_annotators(cocoa_raw, tmp_path):
    first = cocoa_raw["annotations"][0]
    second = dict(first, id=9999, author="someone else")
    path = tmp_path / "1.json"          # the demo layout: N.json beside N.jpg
    path.write_text(json.dumps([first, second]))
    scenes = list(read_cocoa(path, images=COCOA_DEMO_DIR))
    assert [s.id for s in scenes] == [first["image_id"]] * 2
    assert [s.annotator for s in scenes] == [first["author"], "someone else"]
    assert [s.annotation_id for s in scenes] == [first["id"], 9999]


def _write(tmp_path: Path, cocoa_raw: dict, edit) -> Path:
    data = json.loads(json.dumps(cocoa_raw))
    edit(data)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))     # NaN is written as the JSON extension NaN, as Python's json reads it
    return path


def _segment(d: dict, ann: int, region: int, value) -> None:
    d["annotations"][ann]["regions"][region]["segmentation"] = value


# (edit, expected error type, fragments the message must hold: what is wrong and where)
BROKEN = {
    "no segmentation": (lambda d: d["annotations"][2]["regions"][4].pop("segmentation"), AnnotationError,
                        ["image 6608", "annotation 12", "region 5 (order 5)", "no 'segmentation' field"]),
    "no image_id": (lambda d: d["annotations"][1].pop("image_id"), AnnotationError,
                    ["annotation 704", "annotation has no 'image_id' field"]),
    "no regions": (lambda d: d["annotations"][0].pop("regions"), AnnotationError,
                   ["image 188819", "annotation has no 'regions' field"]),
    "two-point polygon": (lambda d: _segment(d, 1, 0, [1, 2, 3, 4]), GeometryError,
                          ["image 343254", "region 1 (order 1)", "2 point(s); at least 3"]),
    "odd coordinates": (lambda d: _segment(d, 0, 1, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]), GeometryError,
                        ["image 188819", "region 2 (order 2)", "odd number of coordinates"]),
    "NaN coordinate": (lambda d: _segment(d, 3, 2, [1.0, math.nan, 3.0, 4.0, 5.0, 6.0]), GeometryError,
                       ["image 328805", "region 3", "NaN or infinite"]),
    "RLE of the wrong size": (lambda d: d["annotations"][3]["regions"][5]["visible_mask"].update(size=[10, 10]),
                              GeometryError, ["image 328805", "annotation 680", "region 6 (order 7)",
                                              "RLE size [10, 10] disagrees with the image size [640, 480]"]),
    "depth cycle": (lambda d: d["annotations"][4].update(depth_constraint="1-2,2-3,3-1"), DepthCycleError,
                    ["image 200752", "depth order has a cycle through regions"]),
    "unknown order in depth_constraint": (lambda d: d["annotations"][4].update(depth_constraint="1-2,2-99"),
                                          AnnotationError, ["image 200752", "'2-99' names order 99"]),
    "image not in the images list": (lambda d: d["annotations"][2].update(image_id=1), AnnotationError,
                                     ["image 1", "the 'images' list does not have"]),
    "image without size": (lambda d: d["images"][0].pop("height"), AnnotationError,
                           ["image record 188819 has no 'height' field"]),
}


@pytest.mark.parametrize("problem", sorted(BROKEN))
def test_bad_input_is_named(problem, cocoa_raw, tmp_path):
    edit, error, fragments = BROKEN[problem]
    path = _write(tmp_path, cocoa_raw, edit)
    with pytest.raises(error) as info:
        list(read_cocoa(path))
    message = str(info.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message, message


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"images": [],\n "annotations": [}')
    with pytest.raises(AnnotationError) as info:
        list(read_cocoa(path))
    assert str(info.value).startswith(f"{path}: malformed JSON") and "line 2" in str(info.value)


@pytest.mark.parametrize(("content", "fragment"), [
    ('{"foo": 1}', "not a COCOA file"),
    ('{"images": {}, "annotations": []}', "must be lists"),
    ("\"text\"", "not a COCOA file"),
])
def test_json_that_is_not_cocoa(content, fragment, tmp_path):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(AnnotationError, match=fragment):
        list(read_cocoa(path))


def test_missing_image_file_is_named(cocoa_json, tmp_path):
    with pytest.raises(MissingImageError) as info:
        list(read_cocoa(cocoa_json, images=tmp_path, load_images=True))
    message = str(info.value)
    assert "image 188819" in message and "annotation 377" in message
    assert f"image file not found in {tmp_path}" in message and "1.jpg" in message


def test_skip_drops_bad_annotations_and_reports_each(cocoa_raw, tmp_path):
    def edit(d):
        _segment(d, 1, 0, [1, 2, 3, 4])
        d["annotations"][3]["depth_constraint"] = "1-2,2-1"
        d["annotations"][4]["regions"][0]["visible_mask"] = {"size": [1, 1], "counts": "0"}

    path = _write(tmp_path, cocoa_raw, edit)
    policy = ErrorPolicy("skip")
    scenes = list(read_cocoa(path, on_error=policy))
    assert [s.id for s in scenes] == [188819, 6608]
    assert [type(e) for e in policy.skipped] == [GeometryError, DepthCycleError, GeometryError]
    summary = policy.summary()
    assert summary.startswith("skipped 3 item(s) (1 DepthCycleError, 2 GeometryError):")
    for where in ("image 343254, annotation 704, region 1", "image 328805", "image 200752"):
        assert where in summary


def test_fail_is_the_default_and_unknown_policies_are_refused(cocoa_raw, tmp_path):
    path = _write(tmp_path, cocoa_raw, lambda d: _segment(d, 0, 0, [1, 2, 3, 4]))
    reader = read_cocoa(path)
    with pytest.raises(GeometryError):
        next(reader)
    with pytest.raises(ValueError):
        list(read_cocoa(path, on_error="ignore"))


def test_depth_constraint_numbers_are_order_values_not_positions():
    # regions listed with ids 1, 2, 3 carry order values 5, 2, 9 (gaps, as in the demo data)
    order = depth_constraint_order("2-5, 5-9,", {5: 1, 2: 2, 9: 3})
    assert order.edges == {(2, 1), (1, 3)}
    assert depth_constraint_order("", {1: 1}).edges == set()


@pytest.mark.parametrize(("text", "fragment"), [
    ("1-7", "names order 7, which no region has"),
    ("1>2", "is not of the form 'a-b'"),
    ("1-2-3", "is not of the form 'a-b'"),
    ("a-b", "is not of the form 'a-b'"),
])
def test_bad_depth_constraints_are_refused(text, fragment):
    with pytest.raises(AnnotationError) as info:
        depth_constraint_order(text, {1: 1, 2: 2, 3: 3})
    assert fragment in str(info.value)
