"""Parquet shards: the interchange and training format (DESIGN.md, "Shards").

One row per scene, files ``{split}-{index:05d}-of-{count:05d}.parquet`` in one folder with a ``README.md``
dataset card, row groups of :data:`ROW_GROUP_SIZE` rows. Split names are written as Hugging Face names them
(``val`` becomes ``validation``, see :func:`canonical_split`), so ``datasets.load_dataset("parquet",
data_dir=...)``, which tells splits from file names, and the card's ``configs``, which name them, agree. Columns:

- ``image``: ``struct{bytes: binary, path: string}``, the Hugging Face ``Image`` layout, declared in the
  schema's ``huggingface`` metadata so ``datasets.load_dataset("parquet", ...)`` decodes it;
- ``image_id``, ``annotation_id``: the ids as canonical JSON text (``"42"`` for 42, ``"\\"a\\""`` for "a");
  ``annotator``, ``file_name``, ``height``, ``width``;
- ``regions``: list of structs (``id``, ``name``, ``category_id``, ``is_stuff``, ``is_crowd``, ``depth_rank``, ``amodal`` and
  ``visible`` as COCO compressed RLE ``{size, counts}``, ``visible_given`` (the visible mask came from the
  annotation rather than the layer stack), ``amodal_polygons`` (the polygons the amodal mask arrived as, so
  the encoding survives), ``area``, ``occlusion_rate``, ``extra`` as JSON text);
- ``order``: the occlusion edges as ``{front, back}`` region-id structs; ``extra``: JSON text.

Writing is atomic (temporary file, then rename) and deterministic (same scenes, same bytes). Targets are
derived from a row when read; they are not stored.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_files, atomic_path
from .errors import AmodalDataError, ErrorPolicy, FormatError, MissingImageError, OnError
from .masks import Mask
from .order import OcclusionOrder
from .scene import Region, Scene
from .stack_runs import StackRuns

ROW_GROUP_SIZE = 100
SHARD_PATTERN = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")
#: Columns a shard cannot be read without (the others are optional).
REQUIRED_COLUMNS = ("image_id", "height", "width", "regions")

_RLE = pa.struct([("size", pa.list_(pa.int32())), ("counts", pa.string())])
REGION_TYPE = pa.struct([
    ("id", pa.int64()),
    ("name", pa.string()),
    ("category_id", pa.int64()),
    ("is_stuff", pa.bool_()),
    ("is_crowd", pa.bool_()),
    ("depth_rank", pa.int32()),
    ("amodal", _RLE),
    ("visible", _RLE),
    ("visible_given", pa.bool_()),
    ("amodal_polygons", pa.list_(pa.list_(pa.float64()))),
    ("area", pa.int64()),
    ("occlusion_rate", pa.float32()),
    ("extra", pa.string()),
])
SCHEMA = pa.schema(
    [
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("image_id", pa.string()),
        ("annotation_id", pa.string()),
        ("annotator", pa.string()),
        ("file_name", pa.string()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("regions", pa.list_(REGION_TYPE)),
        ("order", pa.list_(pa.struct([("front", pa.int64()), ("back", pa.int64())]))),
        ("extra", pa.string()),
    ],
    metadata={b"huggingface": json.dumps({"info": {"features": {"image": {"_type": "Image"}}}}).encode()},
)


#: The split names of Hugging Face ``datasets`` and the words it reads as each in a file name
#: (``datasets.data_files.SPLIT_KEYWORDS``; a test keeps the two equal).
SPLIT_KEYWORDS: dict[str, tuple[str, ...]] = {"train": ("train", "training"),
                                              "validation": ("validation", "valid", "dev", "val"),
                                              "test": ("test", "testing", "eval", "evaluation")}
_CANONICAL_SPLIT = {word: name for name, words in SPLIT_KEYWORDS.items() for word in words}


def canonical_split(split: str) -> str:
    """The Hugging Face name of a split: ``val``, ``valid``, ``dev`` -> ``validation``; ``training`` -> ``train``;
    ``testing``, ``eval`` -> ``test`` (case-insensitive); any other name is kept as it is."""
    return _CANONICAL_SPLIT.get(split.lower(), split)


def shard_name(split: str, index: int, count: int) -> str:
    """``{split}-{index:05d}-of-{count:05d}.parquet`` (the Hugging Face Hub naming)."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


