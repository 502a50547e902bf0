"""COCOA -> parquet -> COCOA on a scaled-up copy of the real COCOA fixtures, against pycocotools' bare
rasterisation of the same polygons, with peak memory at two input sizes.

The five built-in COCOA annotations are repeated (new image and annotation ids) into release files of
``--small`` and ``--scenes`` scenes in a temporary folder. For each size, three fresh processes run one leg
each: COCOA -> parquet shards and parquet -> COCOA with :func:`converters.convert.convert` (no images), each
recording its time and its peak resident memory above the post-import baseline, and the reference:
pycocotools alone, ``frPyObjects`` + ``merge`` + ``decode`` of every region's polygon (as in
``bench/targets.py``). Goals: each conversion at most 2x the reference; memory flat as the input grows.

    python bench/convert.py [--scenes 2000] [--small 500]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 2.0


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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024        # Linux: KiB


def child(leg: str, source: Path, work: Path) -> dict:
    """Run one leg in this process: ``shards`` (COCOA -> parquet), ``back`` (parquet -> COCOA) or ``ref``
    (pycocotools rasterisation of every polygon of ``source``); return its time and memory figures."""
    from pycocotools import mask as cocomask

    from converters.convert import convert

    baseline = peak_mb()
    start = time.perf_counter()
    if leg == "shards":
        report = convert("cocoa", source, "parquet", work / "shards")
    elif leg == "back":
        report = convert("parquet", work / "shards", "cocoa", work / "back.json")
    else:
        data = json.loads(source.read_text())
        sizes = {i["id"]: (i["height"], i["width"]) for i in data["images"]}
        polygons = [(sizes[a["image_id"]], r["segmentation"]) for a in data["annotations"] for r in a["regions"]]
        start = time.perf_counter()
        for (h, w), polygon in polygons:
            cocomask.decode(cocomask.merge(cocomask.frPyObjects([polygon], h, w)))
        return {"t": time.perf_counter() - start, "regions": len(polygons)}
    seconds = time.perf_counter() - start
    assert not report.skipped
    return {"t": seconds, "scenes": report.scenes, "baseline_mb": baseline, "peak_mb": peak_mb()}


def run_size(n: int, folder: Path) -> dict:
    """The three legs on ``n`` scenes, each in a fresh process."""
    work = folder / f"n{n}"
    work.mkdir()
    source = scaled_copy(n, work / "cocoa.json")
    out = {"scenes": n, "mb_file": source.stat().st_size / 2**20}
    for leg in ("shards", "back", "ref"):
        done = subprocess.run([sys.executable, __file__, "--child", leg, str(source), str(work)], check=True,
                              capture_output=True, text=True)
        out[leg] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=2000, help="scenes of the large input")
    parser.add_argument("--small", type=int, default=500, help="scenes of the small input (memory comparison)")
    parser.add_argument("--child", nargs=3, metavar=("LEG", "SOURCE", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), Path(args.child[2]))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        results = [run_size(n, Path(tmp)) for n in (args.small, args.scenes)]
    growth = {}
    for r in results:
        n, ref = r["scenes"], r["ref"]["t"]
        print(f"{n} scenes ({r['ref']['regions']} regions, {r['mb_file']:.1f} MB of COCOA JSON), each leg in its "
              f"own process:")
        print(f"  pycocotools rasterisation only : {n / ref:7.1f} scenes/s")
        for label, leg in (("COCOA -> parquet", "shards"), ("parquet -> COCOA", "back")):
            ratio = r[leg]["t"] / ref
            extra = r[leg]["peak_mb"] - r[leg]["baseline_mb"]
            growth.setdefault(leg, []).append(extra)
            print(f"  {label:<31}: {n / r[leg]['t']:7.1f} scenes/s, ratio {ratio:.2f} "
                  f"(goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'}), peak memory +{extra:.0f} MB")
        print(f"  round trip / rasterisation     : {(r['shards']['t'] + r['back']['t']) / ref:.2f}")
    scale = results[1]["scenes"] / results[0]["scenes"]
    for label, leg in (("COCOA -> parquet", "shards"), ("parquet -> COCOA", "back")):
        small, large = growth[leg]
        print(f"{label} peak memory for {scale:.0f}x the input: {small:.0f} -> {large:.0f} MB above baseline "
              f"({large / max(small, 1e-9):.2f}x)")


if __name__ == "__main__":
    main()
