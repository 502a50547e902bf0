"""JSON files in and out without holding them whole: element-wise reading of top-level arrays, and atomic
streaming writing of COCO-layout files (``{"images": [...], "annotations": [...], ...}``).

Reading parses one array element at a time with :meth:`json.JSONDecoder.raw_decode` over a sliding buffer,
so memory holds one annotation, not the file. Writing spools the annotations to a hidden temporary file,
then assembles the output under a hidden name and renames it into place: nothing half-written is left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator, Literal

from amodaldata.atomic import atomic_path
from amodaldata.errors import AnnotationError

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
CHUNK = 1 << 20

Event = tuple[Literal["value", "start", "item"], Any, Any]


class _Buffer:
    """A sliding text buffer over a file, tracking lines consumed for error messages."""

    def __init__(self, fh: Any, path: Path) -> None:
        self.fh, self.path = fh, path
        self.text, self.pos, self.eof = "", 0, False
        self.lines_before = 0       # newlines in the text already dropped from the buffer
        self.column_before = 0      # characters since the last dropped newline
        self.chunk = CHUNK

    def fill(self) -> None:
        data = self.fh.read(self.chunk)
        if not data:
            self.eof = True
        dropped = self.text[:self.pos]
        newline = dropped.rfind("\n")
        self.lines_before += dropped.count("\n")
        self.column_before = len(dropped) - newline - 1 if newline >= 0 else self.column_before + len(dropped)
        self.text, self.pos = self.text[self.pos:] + data, 0

    def peek(self) -> str:
        while True:
            self.pos = _WS.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text) or self.eof:
                return self.text[self.pos:self.pos + 1]
            self.fill()

    def error(self, what: str, at: int | None = None) -> AnnotationError:
        at = self.pos if at is None else at
        line = self.lines_before + self.text.count("\n", 0, at) + 1
        newline = self.text.rfind("\n", 0, at)
        col = at - newline if newline >= 0 else self.column_before + at + 1
        return AnnotationError(f"malformed JSON: {what} at line {line}, column {col}", file=str(self.path))

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"expected {char!r}" if self.pos < len(self.text) else "unexpected end of file")
        self.pos += 1

    def value(self) -> Any:
        """Parse the next JSON value, reading more text while it is cut by the buffer's end."""
        self.peek()
        self.chunk = CHUNK
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof:
                    raise self.error(exc.msg, exc.pos) from None
                self.fill()
                self.chunk *= 2
                continue
            if end == len(self.text) and not self.eof:   # a number may continue in the next chunk
                self.fill()
                continue
            self.pos = end
            return obj


def iter_json(path: str | Path, stream: tuple[str, ...] = ("annotations",)) -> Iterator[Event]:
    """Walk a JSON file: ``("start", key, None)`` then ``("item", key, element)`` for each element of a
    top-level array value whose key is in ``stream`` (key None when the file itself is an array),
    ``("value", key, value)`` for any other top-level key (key None: the whole file when it is neither object
    nor array).
    """
    path = Path(path)
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise AnnotationError("no such file", file=str(path)) from None
    with fh:
        buf = _Buffer(fh, path)
        try:
            first = buf.peek()
            if first == "[":
                yield from _items(buf, None)
            elif first == "{":
                buf.pos += 1
                if buf.peek() == "}":
                    buf.pos += 1
                else:
                    while True:
                        key = buf.value()
                        if not isinstance(key, str):
                            raise buf.error("expected a key string")
                        buf.expect(":")
                        if key in stream and buf.peek() == "[":
                            yield from _items(buf, key)
                        else:
                            yield ("value", key, buf.value())
                        sep = buf.peek()
                        buf.pos += 1
                        if sep == "}":
                            break
                        if sep != ",":
                            raise buf.error("expected ',' or '}'", buf.pos - 1)
            else:
                yield ("value", None, buf.value())
            if buf.peek():
                raise buf.error("extra data after the JSON value")
        except UnicodeDecodeError as exc:
            raise AnnotationError(f"not UTF-8 text: {exc.reason}", file=str(path)) from None


def _items(buf: _Buffer, key: str | None) -> Iterator[Event]:
    buf.expect("[")
    yield ("start", key, None)
    if buf.peek() == "]":
        buf.pos += 1
        return
    while True:
        yield ("item", key, buf.value())
        sep = buf.peek()
        buf.pos += 1
        if sep == "]":
            return
        if sep != ",":
            raise buf.error("expected ',' or ']'", buf.pos - 1)


def dumps(value: Any) -> str:
    """Compact JSON text (floats written with full precision)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class CocoLayoutWriter:
    """Write ``{"images": [...], "annotations": [...], <tail>}`` to ``out`` atomically, streaming annotations.

    Use as a context manager: :meth:`image` and :meth:`annotation` add records; on a clean exit the file is
    assembled and renamed into place, on an exception every temporary file is removed.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.images: list[dict] = []
        self.tail: dict[str, Any] = {}
        self._spool_path = self.out.with_name(f".{self.out.name}.annotations.{os.getpid()}.tmp")
        self._count = 0

    def __enter__(self) -> "CocoLayoutWriter":
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._spool = open(self._spool_path, "w", encoding="utf-8")
        return self

    def image(self, record: dict) -> None:
        self.images.append(record)

    def annotation(self, record: dict) -> None:
        if self._count:
            self._spool.write(",\n")
        self._spool.write(dumps(record))
        self._count += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._spool.close()
        try:
            if exc_type is None:
                with atomic_path(self.out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
                    fh.write('{"images":[\n')
                    fh.write(",\n".join(dumps(r) for r in self.images))
                    fh.write('\n],"annotations":[\n')
                    with open(self._spool_path, encoding="utf-8") as spool:
                        shutil.copyfileobj(spool, fh)
                    fh.write("\n]")
                    for key, value in self.tail.items():
                        fh.write(f",{dumps(key)}:{dumps(value)}")
                    fh.write("}\n")
        finally:
            self._spool_path.unlink(missing_ok=True)