#: Canonical compact JSON (sorted keys), one encoder for every value.
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _json(value: Any) -> str | None:
    return None if value is None else _JSON.encode(value)


def _unjson(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# -- Scene <-> row ------------------------------------------------------------------------------------
def scene_to_row(scene: Scene) -> dict[str, Any]:
    """One shard row (a dict matching :data:`SCHEMA`). Visible masks come from the layer stack unless given."""
    stack = scene.layers
    runs: StackRuns | None = None
    regions = []
    for r in scene.regions:
        if r.visible is not None:
            visible = r.visible.to_rle()
        elif stack.max_level(r.id) <= 0:           # nothing in front of it: the visible part is the amodal mask
            visible = r.amodal.to_rle()
        else:
            runs = runs or StackRuns(stack)
            visible = runs.visible_rle(r.id)
        regions.append({
            "id": r.id, "name": r.name, "category_id": r.category_id, "is_stuff": bool(r.is_stuff),
            "is_crowd": bool(r.is_crowd), "depth_rank": r.depth_rank, "amodal": r.amodal.to_rle(), "visible": visible,
            "visible_given": r.visible is not None, "amodal_polygons": r.amodal.polygons,
            "area": stack.area(r.id), "occlusion_rate": stack.occlusion_rate(r.id),
            "extra": _json(r.extra) if r.extra else None,
        })
    return {
        "image": {"bytes": scene.image_bytes, "path": scene.file_name},
        "image_id": _json(scene.id),
        "annotation_id": _json(scene.annotation_id),
        "annotator": scene.annotator,
        "file_name": scene.file_name,
        "height": scene.height,
        "width": scene.width,
        "regions": regions,
        "order": [{"front": a, "back": b} for a, b in sorted(scene.order.edges)],
        "extra": _json(scene.extra) if scene.extra else None,
    }


def _rle(stored: dict, height: int, width: int) -> dict:
    """A stored RLE whose size is checked (its counts were written by :func:`scene_to_row`)."""
    return Mask.from_rle(stored, height, width, check_counts=False).to_rle()


def row_to_scene(row: dict[str, Any]) -> Scene:
    """The Scene of one shard row (the inverse of :func:`scene_to_row`). RLE sizes are checked; the counts,
    written by :func:`scene_to_row`, are not decoded again here."""
    h, w = row["height"], row["width"]
    for name, value in (("height", h), ("width", w)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise FormatError(f"column '{name}' must hold ints, got {type(value).__name__} {value!r}")
    regions = []
    for r in row["regions"] or []:
        polygons = r.get("amodal_polygons")
        amodal = (Mask(h, w, polygons=[list(p) for p in polygons], rle=_rle(r["amodal"], h, w)) if polygons
                  else Mask.from_rle(r["amodal"], h, w, check_counts=False))
        visible = Mask.from_rle(r["visible"], h, w, check_counts=False) if r.get("visible_given") else None
        regions.append(Region(
            id=int(r["id"]), amodal=amodal, name=r.get("name"), category_id=r.get("category_id"),
            is_stuff=bool(r.get("is_stuff")), is_crowd=bool(r.get("is_crowd")), visible=visible,
            depth_rank=r.get("depth_rank"),
            extra=_unjson(r.get("extra")) or {},
        ))
    image = row.get("image") or {}
    return Scene(
        id=_unjson(row["image_id"]), height=h, width=w, regions=regions,
        order=OcclusionOrder({(e["front"], e["back"]) for e in row.get("order") or []}),
        file_name=row.get("file_name"), image_bytes=image.get("bytes"), annotator=row.get("annotator"),
        annotation_id=_unjson(row.get("annotation_id")), extra=_unjson(row.get("extra")) or {},
    )


# -- writing --------------------------------------------------------------------------------------------
def write_shard(scenes: Iterable[Scene], path: str | Path, row_group_size: int = ROW_GROUP_SIZE) -> int:
    """Write one shard atomically (a hidden temporary file beside it, then a rename); return its row count.

    Scenes are pulled, converted and written one row group at a time (:class:`pyarrow.parquet.ParquetWriter`),
    so memory holds one group of rows, not the shard; each scene's cached layer stack is dropped once its row
    is made.
    """
    with atomic_path(path) as tmp:
        return _write_rows(scenes, tmp, row_group_size)


def _write_rows(scenes: Iterable[Scene], path: Path, row_group_size: int = ROW_GROUP_SIZE) -> int:
    """Write the rows of ``scenes`` as a Parquet file at ``path`` (no rename; see :func:`write_shard`)."""
    rows = 0
    with pq.ParquetWriter(path, SCHEMA, compression="zstd") as writer:
        batch: list[dict] = []
        for scene in scenes:
            batch.append(scene_to_row(scene))
            scene.invalidate()
            if len(batch) == row_group_size:
                writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA), row_group_size=row_group_size)
                rows += len(batch)
                batch = []
        if batch or rows == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA), row_group_size=row_group_size)
            rows += len(batch)
    return rows


