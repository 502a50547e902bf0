"""The ``parquet`` format: amodaldata's shards (see :mod:`amodaldata.shards`) as a converter format."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from amodaldata.scene import Scene
from amodaldata.shards import read_shards, write_shards

from .losses import LossReport, Written

read_parquet = read_shards


def write_parquet(scenes: Iterable[Scene], out: str | Path, *, split: str = "train",
                  scenes_per_shard: int = 1000, losses: LossReport | None = None,
                  written: Written | None = None) -> int:
    """Write ``scenes`` as shards in the folder ``out``; return the number of scenes written.

    Shards keep the amodal polygons but store visible masks as RLE: given visible polygons (KINS 2020's
    ``i_segm``) are recorded in ``losses`` (pixel-exact; a polygon writer traces them again).
    """
    losses = losses if losses is not None else LossReport()
    written = written if written is not None else Written()
    write_shards(_counted(scenes, losses, written), out, split=split, scenes_per_shard=scenes_per_shard)
    return written.scenes


def _counted(scenes: Iterable[Scene], losses: LossReport, written: Written) -> Iterator[Scene]:
    """Pass scenes through, counting them and their regions, and recording visible polygons."""
    for scene in scenes:
        for region in scene.regions:
            if region.visible is not None and region.visible.polygons is not None:
                losses.add("visible outlines stored as RLE (shards keep amodal polygons only; pixel-exact)",
                           scene.id, region.id)
        written.add(len(scene.regions))
        yield scene
