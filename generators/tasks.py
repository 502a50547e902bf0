"""Shard tasks: a generated dataset is ``count`` independent shards; shard i draws its scenes from a random
generator seeded with ``(seed, i)``, so the bytes do not depend on how the shards are run (DESIGN.md, "Scale").

:func:`generate_dataset` plans the shards, skips the ones already on disk (resumption: a shard appears under
its final name only once complete, via :func:`amodaldata.shards.write_shard`), runs the rest with
:func:`amodaldata.engines.run_tasks` (in-process, a process pool of ``workers``, or Ray tasks with
``engine="ray"``; signals and progress are the engine's), and ends with a summary and the dataset card. A small manifest (``.generate-{split}.json``) records
what the folder holds, so a rerun with other options is refused instead of mixing two datasets.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from amodaldata.atomic import atomic_path
from amodaldata.engines import check_engine, run_tasks
from amodaldata.errors import FormatError
from amodaldata.scene import Scene
from amodaldata.shards import ShardSet, canonical_split, shard_name, write_dataset_card, write_shard

#: Occlusion levels of the COCOA paper (Zhu et al. 2017, Sec. 5.1): none (q = 0), partial (0 < q <= .25),
#: heavy (q > .25).
PARTIAL_MAX = 0.25
#: A worker reports progress every this many scenes.
PROGRESS_EVERY = 20


class SceneGenerator(Protocol):
    """What a generator offers the shard tasks (picklable: it travels to worker processes and Ray tasks)."""

    name: str

    def generate(self, rng: np.random.Generator, indices: range, split: str) -> Iterator[Scene]:
        """The scenes with global indices ``indices``, drawn from ``rng`` in order."""

    def describe(self) -> dict[str, Any]:
        """The options, as JSON-able values (manifest and dataset card)."""


@dataclass
class ShardStats:
    """Counts over the scenes of one or more shards (occlusion levels as in Zhu et al. 2017, Sec. 5.1)."""

    scenes: int = 0
    regions: int = 0
    order_edges: int = 0
    unoccluded: int = 0
    partial: int = 0
    heavy: int = 0
    occlusion_sum: float = 0.0

    def add(self, rates: np.ndarray, order_edges: int, scenes: int = 1) -> None:
        """Count ``scenes`` scenes with these region occlusion rates (stored as float32 in shards)."""
        rates = np.asarray(rates, dtype=np.float32)
        self.scenes += scenes
        self.regions += int(rates.size)
        self.order_edges += int(order_edges)
        self.unoccluded += int(np.count_nonzero(rates == 0))
        self.partial += int(np.count_nonzero((rates > 0) & (rates <= PARTIAL_MAX)))
        self.heavy += int(np.count_nonzero(rates > PARTIAL_MAX))
        self.occlusion_sum += float(rates.astype(np.float64).sum())

    def add_scene(self, scene: Scene) -> None:
        stack = scene.layers
        self.add(np.array([stack.occlusion_rate(r.id) for r in scene.regions]), len(scene.order.edges))

    def merge(self, other: "ShardStats") -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    @classmethod
    def of_shard(cls, path: Path) -> "ShardStats":
        """The stats of a finished shard, read from its ``regions`` and ``order`` columns."""
        scenes, rates, edges = ShardSet(path).occlusion()
        stats = cls()
        stats.add(rates, edges, scenes=scenes)
        return stats

    def summary(self) -> str:
        """Two lines: scenes, regions, order edges; occlusion levels and mean occlusion rate."""
        n = max(self.regions, 1)
        return (f"{self.scenes} scenes, {self.regions} regions ({self.regions / max(self.scenes, 1):.2f} per scene), "
                f"{self.order_edges} occlusion edges\n"
                f"occlusion: none {self.unoccluded / n:.1%}, partial (<= {PARTIAL_MAX}) {self.partial / n:.1%}, "
                f"heavy {self.heavy / n:.1%}; mean occlusion rate {self.occlusion_sum / n:.3f}")


@dataclass(frozen=True)
class ShardTask:
    """Shard ``index`` of ``count``: scenes ``start`` to ``stop - 1`` of the dataset, seeded by ``(seed, index)``."""

    generator: SceneGenerator
    out: Path
    split: str
    seed: int
    index: int
    count: int
    start: int
    stop: int

    @property
    def path(self) -> Path:
        return self.out / shard_name(self.split, self.index, self.count)

    def rng(self) -> np.random.Generator:
        """The shard's generator: ``SeedSequence(seed).spawn(count)[index]``, without spawning the others."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.index,)))