def write_shards(scenes: Iterable[Scene], out_dir: str | Path, *, split: str = "train",
                 scenes_per_shard: int = 1000, card: bool = True) -> list[Path]:
    """Stream ``scenes`` into shards of ``scenes_per_shard`` rows under ``out_dir``; return the shard paths.

    Each shard is written row group by row group straight from the stream (:func:`write_shard`), so memory
    holds one row group of scenes whatever ``scenes_per_shard`` is. ``split`` is written under its Hugging
    Face name (:func:`canonical_split`). The shard count is known only at the end, so shards are written as
    one group of temporary files (:func:`amodaldata.atomic.atomic_files`) and renamed to
    ``{split}-{i:05d}-of-{n:05d}.parquet`` once all are complete; on an error none is left behind.
    """
    if scenes_per_shard < 1:
        raise ValueError("scenes_per_shard must be >= 1")
    split = canonical_split(split)
    out_dir = Path(out_dir)
    with atomic_files(out_dir) as group:
        stream = _Lookahead(scenes)
        while not group.temporaries or stream.more():
            rows = _write_rows(stream.take(scenes_per_shard), group.temporary(f"{split}-{len(group.temporaries):05d}"))
            if rows < scenes_per_shard:
                break
        n = len(group.temporaries)
        final = [out_dir / shard_name(split, i, n) for i in range(n)]
        group.publish(final)
    if card:
        write_dataset_card(out_dir)
    return final


class _Lookahead:
    """An iterator of scenes that can tell whether another one follows, holding at most that one."""

    def __init__(self, scenes: Iterable[Scene]) -> None:
        self._iterator = iter(scenes)
        self._next: Scene | None = None

    def more(self) -> bool:
        """Whether a scene follows (pulled from the source and held until :meth:`take` yields it)."""
        if self._next is None:
            self._next = next(self._iterator, None)
        return self._next is not None

    def take(self, n: int) -> Iterator[Scene]:
        """Up to ``n`` scenes, pulled from the source one by one as they are consumed."""
        if self._next is not None:
            scene, self._next = self._next, None
            yield scene
            del scene
            n -= 1
        yield from itertools.islice(self._iterator, n)


def _yaml_feature(dtype: pa.DataType, name: str | None, indent: str) -> list[str]:
    """The Hugging Face dataset-card YAML of one column (``datasets.Features._to_yaml_list`` layout)."""
    head = f"{indent}- name: {name}" if name is not None else None
    inner = indent + ("  " if name is not None else "")
    if pa.types.is_struct(dtype):
        body = [f"{inner}struct:"] + [line for f in dtype for line in _yaml_feature(f.type, f.name, inner)]
    elif pa.types.is_list(dtype):
        item = dtype.value_type
        if pa.types.is_struct(item):
            body = [f"{inner}list:"] + [line for f in item for line in _yaml_feature(f.type, f.name, inner)]
        elif pa.types.is_list(item):
            body = [f"{inner}list:"] + _yaml_feature(item, None, inner + "  ")
        else:
            body = [f"{inner}list: {_yaml_dtype(item)}"]
    else:
        body = [f"{inner}dtype: {_yaml_dtype(dtype)}"]
    return ([head] if head else []) + body


