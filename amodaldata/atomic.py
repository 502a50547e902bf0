"""Atomic output: a file appears under its final name complete or not at all (DESIGN.md, "writing atomically").

    with atomic_path(out / "pr.png") as tmp:
        figure.savefig(tmp, format="png")

The writer writes to a hidden temporary file beside the target (same folder, so the rename is atomic on one file
system); the file is renamed into place when the block ends without an error and removed otherwise. The
temporary name does not end in the target's suffix, so a writer that guesses its format from the name must be
told the format.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (its folder created); rename it to ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