@dataclass
class ShardResult:
    index: int
    stats: ShardStats
    skipped: bool


def run_task(task: ShardTask, on_scenes: Callable[[int], None] | None = None) -> ShardResult:
    """Write one shard (atomically), or read the stats of the finished shard already there.

    ``on_scenes(k)`` is called as scenes are made (every :data:`PROGRESS_EVERY` scenes and at the end).
    """
    if task.path.exists():
        return ShardResult(task.index, ShardStats.of_shard(task.path), skipped=True)
    stats = ShardStats()

    def scenes() -> Iterator[Scene]:
        pending = 0
        for scene in task.generator.generate(task.rng(), range(task.start, task.stop), task.split):
            stats.add_scene(scene)
            yield scene
            pending += 1
            if on_scenes is not None and pending == PROGRESS_EVERY:
                on_scenes(pending)
                pending = 0
        if on_scenes is not None and pending:
            on_scenes(pending)

    write_shard(scenes(), task.path)
    return ShardResult(task.index, stats, skipped=False)


# -- the whole dataset ------------------------------------------------------------------------------------------
@dataclass
class GenerationReport:
    """What a run did: the shard files, how many were written now or found finished, and the dataset stats."""

    out: Path
    shards: list[Path]
    written: int
    skipped: int
    stats: ShardStats = field(default_factory=ShardStats)
    seconds: float = 0.0

    def summary(self) -> str:
        rate = (f", {self.stats.scenes / self.seconds:.0f} scenes/s" if self.written and self.seconds > 0 else "")
        return (f"wrote {self.written} shard(s), {self.skipped} already done, in {self.out}{rate}\n"
                f"{self.stats.summary()}")