def _yaml_dtype(dtype: pa.DataType) -> str:
    """``datasets``' name of an Arrow scalar type (Arrow says ``float`` and ``double``)."""
    return {"halffloat": "float16", "float": "float32", "double": "float64"}.get(str(dtype), str(dtype))


def dataset_features_yaml() -> list[str]:
    """The card's ``dataset_info: features:`` lines declaring :data:`SCHEMA`, ``image`` as an ``Image``."""
    lines = ["dataset_info:", "  features:"]
    for f in SCHEMA:
        lines += ["  - name: image", "    dtype: image"] if f.name == "image" else _yaml_feature(f.type, f.name, "  ")
    return lines


#: The card's "Loading" section; THIS_FOLDER is the folder's path.
_CARD_LOADING = """\
```python
import datasets  # images decode as PIL images (uint8 L or RGB), regions as lists of dicts
ds = datasets.load_dataset("parquet", data_dir="THIS_FOLDER")  # splits: {splits}
row = ds["{first}"][0]
```

Masks are COCO compressed RLE; decode them with pycocotools (uint8 arrays, 1 inside):

```python
from pycocotools import mask as cocomask
region = row["regions"][0]
amodal, visible = cocomask.decode(region["amodal"]), cocomask.decode(region["visible"])
```

The order is a directed graph of region ids, an edge front -> back where two regions overlap:

```python
import networkx as nx
dag = nx.DiGraph([(e["front"], e["back"]) for e in row["order"]])
front_to_back = list(nx.topological_sort(dag))  # regions overlapping nothing are not in it
```

With amodaldata, every target derives from a scene's layer stack:

```python
from amodaldata.shards import read_shards
for scene in read_shards("THIS_FOLDER", split="{first}"):
    stack = scene.layers
```
"""


def write_dataset_card(out_dir: str | Path, *, title: str = "amodaldata shards", description: str = "",
                       source: str = "", license: str = "other") -> Path:
    """Write ``README.md``: the Hub dataset-card header (configs with the Hugging Face split names, the
    declared features), the columns, and how to load the shards, decode a mask and read the order."""
    out_dir = Path(out_dir)
    splits: dict[str, dict[str, list[Path]]] = {}         # split name -> file-name prefix -> shards
    for path in sorted(out_dir.glob("*.parquet")):
        match = SHARD_PATTERN.match(path.name)
        if match:
            splits.setdefault(canonical_split(match["split"]), {}).setdefault(match["split"], []).append(path)
    rows = {s: sum(len(ShardSet(p)) for paths in by_prefix.values() for p in paths)
            for s, by_prefix in splits.items()}
    lines = ["---", f"license: {license}", "configs:", "- config_name: default", "  data_files:"]
    for split, by_prefix in splits.items():
        lines.append(f"  - split: {split}")
        lines += [f"    path: \"{prefix}-*.parquet\"" for prefix in by_prefix] if len(by_prefix) == 1 else \
            ["    path:"] + [f"    - \"{prefix}-*.parquet\"" for prefix in by_prefix]
    lines += dataset_features_yaml()
    lines += ["---", "", f"# {title}", ""]
    if description:
        lines += [description, ""]
    if source:
        lines += [f"Source: {source}", ""]
    lines += ["| split | shards | scenes |", "| --- | --- | --- |"]
    lines += [f"| {s} | {sum(len(p) for p in splits[s].values())} | {rows[s]} |" for s in splits]
    lines += [
        "", "## Columns", "",
        "One row per scene (an image and all its amodally annotated regions):", "",
        "- `image`: `{bytes, path}` (PNG/JPEG bytes; a Hugging Face `Image` feature)",
        "- `image_id`, `annotation_id`: ids as JSON text; `annotator`; `file_name`; `height`, `width`",
        "- `regions`: list of `{id, name, category_id, is_stuff, is_crowd, depth_rank, amodal, visible,"
        " visible_given,"
        " amodal_polygons, area, occlusion_rate, extra}`; `amodal` and `visible` are COCO compressed RLE"
        " `{size: [h, w], counts}`; `depth_rank` 1 is the nearest region",
        "- `order`: occlusion edges `{front, back}` (region ids; front hides back where they overlap)",
        "- `extra`: JSON text of fields no reader models",
        "", "## Loading", "",
        _CARD_LOADING.format(splits=", ".join(splits) or "none", first=next(iter(splits), "train")),
    ]
    card = out_dir / "README.md"
    with atomic_path(card) as tmp:
        tmp.write_text("\n".join(lines))
    return card


