"""``amodaldata validate`` on the target folders (semdist, layered): clean when written by the writers, every
broken part reported, located by file, image and region."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from amodaldata.errors import FormatError
from cli import main
from converters import write
from converters.cocoa import read_cocoa
from converters.validate_targets import validate_targets


@pytest.fixture
def folders(cocoa_json, tmp_path) -> dict[str, Path]:
    out = {}
    for fmt, options in (("semdist", {}), ("layered", {"layers": 3})):
        out[fmt] = tmp_path / fmt
        write(read_cocoa(cocoa_json), out[fmt], format=fmt, **options)
    return out


def _edit(folder: Path, line: int, change) -> Path:
    """Rewrite the arrays of index line ``line`` with ``change(arrays)``; return the .npz path."""
    record = json.loads((folder / "index.jsonl").read_text().splitlines()[line])
    path = folder / record["file"]
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    np.savez_compressed(path, **arrays)
    return path


def test_written_folders_are_clean_and_count_everything(folders, cocoa_images):
    for fmt, folder in folders.items():
        report = validate_targets(folder, fmt, images=cocoa_images)
        assert report.clean, report.lines()
        assert (report.images, report.annotations, report.regions) == (5, 5, 48)


def test_the_cli_checks_target_folders(folders):
    res = CliRunner().invoke(main, ["validate", str(folders["layered"])])
    assert res.exit_code == 0 and "(layered)" in res.output and "clean" in res.output
    _edit(folders["semdist"], 0, lambda a: a["semdist"].__setitem__((0, 0, 0), 3.0))
    res = CliRunner().invoke(main, ["validate", str(folders["semdist"])])
    assert res.exit_code == 1 and "[semdist]" in res.output and "reaches 3" in res.output


def test_index_problems_are_typed_and_located(folders, tmp_path):
    folder = folders["semdist"]
    lines = (folder / "index.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    broken = [lines[0], "{not json", json.dumps({**first, "height": "480"}),
              json.dumps({k: v for k, v in first.items() if k != "file"}), lines[0], "[1, 2]"]
    (folder / "index.jsonl").write_text("\n".join(broken) + "\n")
    report = validate_targets(folder, "semdist", images=tmp_path)
    text = "\n".join(report.lines())
    assert report.counts["schema"] == 4 and report.counts["duplicate-id"] == 2
    assert "index.jsonl:2: not JSON" in text and "index.jsonl:6: an index line must be a JSON object" in text
    wrong, missing = (p for p in report.examples["schema"] if getattr(p, "field", None))
    assert (wrong.field, wrong.expected, wrong.actual) == ("height", ("int",), "str")
    assert (type(missing).__name__, missing.field) == ("MissingField", "file")
    assert report.counts["missing-image"] == 2 and not report.clean


def test_array_problems_name_file_image_and_region(folders):
    sd = folders["semdist"]
    npz = _edit(sd, 0, lambda a: a.update(semdist=a["semdist"][:, :-1]))
    report = validate_targets(sd, "semdist")
    problem, = report.examples["arrays"]
    assert problem.file == str(npz) and problem.image_id == 188819 and "expected float" in problem.message

    def wrong_amodal(a):
        a["amodal"][1, :5, :5] = ~a["amodal"][1, :5, :5]
        a["visible"][2] = True
        a["order_edges"] = np.concatenate([a["order_edges"], a["order_edges"][:1, ::-1], [[1, 99]]])

    _edit(sd, 1, wrong_amodal)
    (sd / json.loads((sd / "index.jsonl").read_text().splitlines()[2])["file"]).unlink()
    report = validate_targets(sd, "semdist")
    assert report.counts["semdist"] == 1 and report.examples["semdist"][0].region_id == 2
    assert "differs from the decoded map on 25 pixel(s)" in report.examples["semdist"][0].message
    assert report.counts["visible-outside-amodal"] == 1 and report.examples["visible-outside-amodal"][0].region_id == 3
    assert report.counts["depth-cycle"] == 1 and report.counts["unknown-region"] == 1
    assert "cannot read the arrays" in report.examples["arrays"][1].message


def test_layered_problems(folders):
    ly = folders["layered"]

    def broken(a):
        a["classes"][0, 0, 0] = 0 if a["instances"][0, 0, 0] else 1           # class without instance or back
        a["instances"][1, 5, 5], a["instances"][0, 5, 5] = 7, 0                # a gap in front of a layer
        a["region_ids"] = a["region_ids"][1:]                                  # an instance the ids lack
        a["region_classes"] = a["region_classes"][1:]

    _edit(ly, 0, broken)
    _edit(ly, 1, lambda a: a.update(region_ids=np.array([1, 1] + list(a["region_ids"][2:]))))
    report = validate_targets(ly, "layered")
    messages = [p.message for p in report.examples["layers"]]
    assert any("disagree on being empty" in m for m in messages)
    assert any("behind an empty nearer one" in m for m in messages)
    assert report.counts["unknown-region"] >= 1 and report.counts["duplicate-id"] == 1


def test_a_folder_without_an_index_is_refused(tmp_path):
    with pytest.raises(FormatError, match="no index.jsonl"):
        validate_targets(tmp_path, "layered")


def test_kins_2020_files_are_checked_as_kins(cocoa_json, tmp_path):
    out = tmp_path / "update_train_2020.json"
    write(read_cocoa(cocoa_json), out, format="kins-2020")
    res = CliRunner().invoke(main, ["validate", str(out), "--from", "kins-2020"])
    assert res.exit_code == 0, res.output
    assert "clean" in res.output
