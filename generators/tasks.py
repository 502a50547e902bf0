"""Shard tasks: a generated dataset is ``count`` independent shards; shard i draws its scenes from a random
generator seeded with ``(seed, i)``, so the bytes do not depend on how the shards are run (DESIGN.md, "Scale").

:func:`generate_dataset` plans the shards, skips the ones already on disk (resumption: a shard appears under
its final name only once complete, via :func:`amodaldata.shards.write_shard`), runs the rest in-process, in a
process pool (``workers``) or as Ray tasks (``engine="ray"``, imported only then), shows a progress bar in
scenes/s, and ends with a summary and the dataset card. A small manifest (``.generate-{split}.json``) records
what the folder holds, so a rerun with other options is refused instead of mixing two datasets.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import pyarrow.parquet as pq

from amodaldata.cpus import available_cpus
from amodaldata.errors import FormatError
from amodaldata.scene import Scene
from amodaldata.shards import canonical_split, shard_name, write_dataset_card, write_shard

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
        table = pq.read_table(path, columns=["regions", "order"])
        stats = cls()
        regions = table.column("regions").combine_chunks().flatten()
        rates = regions.field("occlusion_rate").to_numpy(zero_copy_only=False)
        stats.add(rates, len(table.column("order").combine_chunks().flatten()), scenes=table.num_rows)
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


# -- process pool ---------------------------------------------------------------------------------------------
# A spawned worker ignores Ctrl-C (SIGINT): the main process decides. On Ctrl-C it stops handing out shards and
# waits for the ones in progress, which are written whole; a second Ctrl-C stops the workers at once.
_PROGRESS: Any = None
#: In a spawned worker: set once the process that started it is gone.
_PARENT_GONE = threading.Event()
#: In a spawned worker: whether a task is running.
_RUNNING = False
#: Seconds an orphaned worker's task gets to stop (it checks at each progress report) before the worker exits.
ORPHAN_GRACE = 10.0


class _Orphaned(Exception):
    """Raised in a spawned worker's task once the process that started it is gone."""


def _init_worker(progress_queue: Any) -> None:
    import signal

    global _PROGRESS
    _PROGRESS = progress_queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent()


def _watch_parent() -> None:
    """End this worker when the process that started it dies (killed, say): a spawned worker holds both ends
    of the pool's queues, so it would otherwise wait for work forever. A running task stops at its next
    progress report and removes its temporary shard file (the finished shards stay; a rerun resumes)."""
    import multiprocessing
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        _PARENT_GONE.set()
        if _RUNNING:
            time.sleep(ORPHAN_GRACE)
        os._exit(1)

    threading.Thread(target=watch, name="amodaldata-parent-watch", daemon=True).start()


def _report(k: int) -> None:
    """A spawned worker's progress report (every :data:`PROGRESS_EVERY` scenes), where an orphan stops."""
    if _PARENT_GONE.is_set():
        raise _Orphaned
    _PROGRESS.put(k)


def _pool_task(task: ShardTask) -> ShardResult:
    global _RUNNING
    _RUNNING = True
    try:
        return run_task(task, _report)
    except _Orphaned:
        os._exit(1)               # the temporary shard file is removed by now; nobody is left to report to
    finally:
        _RUNNING = False


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT in this block, so that processes started in it inherit that from the start (a worker
    interrupted while importing would print a traceback). Only the main thread can set signals; elsewhere
    the workers ignore SIGINT from their initializer on."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_pool(tasks: list[ShardTask], workers: int, advance: Callable[[int], None]) -> list[ShardResult]:
    """Run the tasks on ``workers`` processes: this one and ``workers - 1`` spawned ones.

    A spawned worker needs about a second to start (it imports numpy, pyarrow, numba and loads the compiled
    kernels); this process, already started, takes tasks from the back of the list meanwhile. Each spawned
    worker holds one task at a time and gets the next one from the front the moment it finishes, so at the
    end no process waits on more than the one task another is finishing. Once no task is left to hand out,
    the pool is shut down without waiting: idle workers exit while the others finish, and the results are
    returned without waiting for the workers' interpreters to tear down (~0.2 s each). Which process writes a
    shard does not change its bytes. The first failure, or Ctrl-C, stops the handing out of tasks, lets the
    tasks already running finish their shards (each is written whole or not at all) and is raised.
    """
    import multiprocessing
    from concurrent.futures import Future, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    # written synchronously by the workers, so a task's progress is all in the pipe before its result arrives
    progress = ctx.SimpleQueue()
    todo = deque(tasks)
    # guards todo, futures and failed; re-entrant: a callback added to a future already done runs at once
    lock = threading.RLock()
    futures: list[Future] = []
    failed: list[BaseException] = []
    results: list[ShardResult] = []
    pool = ProcessPoolExecutor(max_workers=workers - 1, mp_context=ctx, initializer=_init_worker,
                               initargs=(progress,))

    def hand_out(finished: Future | None = None) -> None:
        with lock:
            if finished is not None and not finished.cancelled() and finished.exception() is not None:
                failed.append(finished.exception())
            if todo and not failed:
                future = pool.submit(_pool_task, todo.popleft())
                futures.append(future)
                future.add_done_callback(hand_out)

    def here(k: int) -> None:          # progress of this process's task, and of the spawned ones meanwhile
        advance(k)
        _drain(progress, advance)

    spawned: set[Any] = set()
    try:
        before = set(multiprocessing.active_children())
        with _sigint_ignored():
            for _ in range(workers - 1):
                hand_out()                # starts the workers
        spawned = set(multiprocessing.active_children()) - before
        while True:
            with lock:
                if failed:
                    raise failed[0]
                task = todo.pop() if todo else None
                if not todo:
                    pool.shutdown(wait=False)     # nothing left to hand out
            if task is None:
                break
            results.append(run_task(task, here))
        while True:                   # the spawned workers' last tasks
            with lock:
                pending = [f for f in futures if not f.done()]
            if not pending:
                break
            wait(pending, timeout=0.2)
            _drain(progress, advance)
        results.extend(f.result() for f in futures)
    except BaseException:
        with lock:
            todo.clear()
            running = [f for f in futures if not f.cancel()]
        try:
            wait(running)             # the shards in progress are finished; none is left half-written
        except KeyboardInterrupt:     # a second Ctrl-C: stop at once (a rerun removes their temporary files)
            for process in spawned:
                process.terminate()
        pool.shutdown(wait=True)
        raise
    _drain(progress, advance)
    return results


