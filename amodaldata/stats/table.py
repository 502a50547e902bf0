"""The measurements of every scene and every region as tables, and every scene's occlusion DAG as a graph file,
so a researcher can select scenes and regions by any measure (the heavily occluded scenes: one filter).

Fed by :class:`~amodaldata.stats.report.StatsAccumulator` with what it has measured anyway (one pass, nothing
measured twice). Both writers stream and write atomically (:mod:`amodaldata.atomic`):

- :func:`write_tables`: ``scenes.parquet`` (:data:`SCENE_SCHEMA`, one row per annotation) and ``regions.parquet``
  (:data:`REGION_SCHEMA`, one row per region), the measures of Zhu et al. 2017 (Fig. 5a, Table 1, Fig. 6-7);
- :func:`write_graphs`: JSON lines, one occlusion DAG per annotation in networkx node-link form
  (``networkx.node_link_data(dag, edges="edges")``; read a line back with
  ``networkx.node_link_graph(json.loads(line), edges="edges")``), nodes holding the region's measures.

The words of :mod:`amodaldata.stats`: a region's ``occlusion_level`` is the hidden fraction of its amodal area
(COCOA's ``occlude_rate``, NaN/null for an empty region); a scene's ``occlusion_rate`` is the fraction of its regions
that are occluded and ``occ_per_region`` their mean occlusion level (Fig. 5a); ``components`` and ``depth_layers``
are the weakly connected components of the occlusion DAG and the most layers one needs (Fig. 6b-d); a region's
``layer`` is the longest chain of regions in front of it, counted in regions, itself included (1 = nothing in
front). Image and annotation ids are written as text (``str(id)``).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import networkx as nx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from amodaldata.atomic import atomic_path
from amodaldata.scene import Scene

from .complexity import node_layers
from .geometry import SceneGeometry

SCENE_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("annotation_id", pa.string()), ("annotator", pa.string()),
    ("regions", pa.int32()), ("order_edges", pa.int32()), ("components", pa.int32()),
    ("depth_layers", pa.int32()), ("largest_component", pa.int32()), ("occluded_regions", pa.int32()),
    ("occlusion_rate", pa.float64()), ("occ_per_region", pa.float64()), ("max_occlusion_level", pa.float64()),
    ("coverage", pa.float64()),
    ("convexity_amodal", pa.float64()), ("convexity_modal", pa.float64()),
    ("simplicity_amodal", pa.float64()), ("simplicity_modal", pa.float64()),
])
REGION_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("annotation_id", pa.string()), ("region_id", pa.int64()), ("name", pa.string()),
    ("category_id", pa.int64()), ("is_stuff", pa.bool_()), ("area", pa.int64()), ("visible_area", pa.int64()),
    ("occlusion_level", pa.float64()), ("convexity_amodal", pa.float64()), ("simplicity_amodal", pa.float64()),
    ("convexity_modal", pa.float64()), ("simplicity_modal", pa.float64()), ("component", pa.int32()),
    ("component_size", pa.int32()), ("component_layers", pa.int32()), ("layer", pa.int32()),
])
#: Rows held before they are written as a row group.
ROWS_PER_GROUP = 10_000


@dataclass
class SceneMeasures:
    """What :class:`~amodaldata.stats.report.StatsAccumulator` measured of one annotation.

    ``levels``: occlusion level per region (NaN: empty region); ``shapes``: ``{"amodal"|"modal": (convexity,
    simplicity)}`` per region (:func:`~amodaldata.stats.shape.scene_shapes`); ``dag``: the occlusion DAG of the
    non-empty regions (:func:`~amodaldata.stats.complexity.occlusion_dag`); ``coverage``: the covered fraction of
    the image."""

    scene: Scene
    geometry: SceneGeometry
    levels: np.ndarray
    shapes: dict[str, tuple[np.ndarray, np.ndarray]]
    dag: nx.DiGraph
    coverage: float


def _float(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def _ids(scene: Scene) -> tuple[str, str | None]:
    return str(scene.id), None if scene.annotation_id is None else str(scene.annotation_id)


def region_components(dag: nx.DiGraph) -> dict[Any, tuple[int, int, int, int]]:
    """``{node: (component index, component size, component layers, layer)}``: the weakly connected components
    numbered in the order of their smallest node, and each node's depth layer (1 = nothing in front of it)."""
    layer = node_layers(dag)
    out = {}
    ccs = sorted((sorted(cc) for cc in nx.weakly_connected_components(dag)), key=lambda cc: cc[0])
    for k, cc in enumerate(ccs):
        layers = max(layer[n] for n in cc)
        for node in cc:
            out[node] = (k, len(cc), layers, layer[node])
    return out


