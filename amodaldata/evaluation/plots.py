"""Figures of an evaluation (``amodaldata eval ... --plots DIR``), each with the numbers it draws.

Segmentation: precision-recall curves at IoU .50, .75 and averaged over .50:.95, one panel per subset (all,
things, stuff) and occlusion level (the COCOA buckets of Zhu et al. 2017, Sec. 5); the error breakdown of COCO's
analysis tool per occlusion level (:mod:`.analysis`); AP per class (class-aware results); AP against the
occlusion rate. Depth order: pairwise accuracy against the overlap of the pair and its occlusion rate.

Every :class:`Plot` holds its ``matplotlib`` figure and a JSON-ready ``data`` dict of exactly what is drawn;
:func:`write_plots` saves the figures (PNG or SVG) and every ``data`` in ``plots.json`` beside them.
matplotlib is the optional ``plots`` extra, imported only here (:mod:`amodaldata.plotting`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from pycocotools import mask as cocomask

from ..atomic import atomic_path
from ..plotting import new_figure, save_figure
from ..scene import Scene
from .analysis import (ERRORS, ap_by_class, ap_by_occlusion, bucket_index, error_breakdown, level_buckets,
                       pr_curves, result_categories)
from .groundtruth import annotator_passes
from .order import OrderResult
from .predictions import Prediction, PredictionSet, image_key
from .segmentation import OCCLUSION_LEVELS, RECALL_POINTS, SUBSETS, Bucket, SegmentationResult

#: Colours of the error breakdown, C75 to FN (the COCO analysis tool's order, a colour-blind-safe palette).
ERROR_COLOURS = ("#1b9e77", "#66a61e", "#7570b3", "#e6ab02", "#a6761d", "#d95f02", "#e7298a")
CURVE_STYLES = {"IoU .50": ("#1f77b4", "-"), "IoU .75": ("#d62728", "--"), "IoU .50:.95": ("#2ca02c", "-.")}
#: Occlusion-rate bins of the order plot (fraction of the back region hidden by the front one).
PAIR_RATE_BINS = np.round(np.linspace(0.0, 1.0, 11), 2)


@dataclass
class Plot:
    """One figure: its file stem, the matplotlib ``Figure``, and the numbers drawn (JSON-ready)."""

    name: str
    figure: Any
    data: dict[str, Any]


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]


def _level_title(bucket: Bucket) -> str:
    if bucket.level is None:
        return f"{bucket.subset}, every level"
    lo, hi = OCCLUSION_LEVELS[bucket.level]
    return f"{bucket.subset}, {bucket.level} [{lo:g}, {hi:g}]"


def _subsets(result: SegmentationResult) -> list[str]:
    """all, and things / stuff when the ground truth has stuff regions (otherwise things repeat all)."""
    stuff = sum(b.n_gt for b in result.buckets if b.bucket.name == Bucket("stuff").name)
    return list(SUBSETS) if stuff else ["all"]


# -- segmentation -------------------------------------------------------------------------------------------
def pr_figure(result: SegmentationResult) -> Plot:
    """Precision-recall curves, a row per subset and a column per occlusion level (every level first)."""
    subsets = _subsets(result)
    columns = [None, *OCCLUSION_LEVELS]
    figure = new_figure(figsize=(3.4 * len(columns), 3.0 * len(subsets)), layout="constrained")
    axes = np.asarray(figure.subplots(len(subsets), len(columns), sharex=True, sharey=True, squeeze=False))
    panels = []
    for row, subset in enumerate(subsets):
        for col, level in enumerate(columns):
            ax, bucket = axes[row, col], Bucket(subset, level)
            b = bucket_index(result, bucket)
            scores = result.buckets[b]
            printed = {"IoU .50": scores.ap50, "IoU .75": scores.ap75, "IoU .50:.95": scores.ap}
            panel: dict[str, Any] = {"bucket": bucket.name, "regions": scores.n_gt, "curves": {}}
            ax.set_title(f"{_level_title(bucket)}: {scores.n_gt} regions", fontsize=9)
            if scores.n_gt:
                for name, curve in pr_curves(result, b).items():
                    colour, style = CURVE_STYLES[name]
                    ax.plot(RECALL_POINTS, curve, color=colour, linestyle=style,
                            label=f"{name}: AP {printed[name]:.3f}")
                    panel["curves"][name] = {"AP": printed[name], "precision": _rounded(curve)}
                ax.legend(loc="lower left", fontsize=8)
            else:
                ax.text(0.5, 0.5, "no regions", ha="center", va="center", transform=ax.transAxes, color="grey")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            if row == len(subsets) - 1:
                ax.set_xlabel("recall")
            if col == 0:
                ax.set_ylabel("precision")
            panels.append(panel)
    figure.suptitle(f"precision-recall, {result.gt_mask} masks, "
                    f"{'class-aware' if result.class_aware else 'class-agnostic'}, "
                    f"{result.max_dets[-1]} detections per image")
    return Plot("pr_curves", figure, {"recall": _rounded(RECALL_POINTS), "panels": panels})


def errors_figure(breakdown: Sequence[Any]) -> Plot:
    """COCO's error-analysis plot per bucket: each curve filled down to the stricter one, AP in the legend."""
    figure = new_figure(figsize=(3.6 * len(breakdown), 3.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(breakdown), sharey=True))
    panels = []
    for ax, item in zip(axes, breakdown):
        ax.set_title(f"{_level_title(item.bucket)}: {item.n_gt} regions", fontsize=9)
        panels.append(item.to_dict())
        if not item.n_gt:
            ax.text(0.5, 0.5, "no regions", ha="center", va="center", transform=ax.transAxes, color="grey")
            continue
        lower = np.zeros_like(RECALL_POINTS)
        for kind, colour in zip(ERRORS, ERROR_COLOURS):
            curve = np.maximum(item.curves[kind], 0.0)
            ax.fill_between(RECALL_POINTS, lower, np.maximum(curve, lower), color=colour, alpha=0.85, linewidth=0)
            ax.plot(RECALL_POINTS, curve, color=colour, linewidth=0.8, label=f"[{item.ap(kind):.3f}] {kind}")
            lower = np.maximum(curve, lower)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.legend(loc="lower left", fontsize=7)
    axes[0].set_ylabel("precision")
    figure.suptitle("error breakdown (COCO analysis): C75, C50, Loc = IoU .1, Sim/Oth = class confusion "
                    "forgiven, BG = no false positives, FN = no misses", fontsize=9)
    return Plot("errors", figure, {"recall": _rounded(RECALL_POINTS), "kinds": list(ERRORS), "panels": panels})


