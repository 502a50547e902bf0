"""Tell an input's format from its content (``amodaldata convert`` / ``validate`` without ``--from``).

Parquet: a folder of ``*.parquet`` shards or a file starting with ``PAR1``. Targets: a folder with an
``index.jsonl``, ``semdist`` or ``layered`` by the arrays of its first scene. JSON is walked element-wise
(:func:`converters.jsonio.iter_json`) and stops as soon as the first annotation (and, when needed, the first
image record or the categories) decide:

- an annotation with ``regions``: COCOA's schema, then COCOA or BSDS by the image source (``coco_url`` /
  ``bsds_url``, a ``COCO_`` file name, the annotation's ``url``);
- ``a_segm`` / ``i_segm`` / ``oco_id`` / ``inmodal_seg``: KINS;
- ``segmentation`` with ``visible_mask``: COCOA-cls or D2SA, by the file names (``COCO_`` / ``D2S_``), else
  by the categories (all COCO class names: COCOA-cls; none of them: D2SA).

When the evidence fits several formats, or none, :class:`FormatError` says which and why: pass ``--from``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

from amodaldata.errors import FormatError

from .jsonio import Event, iter_json
from .labels import COCO_TABLE

KINS_FIELDS = ("a_segm", "i_segm", "oco_id", "inmodal_seg")

#: The formats an input fits and why (when several or none), or None when the input is none of a detector's.
Found = tuple[list[str], str]
#: A detector: one per family of look-alike formats, named by each format's entry in ``converters.FORMATS``.
Detector = Callable[["Evidence"], "Found | None"]


def detect_format(path: str | Path) -> str:
    """The format name of ``path`` (a key of ``converters.READERS``), or :class:`FormatError`: the detectors of
    ``converters.formats.FORMATS`` are asked in the table's order, the first that knows the input decides."""
    from .formats import FORMATS

    path = Path(path)
    if not path.exists():
        raise FormatError("no such file", file=str(path))
    evidence = Evidence(path)
    for detector in dict.fromkeys(f.detect for f in FORMATS.values() if f.detect is not None):
        found = detector(evidence)
        if found is None:
            continue
        matches, why = found
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise FormatError(f"cannot tell the format: {why}; pass --from", file=str(path))
        raise FormatError(f"the content fits several formats ({', '.join(matches)}): {why}; pass --from",
                          file=str(path))
    raise FormatError(f"cannot tell the format: {evidence.unknown()}; pass --from", file=str(path))


class Evidence:
    """What the detectors look at: the path and, for a JSON file, its first annotation (read lazily)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._peek: _Peek | None = None

    @property
    def peek(self) -> _Peek:
        """The JSON events of the file, advanced to its first annotation."""
        if self._peek is None:
            self._peek = _Peek(iter_json(self.path, stream=("annotations", "images")))
            self._peek.advance("annotation")
        return self._peek

    @property
    def annotation(self) -> dict | None:
        """The first annotation of a JSON file, None for a folder or when it is not an object."""
        if self.path.is_dir():
            return None
        ann = self.peek.annotation
        return ann if isinstance(ann, dict) else None

    def unknown(self) -> str:
        """Why no detector knows the input."""
        if self.path.is_dir():
            return "a folder with neither *.parquet shards nor a target index.jsonl"
        ann = self.peek.annotation
        if ann is None:
            return "no annotation found"
        if not isinstance(ann, dict):
            return f"the first annotation is a {type(ann).__name__}"
        return f"the first annotation has none of the fields of a known format (keys: {', '.join(sorted(ann))})"


def shards(evidence: Evidence) -> Found | None:
    """Parquet: a folder of ``*.parquet`` shards, or a file starting with ``PAR1`` (or named ``*.parquet``)."""
    path = evidence.path
    if path.is_dir():
        return (["parquet"], "") if any(p.suffix == ".parquet" for p in path.iterdir()) else None
    with open(path, "rb") as fh:
        head = fh.read(4)
    return (["parquet"], "") if head == b"PAR1" or path.suffix == ".parquet" else None


def target_folder(evidence: Evidence) -> Found | None:
    """A target folder (an ``index.jsonl``): ``semdist`` or ``layered``."""
    path = evidence.path
    return ([_target_folder(path)], "") if path.is_dir() and (path / "index.jsonl").is_file() else None


def cocoa_schema(evidence: Evidence) -> Found | None:
    """An annotation with ``regions``: COCOA or BSDS, by the image source."""
    ann = evidence.annotation
    if ann is None or "regions" not in ann:
        return None
    evidence.peek.advance("image")
    return _cocoa_or_bsds(ann, evidence.peek.image)


def kins_fields(evidence: Evidence) -> Found | None:
    """An annotation with one of KINS's own fields."""
    ann = evidence.annotation
    return (["kins"], "") if ann is not None and any(k in ann for k in KINS_FIELDS) else None


