"""Scenes generated while training: fresh shapes or overlay scenes made in the DataLoader workers.

Liu et al. (2019, Sec. 4) train the layered embedding net on shapes scenes generated at run time, 1000 per
epoch, rather than on a fixed set. :class:`GeneratedDataset` does the same for any model: the generator is
given by the options of ``amodaldata gen shapes|overlay`` (``"shapes --per-class 6"``), parsed by the same
code as that command (:func:`generators.options.parse_generator`), and each epoch holds
``scenes_per_epoch`` new scenes turned into samples by the ``sampler(scene, rng)`` callable that
:class:`models.data.ShardDataset` takes (:func:`models.train.make_sampler`), so a generated sample is the one
the shard path would give for the same scene.

Determinism and partitioning: scene ``i`` of epoch ``e`` is drawn from
``SeedSequence(seed, spawn_key=(e, i))`` alone (its first child for the scene, the second for the sampler's
random choices, e.g. flips), so it does not depend on which rank or worker makes it. As
:class:`~models.data.ShardDataset` does with rows, rank ``r`` of ``R`` takes the indices
``[r * n, (r + 1) * n)`` with ``n = scenes_per_epoch // R`` (the remainder is dropped so every rank takes the
same number of steps) and splits them again into contiguous pieces for its workers: no scene is made twice
in an epoch, and the same seed gives the same scenes whatever the number of ranks and workers.

Epochs: :meth:`GeneratedDataset.set_epoch` sets the epoch of the next pass; a copy held by a persistent
DataLoader worker (which never sees ``set_epoch`` again) counts its own passes from the epoch it was copied
at, so every epoch is new there too.

Validation on a fixed generated set: :func:`fixed_scenes` returns the ``n`` scenes that
``amodaldata gen NAME --n n --seed seed`` writes (the same shard tasks and seeds, for the same shard size),
and :class:`FixedScenesDataset` streams samples of a list of scenes; ``gen`` itself writes them as shards
for ``--val``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from amodaldata.scene import Scene
from generators.options import parse_generator
from generators.tasks import SceneGenerator, plan

#: ``sampler(scene, rng) -> sample``, as :class:`models.data.ShardDataset` takes it.
Sampler = Callable[[Scene, "np.random.Generator | None"], dict[str, Any]]


def _generator(generator: SceneGenerator | str | Sequence[str]) -> SceneGenerator:
    return parse_generator(generator) if isinstance(generator, (str, list, tuple)) else generator


def _piece(start: int, stop: int, parts: int, index: int) -> range:
    """The ``index``-th of ``parts`` contiguous, near-equal pieces of ``range(start, stop)``."""
    n = stop - start
    return range(start + n * index // parts, start + n * (index + 1) // parts)


def _ranks(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``rank`` / ``world_size``, defaulting to the initialised process group (else 0 / 1)."""
    up = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank = rank if rank is not None else (torch.distributed.get_rank() if up else 0)
    world_size = world_size if world_size is not None else (torch.distributed.get_world_size() if up else 1)
    if not 0 <= rank < world_size:
        raise ValueError(f"bad rank {rank} of {world_size}")
    return rank, world_size


class GeneratedDataset(IterableDataset):
    """``scenes_per_epoch`` fresh scenes per epoch from ``generator`` (a config such as
    :class:`generators.shapes.ShapesConfig`, or its ``gen`` options as a string), split over DDP ranks and
    DataLoader workers (module docstring). Yields ``sampler(scene, rng)``, or the scenes themselves without a
    sampler. A scene's id is its index in the run, ``epoch * scenes_per_epoch + i``."""

    def __init__(self, generator: SceneGenerator | str | Sequence[str], *, scenes_per_epoch: int = 1000,
                 seed: int = 0, rank: int | None = None, world_size: int | None = None,
                 sampler: Sampler | None = None, split: str = "train") -> None:
        super().__init__()
        self.generator = _generator(generator)
        self.rank, self.world_size = _ranks(rank, world_size)
        if scenes_per_epoch < self.world_size:
            raise ValueError(f"{scenes_per_epoch} scenes per epoch cannot feed {self.world_size} ranks")
        self.scenes_per_epoch, self.seed, self.sampler, self.split = scenes_per_epoch, seed, sampler, split
        self.epoch, self._passes = 0, 0

    def __len__(self) -> int:
        """Samples per rank and epoch."""
        return self.scenes_per_epoch // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next pass (call before iterating, as with ``DistributedSampler``)."""
        self.epoch, self._passes = epoch, 0

    def indices(self, worker: int = 0, num_workers: int = 1) -> range:
        """The scene indices (within an epoch) this rank's ``worker`` makes."""
        n = len(self)
        return _piece(self.rank * n, (self.rank + 1) * n, num_workers, worker)

    def scene(self, epoch: int, index: int) -> tuple[Scene, np.random.Generator]:
        """Scene ``index`` of ``epoch`` and the random generator of its sample (module docstring)."""
        scene_seq, sample_seq = np.random.SeedSequence(self.seed, spawn_key=(epoch, index)).spawn(2)
        run_index = epoch * self.scenes_per_epoch + index
        scene = next(iter(self.generator.generate(np.random.default_rng(scene_seq), range(run_index, run_index + 1),
                                                  self.split)))
        return scene, np.random.default_rng(sample_seq)

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch = self.epoch + self._passes
        self._passes += 1
        for index in self.indices(worker, num_workers):
            scene, rng = self.scene(epoch, index)
            yield scene if self.sampler is None else self.sampler(scene, rng)


def fixed_scenes(generator: SceneGenerator | str | Sequence[str], n: int, *, seed: int = 0,
                 split: str = "validation", scenes_per_shard: int = 1000) -> list[Scene]:
    """The ``n`` scenes ``amodaldata gen ... --n n --seed seed --split split --scenes-per-shard
    scenes_per_shard`` writes, in order (a fixed validation set; use another seed than training's)."""
    gen = _generator(generator)
    return [scene for task in plan(gen, ".", n, seed=seed, split=split, scenes_per_shard=scenes_per_shard)
            for scene in gen.generate(task.rng(), range(task.start, task.stop), split)]


class FixedScenesDataset(IterableDataset):
    """Samples ``sampler(scene, None)`` of a fixed list of scenes (:func:`fixed_scenes`), every scene read by
    exactly one (rank, worker) (the ranks' shares differ by at most one, as inference reads shards)."""

    def __init__(self, scenes: Sequence[Scene], sampler: Sampler, *, rank: int | None = None,
                 world_size: int | None = None) -> None:
        super().__init__()
        self.scenes, self.sampler = list(scenes), sampler
        self.rank, self.world_size = _ranks(rank, world_size)

    def indices(self, worker: int = 0, num_workers: int = 1) -> range:
        """The positions in the list this rank's ``worker`` reads."""
        mine = _piece(0, len(self.scenes), self.world_size, self.rank)
        return _piece(mine.start, mine.stop, num_workers, worker)

    def __len__(self) -> int:
        return len(self.indices())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for i in self.indices(worker, num_workers):
            yield self.sampler(self.scenes[i], None)