# -- reading --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RowSlice:
    """Rows ``[start, stop)`` of one shard file."""

    path: Path
    start: int
    stop: int


def _split(start: int, stop: int, parts: int, index: int) -> tuple[int, int]:
    """The ``index``-th of ``parts`` contiguous, near-equal pieces of ``[start, stop)``."""
    bounds = np.linspace(start, stop, parts + 1).round().astype(int)
    return int(bounds[index]), int(bounds[index + 1])


class ShardSet:
    """The shard files of a file or folder (sorted; optionally one split, ``val`` and ``validation`` alike):
    their row counts, the partition of their rows over DDP ranks and DataLoader workers, and row iteration.

    Partitioning: the shards' rows, in shard order, form one sequence; rank ``r`` of ``R`` reads the contiguous
    slice ``[r * n, (r + 1) * n)`` with ``n = total // R`` (the last ``total % R`` rows dropped so every rank
    takes the same number of steps, as ``DistributedSampler(drop_last=True)``); a rank's slice is split again
    into contiguous pieces for its workers. Only the row groups that overlap a piece are read.
    """

    def __init__(self, path: str | Path, split: str | None = None) -> None:
        path = Path(path)
        if path.is_file():
            self.paths = [path]
            return
        if not path.is_dir():
            raise FormatError("no such shard file or folder", file=str(path))
        paths = sorted(p for p in path.glob("*.parquet") if not p.name.startswith("."))
        if split is not None:
            wanted = canonical_split(split)
            paths = [p for p in paths if (m := SHARD_PATTERN.match(p.name)) and canonical_split(m["split"]) == wanted]
        if not paths:
            raise FormatError(f"no {'' if split is None else split + ' '}shards (*.parquet) in the folder",
                              file=str(path))
        self.paths = paths

    @functools.cached_property
    def counts(self) -> list[int]:
        """Row count of every shard, read from the Parquet footers only."""
        return [pq.ParquetFile(p).metadata.num_rows for p in self.paths]

    def __len__(self) -> int:
        """Rows in all the shards."""
        return sum(self.counts)

    def partition(self, *, rank: int = 0, world_size: int = 1, worker: int = 0, num_workers: int = 1,
                  drop_remainder: bool = True) -> list[RowSlice]:
        """The row slices read by one (rank, worker); see the class docstring for the rule.

        Every rank gets ``len(self) // world_size`` rows; ``world_size == 1`` keeps every row. With
        ``drop_remainder=False`` (inference) every row is read by exactly one rank, the ranks' shares differing
        by at most one row.
        """
        if not 0 <= rank < world_size or not 0 <= worker < num_workers:
            raise ValueError(f"bad partition index: rank {rank}/{world_size}, worker {worker}/{num_workers}")
        if drop_remainder:
            per_rank = len(self) // world_size
            first, last = rank * per_rank, (rank + 1) * per_rank
        else:
            first, last = _split(0, len(self), world_size, rank)
        lo, hi = _split(first, last, num_workers, worker)
        out = []
        offset = 0
        for path, n in zip(self.paths, self.counts):
            a, b = max(lo, offset), min(hi, offset + n)
            if a < b:
                out.append(RowSlice(path, a - offset, b - offset))
            offset += n
        return out

    @staticmethod
    def slice_rows(pieces: Sequence[RowSlice], rng: np.random.Generator | None = None
                   ) -> Iterator[tuple[Path, dict[str, Any]]]:
        """``(shard, row)`` for the rows of the slices, reading only the row groups each overlaps. With ``rng``
        the slices, the row groups of each and the rows inside each group are shuffled, in that order."""
        if rng is not None:
            pieces = [pieces[i] for i in rng.permutation(len(pieces))]
        for piece in pieces:
            parquet = pq.ParquetFile(piece.path)
            groups = []
            offset = 0
            for g in range(parquet.metadata.num_row_groups):
                n = parquet.metadata.row_group(g).num_rows
                a, b = max(piece.start, offset), min(piece.stop, offset + n)
                if a < b:
                    groups.append((g, a - offset, b - offset))
                offset += n
            if rng is not None:
                groups = [groups[i] for i in rng.permutation(len(groups))]
            for g, a, b in groups:
                rows = parquet.read_row_group(g).slice(a, b - a).to_pylist()
                for i in (rng.permutation(len(rows)) if rng is not None else range(len(rows))):
                    yield piece.path, rows[i]

    @staticmethod
    def schema(shard: Path) -> pa.Schema:
        """The Arrow schema of one shard; :class:`FormatError` when it is not a Parquet file."""
        try:
            return pq.read_schema(shard)
        except (pa.ArrowInvalid, OSError) as exc:
            raise FormatError(f"not a Parquet file: {exc}", file=str(shard)) from None

    @staticmethod
    def rows(shard: Path, columns: Sequence[str] | None = None, *, cast: bool = False,
             batch_size: int = ROW_GROUP_SIZE) -> Iterator[dict[str, Any]]:
        """The rows of one shard (of ``columns``, all without), one record batch at a time (memory stays flat);
        with ``cast``, cast to the types of :data:`SCHEMA` (an Arrow error when they do not cast)."""
        parquet = pq.ParquetFile(shard)
        target = pa.schema([SCHEMA.field(name) for name in columns or parquet.schema_arrow.names]) if cast else None
        for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
            yield from (pa.Table.from_batches([batch]).cast(target) if target is not None else batch).to_pylist()

    def occlusion(self) -> tuple[int, np.ndarray, int]:
        """Rows, the ``occlusion_rate`` of every region and the number of occlusion edges, over all the shards
        (their ``regions`` and ``order`` columns only)."""
        rows, rates, edges = 0, [], 0
        for path in self.paths:
            table = pq.read_table(path, columns=["regions", "order"])
            regions = table.column("regions").combine_chunks().flatten()
            rates.append(regions.field("occlusion_rate").to_numpy(zero_copy_only=False))
            edges += len(table.column("order").combine_chunks().flatten())
            rows += table.num_rows
        return rows, np.concatenate(rates), edges