def class_figure(result: SegmentationResult, categories: Sequence[Any], names: Mapping[Any, str]) -> Plot:
    """Grouped bars: AP (IoU .50:.95) of each category, overall and per occlusion level."""
    buckets = level_buckets()
    figure = new_figure(figsize=(max(5.0, 0.9 * len(categories) + 2), 3.4), layout="constrained")
    ax = figure.subplots()
    width = 0.8 / len(buckets)
    x = np.arange(len(categories))
    data: dict[str, Any] = {"categories": list(categories),
                            "names": [names.get(c, str(c)) for c in categories], "AP": {}}
    for i, (bucket, colour) in enumerate(zip(buckets, ("#444444", "#1b9e77", "#7570b3", "#d95f02"))):
        ap = ap_by_class(result, bucket_index(result, bucket))
        data["AP"][bucket.name] = _rounded(ap)
        ax.bar(x + (i - (len(buckets) - 1) / 2) * width, np.where(ap > -1, ap, np.nan), width, color=colour,
               label=_level_title(bucket))
    ax.set_xticks(x, data["names"], rotation=45 if len(categories) > 8 else 0, ha="right" if len(categories) > 8
                  else "center")
    ax.set_ylim(0, 1)
    ax.set_ylabel("AP (IoU .50:.95)")
    ax.legend(fontsize=8)
    ax.set_title("AP per class (no bar: no region of the class at that level)", fontsize=9)
    return Plot("ap_per_class", figure, data)


