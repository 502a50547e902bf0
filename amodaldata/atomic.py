"""Atomic output: a file or folder appears under its final name complete or not at all (DESIGN.md, "writing
atomically"); the one place that renames output into place.

    with atomic_path(out / "pr.png") as tmp:
        figure.savefig(tmp, format="png")

The writer writes a file or a folder at a hidden temporary path beside the target (same folder, so the rename is
atomic on one file system); it is renamed into place when the block ends without an error, replacing what was
there (a folder there is removed first, the one step that is not atomic), and removed otherwise. The temporary
name does not end in the target's suffix, so a writer that guesses its format from the name must be told the
format.

Files whose names are known only once all are written (shards named ``-of-N``) are written as a group:

    with atomic_files(out_dir) as group:
        for i, part in enumerate(parts):
            write(part, group.temporary(f"part-{i}"))
        group.publish([out_dir / f"part-{i}-of-{n}" for i in range(n)])

every temporary is renamed to its name when the block succeeds, and all are removed otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator, Sequence


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


class FileGroup:
    """The temporaries of :func:`atomic_files` and the names they are published under."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.temporaries: list[Path] = []
        self.targets: list[Path] | None = None

    def temporary(self, stem: str) -> Path:
        """A new hidden temporary path in the folder (``.STEM.PID.tmp``), to write one file of the group at."""
        tmp = self.folder / f".{stem}.{os.getpid()}.tmp"
        remove(tmp)
        self.temporaries.append(tmp)
        return tmp

    def publish(self, targets: Sequence[str | Path]) -> None:
        """The final paths of the temporaries, in the order they were asked for (renamed when the block ends)."""
        if len(targets) != len(self.temporaries):
            raise ValueError(f"{len(targets)} names for {len(self.temporaries)} temporary files")
        self.targets = [Path(t) for t in targets]


@contextlib.contextmanager
def atomic_files(folder: str | Path) -> Iterator[FileGroup]:
    """Yield a :class:`FileGroup` in ``folder`` (created); when the block succeeds, rename each of its
    temporaries to the name :meth:`FileGroup.publish` gave it, replacing what was there; remove every
    temporary in any case. A block that publishes nothing is an error."""
    group = FileGroup(Path(folder))
    group.folder.mkdir(parents=True, exist_ok=True)
    try:
        yield group
        if group.targets is None:
            raise RuntimeError("atomic_files: the block ended without publish()")
        for tmp, target in zip(group.temporaries, group.targets):
            os.replace(tmp, target)
    finally:
        for tmp in group.temporaries:
            remove(tmp)