def read_shards(path: str | Path, images: str | Path | None = None, *, split: str | None = None,
                on_error: OnError | ErrorPolicy = "fail", batch_size: int = ROW_GROUP_SIZE) -> Iterator[Scene]:
    """Stream the Scenes of a shard file or folder, one record batch at a time (memory stays flat).

    ``images``: a folder to load image bytes from (by ``file_name``) for rows stored without them.
    ``on_error``: ``"skip"`` drops a row that cannot be made a Scene and records it in the policy.
    """
    policy = on_error if isinstance(on_error, ErrorPolicy) else ErrorPolicy(on_error)
    for shard in ShardSet(path, split).paths:
        missing = set(REQUIRED_COLUMNS) - set(ShardSet.schema(shard).names)
        if missing:
            raise FormatError(f"not an amodaldata shard: no column(s) {', '.join(sorted(missing))}",
                              file=str(shard))
        for row in ShardSet.rows(shard, batch_size=batch_size):
            try:
                scene = row_to_scene(row)
                if images is not None and scene.image_bytes is None and scene.file_name:
                    image = Path(images) / scene.file_name
                    if not image.is_file():
                        raise MissingImageError(f"image file {image} not found")
                    scene.image_bytes = image.read_bytes()
            except AmodalDataError as err:
                policy.handle(err.located(file=str(shard), image_id=_unjson(row.get("image_id"))))
                continue
            yield scene
