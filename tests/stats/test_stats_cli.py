"""`amodaldata stats` on the built-in COCOA data: terminal tables, --json, --plots, and the missing-extra error."""

from __future__ import annotations

import json

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
