"""Figures with matplotlib, an optional extra (``pip install 'amodaldata[plots]'``): imported only when a figure
is drawn, with one message when it is missing; figures are saved atomically (:mod:`amodaldata.atomic`).

Figures are built with ``matplotlib.figure.Figure`` (no pyplot: no global state, no display needed).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from .atomic import atomic_path

MISSING = "plots need matplotlib: pip install 'amodaldata[plots]'"
#: Formats a figure can be saved in.
FORMATS = ("png", "svg")


def plots_available() -> bool:
    """Whether matplotlib can be imported (checked without importing it)."""
    return importlib.util.find_spec("matplotlib") is not None


def new_figure(**options: Any) -> Any:
    """A ``matplotlib.figure.Figure`` (``options`` go to it); ImportError with :data:`MISSING` without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(MISSING) from None
    return Figure(**options)


def save_figure(figure: Any, path: str | Path, fmt: str = "png", dpi: int = 120) -> Path:
    """Save ``figure`` to ``path`` in ``fmt`` (png or svg), atomically; return the path."""
    if fmt not in FORMATS:
        raise ValueError(f"figure format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    return path