class TableWriter:
    """Writes the scene and region rows to two Parquet files, a row group at a time."""

    def __init__(self, scenes: Path, regions: Path) -> None:
        self._tables = {"scenes": (scenes, SCENE_SCHEMA, []), "regions": (regions, REGION_SCHEMA, [])}
        self._writers: dict[str, pq.ParquetWriter] = {}

    def __call__(self, m: SceneMeasures) -> None:
        """Add one annotation's rows."""
        scene, g = m.scene, m.geometry
        image_id, annotation_id = _ids(scene)
        (conv_a, simp_a), (conv_m, simp_m) = m.shapes["amodal"], m.shapes["modal"]
        parts = region_components(m.dag)
        sizes = {c: (size, layers) for c, size, layers, _ in parts.values()}
        present = ~np.isnan(m.levels)
        self._add("scenes", {
            "image_id": image_id, "annotation_id": annotation_id, "annotator": scene.annotator,
            "regions": len(scene.regions), "order_edges": len(scene.order.edges), "components": len(sizes),
            "depth_layers": max((layers for _, layers in sizes.values()), default=0),
            "largest_component": max((size for size, _ in sizes.values()), default=0),
            "occluded_regions": int(np.count_nonzero(m.levels[present] > 0)),
            "occlusion_rate": float(np.mean(m.levels[present] > 0)) if present.any() else None,
            "occ_per_region": _mean(m.levels),
            "max_occlusion_level": float(np.max(m.levels[present])) if present.any() else None,
            "coverage": float(m.coverage),
            "convexity_amodal": _mean(conv_a), "convexity_modal": _mean(conv_m),
            "simplicity_amodal": _mean(simp_a), "simplicity_modal": _mean(simp_m)})
        for i, region in enumerate(scene.regions):
            component, size, layers, layer = parts.get(region.id, (None, None, None, None))
            self._add("regions", {
                "image_id": image_id, "annotation_id": annotation_id, "region_id": region.id, "name": region.name,
                "category_id": region.category_id, "is_stuff": bool(region.is_stuff), "area": int(g.area[i]),
                "visible_area": int(g.visible_area[i]), "occlusion_level": _float(m.levels[i]),
                "convexity_amodal": _float(conv_a[i]), "simplicity_amodal": _float(simp_a[i]),
                "convexity_modal": _float(conv_m[i]), "simplicity_modal": _float(simp_m[i]),
                "component": component, "component_size": size, "component_layers": layers, "layer": layer})

    def _add(self, name: str, row: dict[str, Any]) -> None:
        rows = self._tables[name][2]
        rows.append(row)
        if len(rows) >= ROWS_PER_GROUP:
            self._flush(name)

    def _flush(self, name: str) -> None:
        path, schema, rows = self._tables[name]
        if name not in self._writers:
            self._writers[name] = pq.ParquetWriter(path, schema, compression="zstd")
        self._writers[name].write_table(pa.Table.from_pylist(rows, schema=schema))
        rows.clear()

    def close(self, finish: bool) -> None:
        """Close the files, first writing the rows held (``finish``)."""
        for name in self._tables:
            if finish:
                self._flush(name)
            if name in self._writers:
                self._writers.pop(name).close()


@contextlib.contextmanager
def write_tables(out_dir: str | Path) -> Iterator[TableWriter]:
    """A :class:`TableWriter` of ``out_dir/scenes.parquet`` and ``out_dir/regions.parquet``, both renamed into
    place when the block ends without an error."""
    out = Path(out_dir)
    with atomic_path(out / "scenes.parquet") as scenes, atomic_path(out / "regions.parquet") as regions:
        writer = TableWriter(scenes, regions)
        try:
            yield writer
        except BaseException:
            writer.close(finish=False)
            raise
        writer.close(finish=True)


@contextlib.contextmanager
def write_graphs(path: str | Path) -> Iterator[Callable[[SceneMeasures], None]]:
    """A function writing one annotation's occlusion DAG as a node-link JSON line into ``path`` (renamed into
    place when the block ends without an error). Every region is a node, the empty ones too (unconnected)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        def write(m: SceneMeasures) -> None:
            scene = m.scene
            image_id, annotation_id = _ids(scene)
            graph = nx.DiGraph(image_id=image_id, annotation_id=annotation_id, annotator=scene.annotator)
            parts = region_components(m.dag)
            for i, region in enumerate(scene.regions):
                component, _, _, layer = parts.get(region.id, (None, None, None, None))
                graph.add_node(region.id, name=region.name, category_id=region.category_id,
                               is_stuff=bool(region.is_stuff), area=int(m.geometry.area[i]),
                               occlusion_level=_float(m.levels[i]), component=component, layer=layer)
            graph.add_edges_from(m.dag.edges)
            fh.write(json.dumps(node_link(graph), allow_nan=False) + "\n")

        yield write


def node_link(graph: nx.DiGraph) -> dict[str, Any]:
    """``networkx.node_link_data`` with the edges under ``"edges"`` whatever the networkx version."""
    try:
        return nx.node_link_data(graph, edges="edges")
    except TypeError:                       # networkx < 3.4 calls the parameter ``link``
        return nx.node_link_data(graph, link="edges")