def occlusion_figure(binned: SegmentationResult) -> Plot:
    """AP and AP50 per occlusion-rate bin (:func:`~.analysis.ap_by_occlusion`), regions per bin as bars."""
    centres = np.array([0.0 if b.bucket.high == 0 else (b.bucket.low + b.bucket.high) / 2 for b in binned.buckets])
    ap = np.array([b.ap for b in binned.buckets])
    ap50 = np.array([b.ap50 for b in binned.buckets])
    counts = np.array([b.n_gt for b in binned.buckets])
    figure = new_figure(figsize=(5.5, 3.4), layout="constrained")
    ax = figure.subplots()
    twin = ax.twinx()
    twin.bar(centres, counts, width=0.08, color="#dddddd", zorder=0)
    twin.set_ylabel("regions", color="grey")
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    for values, label, colour in ((ap, "AP", "#2ca02c"), (ap50, "AP50", "#1f77b4")):
        ax.plot(centres, np.where(values > -1, values, np.nan), marker="o", color=colour, label=label)
    ax.set_xlim(-0.05, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("occlusion rate (hidden fraction of the region; 0, then bins of 0.1)")
    ax.set_ylabel("AP")
    ax.legend(fontsize=8)
    return Plot("ap_vs_occlusion", figure, {
        "bins": [b.bucket.name for b in binned.buckets], "centres": _rounded(centres), "regions": counts.tolist(),
        "AP": _rounded(ap), "AP50": _rounded(ap50)})


def segmentation_plots(scenes: Sequence[Scene], predictions: PredictionSet | Sequence[Prediction],
                       result: SegmentationResult, supercategories: Mapping[Any, str] | None = None) -> list[Plot]:
    """Every segmentation figure of ``result`` (computed on ``scenes`` and ``predictions``, one annotator set)."""
    plots = [pr_figure(result), errors_figure(error_breakdown(scenes, predictions, result,
                                                              supercategories=supercategories))]
    if result.class_aware:
        names: dict[Any, str] = {}
        for scene in scenes:
            for region in scene.regions:
                if region.name:
                    names.setdefault(region.category_id, region.name)
        plots.append(class_figure(result, result_categories(scenes, result), names))
    plots.append(occlusion_figure(ap_by_occlusion(scenes, predictions, result)))
    return plots


# -- depth order --------------------------------------------------------------------------------------------
def pair_measures(scenes: Sequence[Scene], result: OrderResult) -> tuple[np.ndarray, np.ndarray]:
    """For every pair of ``result.pairs``: the overlap of the two amodal masks in pixels, and the fraction of
    the back region's amodal mask the front one covers."""
    passes = annotator_passes(scenes, result.annotator)
    overlap, rate = [], []
    for row in result.pairs:
        scene = passes[row.annotator][image_key(row.image_id)]
        front, back = scene.region(row.front).amodal, scene.region(row.back).amodal
        both = int(cocomask.area(cocomask.merge([front.to_pycocotools(), back.to_pycocotools()], intersect=True)))
        overlap.append(both)
        rate.append(both / max(back.area(), 1))
    return np.asarray(overlap, dtype=np.int64), np.asarray(rate, dtype=float)


def _binned_accuracy(values: np.ndarray, verdicts: np.ndarray, edges: np.ndarray) -> dict[str, list]:
    """Per bin ``[edges[i], edges[i+1])`` (the last one closed): pairs, recalled, correct, accuracy (correct /
    recalled, None without a recalled pair) and correct / pairs."""
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    out: dict[str, list] = {"pairs": [], "recalled": [], "correct": [], "accuracy": [], "correct_fraction": []}
    for i in range(len(edges) - 1):
        sel = verdicts[which == i]
        pairs, recalled = int(sel.size), int(np.count_nonzero(sel != "unrecalled"))
        correct = int(np.count_nonzero(sel == "correct"))
        out["pairs"].append(pairs)
        out["recalled"].append(recalled)
        out["correct"].append(correct)
        out["accuracy"].append(round(correct / recalled, 6) if recalled else None)
        out["correct_fraction"].append(round(correct / pairs, 6) if pairs else None)
    return out


def order_plots(scenes: Sequence[Scene], result: OrderResult) -> list[Plot]:
    """Pairwise order accuracy against the pair's overlap (log-spaced bins of pixels) and occlusion rate."""
    overlap, rate = pair_measures(scenes, result)
    verdicts = np.array([row.verdict for row in result.pairs], dtype=object)
    top = max(int(overlap.max()) if overlap.size else 1, 2)
    size_edges = np.unique(np.round(np.geomspace(1, top + 1, 9)).astype(np.int64))
    figure = new_figure(figsize=(10, 3.4), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    data: dict[str, Any] = {"model": result.model.name, "pairs": len(result.pairs)}
    for ax, (key, values, edges, xlabel) in zip(axes, (
            ("overlap", overlap, size_edges, "overlap of the two amodal masks (pixels, log bins)"),
            ("occlusion_rate", rate, PAIR_RATE_BINS, "fraction of the back region hidden by the front one"))):
        binned = _binned_accuracy(values, verdicts, np.asarray(edges, dtype=float))
        data[key] = {"edges": [float(e) for e in edges], **binned}
        lefts, rights = np.asarray(edges[:-1], dtype=float), np.asarray(edges[1:], dtype=float)
        centres = np.sqrt(lefts * rights) if key == "overlap" else (lefts + rights) / 2
        accuracy = np.array([np.nan if a is None else a for a in binned["accuracy"]])
        fraction = np.array([np.nan if a is None else a for a in binned["correct_fraction"]])
        ax.plot(centres, accuracy, marker="o", color="#1f77b4", label="accuracy (correct / recalled)")
        ax.plot(centres, fraction, marker="s", color="#ff7f0e", linestyle="--", label="correct / pairs")
        for c, n in zip(centres, binned["pairs"]):
            if n:
                ax.annotate(str(n), (c, 0.02), ha="center", fontsize=7, color="grey")
        if key == "overlap":
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("pairwise order")
    axes[0].legend(fontsize=8, loc="lower right")
    figure.suptitle(f"depth order of {result.model.name} by pair (grey: pairs per bin)", fontsize=10)
    return [Plot("order", figure, data)]


# -- output -------------------------------------------------------------------------------------------------
def write_plots(plots: Sequence[Plot], out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """Save every figure as ``{name}.{fmt}`` in ``out_dir`` and their data as ``plots.json``; return the paths."""
    out = Path(out_dir)
    paths = [save_figure(p.figure, out / f"{p.name}.{fmt}", fmt) for p in plots]
    sidecar = out / "plots.json"
    with atomic_path(sidecar) as tmp:
        tmp.write_text(json.dumps({p.name: {"file": f"{p.name}.{fmt}", **p.data} for p in plots}, indent=1,
                                  allow_nan=False) + "\n")
    return [*paths, sidecar]

