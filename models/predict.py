"""``python -m models.predict``: run a trained checkpoint over shards and write COCO results JSON.

The model, its options and the input size come from the checkpoint (:mod:`models.train`); the output is a
JSON list of :func:`models.results.coco_results` records (amodal ``segmentation`` and ``visible`` masks as
COCO RLE at each image's original size, ``score``, ``category_id``, ``bbox``), written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from amodaldata.errors import AmodalDataError

from . import build_model
from .data import ShardDataset, collate
from .results import coco_results
from .train import load_checkpoint, select_device


def predict(checkpoint: str | Path, data: str | Path, out: str | Path, *, batch_size: int = 4,
            device: str = "auto", split: str | None = None, images: str | Path | None = None,
            min_score: float = 0.0) -> int:
    """Write the predictions of every scene of ``data`` to ``out``; return the number of records."""
    state = load_checkpoint(checkpoint)
    dev = select_device(device)
    model = build_model(state["model"], state["config"])
    model.load_state_dict(state["state_dict"])
    model.to(dev).eval()
    d = state["data"]
    dataset = ShardDataset(data, d["size"], split=split, max_level=d["max_level"], layers=d["layers"],
                           num_classes=d["num_classes"], images=images, rank=0, world_size=1, with_targets=False)
    records: list[dict[str, Any]] = []
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate):
        detections = model.predict(batch["images"].to(dev), batch["orig_sizes"])
        for image_id, det in zip(batch["image_ids"], detections):
            records += [r for r in coco_results(image_id, det) if r["score"] >= min_score]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(records))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return len(records)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m models.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="shard file or folder")
    p.add_argument("--out", required=True, help="results JSON file")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--split", default=None)
    p.add_argument("--images", default=None, help="folder of images for rows stored without image bytes")
    p.add_argument("--min-score", type=float, default=0.0)
    a = p.parse_args(argv)
    try:
        with torch.inference_mode():
            n = predict(a.checkpoint, a.data, a.out, batch_size=a.batch_size, device=a.device, split=a.split,
                        images=a.images, min_score=a.min_score)
    except (AmodalDataError, ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    print(f"{n} detections -> {a.out}")


if __name__ == "__main__":
    main()
