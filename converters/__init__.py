"""Annotation formats: one module per format, each with plain ``read_<fmt>`` / ``write_<fmt>`` functions.

Each format is one entry of :data:`converters.formats.FORMATS`; :data:`READERS` and :data:`WRITERS` map a
format name to its function (derived from the table); :func:`read` and :func:`write` dispatch
(the front door: ``from converters import read``). A reader yields :class:`amodaldata.Scene` objects; a writer
takes an iterable of Scenes and an output path. Model predictions (COCO results files, prediction shards) are
read and written by :func:`read_results` / :func:`write_results` (:mod:`converters.results`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from amodaldata.errors import FormatError
from amodaldata.scene import Scene

from .detect import detect_format
from .formats import FORMATS
from .results import read_results, write_results

READERS: dict[str, Callable[..., Iterator[Scene]]] = {n: f.read for n, f in FORMATS.items() if f.read is not None}
WRITERS: dict[str, Callable[..., Any]] = {n: f.write for n, f in FORMATS.items() if f.write is not None}
#: Output formats that carry the image bytes (the reader loads them when an image folder is given).
EMBEDS_IMAGES = {n for n, f in FORMATS.items() if f.embeds_images}
__all__ = ["EMBEDS_IMAGES", "READERS", "WRITERS", "detect_format", "read", "read_results", "write",
           "write_results"]


def _declared(table: dict[str, Callable[..., Any]]) -> frozenset[str]:
    """Every keyword option some function of ``table`` declares (after its input and output arguments)."""
    return frozenset(name for func in table.values() for name, p in inspect.signature(func).parameters.items()
                     if p.kind is p.KEYWORD_ONLY or p.default is not p.empty)


#: The options some reader / some writer declares.
READ_OPTIONS = _declared(READERS)
WRITE_OPTIONS = _declared(WRITERS)


def check_options(options: dict[str, Any], known: frozenset[str], what: str) -> None:
    """Raise TypeError on an option none of ``what`` declares (a misspelt ``on_eror`` is refused, not dropped)."""
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)} for {what}; known: {', '.join(sorted(known))}")


def accepted_options(func: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """The options ``func`` declares and that are set (each format takes only its own options; check the names
    first with :func:`check_options`)."""
    params = inspect.signature(func).parameters
    return {k: v for k, v in options.items() if k in params and v is not None}


def read(path: str | Path, format: str | None = None, **options: Any) -> Iterator[Scene]:
    """Read ``path`` in ``format`` (a key of :data:`READERS`; None: told from the content).

    ``options`` (``images``, ``on_error``, ``load_images``, ...) go to the reader when it declares them, so
    callers can pass the same options whatever the format; an option no reader declares is a TypeError.
    """
    check_options(options, READ_OPTIONS, "the readers")
    if format is None:
        format = detect_format(path)
    if format not in READERS:
        raise FormatError(f"unknown input format {format!r}; known: {', '.join(sorted(READERS))}", file=str(path))
    return READERS[format](path, **accepted_options(READERS[format], options))


def write(scenes: Iterable[Scene], path: str | Path, format: str, **options: Any) -> Any:
    """Write ``scenes`` to ``path`` in ``format`` (a key of :data:`WRITERS`); ``options`` are the writer's own
    (an option it does not declare is a TypeError)."""
    if format not in WRITERS:
        raise FormatError(f"unknown output format {format!r}; known: {', '.join(sorted(WRITERS))}", file=str(path))
    return WRITERS[format](scenes, path, **options)
