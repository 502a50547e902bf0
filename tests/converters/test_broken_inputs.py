"""A corpus of broken inputs, one problem each: what ``validate`` reports, and what the reader says when it refuses.

Each case starts from a clean small file of ``conftest.py`` and breaks one thing. ``validate`` must report
exactly that kind of problem, with the expected message at the expected image / annotation / region; where the
reader refuses the file, its error must name the place and say what is wrong.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools import mask as cocomask

from amodaldata.errors import AmodalDataError
from converters.validate import LAYOUTS, validate_file
from cli import main
from converters import READERS

H, W = 30, 40


def area_of(polygons: list) -> int:
    return int(cocomask.area(cocomask.merge(cocomask.frPyObjects(polygons, H, W))))


def region(data: dict, image_id: int, order: int) -> dict:
    ann = next(a for a in data["annotations"] if a["image_id"] == image_id)
    return next(r for r in ann["regions"] if r["order"] == order)


def instance(data: dict, ann_id: int) -> dict:
    return next(a for a in data["annotations"] if a["id"] == ann_id)


def reshape_d(data: dict, polygon: list) -> None:
    """Give COCOA's region D (image 1, order 4, alone and unoccluded) a new outline and its true area."""
    d = region(data, 1, 4)
    d["segmentation"] = polygon
    d["area"] = area_of([polygon])


def leak_visible(data: dict) -> None:
    ann = instance(data, 103)                      # D2SA's D: unoccluded, visible == amodal
    bitmap = cocomask.decode(cocomask.frPyObjects(ann["segmentation"], H, W)[0]).astype(np.uint8)
    bitmap[0:5, 0:10] = 1
    coded = cocomask.encode(np.asfortranarray(bitmap))
    ann["visible_mask"] = {"size": [H, W], "counts": coded["counts"].decode()}


