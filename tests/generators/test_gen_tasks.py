"""Shard tasks: byte-identical output whatever the workers or engine, resumption after a kill, the manifest,
the summary and the dataset card, and the ``amodaldata gen`` commands."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from amodaldata.errors import FormatError
from amodaldata.shards import read_shards
from generators.shapes import ShapesConfig, generate_scene
from generators.tasks import ShardStats, generate_dataset, plan

SMALL = ShapesConfig(size=40, per_class=(1, 3))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_plan_and_per_shard_seeds(tmp_path):
    tasks = plan(SMALL, tmp_path, 10, seed=4, scenes_per_shard=4)
    assert [(t.start, t.stop) for t in tasks] == [(0, 4), (4, 8), (8, 10)]
    assert [t.path.name for t in tasks] == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    spawned = np.random.SeedSequence(4).spawn(3)
    for task, child in zip(tasks, spawned):
        assert task.rng().integers(0, 2**63, 4).tolist() == np.random.default_rng(child).integers(0, 2**63, 4).tolist()


def test_shards_hold_the_scenes_of_their_seed(tmp_path):
    report = generate_dataset(SMALL, tmp_path, 7, seed=2, scenes_per_shard=3, workers=1, progress=False)
    assert report.written == 3 and report.skipped == 0 and report.stats.scenes == 7
    scenes = list(read_shards(tmp_path))
    assert [s.id for s in scenes] == list(range(7))
    rng = plan(SMALL, tmp_path, 7, seed=2, scenes_per_shard=3)[1].rng()
    again = [generate_scene(SMALL, rng, i) for i in (3, 4, 5)]
    for got, want in zip(scenes[3:6], again):
        assert got.image_bytes == want.image_bytes
        assert [r.amodal.polygons for r in got.regions] == [r.amodal.polygons for r in want.regions]
        assert [r.visible for r in got.regions] == [r.visible for r in want.regions]
        assert got.order.edges == want.order.edges
    card = (tmp_path / "README.md").read_text()
    assert "7 scenes" in card and "seed 2" in card and "occlusion: none" in card


def test_workers_do_not_change_the_bytes(tmp_path):
    one = generate_dataset(SMALL, tmp_path / "one", 12, seed=9, scenes_per_shard=3, workers=1, progress=False)
    two = generate_dataset(SMALL, tmp_path / "two", 12, seed=9, scenes_per_shard=3, workers=2, progress=False)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    assert one.stats == two.stats


def test_the_pool_reports_every_scene_once(tmp_path):
    """Progress from both processes adds up to the scene count by the time the results are returned (the
    pool is not waited for, so the spawned worker's reports must all be in before its last result)."""
    from amodaldata.engines import run_pool
    from generators.tasks import run_task

    seen: list[int] = []
    results = run_pool(run_task, plan(SMALL, tmp_path, 130, seed=2, scenes_per_shard=13), 2, seen.append)
    assert sum(seen) == 130
    assert sorted(r.index for r in results) == list(range(10))
    assert sum(r.stats.scenes for r in results) == 130


@pytest.mark.parametrize("broken", ["first", "last"])
def test_a_failing_shard_stops_the_pool_and_raises(tmp_path, broken):
    """The spawned worker takes tasks from the front, this process from the back: a failure on either side
    reaches the caller (the broken task's folder is a file, so its shard cannot be written)."""
    from dataclasses import replace

    from amodaldata.engines import run_pool
    from generators.tasks import run_task

    (tmp_path / "not-a-folder").write_text("")
    tasks = plan(SMALL, tmp_path / "out", 8, seed=1, scenes_per_shard=2)
    k = 0 if broken == "first" else -1
    tasks[k] = replace(tasks[k], out=tmp_path / "not-a-folder")
    with pytest.raises(OSError):
        run_pool(run_task, tasks, 2, lambda n: None)
    assert not list((tmp_path / "out").glob(".*.tmp"))     # nothing half-written left behind


def test_ray_engine_gives_the_same_bytes(tmp_path):
    import ray                                            # the "ray" extra (part of the dev install)

    generate_dataset(SMALL, tmp_path / "local", 6, seed=1, scenes_per_shard=3, workers=1, progress=False)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        report = generate_dataset(SMALL, tmp_path / "ray", 6, seed=1, scenes_per_shard=3, engine="ray", progress=False)
    finally:
        ray.shutdown()
    assert report.written == 2
    assert _files(tmp_path / "local") == _files(tmp_path / "ray")


def test_resumes_after_a_kill(tmp_path):
    """Kill a run as soon as its first shard is complete; the rerun writes only the rest, and the folder is
    byte-identical to an uninterrupted run."""
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "cli", "gen", "shapes", "--n", "400", "--size", "48", "--per-class", "2-4",
               "--scenes-per-shard", "25", "--workers", "1", "--seed", "5", "--no-progress", "--out", str(out)]
    proc = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not list(out.glob("train-*.parquet")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = sorted(p.name for p in out.glob("train-*.parquet"))
    assert 1 <= len(done) < 16                               # killed midway
    assert not (out / "README.md").exists()                 # the card comes only with a complete dataset
    finished = {name: (out / name).read_bytes() for name in done}

    config = ShapesConfig(size=48, per_class=(2, 4))
    resumed = generate_dataset(config, out, 400, seed=5, scenes_per_shard=25, workers=1, progress=False)
    assert resumed.skipped == len(done) and resumed.written == 16 - len(done)
    assert all((out / name).read_bytes() == data for name, data in finished.items())
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    fresh = generate_dataset(config, tmp_path / "fresh", 400, seed=5, scenes_per_shard=25, workers=1,
                             progress=False)
    assert _files(out) == _files(tmp_path / "fresh")
    assert resumed.stats == fresh.stats


def _kill_group(pid: int) -> None:
    """SIGKILL what is left of the process group ``pid`` leads (nothing, when all went as it should)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


LINUX_PROC = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")


@LINUX_PROC
def test_a_killed_run_leaves_no_worker_and_no_temporary_file(tmp_path):
    """SIGKILL the main process of a two-process run midway: its spawned worker notices, removes the shard it
    was writing and exits (a pool's worker would otherwise wait for work forever); a rerun completes the set."""
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "cli", "gen", "shapes", "--n", "4000", "--size", "48", "--per-class", "2-4",
               "--scenes-per-shard", "50", "--workers", "2", "--no-progress", "--out", str(out)]
    proc = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        # both processes are writing: the worker takes shards from the front, the main process from the back
        while not ((out / "train-00000-of-00080.parquet").exists() and (out / "train-00079-of-00080.parquet").exists()):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        proc.kill()
        proc.wait()
        assert children
        while any(_alive(pid) for pid in children):
            assert time.monotonic() < deadline, "a worker outlived its killed parent"
            time.sleep(0.05)
    finally:
        _kill_group(proc.pid)
    # the killed process could not remove its own temporary file (the next run does); the worker removed its own
    left = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert not [name for name in left if int(name.split(".")[-2]) in children]
    done = sorted(p.name for p in out.glob("train-*.parquet"))
    assert 2 <= len(done) < 80
    assert len(list(read_shards(out))) == 50 * len(done)      # every shard left is whole
    config = ShapesConfig(size=48, per_class=(2, 4))
    resumed = generate_dataset(config, out, 4000, scenes_per_shard=50, workers=1, progress=False)
    assert resumed.skipped == len(done) and resumed.stats.scenes == 4000
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@LINUX_PROC
@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_an_interrupted_run_says_how_to_resume(tmp_path, stop):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it), or a SIGTERM to the main process (a
    job scheduler's), ends a two-process run with exit code 130 and a one-line message, not a traceback; no
    worker is left and no temporary file."""
    out = tmp_path / "interrupted"
    command = [sys.executable, "-m", "cli", "gen", "shapes", "--n", "4000", "--size", "48", "--per-class", "2-4",
               "--scenes-per-shard", "50", "--workers", "2", "--no-progress", "--out", str(out)]
    proc = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not list(out.glob("train-*.parquet")):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        if stop == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.terminate()
        _, err = proc.communicate(timeout=60)
        while any(_alive(pid) for pid in children):     # the worker, and multiprocessing's resource tracker
            assert time.monotonic() < deadline, "a child outlived the interrupted run"
            time.sleep(0.05)
    finally:
        _kill_group(proc.pid)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "rerun the same command to resume" in err
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@LINUX_PROC
def test_a_worker_killed_midway_is_reported_and_the_rerun_completes(tmp_path):
    """A spawned worker killed (by the OOM killer, say): the run stops with a one-line error naming what is
    done; the rerun writes the rest, and the folder equals an uninterrupted run's."""
    from cli import main

    out = tmp_path / "broken"
    options = ["--n", "2000", "--size", "48", "--per-class", "2-4", "--scenes-per-shard", "50", "--no-progress"]
    command = [sys.executable, "-m", "cli", "gen", "shapes", *options, "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not (out / "train-00000-of-00040.parquet").exists():      # the worker has started writing
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        worker = [pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        os.kill(worker[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        _kill_group(proc.pid)
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "a worker process died" in err and "rerun the same command" in err
    result = CliRunner().invoke(main, ["gen", "shapes", *options, "--workers", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    fresh = CliRunner().invoke(main, ["gen", "shapes", *options, "--workers", "1", "--out", str(tmp_path / "fresh")])
    assert fresh.exit_code == 0 and _files(out) == _files(tmp_path / "fresh")


def test_rerun_skips_everything_and_reads_stats_back(tmp_path):
    first = generate_dataset(SMALL, tmp_path, 9, seed=3, scenes_per_shard=4, workers=1, progress=False)
    stale = tmp_path / ".train-00001-of-00003.parquet.999.tmp"
    stale.write_bytes(b"partial")
    again = generate_dataset(SMALL, tmp_path, 9, seed=3, scenes_per_shard=4, workers=1, progress=False)
    assert again.written == 0 and again.skipped == 3
    assert again.stats == first.stats
    assert not stale.exists()
    assert ShardStats.of_shard(first.shards[0]).scenes == 4


def test_another_dataset_in_the_same_folder_is_refused(tmp_path):
    generate_dataset(SMALL, tmp_path, 4, seed=0, scenes_per_shard=2, workers=1, progress=False)
    with pytest.raises(FormatError, match="different generated 'train' split"):
        generate_dataset(SMALL, tmp_path, 4, seed=1, scenes_per_shard=2, workers=1, progress=False)
    generate_dataset(SMALL, tmp_path, 2, seed=1, split="val", scenes_per_shard=2, workers=1, progress=False)
    assert "| validation | 1 | 2 |" in (tmp_path / "README.md").read_text()      # the Hugging Face split name
    foreign = tmp_path / "other"
    foreign.mkdir()
    (foreign / "train-00000-of-00001.parquet").write_bytes(b"x")
    with pytest.raises(FormatError, match="already holds"):
        generate_dataset(SMALL, foreign, 4, workers=1, progress=False)


class _Failing:
    """A generator that fails before its first scene (a source that cannot be read, say)."""

    name = "shapes"

    def generate(self, rng, indices, split):
        raise OSError("source unreadable")

    def describe(self):
        return {"source": "wrong"}


def test_a_run_that_wrote_no_shard_does_not_block_a_corrected_one(tmp_path):
    with pytest.raises(OSError, match="source unreadable"):
        generate_dataset(_Failing(), tmp_path, 4, scenes_per_shard=2, workers=1, progress=False)
    assert not list(tmp_path.glob("*.parquet"))
    report = generate_dataset(SMALL, tmp_path, 4, scenes_per_shard=2, workers=1, progress=False)
    assert report.written == 2
    with pytest.raises(FormatError, match="different generated 'train' split"):
        generate_dataset(_Failing(), tmp_path, 4, scenes_per_shard=2, workers=1, progress=False)


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks (POSIX)")
def test_a_second_run_on_the_same_split_is_refused_while_the_first_writes(tmp_path):
    """Another run writing the split (its lock held, here by hand) is not disturbed: its temporary files stay;
    other splits of the folder can be written meanwhile, and the split can once the lock is released."""
    import fcntl

    stray = tmp_path / ".train-00000-of-00002.parquet.99999.tmp"      # the other run's shard in progress
    stray.write_bytes(b"partial")
    with open(tmp_path / ".generate-train.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(FormatError, match="another run is writing the 'train' split"):
            generate_dataset(SMALL, tmp_path, 4, scenes_per_shard=2, workers=1, progress=False)
        assert stray.exists()
        generate_dataset(SMALL, tmp_path, 2, split="val", scenes_per_shard=2, workers=1, progress=False)
        fcntl.flock(lock, fcntl.LOCK_UN)
    report = generate_dataset(SMALL, tmp_path, 4, scenes_per_shard=2, workers=1, progress=False)
    assert report.written == 2 and not stray.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks (POSIX)")
def test_a_file_system_without_locks_still_generates(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert generate_dataset(SMALL, tmp_path, 4, scenes_per_shard=2, workers=1, progress=False).written == 2


def test_stats_count_occlusion_levels():
    stats = ShardStats()
    stats.add(np.array([0.0, 0.1, 0.25, 0.3, 1.0]), order_edges=3)
    assert (stats.unoccluded, stats.partial, stats.heavy, stats.regions, stats.order_edges) == (1, 2, 2, 5, 3)
    assert "none 20.0%, partial (<= 0.25) 40.0%, heavy 40.0%" in stats.summary()


# -- the command ----------------------------------------------------------------------------------------------
def test_cli_gen_shapes_and_show(tmp_path):
    from cli import main

    runner = CliRunner()
    out = tmp_path / "shapes"
    result = runner.invoke(main, ["gen", "shapes", "--n", "5", "--per-class", "2", "--size", "64", "--classes",
                                  "circle,star", "--fill", "random", "--scenes-per-shard", "5", "--workers", "1",
                                  "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "5 scenes" in result.output and "occlusion: none" in result.output
    scenes = list(read_shards(out))
    assert len(scenes) == 5 and {r.name for s in scenes for r in s.regions} <= {"circle", "star"}
    picture = tmp_path / "scene.png"
    result = runner.invoke(main, ["show", str(out), "--from", "parquet", "--image-id", "2", "--out", str(picture)])
    assert result.exit_code == 0, result.output
    assert picture.stat().st_size > 1000
    bad = runner.invoke(main, ["gen", "shapes", "--n", "5", "--per-class", "x", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "LOW-HIGH" in bad.output
    bad = runner.invoke(main, ["gen", "shapes", "--n", "5", "--classes", "blob", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "unknown shape class" in bad.output


def test_cli_gen_overlay_on_the_demo_data(tmp_path):
    from cli import main

    out = tmp_path / "overlay"
    result = CliRunner().invoke(main, ["gen", "overlay", "--n", "3", "--objects", "1-2", "--workers", "1",
                                       "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    scenes = list(read_shards(out))
    assert len(scenes) == 3
    assert all(any("pasted_from" in r.extra for r in s.regions) for s in scenes)
    refused = CliRunner().invoke(main, ["gen", "overlay", "--n", "3", "--min-area", "100000000", "--workers", "1",
                                        "--no-progress", "--out", str(tmp_path / "none")])
    assert refused.exit_code == 1 and "no unoccluded" in refused.output


@pytest.mark.parametrize("mode, expected", [(None, ("L", np.uint8, 2)), ("1", ("1", np.bool_, 2))])
def test_generated_shards_load_in_hugging_face_datasets(tmp_path, mode, expected):
    """Images decode as uint8 gray arrays by default (1-bit on request); split "val" is "validation" however the
    folder is loaded (file names, or the dataset card's configs)."""
    import datasets
    from cli import main

    out = tmp_path / "shapes"
    args = ["gen", "shapes", "--n", "3", "--size", "32", "--per-class", "1", "--split", "val", "--workers", "1",
            "--no-progress", "--out", str(out)] + (["--image-mode", mode] if mode else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.parquet")) == ["validation-00000-of-00001.parquet"]
    for i, source in enumerate((("parquet",), (str(out),))):
        ds = datasets.load_dataset(*source, cache_dir=str(tmp_path / f".cache{i}"),
                                   **({"data_dir": str(out)} if source == ("parquet",) else {}))
        assert list(ds) == ["validation"] and len(ds["validation"]) == 3
        image = ds["validation"][0]["image"]
        array = np.asarray(image)
        assert (image.mode, array.dtype, array.ndim) == expected
    assert next(read_shards(out, split="val")).file_name == "validation-00000000.png"
