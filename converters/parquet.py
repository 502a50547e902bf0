"""The ``parquet`` format: amodaldata's shards (see :mod:`amodaldata.shards`) as a converter format."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from amodaldata.scene import Scene
from amodaldata.shards import read_shards, write_shards

read_parquet = read_shards


def write_parquet(scenes: Iterable[Scene], out: str | Path, *, split: str = "train",
                  scenes_per_shard: int = 1000) -> int:
    """Write ``scenes`` as shards in the folder ``out``; return the number of scenes written."""
    counted = _Counter(scenes)
    write_shards(counted, out, split=split, scenes_per_shard=scenes_per_shard)
    return counted.n


class _Counter:
    """Pass scenes through, counting them."""

    def __init__(self, scenes: Iterable[Scene]) -> None:
        self._scenes = scenes
        self.n = 0

    def __iter__(self):
        for scene in self._scenes:
            self.n += 1
            yield scene