Mutation = Callable[[dict], Any]
# id, format, mutation, validate kind, validate message, (image, annotation, region) of the first example,
# reader message (None: the reader accepts the file; validation is the check)
CASES: list[tuple[str, str, Mutation, str, str, tuple, str | None]] = [
    ("missing-field", "cocoa", lambda d: region(d, 1, 2).pop("segmentation"),
     "schema", "region has no 'segmentation' field", (1, 1, 2),
     "image 1, annotation 1, region 2 (order 2): region has no 'segmentation' field"),
    ("mistyped-field", "cocoa", lambda d: region(d, 2, 2).update(order="2"),
     "schema", "region needs a positive int 'order', got '2'", (2, 2, 2),
     "image 2, annotation 2, region 2: 'order' must be a positive int, got '2'"),
    ("two-points", "cocoa", lambda d: region(d, 1, 3).update(segmentation=[26.0, 1.0, 38.0, 1.0]),
     "few-points", "'segmentation' polygon 0 has 2 point(s); at least 3 are needed", (1, 1, 3),
     "region 3 (order 3): polygon 0 has 2 point(s); at least 3 are needed"),
    ("nan-coordinate", "cocoa", lambda d: region(d, 1, 1)["segmentation"].__setitem__(3, math.nan),
     "bad-coordinates", "'segmentation' polygon 0 has a NaN or infinite coordinate", (1, 1, 1),
     "region 1 (order 1): polygon 0 has a NaN or infinite coordinate"),
    ("odd-coordinates", "cocoa", lambda d: region(d, 1, 1)["segmentation"].append(5.0),
     "bad-coordinates", "'segmentation' polygon 0 has an odd number of coordinates (9)", (1, 1, 1),
     "polygon 0 has an odd number of coordinates (9)"),
    ("non-numeric", "kins", lambda d: instance(d, 101)["segmentation"][0].__setitem__(2, "34"),
     "bad-coordinates", "'segmentation' polygon 0 has a non-numeric coordinate", (1, 101, None),
     "image 1, annotation 101, region 2: 'segmentation': polygon 0 has a non-numeric coordinate"),
    ("out-of-image", "cocoa", lambda d: reshape_d(d, [30.0, 23.0, 45.0, 23.0, 45.0, 28.0, 30.0, 28.0]),
     "out-of-image", "'segmentation' polygon 0 spans x 30..45, y 23..28; the image is 40 x 30", (1, 1, 4), None),
    ("self-intersection", "cocoa", lambda d: reshape_d(d, [30.0, 23.0, 36.0, 28.0, 36.0, 23.0, 30.0, 28.0]),
     "self-intersection", "'segmentation' polygon 0: Self-intersection[33 25.5]", (1, 1, 4), None),
    ("rle-size", "cocoa", lambda d: region(d, 1, 2)["visible_mask"].update(size=[31, 40]),
     "rle", "'visible_mask' RLE size [31, 40] is not the image size [30, 40]", (1, 1, 2),
     "region 2 (order 2): RLE size [31, 40] disagrees with the image size [30, 40]"),
    ("rle-corrupt", "kins", lambda d: instance(d, 101)["inmodal_seg"].update(counts="!!!!"),
     "rle", "'inmodal_seg' RLE does not decode: Invalid RLE mask representation", (1, 101, None),
     "image 1, annotation 101, region 2: 'inmodal_seg': RLE counts string has characters outside"),
    ("visible-outside-amodal", "d2sa", leak_visible,
     "visible-outside-amodal", "50 of 80 visible pixel(s) lie outside the amodal mask", (1, 103, None), None),
    ("area", "cocoa", lambda d: region(d, 1, 1).update(area=region(d, 1, 1)["area"] + 10),
     "area", "area 478 but the mask has 468 pixel(s)", (1, 1, 1), None),
    ("occlude-rate", "cocoa", lambda d: region(d, 1, 2).update(occlude_rate=0.5),
     "occlude-rate", "occlude_rate 0.5 but the order hides 112 of 308 pixels (0.363636)", (1, 1, 2), None),
    ("visible-order", "cocoa", lambda d: region(d, 1, 2).update(visible_mask=region(d, 1, 2)["invisible_mask"]),
     "visible-order", "visible_mask differs from the visible part the order implies in 308 pixel(s)", (1, 1, 2),
     None),
    ("depth-cycle", "cocoa", lambda d: d["annotations"][0].update(depth_constraint="1-2,2-3,3-1"),
     "depth-cycle", "depth_constraint has a cycle through orders 1 -> 2 -> 3 -> 1", (1, 1, None),
     "image 1, annotation 1: depth order has a cycle through regions"),
    ("duplicate-annotation-id", "cocoa", lambda d: d["annotations"][1].update(id=1),
     "duplicate-id", "duplicate annotation id", (2, 1, None), None),
    ("duplicate-order", "cocoa", lambda d: region(d, 1, 3).update(order=2),
     "duplicate-id", "two regions have order 2", (1, 1, 3),
     "image 1, annotation 1, region 3: two regions have order 2"),
    ("duplicate-image-id", "kins", lambda d: d["images"][2].update(id=1),
     "duplicate-id", "duplicate image id", (1, None, None), "image 1: duplicate image id"),
    ("unknown-image", "cocoa", lambda d: d["annotations"][1].update(image_id=99),
     "unknown-image", "annotation names an image the 'images' list does not have", (99, 2, None),
     "image 99, annotation 2: annotation names an image the 'images' list does not have"),
    ("unknown-category", "kins", lambda d: instance(d, 104).update(category_id=99),
     "unknown-category", "category_id 99 is not in 'categories'", (2, 104, None),
     "image 2, annotation 104, region 1: category_id 99 is not in the file's categories"),
    ("missing-image-id", "d2sa", lambda d: instance(d, 102).pop("image_id"),
     "schema", "annotation has no int/str 'image_id'", (None, 102, None),
     "annotation 102: annotation has no 'image_id' field"),
    ("bad-image-record", "cocoa", lambda d: d["images"][1].update(width="40"),
     "schema", "image record needs int 'width' and 'height' from 1 to 65535, got '40' x 30", (2, None, None),
     "image record 2 field 'width' must be int, got str"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_broken_input(case, make_file, tmp_path):
    name, fmt, mutate, kind, message, (image_id, ann_id, region_id), read_message = case
    data = json.loads(make_file(fmt).read_text())
    mutate(data)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    report = validate_file(path, LAYOUTS["kins" if fmt.startswith("kins") else fmt])
    assert set(report.counts) == {kind}, report.lines()
    first = report.examples[kind][0]
    assert first.message == message
    assert (first.image_id, first.annotation_id, first.region_id) == (image_id, ann_id, region_id)
    assert not report.clean
    reader = READERS[fmt]
    if read_message is None:
        list(reader(path))
    else:
        with pytest.raises(AmodalDataError) as err:
            list(reader(path))
        assert str(err.value).startswith(str(path)) and read_message in str(err.value)


def test_schema_problems_are_typed(make_file, tmp_path):
    """A missing field is a MissingField, a mistyped one a WrongType naming the expected and actual types (as
    datumaro's MissingFieldError / InvalidFieldTypeError)."""
    from amodaldata.validate import MissingField, WrongType

    data = json.loads(make_file("cocoa").read_text())
    region = data["annotations"][0]["regions"][0]
    del region["name"]
    region["isStuff"] = "no"
    path = tmp_path / "typed.json"
    path.write_text(json.dumps(data))
    missing, wrong = validate_file(path, LAYOUTS["cocoa"]).examples["schema"]
    assert isinstance(missing, MissingField) and missing.field == "name"
    assert isinstance(wrong, WrongType) and (wrong.field, wrong.expected, wrong.actual) == ("isStuff", ("int",), "str")


def test_malformed_json(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text('{"images": [], "annotations": [{"id": 1,')
    report = validate_file(path, LAYOUTS["cocoa"])
    assert report.counts == {"json": 1}
    assert report.examples["json"][0].message == "malformed JSON: Expecting property name enclosed in double " \
                                                 "quotes at line 1, column 41"
    with pytest.raises(AmodalDataError, match="cut.json: malformed JSON: Expecting property name enclosed in double "
                                              "quotes at line 1, column 41"):
        list(READERS["cocoa"](path))


def test_images_missing_on_disk(make_file, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "1.jpg").write_bytes(b"not an image")
    report = validate_file(make_file("cocoa"), LAYOUTS["cocoa"], images=images)
    assert report.counts == {"missing-image": 1, "image": 1}
    assert report.examples["missing-image"][0].message == f"2.jpg not found in {images}"
    assert report.examples["image"][0].message == (f"image {images / '1.jpg'} does not decode: not in an image "
                                                   "format PIL reads")
    with pytest.raises(AmodalDataError, match=r"image 2, annotation 2: image file not found in .*\(looked for 2.jpg"):
        list(READERS["cocoa"](make_file("cocoa"), images=images, load_images=True))


def test_skip_policy_reports_every_dropped_item(make_file, tmp_path):
    from amodaldata.errors import ErrorPolicy

    data = json.loads(make_file("kins").read_text())
    instance(data, 104)["category_id"] = 99
    instance(data, 101)["inmodal_seg"]["size"] = [1, 1]
    path = tmp_path / "two.json"
    path.write_text(json.dumps(data))
    policy = ErrorPolicy("skip")
    assert [s.id for s in READERS["kins"](path, on_error=policy)] == [3]
    assert [(e.image_id, e.annotation_id) for e in policy.skipped] == [(1, 101), (2, 104)]
    assert "skipped 2 item(s) (1 AnnotationError, 1 GeometryError)" in policy.summary()


def test_cli_exit_codes(make_file, tmp_path):
    clean = make_file("cocoa")
    result = CliRunner().invoke(main, ["validate", str(clean)])
    assert result.exit_code == 0 and "clean: no problem found" in result.stdout
    data = json.loads(clean.read_text())
    region(data, 1, 1)["area"] = 1
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["validate", str(broken), "--from", "cocoa"])
    assert result.exit_code == 1
    assert "1 x stored area disagreeing with the mask [area]" in result.stdout
    assert "image 1, annotation 1, region 1: area 1 but the mask has 468 pixel(s)" in result.stdout


@pytest.mark.parametrize("in_kernel", [False, True])
def test_ctrl_c_is_a_message_and_exit_code_130(make_file, monkeypatch, in_kernel):
    """Ctrl-C during a command gives "interrupted" and exit code 130, not a traceback; inside a compiled
    kernel it surfaces as a SystemError caused by the KeyboardInterrupt, which counts the same."""
    import converters.validate

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        if not in_kernel:
            raise KeyboardInterrupt
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise SystemError("CPUDispatcher(...) returned a result with an exception set") from exc

    monkeypatch.setattr(converters.validate, "validate_file", interrupted)
    result = CliRunner().invoke(main, ["validate", str(make_file("cocoa"))])
    assert result.exit_code == 130 and "interrupted" in result.output and result.exception.__class__ is SystemExit


def test_a_system_error_of_another_cause_is_not_hidden(make_file, monkeypatch):
    import converters.validate

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise SystemError("a real bug")

    monkeypatch.setattr(converters.validate, "validate_file", broken)
    result = CliRunner().invoke(main, ["validate", str(make_file("cocoa"))])
    assert isinstance(result.exception, SystemError) and "interrupted" not in result.output


def test_shard_with_corrupt_counts_fails_or_is_skipped_by_convert(cocoa_json, tmp_path):
    """Shards are read without decoding their RLE counts; a scene whose amodal counts are not a mask of the image
    is refused when its layer stack is built, located, under the error policy (nothing is written on fail)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from amodaldata.shards import SCHEMA
    from converters.convert import convert

    shards = tmp_path / "shards"
    convert("cocoa", cocoa_json, "parquet", shards)
    first = sorted(shards.glob("*.parquet"))[0]
    rows = pq.read_table(first).to_pylist()
    bad = rows[0]["regions"][1]
    bad["amodal"]["counts"], bad["amodal_polygons"] = "0`0", None
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), first)

    result = CliRunner().invoke(main, ["convert", "parquet", str(shards), "--to", "semdist", "--out",
                                       str(tmp_path / "fail"), "--no-progress"])
    assert result.exit_code == 1
    assert f"image {json.loads(rows[0]['image_id'])}" in result.output
    assert f"region {bad['id']}: amodal RLE counts are not a valid mask" in result.output
    assert not (tmp_path / "fail").exists()

    report = convert("parquet", shards, "semdist", tmp_path / "skip", on_error="skip")
    assert len(report.skipped) == 1 and report.skipped[0].region_id == bad["id"]
    assert report.scenes == sum(1 for _ in (tmp_path / "skip").glob("*.npz"))
