"""Evaluation output: readable tables naming the protocol and buckets, JSON and CSV files (written atomically)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

from ..atomic import atomic_path
from .oracle import OracleResult
from .order import OrderResult
from .segmentation import Bucket, SegmentationResult


def _num(value: float) -> str:
    return "     -" if value < 0 else f"{value:6.4f}"


def _protocol(result: SegmentationResult) -> list[str]:
    mode = "class-aware" if result.class_aware else "class-agnostic"
    sets = f"{result.annotator_sets} annotator set{'s' if result.annotator_sets != 1 else ''}"
    how = "first annotation of each image" if result.annotator == "first" else f"each annotator, {sets} averaged"
    return [f"ground truth: {result.gt_mask} masks, {mode}, {how}; {result.n_images} images, "
            f"{result.n_predictions} predictions",
            f"AP at {result.max_dets[-1]} detections per image, IoU .50:.05:.95, 101 recall points, one area "
            f"range; AR at {'/'.join(str(m) for m in result.max_dets)}; ground truth outside a bucket is ignored"]


def segmentation_table(result: SegmentationResult, title: str = "amodal segmentation") -> str:
    """One line per bucket: region count, AP, AP50, AP75 and AR at each max-detections value."""
    ar_heads = "".join(f" {'AR' + str(m):>6}" for m in result.max_dets)
    width = max(len(b.bucket.name) for b in result.buckets) + 2
    lines = [title, *_protocol(result), "",
             f"{'bucket':<{width}}{'regions':>8}     AP   AP50   AP75{ar_heads}"]
    for b in result.buckets:
        ars = "".join(f" {_num(b.ar[m])}" for m in result.max_dets)
        lines.append(f"{b.bucket.name:<{width}}{b.n_gt:>8} {_num(b.ap)} {_num(b.ap50)} {_num(b.ap75)}{ars}")
    lines += _dropped(result.dropped)
    return "\n".join(lines)


def parts_summary(results: dict[str, SegmentationResult], min_occlusion: float | None) -> str:
    """The layout of Yin (2021) Table 1: amodal AP / AR, visible AP / AR, occluded-part AP / AR, and the
    amodal AP of the regions occluded more than ``min_occlusion`` (the paper's "Occluded AP", 15 %)."""
    amodal = results["amodal"]
    ar = amodal.max_dets[-1] if 100 not in amodal.max_dets else 100
    lines = [f"summary (Yin 2021, Table 1 layout; AR at {ar} detections)",
             f"{'':<10}{'AP':>7}{'AR':>7}"]
    for part, res in results.items():
        lines.append(f"{part:<10} {_num(res.overall.ap)} {_num(res.overall.ar[ar])}")
    occluded = [b for b in amodal.buckets if b.bucket.min_occlusion is not None and b.bucket.subset == "all"]
    if occluded and min_occlusion is not None:
        lines.append(f"amodal AP of regions occluded > {min_occlusion:g}: {_num(occluded[0].ap)}")
    return "\n".join(lines)


def order_table(result: OrderResult) -> str:
    """The model's and the baselines' pairwise order scores."""
    sets = "first annotation of each image" if result.annotator == "first" else \
        f"each annotator, pairs of {result.annotator_sets} sets pooled"
    lines = ["pairwise depth order",
             f"pairs: every two ground-truth regions whose amodal masks overlap; {sets}; {result.n_images} images",
             f"matching: one prediction per region, best IoU >= {result.iou_threshold:g}; "
             f"predicted order from: {result.source}", "",
             f"{'ordering':<30}{'pairs':>7}{'recalled':>9}{'correct':>8}{'undecided':>10}"
             f"{'accuracy':>9}{'recall':>8}{'correct/pairs':>14}"]
    for s in [result.model, *result.baselines]:
        lines.append(f"{s.name:<30}{s.pairs:>7}{s.recalled:>9}{s.correct:>8}{s.undecided:>10}"
                     f"   {_num(s.accuracy)}  {_num(s.recall)}        {_num(s.correct_fraction)}")
    lines.append("accuracy = correct / recalled pairs (undecided counts as wrong); recall = recalled / pairs; "
                 "baselines use the ground-truth masks")
    lines += _dropped(result.dropped)
    return "\n".join(lines)


def oracle_table(result: OracleResult) -> str:
    """Liu et al. (2019), Table 2: the K-layer oracle's scores per K (every bucket is in the JSON)."""
    first = result.results[0]
    overall, none, partial, heavy = (Bucket("all").name, Bucket("all", "none").name,
                                     Bucket("all", "partial").name, Bucket("all", "heavy").name)
    cols = [("AP", overall, "ap"), ("AP50", overall, "ap50"), ("AP75", overall, "ap75"), ("AR100", overall, 100),
            ("AP none", none, "ap"), ("AR partial", partial, 100), ("AP heavy", heavy, "ap"),
            ("AR heavy", heavy, 100)]
    lines = ["layered ground-truth oracle: instance masks rebuilt from the first K layers of the layer stack, "
             "scored against the full amodal ground truth", *_protocol(first)[:1],
             "AR at 100 detections per image; buckets as in `amodaldata eval`", "",
             f"{'K':>3}" + "".join(f"{name:>11}" for name, _, _ in cols)]
    for k, res in zip(result.layers, result.results):
        cells = []
        for _, bucket, metric in cols:
            b = res.bucket(bucket)
            value = b.ar.get(metric, -1.0) if isinstance(metric, int) else getattr(b, metric)
            cells.append(f"{_num(value):>11}")
        lines.append(f"{k:>3}" + "".join(cells))
    return "\n".join(lines)


def _dropped(dropped: dict[str, int]) -> list[str]:
    return [f"left out: {n} {why}" for why, n in dropped.items()]


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write ``data`` as JSON to ``path`` (temporary file, then rename)."""
    path = Path(path)
    return _atomic(path, lambda fh: json.dump(data, fh, indent=2, default=str))


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path, columns: Sequence[str]) -> Path:
    """Write ``rows`` as CSV with the given header to ``path`` (temporary file, then rename)."""
    def dump(fh: Any) -> None:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})

    return _atomic(Path(path), dump)


def _atomic(path: Path, write: Any) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        write(fh)
    return path
