"""COCOA -> parquet -> COCOA on a scaled-up copy of the real COCOA fixtures, against pycocotools' bare
rasterisation of the same polygons, with peak memory at two input sizes.

The five built-in COCOA annotations are repeated (new image and annotation ids) into release files of
``--small`` and ``--scenes`` scenes in a temporary folder.

- Speed, on the large file, in one process, best of ``--rounds`` rounds with the steps taking turns: COCOA ->
  parquet shards and parquet -> COCOA with :func:`converters.convert.convert` (no images), the reference
  (pycocotools alone: ``frPyObjects`` + ``merge`` + ``decode`` of every region's polygon, as in
  ``bench/targets.py``), and the layer stack alone (polygons -> RLE -> stack, the part every writer needs).
  Goal: each conversion at most 2x the reference.
- Memory: each conversion leg, and ``stats`` (:func:`amodaldata.stats.compute_stats`), on each file size in a
  fresh process: its peak resident memory (``VmHWM``, imports and compiled kernels included) and the part
  above its post-import baseline. Goal: under :data:`MEMORY_GOAL_MB` and flat as the input grows (the larger
  input's peak within :data:`FLAT` times the smaller's).

    python bench/convert.py [--scenes 5000] [--small 500] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pycocotools import mask as cocomask

from converters.cocoa import read_cocoa
from converters.convert import convert

GOAL = 2.0
MEMORY_GOAL_MB = 500
FLAT = 1.2
LEGS = ("shards", "back", "stats")


def scaled_copy(n: int, path: Path) -> Path:
    """A COCOA release file of ``n`` scenes made of the built-in annotations, with fresh ids."""
    from amodaldata.data import COCOA_DEMO_JSON

    demo = json.loads(COCOA_DEMO_JSON.read_text())
    images, annotations = [], []
    for k in range(n):
        image, ann = demo["images"][k % 5], demo["annotations"][k % 5]
        images.append({**image, "id": k + 1, "file_name": f"{k + 1:06d}.jpg"})
        annotations.append({**ann, "image_id": k + 1, "id": k + 1})
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def peak_mb() -> float:
    """This process's peak resident memory in MB: Linux's ``VmHWM`` (of this program only: ``ru_maxrss``
    keeps the parent's peak across fork and exec), else ``ru_maxrss``."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024                          # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


def leg_shards(source: Path, work: Path) -> float:
    """COCOA -> parquet shards; its time in seconds."""
    shutil.rmtree(work / "shards", ignore_errors=True)
    start = time.perf_counter()
    convert("cocoa", source, "parquet", work / "shards")
    return time.perf_counter() - start


def leg_back(source: Path, work: Path) -> float:
    """Parquet shards -> COCOA; its time in seconds."""
    (work / "back.json").unlink(missing_ok=True)
    start = time.perf_counter()
    convert("parquet", work / "shards", "cocoa", work / "back.json")
    return time.perf_counter() - start


def leg_stats(source: Path, work: Path) -> float:
    """``amodaldata stats`` of the COCOA file (every measure, one pass); its time in seconds."""
    from amodaldata.stats import compute_stats

    start = time.perf_counter()
    compute_stats(read_cocoa(source))
    return time.perf_counter() - start


def reference(source: Path, work: Path) -> float:
    """pycocotools alone on every region's polygon (parsing not timed)."""
    data = json.loads(source.read_text())
    sizes = {i["id"]: (i["height"], i["width"]) for i in data["images"]}
    polygons = [(sizes[a["image_id"]], r["segmentation"]) for a in data["annotations"] for r in a["regions"]]
    start = time.perf_counter()
    for (h, w), polygon in polygons:
        cocomask.decode(cocomask.merge(cocomask.frPyObjects([polygon], h, w)))
    return time.perf_counter() - start


def stack_alone(source: Path, work: Path) -> float:
    """Polygons -> RLE -> layer stack of every scene, what each writer starts from (reading not timed)."""
    scenes = list(read_cocoa(source))
    start = time.perf_counter()
    for scene in scenes:
        scene.layers
        scene.invalidate()
    return time.perf_counter() - start


def timing(source: Path, work: Path, rounds: int) -> dict:
    """Best-of-``rounds`` times of each step, the steps taking turns in every round so that a change of load on
    the machine hits them alike."""
    steps = {"ref": reference, "stack": stack_alone, "shards": leg_shards, "back": leg_back}
    best = {name: float("inf") for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            best[name] = min(best[name], step(source, work))
    return best


def memory(leg: str, source: Path, work: Path) -> dict:
    """Peak resident memory of one leg (``shards`` must have run on ``work`` before ``back``), in MB: the
    process's peak and the part above its post-import baseline."""
    baseline = peak_mb()
    {"shards": leg_shards, "back": leg_back, "stats": leg_stats}[leg](source, work)
    return {"peak_mb": peak_mb(), "extra_mb": peak_mb() - baseline}


def child_process(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=5000, help="scenes of the large input")
    parser.add_argument("--small", type=int, default=500, help="scenes of the small input (memory comparison)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds; the fastest counts")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, source, work = args.child[0], Path(args.child[1]), Path(args.child[2])
        out = timing(source, work, int(args.child[3])) if kind == "timing" else memory(kind, source, work)
        print(json.dumps(out))
        return
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        peaks = {}
        for n in (args.small, args.scenes):
            work = Path(tmp) / f"n{n}"
            work.mkdir()
            source = scaled_copy(n, work / "cocoa.json")
            source_mb = source.stat().st_size / 2**20
            peaks[n] = {leg: child_process(leg, str(source), str(work)) for leg in LEGS}
        times = child_process("timing", str(source), str(work), str(args.rounds))
    n, ref = args.scenes, times["ref"]
    print(f"{n} scenes ({source_mb:.1f} MB of COCOA JSON), best of {args.rounds} rounds in one process:")
    print(f"  pycocotools rasterisation only  : {n / ref:7.1f} scenes/s")
    for label, key in (("COCOA -> parquet", "shards"), ("parquet -> COCOA", "back")):
        ratio = times[key] / ref
        print(f"  {label:<32}: {n / times[key]:7.1f} scenes/s, ratio {ratio:.2f} "
              f"(goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'})")
    print(f"  layer stack alone (in each leg) : {n / times['stack']:7.1f} scenes/s, ratio {times['stack'] / ref:.2f}")
    print(f"  round trip / rasterisation      : {(times['shards'] + times['back']) / ref:.2f}")
    print(f"peak RSS, each in a fresh process, {args.small} -> {args.scenes} scenes "
          f"(goal: under {MEMORY_GOAL_MB} MB, at most {FLAT}x):")
    for label, key in (("COCOA -> parquet", "shards"), ("parquet -> COCOA", "back"), ("stats (COCOA)", "stats")):
        small, large = peaks[args.small][key], peaks[args.scenes][key]
        met = large["peak_mb"] < MEMORY_GOAL_MB and large["peak_mb"] <= FLAT * small["peak_mb"]
        print(f"  {label:<32}: {small['peak_mb']:4.0f} -> {large['peak_mb']:4.0f} MB "
              f"(+{small['extra_mb']:.0f} -> +{large['extra_mb']:.0f} MB above the post-import baseline; "
              f"{large['peak_mb'] / small['peak_mb']:.2f}x, {'met' if met else 'NOT met'})")


if __name__ == "__main__":
    main()