def _drain(progress: Any, advance: Callable[[int], None]) -> None:
    while not progress.empty():
        advance(progress.get())


# -- Ray --------------------------------------------------------------------------------------------------------
def _run_ray(tasks: list[ShardTask], advance: Callable[[int], None]) -> list[ShardResult]:
    """The same shard tasks as Ray tasks (on the cluster ``ray.init()`` finds, or a local one). The output folder
    must be reachable from every node (shared storage)."""
    import ray

    if not ray.is_initialized():
        ray.init()
    remote = ray.remote(run_task)
    refs = {remote.remote(task): task for task in tasks}
    results = []
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        for ref in ready:
            task = refs.pop(ref)
            result = ray.get(ref)
            advance(task.stop - task.start)
            results.append(result)
    return results


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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    split = canonical_split(split)
    tasks = plan(generator, out, n, seed=seed, split=split, scenes_per_shard=scenes_per_shard)
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    with _one_run_at_a_time(out, split):
        try:
            _check_manifest(out, {"generator": generator.name, "options": generator.describe(), "n": n,
                                  "seed": seed, "split": split, "scenes_per_shard": scenes_per_shard})
            report = _run_tasks(generator, tasks, out, split, workers, engine, progress)
        except BaseException:
            _forget_failed_start(out, split, created)
            raise
        card = _card_text(generator, report, n, seed, split)
        write_dataset_card(out, title=title or f"amodaldata {generator.name} (synthetic)",
                           description=f"{description}\n\n{card}" if description else card,
                           source=f"generated by amodaldata (`amodaldata gen {generator.name}`), seed {seed}")
    return report


def _run_tasks(generator: SceneGenerator, tasks: list[ShardTask], out: Path, split: str, workers: int | None,
               engine: str, progress: bool) -> GenerationReport:
    """Write the shards not yet on disk (stale temporary files of killed runs removed first) and count them all."""
    for stale in out.glob(f".{split}-*.parquet.*.tmp"):     # left by a killed run; never a final name
        stale.unlink(missing_ok=True)
    finished = [t for t in tasks if t.path.exists()]
    todo = [t for t in tasks if not t.path.exists()]
    report = GenerationReport(out, [t.path for t in tasks], written=len(todo), skipped=len(finished))
    for task in finished:
        report.stats.merge(ShardStats.of_shard(task.path))
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=sum(t.stop - t.start for t in todo), unit=" scenes", desc=f"gen {generator.name}",
                   smoothing=0.1)
    advance = bar.update if bar is not None else (lambda k: None)
    start = time.perf_counter()
    try:
        if not todo:
            results = []
        elif engine == "ray":
            results = _run_ray(todo, advance)
        else:
            workers = min(workers or available_cpus(), len(todo))
            results = ([run_task(t, advance) for t in todo] if workers == 1
                       else _run_pool(todo, workers, advance))
    finally:
        if bar is not None:
            bar.close()
    report.seconds = time.perf_counter() - start
    for result in sorted(results, key=lambda r: r.index):
        report.stats.merge(result.stats)
    return report


def _card_text(generator: SceneGenerator, report: GenerationReport, n: int, seed: int, split: str) -> str:
    options = json.dumps(generator.describe(), sort_keys=True)
    lines = report.stats.summary().replace("\n", "; ")
    return (f"Synthetic amodal scenes with exact ground truth. Split `{split}`: {n} scenes, seed {seed}, "
            f"generator `{generator.name}` with options `{options}`.\n\n{lines}")
