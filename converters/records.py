"""JSON records of the COCO-style formats, shared by their readers (:mod:`converters.cocoa`,
:mod:`converters.coco`): loading a whole file, required typed fields, the image file of a record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from amodaldata.errors import AnnotationError, MissingImageError

#: Image-record fields the model holds; any other field rides in the scene's ``extra``.
IMAGE_FIELDS = {"id", "file_name", "width", "height"}


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; a syntax error becomes an :class:`AnnotationError` naming the file, line and column."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                              file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"not UTF-8 text: {exc.reason}", file=str(path)) from None
    except FileNotFoundError:
        raise AnnotationError("no such file", file=str(path)) from None


def require(record: dict, key: str, types: type | tuple[type, ...], what: str) -> Any:
    """``record[key]``, checked to be one of ``types``; an :class:`AnnotationError` naming ``what`` otherwise (a
    bool is not an int here)."""
    if not isinstance(record, dict):
        raise AnnotationError(f"{what} must be a JSON object, got {type(record).__name__}")
    if key not in record:
        raise AnnotationError(f"{what} has no '{key}' field")
    value = record[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        names = "/".join(t.__name__ for t in allowed)
        raise AnnotationError(f"{what} field '{key}' must be {names}, got {type(value).__name__}")
    return value


def image_file(record: dict | None, ann: dict, path: Path, image_dir: Path | None) -> Path | None:
    """Where the image of this annotation lies, or None when no folder was given."""
    if image_dir is None:
        return None
    candidates = []
    if record is not None and isinstance(record.get("file_name"), str):
        candidates.append(image_dir / record["file_name"])
    url = ann.get("url")
    if isinstance(url, str) and url:
        candidates.append(image_dir / url.rsplit("/", 1)[-1])
    candidates.append(image_dir / f"{path.stem}.jpg")   # the demo layout: N.json beside N.jpg
    candidates.append(image_dir / f"{path.stem}.png")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise MissingImageError(f"image file not found in {image_dir} (looked for "
                            f"{', '.join(c.name for c in dict.fromkeys(candidates))})")
