"""`eval --plots`: every figure is written and draws the numbers the evaluation prints (read back from the
figure's artists and the plots.json sidecar, not from pixels); the error breakdown agrees with pycocotools."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from amodaldata.evaluation import evaluate_order, evaluate_segmentation
from amodaldata.evaluation import analysis as A
from amodaldata.evaluation.plots import order_plots, segmentation_plots
from amodaldata.evaluation.predictions import image_sizes
from converters.results import as_results, results_from_entries
from amodaldata.evaluation.segmentation import RECALL_POINTS, Bucket
from amodaldata.evaluation.simulate import simulated_predictions
from amodaldata.shards import write_shards
from cli import main
from generators.shapes import ShapesConfig, generate_scene

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def scenes():
    config = ShapesConfig(size=96, per_class=(2, 3))
    return [generate_scene(config, np.random.default_rng(i), i) for i in range(16)]


@pytest.fixture(scope="module")
def entries(scenes):
    return as_results(simulated_predictions(scenes, seed=3, confusion=0.2))


@pytest.fixture(scope="module")
def predictions(scenes, entries):
    return results_from_entries(entries, image_sizes(scenes))


@pytest.fixture
def files(scenes, entries, tmp_path):
    gt = tmp_path / "gt"
    write_shards(scenes, gt, split="val")
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(entries))
    return gt, pred


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _printed(output: str, bucket: str) -> tuple[float, float, float]:
    """AP, AP50, AP75 of ``bucket`` in the printed table."""
    for line in output.splitlines():
        if line.startswith(bucket + " "):
            cells = [-1.0 if c == "-" else float(c) for c in line[len(bucket):].split()[1:4]]
            return cells[0], cells[1], cells[2]
    raise AssertionError(f"no row {bucket!r} in the table")


@pytest.mark.parametrize("classes", ["agnostic", "aware"])
def test_plot_files_hold_the_printed_numbers(files, tmp_path, classes):
    gt, pred = files
    out = tmp_path / "plots"
    res = run("eval", gt, pred, "--classes", classes, "--plots", out, "--json", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    names = ["pr_curves", "errors", "ap_vs_occlusion"] + (["ap_per_class"] if classes == "aware" else [])
    for name in names:
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {out / (name + '.png')}" in res.output
    data = json.loads((out / "plots.json").read_text())
    assert sorted(data) == sorted(names)
    scores = {b["bucket"]: b for b in json.loads((tmp_path / "s.json").read_text())["buckets"]}
    for panel in data["pr_curves"]["panels"]:
        ap, ap50, ap75 = _printed(res.output, panel["bucket"])
        if not panel["regions"]:
            assert panel["curves"] == {} and ap == -1.0
            continue
        curves = panel["curves"]
        # the curves' means are the printed numbers (4 decimals in the table)
        assert np.mean(curves["IoU .50:.95"]["precision"]) == pytest.approx(ap, abs=6e-5)
        assert np.mean(curves["IoU .50"]["precision"]) == pytest.approx(ap50, abs=6e-5)
        assert np.mean(curves["IoU .75"]["precision"]) == pytest.approx(ap75, abs=6e-5)
        assert curves["IoU .50"]["AP"] == scores[panel["bucket"]]["AP50"]
    errors = data["errors"]["panels"]
    assert [p["bucket"] for p in errors] == ["all", "all, none [0, 1e-05]", "all, partial [1e-05, 0.25]",
                                            "all, heavy [0.25, 1]"]
    for panel in errors:
        ap, ap50, ap75 = _printed(res.output, panel["bucket"])
        assert panel["AP"]["C50"] == pytest.approx(ap50, abs=6e-5)
        assert panel["AP"]["C75"] == pytest.approx(ap75, abs=6e-5)
        assert panel["AP"]["FN"] == 1.0
    assert sum(data["ap_vs_occlusion"]["regions"]) == scores["all"]["n_gt"]


def test_the_figures_draw_the_result_curves(scenes, predictions):
    result = evaluate_segmentation(scenes, predictions, class_aware=True)
    plots = {p.name: p for p in segmentation_plots(scenes, predictions, result)}
    # precision-recall: each panel's lines are the result's curves, labelled with its AP
    pr = plots["pr_curves"]
    axes = pr.figure.axes
    assert len(axes) == 4                                          # no stuff: one row, every level + 3 levels
    for ax, panel in zip(axes, pr.data["panels"]):
        b = A.bucket_index(result, Bucket(*_subset_level(panel["bucket"])))
        expected = A.pr_curves(result, b)
        lines = {line.get_label().rsplit(": AP", 1)[0]: line for line in ax.get_lines()}
        assert set(lines) == set(expected)
        for name, line in lines.items():
            assert np.array_equal(line.get_xdata(), RECALL_POINTS)
            assert np.allclose(line.get_ydata(), expected[name])
        assert lines["IoU .50"].get_label().endswith(f"AP {result.buckets[b].ap50:.3f}")
    # the error breakdown: a line per kind, C50/C75 the result's own curves
    for ax, panel in zip(plots["errors"].figure.axes, plots["errors"].data["panels"]):
        lines = {line.get_label().split("] ")[1]: line.get_ydata() for line in ax.get_lines()}
        assert list(lines) == list(A.ERRORS)
        b = A.bucket_index(result, Bucket(*_subset_level(panel["bucket"])))
        assert np.allclose(lines["C50"], A.pr_curves(result, b)["IoU .50"])
        assert np.allclose(lines["FN"], 1.0)
    # per class: one bar group per category, heights the AP per class
    bars = plots["ap_per_class"].figure.axes[0].containers
    assert len(bars) == 4
    overall = A.ap_by_class(result, 0)
    assert np.allclose([r.get_height() for r in bars[0]], overall)
    assert plots["ap_per_class"].data["names"] == ["circle", "triangle", "rectangle"]
    # AP against the occlusion rate: the points are the binned evaluation's AP
    line = plots["ap_vs_occlusion"].figure.axes[0].get_lines()[0]
    binned = A.ap_by_occlusion(scenes, predictions, result)
    assert np.allclose(np.nan_to_num(line.get_ydata(), nan=-1.0), [b.ap for b in binned.buckets])


def _subset_level(name: str) -> tuple[str, str | None]:
    subset, _, rest = name.partition(", ")
    return subset, (rest.split()[0] if rest else None)


def test_error_breakdown_orders_the_errors_and_agrees_with_pycocotools(scenes, predictions):
    aware = evaluate_segmentation(scenes, predictions, class_aware=True)
    agnostic = evaluate_segmentation(scenes, predictions)
    for result in (aware, agnostic):
        breakdown = A.error_breakdown(scenes, predictions, result)
        data = A._CocoData.build(scenes, predictions, result, [b.bucket for b in breakdown])
        for j, item in enumerate(breakdown):
            aps = [item.ap(k) for k in A.ERRORS]
            assert aps == sorted(aps), aps                           # each step forgives more
            # pycocotools at IoU .5 on the same records gives the evaluation's own C50 curve
            gts = [{**r, "area": 1.0 if data.counts[j, i] else -1.0} for i, r in enumerate(data.regions)]
            c50 = A._mean_curve(A._cocoeval(data.images, gts, data.detections, sorted(data.numbers.values()),
                                            data.max_det, data.class_aware, iou=0.5))
            assert np.allclose(c50, item.curves["C50"])
    agnostic_all = A.error_breakdown(scenes, predictions, agnostic)[0]
    assert np.array_equal(agnostic_all.curves["Sim"], agnostic_all.curves["Loc"])
    assert np.array_equal(agnostic_all.curves["Oth"], agnostic_all.curves["Loc"])
    aware_all = A.error_breakdown(scenes, predictions, aware)[0]
    assert aware_all.ap("Oth") > aware_all.ap("Loc")              # the simulated class confusions, forgiven
    # a supercategory holding circles and triangles forgives only their confusions: Loc <= Sim <= Oth
    sim = A.error_breakdown(scenes, predictions, aware, supercategories={1: "round-ish", 2: "round-ish",
                                                                        3: "bars"})[0]
    assert aware_all.ap("Loc") < sim.ap("Sim") < aware_all.ap("Oth")


def test_svg_on_request_and_clear_refusals(files, tmp_path, monkeypatch):
    gt, pred = files
    res = run("eval", gt, pred, "--plots", tmp_path / "svg", "--plot-format", "svg")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "svg" / "pr_curves.svg").read_text().lstrip().startswith("<?xml")
    assert json.loads((tmp_path / "svg" / "plots.json").read_text())["errors"]["file"] == "errors.svg"
    each = run("eval", gt, pred, "--annotator", "each", "--plots", tmp_path / "x")
    assert each.exit_code == 2 and "--annotator first" in each.output
    import amodaldata.plotting

    monkeypatch.setattr(amodaldata.plotting, "plots_available", lambda: False)
    missing = run("eval", gt, pred, "--plots", tmp_path / "y")
    assert missing.exit_code == 1 and "pip install 'amodaldata[plots]'" in missing.output
    assert not (tmp_path / "y").exists()


def test_order_plots_bin_every_pair(scenes, predictions, files, tmp_path):
    result = evaluate_order(scenes, predictions, source="masks")
    plot = order_plots(scenes, result)[0]
    for key in ("overlap", "occlusion_rate"):
        binned = plot.data[key]
        assert sum(binned["pairs"]) == len(result.pairs) == result.model.pairs
        assert sum(binned["correct"]) == result.model.correct
        assert sum(binned["recalled"]) == result.model.recalled
    accuracy = plot.figure.axes[0].get_lines()[0].get_ydata()
    expected = [np.nan if a is None else a for a in plot.data["overlap"]["accuracy"]]
    assert np.allclose(accuracy, expected, equal_nan=True)
    gt, pred = files
    res = run("eval", "order", gt, pred, "--source", "masks", "--plots", tmp_path / "o")
    assert res.exit_code == 0, res.output
    printed = re.search(r"predictions \(masks\)\s+(\d+)\s+(\d+)\s+(\d+)", res.output)
    data = json.loads((tmp_path / "o" / "plots.json").read_text())["order"]
    assert (tmp_path / "o" / "order.png").exists()
    assert sum(data["occlusion_rate"]["pairs"]) == int(printed[1])
    assert sum(data["occlusion_rate"]["correct"]) == int(printed[3])



def test_stuff_gets_its_rows_when_the_ground_truth_has_stuff(cocoa_json):
    from converters import read

    gt = list(read(cocoa_json, format="cocoa"))
    preds = simulated_predictions(gt)
    result = evaluate_segmentation(gt, preds)
    plot = segmentation_plots(gt, preds, result)[0]
    assert len(plot.figure.axes) == 12
    assert [p["bucket"] for p in plot.data["panels"]][4::4] == ["things", "stuff"]
    empty = [p for p in plot.data["panels"] if not p["regions"]]
    assert empty and all(p["curves"] == {} for p in empty)