def instances_with_visible(evidence: Evidence) -> Found | None:
    """COCO-style instances with visible masks: COCOA-cls or D2SA, by file names or categories."""
    ann = evidence.annotation
    if ann is None or "segmentation" not in ann or "visible_mask" not in ann:
        return None
    return _cls_or_d2sa(evidence.peek)


def _target_folder(path: Path) -> str:
    """``semdist`` or ``layered``: told by the arrays of the first scene listed in the index."""
    import numpy as np

    for line in (path / "index.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            file = json.loads(line).get("file")
            with np.load(path / str(file)) as data:
                keys = set(data.files)
        except (ValueError, AttributeError, OSError):
            break
        if "semdist" in keys:
            return "semdist"
        if "instances" in keys:
            return "layered"
        break
    raise FormatError("cannot tell the format: an index.jsonl whose first scene has neither sem-dist maps nor "
                      "layered instances; pass --from", file=str(path))


class _Peek:
    """The first image record, the first annotation, and the categories, read lazily from the JSON events."""

    def __init__(self, events: Iterator[Event]) -> None:
        self.events = events
        self.image: dict | None = None
        self.annotation: Any = None
        self.categories: Any = None
        self.top: dict[str, Any] = {}      # other top-level fields (one bare annotation object: all of it)
        self.done = False

    def advance(self, want: str) -> None:
        """Consume events until ``want`` ('annotation', 'image' or 'categories') is known or the file ends."""
        while not self.done and getattr(self, want) is None:
            try:
                kind, key, value = next(self.events)
            except StopIteration:
                self.done = True
                if self.annotation is None and "regions" in self.top:
                    self.annotation = self.top
                return
            if kind == "start":
                continue
            if key is None:
                if self.annotation is None:
                    self.annotation = value
            elif key == "annotations" and kind == "item":
                if self.annotation is None:
                    self.annotation = value
            elif key == "images" and kind == "item":
                if self.image is None and isinstance(value, dict):
                    self.image = value
            elif key == "categories":
                self.categories = value
            else:
                self.top[key] = value


def _cocoa_or_bsds(ann: dict, image: dict | None) -> Found:
    votes: dict[str, list[str]] = {"cocoa": [], "bsds": []}
    if image is not None:
        if "coco_url" in image:
            votes["cocoa"].append("images have coco_url")
        if "bsds_url" in image:
            votes["bsds"].append("images have bsds_url")
        if str(image.get("file_name", "")).startswith("COCO_"):
            votes["cocoa"].append("COCO_ file names")
    url = str(ann.get("url", "")).lower()
    for fmt, token in (("cocoa", "coco"), ("bsds", "bsds")):
        if token in url:
            votes[fmt].append(f"annotation url names {token.upper()}")
    found = [fmt for fmt, reasons in votes.items() if reasons]
    if len(found) == 1:
        return found, ""
    if not found:
        return ["cocoa", "bsds"], "COCOA's schema, but nothing names the image source (COCO or BSDS)"
    return found, "; ".join(f"{fmt}: {', '.join(r)}" for fmt, r in votes.items())


def _cls_or_d2sa(peek: _Peek) -> Found:
    peek.advance("image")
    name = str((peek.image or {}).get("file_name", ""))
    if name.startswith("COCO_"):
        return ["cocoa-cls"], ""
    if name.startswith("D2S_"):
        return ["d2sa"], ""
    peek.advance("categories")
    cats = peek.categories
    names = [c.get("name") for c in cats if isinstance(c, dict)] if isinstance(cats, list) else []
    known = [n for n in names if isinstance(n, str) and COCO_TABLE.id_of(n) is not None]
    if names and len(known) == len(names):
        return ["cocoa-cls"], ""
    if names and not known:
        return ["d2sa"], ""
    reason = "COCO-style instances with visible masks, but neither the file names (COCO_ / D2S_) nor the " \
             "categories (COCO's classes or not) tell COCOA-cls from D2SA"
    return ["cocoa-cls", "d2sa"], reason
