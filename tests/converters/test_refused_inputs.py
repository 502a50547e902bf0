"""Broken inputs across formats and commands, each refused with a one-line error naming the file, the image and
the annotation (exit 1, or the report of ``validate``), with nothing left at the output path."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from amodaldata.data import COCOA_DEMO_DIR, COCOA_DEMO_JSON
from amodaldata.errors import AmodalDataError
from amodaldata.shards import SCHEMA
from converters.validate import LAYOUTS, validate_file
from cli import main
from converters import READERS
from converters.convert import convert


def run(*args: object):
    return CliRunner().invoke(main, [*map(str, args)])


def refused(result, *fragments: str) -> None:
    """Exit 1, one line on stderr starting with ``error:`` and holding every fragment, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def nothing_at(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A copy of the COCOA demo data (annotations and images) to break."""
    folder = tmp_path / "demo"
    shutil.copytree(COCOA_DEMO_DIR, folder)
    return folder


# -- sizes ---------------------------------------------------------------------------------------------
def test_a_huge_width_is_a_validation_problem_and_a_reader_error(make_file, tmp_path):
    data = json.loads(make_file("cocoa").read_text())
    data["images"][0]["width"] = 10 ** 40
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(data))
    result = run("validate", path)
    assert result.exit_code == 1 and "image record needs int 'width' and 'height' from 1 to 65535, got " \
                                      f"{10 ** 40} x 30" in result.stdout
    refused(run("convert", path, "--to", "semdist", "--out", tmp_path / "sd", "--no-progress"),
            str(path), "image 1", f"image width {10 ** 40} is outside 1..65535")
    nothing_at(tmp_path / "sd")


# -- outputs under an existing file -------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["convert", "show", "stats", "gen"])
def test_an_output_under_an_existing_file(command, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "sub" / "out"
    args = {"convert": ["convert", COCOA_DEMO_JSON, "--to", "semdist", "--out", out, "--no-progress"],
            "show": ["show", COCOA_DEMO_JSON, "--image-id", "6608", "--out", f"{out}.png"],
            "stats": ["stats", "cocoa", COCOA_DEMO_JSON, "--json", f"{out}.json", "--no-progress"],
            "gen": ["gen", "shapes", "--n", "1", "--out", out, "--no-progress", "--workers", "1"]}[command]
    refused(run(*args), str(blocker), "(a folder on that path is a file)")
    assert blocker.read_text() == "x"


# -- images -----------------------------------------------------------------------------------------
def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (9, 9, 9)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("damage", "message"), [
    (lambda data: b"garbage", "does not decode: not in an image format PIL reads"),
    (lambda data: data[: len(data) // 2], "does not decode"),
    (lambda data: _png(50, 40), "is 50 x 40 (w x h), the annotation says 640 x 480"),
])
def test_convert_to_parquet_refuses_a_bad_image(demo, tmp_path, damage, message):
    image = demo / "1.jpg"
    image.write_bytes(damage(image.read_bytes()))
    out = tmp_path / "shards"
    refused(run("convert", "cocoa", demo / "COCOA_demo.json", "--images", demo, "--to", "parquet", "--out", out,
                "--no-progress"), "image 188819, annotation 377: image 1.jpg " + message)
    nothing_at(out)
    report = convert("cocoa", demo / "COCOA_demo.json", "parquet", out, images=demo, on_error="skip")
    assert [e.image_id for e in report.skipped] == [188819] and report.scenes == 4


def test_validate_images_checks_sizes(demo):
    (demo / "1.jpg").write_bytes(_png(50, 40))
    data = json.loads((demo / "COCOA_demo.json").read_text())
    name = next(im["file_name"] for im in data["images"] if im["id"] == 188819)
    (demo / name).write_bytes(_png(50, 40))
    result = run("validate", demo / "COCOA_demo.json", "--images", demo)
    assert result.exit_code == 1
    assert f"image 188819: image {demo / name} is 50 x 40 (w x h), the annotation says 640 x 480" in result.stdout


def test_gen_overlay_refuses_an_undecodable_image_and_leaves_nothing(demo, tmp_path):
    (demo / "1.jpg").write_bytes(b"garbage")
    out = tmp_path / "ov"
    refused(run("gen", "overlay", "--source", "cocoa", demo / "COCOA_demo.json", "--images", demo, "--n", "2",
                "--out", out, "--no-progress", "--workers", "1"),
            "image 188819, annotation 377: image 1.jpg does not decode")
    assert not out.exists()


def test_gen_overlay_with_an_unreadable_source_leaves_no_manifest_or_lock(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [], "annotations": [{"id": 1, "image_id": 1, "regions": "x"}]}')
    out = tmp_path / "ov"
    out.mkdir()
    (out / "mine.txt").write_text("kept")
    result = run("gen", "overlay", "--source", "cocoa", bad, "--images", COCOA_DEMO_DIR, "--n", "2", "--out", out,
                 "--no-progress", "--workers", "1")
    refused(result, str(bad), "image 1, annotation 1")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]


def test_show_names_the_image_file_it_cannot_decode(demo, tmp_path):
    (demo / "1.jpg").write_bytes(b"garbage")
    refused(run("show", demo / "COCOA_demo.json", "--images", demo, "--image-id", "188819", "--out",
                tmp_path / "s.png"), "image 188819, annotation 377: image 1.jpg does not decode")
    nothing_at(tmp_path / "s.png")


def test_show_tells_the_format_from_the_content(make_file, tmp_path):
    result = run("show", make_file("kins"), "--image-id", "1", "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.png").is_file()


# -- KINS 2020 order fields ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1", -1, 1.5, True])
@pytest.mark.parametrize("key", ["ico_id", "oco_id"])
def test_kins_2020_order_fields_of_the_wrong_type_or_sign(key, value, make_file, tmp_path):
    data = json.loads(make_file("kins-2020").read_text())
    data["annotations"][1][key] = value
    path = tmp_path / "k.json"
    path.write_text(json.dumps(data))
    report = validate_file(path, LAYOUTS["kins"])
    assert report.counts == {"schema": 1}
    assert report.examples["schema"][0].message == f"'{key}' must be a non-negative int, got {value!r}"
    with pytest.raises(AmodalDataError, match=rf"image 1, annotation 101, region 2: '{key}' must be a "
                                              rf"non-negative int"):
        list(READERS["kins"](path))
    refused(run("convert", path, "--to", "cocoa", "--out", tmp_path / "c.json", "--no-progress"),
            str(path), "image 1, annotation 101")
    nothing_at(tmp_path / "c.json")


# -- shards -------------------------------------------------------------------------------------------------
def test_a_shard_with_a_string_height(tmp_path):
    shards = tmp_path / "shards"
    convert("cocoa", COCOA_DEMO_JSON, "parquet", shards)
    first = sorted(shards.glob("*.parquet"))[0]
    table = pq.read_table(first)
    height = table.schema.get_field_index("height")
    table = table.set_column(height, pa.field("height", pa.string()),
                             pa.array([str(v) for v in table.column("height").to_pylist()]))
    pq.write_table(table, first)
    refused(run("convert", shards, "--to", "cocoa", "--out", tmp_path / "c.json", "--no-progress"),
            str(first), "image 188819", "column 'height' must hold ints, got str '480'")
    nothing_at(tmp_path / "c.json")
    result = run("validate", shards)
    assert result.exit_code == 1, result.output
    assert f"{first.name}: column 'height' is stored as string, the shard type is {SCHEMA.field('height').type}" \
        in result.stdout


# -- duplicate instance ids ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["kins", "kins-2020", "cocoa-cls", "d2sa"])
@pytest.mark.parametrize("command", ["convert", "stats", "show"])
def test_duplicate_instance_ids(fmt, command, make_file, tmp_path):
    data = json.loads(make_file(fmt).read_text())
    data["annotations"][4]["id"] = data["annotations"][1]["id"]      # an instance of image 2 takes 101
    path = tmp_path / f"{fmt}.json"
    path.write_text(json.dumps(data))
    args = {"convert": ["convert", path, "--to", "semdist", "--out", tmp_path / "o", "--no-progress"],
            "stats": ["stats", "kins" if fmt.startswith("kins") else fmt, path, "--no-progress"],
            "show": ["show", path, "--image-id", "2", "--out", tmp_path / "o.png"]}[command]
    refused(run(*args), str(path), "image 2, annotation 101: duplicate annotation id (image 1 has an annotation "
                                   "with that id)")
    nothing_at(tmp_path / ("o.png" if command == "show" else "o"))
