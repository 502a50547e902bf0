"""Every measurement of Zhu et al. (Sec. 3-4, Fig. 5a, Table 1, Fig. 6-8) in one pass over a stream of Scenes.

:class:`StatsAccumulator` builds each scene's layer stack once, derives the per-region outlines from it
(:class:`~amodaldata.stats.geometry.SceneGeometry`) and feeds every tally. It keeps per-dataset sums and
fixed-bin histograms, never a mask: agreement holds the runs of a few images at a time and the id of each image
seen, so memory stays flat however many scenes stream by. :func:`format_report` lays the result out as the
paper's tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from amodaldata.atomic import atomic_path
from amodaldata.scene import Scene

from .agreement import EDGE_TOLERANCE, WINDOW, AgreementTally, AnnotationRecord
from .complexity import ComplexityTally, components, occlusion_dag, overlap_pairs
from .edges import EdgeDensityTally, scene_edges
from .geometry import SceneGeometry
from .occlusion import OcclusionTally
from .shape import ShapeTally, scene_shapes
from .summary import SummaryTally, coverage
from .table import SceneMeasures


class StatsAccumulator:
    """Feed Scenes with :meth:`add`; read every figure with :meth:`result`."""

    def __init__(self, *, edge_tolerance: float = EDGE_TOLERANCE, window: int = WINDOW,
                 sinks: Sequence[Callable[[SceneMeasures], None]] = ()) -> None:
        """``sinks`` receive each annotation's :class:`~amodaldata.stats.table.SceneMeasures` (the table and graph
        writers of :mod:`amodaldata.stats.table`)."""
        self.sinks = list(sinks)
        self.summary = SummaryTally()
        self.occlusion = OcclusionTally()
        self.shape = ShapeTally()
        self.edges = EdgeDensityTally()
        self.complexity = ComplexityTally()
        self.agreement = AgreementTally(edge_tolerance, window)
        self.any_stuff = False

    def add(self, scene: Scene) -> None:
        """Measure one annotation (raises the layer stack's DepthCycleError on a cyclic order)."""
        layers = scene.layers
        geometry = SceneGeometry.of(scene, layers)
        stuff = np.array([r.is_stuff for r in scene.regions], dtype=bool)
        self.any_stuff |= bool(stuff.any())
        self.summary.add(scene, layers, stuff)
        levels = geometry.occlusion_levels()
        self.occlusion.add(levels, stuff)
        shapes = scene_shapes(geometry)
        self.shape.add(shapes, stuff)
        self.edges.add(*scene_edges(geometry))
        present = [int(rid) for rid, area in zip(geometry.region_ids, geometry.area) if area > 0]
        dag = occlusion_dag(present, overlap_pairs(geometry, layers))
        self.complexity.add(*components(dag))
        self.agreement.add(AnnotationRecord.of(scene, geometry))
        if self.sinks:
            measures = SceneMeasures(scene, geometry, levels, shapes, dag, coverage(layers))
            for sink in self.sinks:
                sink(measures)

    def result(self) -> dict[str, Any]:
        """Every figure, JSON-ready (None where a figure is undefined, e.g. a mean over no regions).

        The things/stuff groups are reported when the data flags at least one stuff region (otherwise every
        region counts as a thing and the split would repeat the totals).
        """
        self.agreement.finish()
        groups = ("all", "things", "stuff") if self.any_stuff else ("all",)
        per_image = self.agreement.annotations_per_image.describe()
        summary = {"images": per_image["n"], **self.summary.result(), "annotations_per_image": per_image}
        summary["points_per_region"] = {g: summary["points_per_region"][g] for g in groups}
        occlusion = self.occlusion.result()
        shape = self.shape.result()
        return {"summary": summary,
                "occlusion": {g: occlusion[g] for g in groups},
                "shape": {g: shape[g] for g in groups},
                "edge_density": self.edges.result(),
                "complexity": self.complexity.result(),
                "agreement": self.agreement.result(),
                "stuff_split": self.any_stuff}


def compute_stats(scenes: Iterable[Scene], *, progress: bool = False, **options: Any) -> dict[str, Any]:
    """Stream ``scenes`` once through a :class:`StatsAccumulator` (``options`` go to it) and return the result;
    ``progress`` shows a tqdm bar on stderr."""
    acc = StatsAccumulator(**options)
    if progress:
        from tqdm import tqdm

        scenes = tqdm(scenes, desc="stats", unit=" scenes")
    for scene in scenes:
        acc.add(scene)
    return acc.result()


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    """Write the result as JSON, atomically (a temporary file renamed into place)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    return path


# -- terminal layout ----------------------------------------------------------------------------------

def _pct(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _frac(value: float | None) -> str:
    """The paper's style for values in [0, 1]: .746"""
    return "-" if value is None else f"{value:.3f}".lstrip("0") if value < 1 else f"{value:.3f}"


def _row(label: str, cells: list[str], width: int = 10) -> str:
    return f"  {label:<26}" + "".join(f"{c:>{width}}" for c in cells)


def format_report(result: dict[str, Any]) -> str:
    """The result as text tables in the layout of Fig. 5a, Table 1, and summaries of Fig. 6-8."""
    s, occ, shape, comp, agr = (result[k] for k in ("summary", "occlusion", "shape", "complexity", "agreement"))
    groups = list(occ)
    lines = [f"{s['annotations']} annotations of {s['images']} images", ""]
    per_image = s["annotations_per_image"]
    span = "" if per_image["n"] == 0 else (
        f"{per_image['min']:.0f}" if per_image["min"] == per_image["max"]
        else f"{per_image['min']:.0f}-{per_image['max']:.0f}")
    lines.append(_row("Dataset summary (Fig. 5a)", groups))
    lines.append(_row("ann/image", [f"{_num(per_image['mean'])} ({span})" if span else "-"]))
    lines.append(_row("regions/ann", [_num(s["regions_per_annotation"]["mean"])]))
    lines.append(_row("points/region", [_num(s["points_per_region"][g]["mean"], 0) for g in groups]))
    lines.append(_row("pixel coverage", [_pct(s["pixel_coverage"]["mean"])]))
    lines.append(_row("occlusion rate", [_pct(occ[g]["occlusion_rate"]) for g in groups]))
    lines.append(_row("occ/region", [_pct(occ[g]["occ_per_region"]) for g in groups]))
    lines.append(_row("regions", [str(occ[g]["regions"]) for g in groups]))
    lines.append("")
    density = result["edge_density"]
    for g in groups:
        title = "Shape and edges (Table 1)" if g == "all" else f"  {g}"
        lines.append(_row(title, ["modal", "amodal"]))
        for name in ("simplicity", "convexity"):
            lines.append(_row(name, [_frac(shape[g][side][name]["mean"]) for side in ("modal", "amodal")]))
        if g == "all":
            lines.append(_row("density", [_pct(density[side]["mean"], 2) for side in ("modal", "amodal")]))
        if shape[g]["hidden"]:
            lines.append(f"  ({shape[g]['hidden']} fully hidden region(s) have no modal segment)")
    lines.append("")
    hist = occ["all"]["histogram"]
    counts = np.asarray(hist["counts"]).reshape(-1, 2).sum(axis=1)      # 10 bins of width 0.1
    peak = max(int(counts.max()), 1) if counts.size else 1
    lines.append(f"  Occlusion level of occluded regions (Fig. 6a; {occ['all']['occluded']} regions)")
    for k, c in enumerate(counts):
        lines.append(f"  {k / 10:4.1f}-{(k + 1) / 10:3.1f} {'#' * round(30 * c / peak):<30} {c}")
    lines.append("")
    lines.append(_row("Scene complexity (Fig. 6-7)", ["mean", "max"]))
    for label, key in (("CCs/annotation", "components_per_annotation"), ("regions/CC", "component_size"),
                       ("depth layers/CC", "layers_per_component")):
        lines.append(_row(label, [_num(comp[key]["mean"], 2), _num(comp[key]["max"], 0)]))
    fit = comp["log_fit"]
    if fit["slope"] is not None:
        lines.append(f"  fit over {fit['n']} CCs of >= 2 regions: layers = {fit['intercept']:.2f} + "
                     f"{fit['slope']:.2f} log2(regions)   (R^2 {fit['r2']:.2f})")
    lines.append("")
    if agr["images"]:
        lines.append(_row(f"Agreement (Sec. 4, Fig. 8; {agr['images']} images)", ["median", "scores"], 8))
        for label, key in (("region consistency amodal", "region_amodal"),
                           ("region consistency modal", "region_modal"), ("edge consistency", "edge")):
            lines.append(_row(label, [_frac(agr[key]["median"]), str(agr[key]["n"])], 8))
        if agr["late_annotations"]:
            lines.append(f"  ({agr['late_annotations']} annotation(s) came after their image was scored)")
    else:
        lines.append("  Agreement (Sec. 4): no image has several annotations")
    return "\n".join(lines)
