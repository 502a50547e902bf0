"""Atomic output: a file or folder appears under its final name complete or not at all (DESIGN.md, "writing
atomically"); the one place that renames output into place.

    with atomic_path(out / "pr.png") as tmp:
        figure.savefig(tmp, format="png")

The writer writes a file or a folder at a hidden temporary path beside the target (same folder, so the rename is
atomic on one file system); it is renamed into place when the block ends without an error, replacing what was
there (a folder there is removed first, the one step that is not atomic), and removed otherwise. The temporary
name does not end in the target's suffix, so a writer that guesses its format from the name must be told the
format.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator


def remove(path: Path) -> None:
    """Remove a file or a folder (with what it holds), if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path, temporary: str | Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (its folder created): ``temporary`` if given, else
    ``.NAME.PID.tmp``; rename it to ``path`` if the block succeeds, remove it in any case."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(temporary) if temporary is not None else path.with_name(f".{path.name}.{os.getpid()}.tmp")
    remove(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink() or tmp.is_dir() and path.exists():
            remove(path)
        os.replace(tmp, path)
    finally:
        remove(tmp)