def plan(generator: SceneGenerator, out: str | Path, n: int, *, seed: int = 0, split: str = "train",
         scenes_per_shard: int = 1000) -> list[ShardTask]:
    """The shard tasks of an ``n``-scene dataset: ``ceil(n / scenes_per_shard)`` shards of consecutive scenes."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if scenes_per_shard < 1:
        raise ValueError(f"scenes_per_shard must be >= 1, got {scenes_per_shard}")
    count = -(-n // scenes_per_shard)
    out = Path(out)
    return [ShardTask(generator, out, split, int(seed), i, count, i * scenes_per_shard,
                      min(n, (i + 1) * scenes_per_shard)) for i in range(count)]


@contextlib.contextmanager
def _one_run_at_a_time(out: Path, split: str) -> Iterator[None]:
    """Hold an exclusive lock on the split's output while a run writes it (``fcntl`` locks; where there are none,
    as on Windows or a file system without locks, runs are not guarded). A second run on the same folder and
    split would otherwise remove the first one's temporary shard files as stale; it is refused instead."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(out / f".generate-{split}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            raise FormatError(f"another run is writing the {split!r} split of this folder; wait for it to end, or "
                              "choose another --out or --split", file=str(out)) from None
        except OSError:               # no locks here (ENOLCK on some network file systems)
            locked = False
        try:
            yield
        finally:
            if locked:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Record what the folder holds; refuse a folder that already holds another dataset under this split.

    A manifest with no shard beside it (a run that failed before finishing one) holds nothing to mix with,
    so a run with other options replaces it.
    """
    path = out / f".generate-{manifest['split']}.json"
    text = json.dumps(manifest, sort_keys=True, indent=1)
    shards = sorted(p.name for p in out.glob(f"{manifest['split']}-*.parquet"))
    if shards and not path.exists():
        raise FormatError(f"the folder already holds {manifest['split']!r} shards from elsewhere ({shards[0]}, ...); "
                          "choose another --out or --split", file=str(out))
    if shards and json.loads(path.read_text()) != json.loads(text):
        raise FormatError(f"the folder holds a different generated {manifest['split']!r} split "
                          f"(see {path.name}); choose another --out or --split", file=str(out))
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _forget_failed_start(out: Path, split: str, created: bool) -> None:
    """After a run that failed before finishing any shard of ``split`` (e.g. an unreadable overlay source),
    remove what it wrote (the manifest and the lock file), and ``out`` itself when this run created it and
    nothing else is there, so a failed start leaves nothing behind."""
    if any(out.glob(f"{split}-*.parquet")):
        return
    for name in (f".generate-{split}.json", f".generate-{split}.lock"):
        (out / name).unlink(missing_ok=True)
    if created and not any(out.iterdir()):
        out.rmdir()


def generate_dataset(generator: SceneGenerator, out: str | Path, n: int, *, seed: int = 0, split: str = "train",
                     scenes_per_shard: int = 1000, workers: int | None = None, engine: str = "local",
                     progress: bool = True, title: str = "", description: str = "") -> GenerationReport:
    """Generate ``n`` scenes as Parquet shards in ``out`` (resuming: finished shards are kept, not redone).

    Args:
        workers: processes for the ``local`` engine, this one included (default: the CPUs this process may
            use, :func:`amodaldata.cpus.available_cpus`; 1 runs in this process alone).
        engine: ``local`` (process pool) or ``ray`` (Ray tasks; ``ray`` is imported only then).
        title, description: for the dataset card (``README.md``), written once every shard is done.

    ``split`` is used under its Hugging Face name (``val`` -> ``validation``,
    :func:`amodaldata.shards.canonical_split`) in the shard and image file names.
    """
    check_engine(engine)
    split = canonical_split(split)
    tasks = plan(generator, out, n, seed=seed, split=split, scenes_per_shard=scenes_per_shard)
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    with _one_run_at_a_time(out, split):
        try:
            _check_manifest(out, {"generator": generator.name, "options": generator.describe(), "n": n,
                                  "seed": seed, "split": split, "scenes_per_shard": scenes_per_shard})
            report = _write_missing(generator, tasks, out, split, workers, engine, progress)
        except BaseException:
            _forget_failed_start(out, split, created)
            raise
        card = _card_text(generator, report, n, seed, split)
        write_dataset_card(out, title=title or f"amodaldata {generator.name} (synthetic)",
                           description=f"{description}\n\n{card}" if description else card,
                           source=f"generated by amodaldata (`amodaldata gen {generator.name}`), seed {seed}")
    return report


def _write_missing(generator: SceneGenerator, tasks: list[ShardTask], out: Path, split: str,
                   workers: int | None, engine: str, progress: bool) -> GenerationReport:
    """Write the shards not yet on disk (stale temporary files of killed runs removed first) and count them all."""
    for stale in out.glob(f".{split}-*.parquet.*.tmp"):     # left by a killed run; never a final name
        stale.unlink(missing_ok=True)
    finished = [t for t in tasks if t.path.exists()]
    todo = [t for t in tasks if not t.path.exists()]
    report = GenerationReport(out, [t.path for t in tasks], written=len(todo), skipped=len(finished))
    for task in finished:
        report.stats.merge(ShardStats.of_shard(task.path))
    start = time.perf_counter()
    results = run_tasks(run_task, todo, engine=engine, workers=workers, sizes=[t.stop - t.start for t in todo],
                        progress=f"gen {generator.name}" if progress else "", unit=" scenes")
    report.seconds = time.perf_counter() - start
    for result in results:
        report.stats.merge(result.stats)
    return report


def _card_text(generator: SceneGenerator, report: GenerationReport, n: int, seed: int, split: str) -> str:
    options = json.dumps(generator.describe(), sort_keys=True)
    lines = report.stats.summary().replace("\n", "; ")
    return (f"Synthetic amodal scenes with exact ground truth. Split `{split}`: {n} scenes, seed {seed}, "
            f"generator `{generator.name}` with options `{options}`.\n\n{lines}")
