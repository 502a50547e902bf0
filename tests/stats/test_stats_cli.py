"""`amodaldata stats` on the built-in COCOA data: terminal tables, --json, --plots, and the missing-extra error."""

from __future__ import annotations

import json

import pytest

from click.testing import CliRunner

import amodaldata.stats
from cli import main


def test_stats_command_writes_json_and_plots(tmp_path, cocoa_json):
    out = tmp_path / "stats.json"
    plots = tmp_path / "plots"
    run = CliRunner().invoke(main, ["stats", "cocoa", str(cocoa_json), "--json", str(out), "--plots", str(plots),
                                    "--no-progress"])
    assert run.exit_code == 0, run.output
    assert "Dataset summary (Fig. 5a)" in run.output and "Shape and edges (Table 1)" in run.output
    result = json.loads(out.read_text())
    assert result["summary"]["annotations"] == 5
    assert set(result) >= {"summary", "occlusion", "shape", "edge_density", "complexity", "agreement"}
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["fig6a_occlusion_level.png", "fig6b_components_per_annotation.png",
                     "fig6c_component_size.png", "fig6d_layers_per_component.png",
                     "fig7_layers_vs_component_size.png"]
    assert all((plots / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)


def test_stats_without_matplotlib_fails_before_reading(tmp_path, cocoa_json, monkeypatch):
    monkeypatch.setattr(amodaldata.stats, "plots_available", lambda: False)
    run = CliRunner().invoke(main, ["stats", "cocoa", str(cocoa_json), "--plots", str(tmp_path / "p")])
    assert run.exit_code != 0
    assert "pip install 'amodaldata[plots]'" in run.output
    assert not (tmp_path / "p").exists()


def test_stats_reports_bad_input_in_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    run = CliRunner().invoke(main, ["stats", "cocoa", str(bad), "--no-progress"])
    assert run.exit_code == 1
    assert run.output.startswith("error: ") and "bad.json" in run.output and "malformed JSON" in run.output
    assert run.output.count("\n") == 1


def test_stats_on_bsds_style_annotators_scores_every_pair(tmp_path, cocoa_raw):
    """Three annotators of one real COCOA image: two identical, one who left out two regions."""
    ann = next(a for a in cocoa_raw["annotations"] if a["image_id"] == 6608)
    partial = {**ann, "id": 3, "author": "c", "regions": ann["regions"][:-2]}
    data = {"images": [i for i in cocoa_raw["images"] if i["id"] == 6608],
            "annotations": [{**ann, "id": 1, "author": "a"}, {**ann, "id": 2, "author": "b"}, partial]}
    path = tmp_path / "BSDS_amodal_demo.json"
    path.write_text(json.dumps(data))
    out, plots = tmp_path / "stats.json", tmp_path / "plots"
    run = CliRunner().invoke(main, ["stats", "bsds", str(path), "--json", str(out), "--plots", str(plots),
                                    "--no-progress"])
    assert run.exit_code == 0, run.output
    assert "region consistency amodal" in run.output
    agreement = json.loads(out.read_text())["agreement"]
    n = len(ann["regions"])
    assert agreement["images"] == 1 and agreement["late_annotations"] == 0
    assert agreement["region_amodal"]["n"] == 6
    # a-b agree fully (2 scores of 1); a-c and b-c match the n - 2 regions c kept: F = 2 (n - 2) / (2 n - 2)
    assert sorted(agreement["region_amodal"]["histogram"]["counts"])[-2:] == [2, 4]
    assert agreement["region_amodal"]["median"] == pytest.approx(2 * (n - 2) / (2 * n - 2))
    assert agreement["edge"]["n"] == 6 and agreement["edge"]["median"] < 1.0
    assert json.loads(out.read_text())["summary"]["annotations_per_image"]["mean"] == 3
    assert (plots / "fig8_consistency.png").is_file()
