"""Running independent tasks: in this process, in a pool of spawned worker processes, or as Ray tasks
(DESIGN.md, "Scale"; the one home of job running: generation and any other batch job call :func:`run_tasks`).

A task is any picklable value and ``work(task, advance)`` (a module-level function, so that it pickles) does it
and returns a picklable result, calling ``advance(k)`` as it makes ``k`` units of progress (``advance`` is None
on Ray). A task that writes a file should write it atomically, so that a task stopped midway leaves nothing.

Signals: while tasks run, SIGTERM (a job scheduler's stop) is raised as Ctrl-C is, as KeyboardInterrupt.
Spawned workers ignore Ctrl-C: the main process stops handing out tasks, waits for the ones in progress (each
finishes its output whole) and raises; a second Ctrl-C stops the workers at once. A worker whose parent died
(killed, say) stops its task at the next progress report and exits.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from typing import Any, Callable, Iterator, Sequence, TypeVar

from .cpus import available_cpus

Task = TypeVar("Task")
Result = TypeVar("Result")
Advance = Callable[[int], None]
Work = Callable[[Task, "Advance | None"], Result]

#: The engines :func:`run_tasks` offers.
ENGINES = ("local", "ray")
#: Seconds an orphaned worker's task gets to stop (it checks at each progress report) before the worker exits.
ORPHAN_GRACE = 10.0


def check_engine(engine: str) -> None:
    """Raise ValueError unless ``engine`` is one of :data:`ENGINES`."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}")


def run_tasks(work: Work, tasks: Sequence[Task], *, engine: str = "local", workers: int | None = None,
              sizes: Sequence[int] | None = None, progress: str = "", unit: str = " tasks") -> list[Result]:
    """``work(task, advance)`` for every task, the results in task order.

    Args:
        engine: ``local`` (this process and a process pool) or ``ray`` (``ray`` is imported only then; Ray tasks
            on the cluster ``ray.init()`` finds, or a local one).
        workers: processes for ``local``, this one included (default: the CPUs this process may use,
            :func:`amodaldata.cpus.available_cpus`; 1 runs every task here).
        sizes: the units of progress of each task (default 1 each); a Ray task's count when it ends.
        progress: the description of a progress bar (tqdm) in ``unit``; none when empty.
    """
    check_engine(engine)
    if not tasks:
        return []
    sizes = list(sizes) if sizes is not None else [1] * len(tasks)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(sizes), unit=unit, desc=progress, smoothing=0.1)
    update: Advance = bar.update if bar is not None else (lambda k: None)

    def advance(k: int) -> None:
        update(k)
        if _TERMINATED.is_set():        # a SIGTERM whose KeyboardInterrupt was swallowed (raised in a __del__)
            raise KeyboardInterrupt

    try:
        with _sigterm_as_interrupt():
            if engine == "ray":
                return run_ray(work, tasks, sizes, advance)
            workers = min(workers or available_cpus(), len(tasks))
            if workers == 1:
                return [work(task, advance) for task in tasks]
            return run_pool(work, tasks, workers, advance)
    finally:
        if bar is not None:
            bar.close()


#: Set by a SIGTERM or SIGINT in :func:`run_tasks`: the next progress report raises KeyboardInterrupt again,
#: since the handler's own may land in a ``__del__``, where Python prints and drops it.
_TERMINATED = threading.Event()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Raise SIGTERM as KeyboardInterrupt in this block, as Ctrl-C is, and remember both (main thread only:
    elsewhere signals cannot be set)."""
    import signal

    _TERMINATED.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        _TERMINATED.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, terminate) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- process pool ---------------------------------------------------------------------------------------------
_PROGRESS: Any = None
#: In a spawned worker: set once the process that started it is gone.
_PARENT_GONE = threading.Event()
#: In a spawned worker: whether a task is running.
_RUNNING = False


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
    progress report (and removes its temporary output, as an atomic writer does on an error)."""
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
    """A spawned worker's progress report, where an orphan stops."""
    if _PARENT_GONE.is_set():
        raise _Orphaned
    _PROGRESS.put(k)


