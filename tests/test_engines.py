"""The task engine in this process: results in task order, progress, engines checked, SIGTERM as Ctrl-C. The pool
and Ray run shard tasks in ``tests/generators/test_gen_tasks.py`` (spawned workers, orphans, interruption)."""

from __future__ import annotations

import os
import signal

import pytest

from amodaldata.engines import ENGINES, check_engine, run_tasks


def _square(task: int, advance) -> int:
    advance(task)
    return task * task


def test_in_process_results_in_task_order_with_progress():
    assert run_tasks(_square, [3, 1, 2], workers=1) == [9, 1, 4]
    assert run_tasks(_square, [], workers=4) == []


def test_an_unknown_engine_is_refused():
    assert ENGINES == ("local", "ray")
    with pytest.raises(ValueError, match="'local', 'ray'"):
        check_engine("dask")
    with pytest.raises(ValueError):
        run_tasks(_square, [1], engine="threads")


def test_sigterm_stops_the_tasks_as_ctrl_c_and_is_restored():
    def stop(task: int, advance) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        return task

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        run_tasks(stop, [1, 2], workers=1)
    assert signal.getsignal(signal.SIGTERM) == before
