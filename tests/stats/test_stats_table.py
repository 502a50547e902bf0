"""`stats --table` / `--graphs`: per-scene and per-region Parquet tables and node-link occlusion DAGs that hold the
same measures as the report, round-trip through pyarrow and networkx, and are written atomically."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from amodaldata.stats import compute_stats
from amodaldata.stats.table import REGION_SCHEMA, SCENE_SCHEMA, write_graphs, write_tables
from cli import main
from converters import read
from generators.shapes import ShapesConfig, generate_scene


@pytest.fixture
def scenes(cocoa_json):
    shapes = [generate_scene(ShapesConfig(size=64, per_class=(1, 3)), np.random.default_rng(i), i) for i in range(4)]
    return list(read(cocoa_json, format="cocoa")) + shapes


def _measure(scenes, tmp_path):
    with write_tables(tmp_path / "t") as table, write_graphs(tmp_path / "g.jsonl") as graphs:
        result = compute_stats(scenes, sinks=[table, graphs])
    return result, pq.read_table(tmp_path / "t" / "scenes.parquet"), pq.read_table(tmp_path / "t" / "regions.parquet")


def test_tables_hold_the_measures_of_the_report(scenes, tmp_path):
    result, scene_rows, region_rows = _measure(scenes, tmp_path)
    assert scene_rows.schema.equals(SCENE_SCHEMA) and region_rows.schema.equals(REGION_SCHEMA)
    assert scene_rows.num_rows == len(scenes) == result["summary"]["annotations"]
    assert region_rows.num_rows == sum(len(s.regions) for s in scenes)
    regions = region_rows.to_pylist()
    k = 0
    for scene, row in zip(scenes, scene_rows.to_pylist()):
        stack = scene.layers
        assert row["image_id"] == str(scene.id) and row["regions"] == len(scene.regions)
        for region in scene.regions:
            r = regions[k]
            k += 1
            assert (r["image_id"], r["region_id"], r["name"]) == (str(scene.id), region.id, region.name)
            assert r["area"] == stack.area(region.id)
            assert r["occlusion_level"] == pytest.approx(stack.occlusion_rate(region.id))
        levels = [r["occlusion_level"] for r in regions[k - len(scene.regions):k]]
        assert row["occ_per_region"] == pytest.approx(np.mean(levels))
        assert row["occluded_regions"] == sum(q > 0 for q in levels)
    # the per-region rows average to the report's dataset figures
    occ = result["occlusion"]["all"]
    assert pc.mean(region_rows["occlusion_level"]).as_py() == pytest.approx(occ["occ_per_region"])
    assert pc.mean(region_rows["convexity_amodal"]).as_py() == \
        pytest.approx(result["shape"]["all"]["amodal"]["convexity"]["mean"])
    comp = result["complexity"]
    assert pc.sum(scene_rows["components"]).as_py() == comp["component_size"]["n"]
    assert pc.max(scene_rows["depth_layers"]).as_py() == comp["layers_per_component"]["max"]
    # one filter selects the heavily occluded scenes
    heavy = pq.read_table(tmp_path / "t" / "scenes.parquet", filters=[("occ_per_region", ">", 0.25)])
    assert set(heavy["image_id"].to_pylist()) == {r["image_id"] for r in scene_rows.to_pylist()
                                                  if r["occ_per_region"] > 0.25}


def test_graphs_are_the_occlusion_dags_in_node_link_form(scenes, tmp_path):
    _measure(scenes, tmp_path)
    lines = (tmp_path / "g.jsonl").read_text().splitlines()
    assert len(lines) == len(scenes)
    for scene, line in zip(scenes, lines):
        graph = nx.node_link_graph(json.loads(line), edges="edges")
        assert graph.is_directed() and nx.is_directed_acyclic_graph(graph)
        assert graph.graph["image_id"] == str(scene.id)
        assert sorted(graph.nodes) == sorted(r.id for r in scene.regions)
        stack = scene.layers
        for front, back in graph.edges:          # an edge: front overlaps back and is nearer
            assert (stack.amodal(front) & stack.amodal(back)).any()
            assert stack.front_to_back.index(front) < stack.front_to_back.index(back)
        for node, data in graph.nodes(data=True):
            assert data["layer"] == 1 + max((graph.nodes[p]["layer"] for p in graph.predecessors(node)), default=0)
            assert data["occlusion_level"] == pytest.approx(stack.occlusion_rate(node))


def test_nothing_is_left_behind_when_reading_fails(scenes, tmp_path):
    def broken():
        yield from scenes[:2]
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        _measure(broken(), tmp_path)
    assert list((tmp_path / "t").iterdir()) == [] and not (tmp_path / "g.jsonl").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["t"]


def test_stats_command_tells_the_format_and_writes_tables_and_graphs(cocoa_json, tmp_path):
    run = CliRunner().invoke(main, ["stats", str(cocoa_json), "--table", str(tmp_path / "t"), "--graphs",
                                    str(tmp_path / "g.jsonl"), "--no-progress"])
    assert run.exit_code == 0, run.output
    assert "Dataset summary (Fig. 5a)" in run.output
    assert pq.read_table(tmp_path / "t" / "scenes.parquet").num_rows == 5
    assert len((tmp_path / "g.jsonl").read_text().splitlines()) == 5
    explicit = CliRunner().invoke(main, ["stats", "cocoa", str(cocoa_json), "--no-progress"])
    assert explicit.exit_code == 0 and explicit.output.splitlines()[:3] == run.output.splitlines()[:3]
    bad = CliRunner().invoke(main, ["stats", "cocoa", str(cocoa_json), "extra"])
    assert bad.exit_code == 2 and "[FORMAT] INPUT" in bad.output