def _pool_task(work: Work, task: Any) -> Any:
    global _RUNNING
    _RUNNING = True
    try:
        return work(task, _report)
    except _Orphaned:
        os._exit(1)               # the temporary output is removed by now; nobody is left to report to
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


def run_pool(work: Work, tasks: Sequence[Task], workers: int, advance: Advance) -> list[Result]:
    """Run the tasks on ``workers`` processes: this one and ``workers - 1`` spawned ones; results in task order.

    A spawned worker needs about a second to start (it imports numpy, pyarrow, numba and loads the compiled
    kernels); this process, already started, takes tasks from the back of the list meanwhile. Each spawned
    worker holds one task at a time and gets the next one from the front the moment it finishes, so at the
    end no process waits on more than the one task another is finishing. Once no task is left to hand out,
    the pool is shut down without waiting: idle workers exit while the others finish, and the results are
    returned without waiting for the workers' interpreters to tear down (~0.2 s each). The first failure, or
    Ctrl-C, stops the handing out of tasks, lets the tasks already running finish and is raised.
    """
    import multiprocessing
    from concurrent.futures import Future, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    # written synchronously by the workers, so a task's progress is all in the pipe before its result arrives
    progress = ctx.SimpleQueue()
    todo = deque(enumerate(tasks))
    # guards todo, futures and failed; re-entrant: a callback added to a future already done runs at once
    lock = threading.RLock()
    futures: dict[Future, int] = {}
    failed: list[BaseException] = []
    results: list[Any] = [None] * len(tasks)
    pool = ProcessPoolExecutor(max_workers=workers - 1, mp_context=ctx, initializer=_init_worker,
                               initargs=(progress,))

    def hand_out(finished: Future | None = None) -> None:
        with lock:
            if finished is not None and not finished.cancelled() and finished.exception() is not None:
                failed.append(finished.exception())
            if todo and not failed:
                index, task = todo.popleft()
                future = pool.submit(_pool_task, work, task)
                futures[future] = index
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
                item = todo.pop() if todo else None
                if not todo:
                    pool.shutdown(wait=False)     # nothing left to hand out
            if item is None:
                break
            results[item[0]] = work(item[1], here)
        while True:                   # the spawned workers' last tasks
            with lock:
                pending = [f for f in futures if not f.done()]
            if not pending:
                break
            wait(pending, timeout=0.2)
            _drain(progress, advance)
        for future, index in futures.items():
            results[index] = future.result()
    except BaseException:
        with lock:
            todo.clear()
            running = [f for f in futures if not f.cancel()]
        try:
            wait(running)             # the tasks in progress are finished; none is left half-done
        except KeyboardInterrupt:     # a second Ctrl-C: stop at once
            for process in spawned:
                process.terminate()
        pool.shutdown(wait=True)
        raise
    _drain(progress, advance)
    return results


def _drain(progress: Any, advance: Advance) -> None:
    while not progress.empty():
        advance(progress.get())


# -- Ray --------------------------------------------------------------------------------------------------------
def run_ray(work: Work, tasks: Sequence[Task], sizes: Sequence[int], advance: Advance) -> list[Result]:
    """The same tasks as Ray tasks (on the cluster ``ray.init()`` finds, or a local one), ``sizes[i]`` units of
    progress as task i ends; results in task order. Whatever the tasks write must be reachable from every node
    (shared storage)."""
    import ray

    if not ray.is_initialized():
        ray.init()
    remote = ray.remote(work)
    refs = {remote.remote(task, None): i for i, task in enumerate(tasks)}
    results: list[Any] = [None] * len(tasks)
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        for ref in ready:
            i = refs.pop(ref)
            results[i] = ray.get(ref)
            advance(sizes[i])
    return results
