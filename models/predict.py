"""``python -m models.predict``: run a trained checkpoint over shards and write one COCO results JSON.

The model, its options and its input policy come from the checkpoint (:mod:`models.train`); the output is a
JSON list of :func:`models.results.coco_results` records (amodal ``segmentation``, ``visible`` and
``occluded`` masks as COCO RLE at each image's original size, ``score``, ``category_id``, ``bbox``), written
atomically. Under ``torchrun`` or with ``--nproc N`` every rank predicts its own part of the rows (every row
exactly once) and rank 0 gathers the records into the one file, in row order.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from amodaldata.errors import AmodalDataError
from converters.results import results_from_entries, write_results

from . import build_model
from .data import ShardDataset, collate
from .results import coco_results
from .train import load_checkpoint, make_sampler, setup, spawn


def predict_records(model: nn.Module, dataset: ShardDataset, device: torch.device, *, batch_size: int = 4,
                    min_score: float = 0.0, workers: int = 0) -> list[dict[str, Any]]:
    """The COCO result records of every scene of ``dataset`` (the model in eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    records: list[dict[str, Any]] = []
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate, num_workers=workers)
    with torch.inference_mode():
        for batch in loader:
            images = batch["images"]
            images = [im.to(device) for im in images] if isinstance(images, list) else images.to(device)
            for image_id, det in zip(batch["image_ids"], model.predict(images, batch["orig_sizes"])):
                records += [r for r in coco_results(image_id, det) if r["score"] >= min_score]
    model.train(was_training)
    return records


def evaluate_model(model: nn.Module, shards: str | Path, data: dict[str, Any], *, split: str | None = None,
                   images: str | None = None, device: torch.device = torch.device("cpu"),
                   batch_size: int = 4, rank: int = 0, world_size: int = 1) -> dict[str, float]:
    """AP, AP50, AP75, AR100 and the heavy-occlusion AP of the model on ``shards`` (``amodaldata eval``).

    In a process group, every rank predicts its share of the rows and rank 0 scores them all (the others
    return an empty dict)."""
    from amodaldata.evaluation import evaluate_segmentation
    from amodaldata.evaluation.predictions import image_sizes
    from amodaldata.shards import read_shards

    sampler = make_sampler(data, train=False, images=images, with_targets=False)
    dataset = ShardDataset(shards, split=split, rank=rank, world_size=world_size, sampler=sampler,
                           drop_remainder=False)
    records = predict_records(model, dataset, device, batch_size=batch_size)
    if world_size > 1:
        parts: list[list[dict[str, Any]] | None] = [None] * world_size
        dist.all_gather_object(parts, records)
        records = [r for part in parts for r in part or []]
    if rank != 0:
        return {}
    scenes = list(read_shards(shards, images, split=split))
    preds = results_from_entries(records, image_sizes(scenes))
    result = evaluate_segmentation(scenes, preds, class_aware=data["num_classes"] > 1, keep_matches=False)
    heavy = next(b for b in result.buckets if b.bucket.subset == "all" and b.bucket.level == "heavy")
    overall = result.overall
    return {"AP": overall.ap, "AP50": overall.ap50, "AP75": overall.ap75, "AR100": overall.ar.get(100, float("nan")),
            "AP_heavy": heavy.ap}


def load_model(checkpoint: str | Path, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model of a checkpoint on ``device`` in eval mode, and its data config."""
    state = load_checkpoint(checkpoint)
    model = build_model(state["model"], state["config"])
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval(), state["data"]


def predict(checkpoint: str | Path, data: str | Path, out: str | Path, *, batch_size: int = 4,
            device: str = "auto", split: str | None = None, images: str | Path | None = None,
            min_score: float = 0.0, workers: int = 0) -> int:
    """Write the predictions of every scene of ``data`` to ``out``; return the number of records.

    In a process group (``torchrun``), each rank predicts its share and rank 0 writes the file."""
    rt = setup(device)
    try:
        model, data_cfg = load_model(checkpoint, rt.device)
        sampler = make_sampler(data_cfg, train=False, images=None if images is None else str(images),
                               with_targets=False)
        dataset = ShardDataset(data, split=split, rank=rt.rank, world_size=rt.world_size, sampler=sampler,
                               drop_remainder=False)
        records = predict_records(model, dataset, rt.device, batch_size=batch_size, min_score=min_score,
                                  workers=workers)
        if rt.distributed:
            parts: list[list[dict[str, Any]] | None] = [None] * rt.world_size
            dist.all_gather_object(parts, records)
            records = [r for part in parts for r in part or []]
        if rt.main:
            write_results(records, out)
        return len(records)
    finally:
        if rt.distributed:
            dist.destroy_process_group()


def _predict_rank(kwargs: dict[str, Any]) -> None:
    predict(**kwargs)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m models.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="shard file or folder")
    p.add_argument("--out", required=True, help="results JSON file")
    p.add_argument("--batch-size", type=int, default=4, help="images per rank and step (default: 4)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--split", default=None)
    p.add_argument("--images", default=None, help="folder of images for rows stored without image bytes")
    p.add_argument("--min-score", type=float, default=0.0)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes per rank (default: 0)")
    p.add_argument("--nproc", type=int, default=1, help="local processes (one per GPU; gloo on CPU)")
    a = p.parse_args(argv)
    kwargs = dict(checkpoint=a.checkpoint, data=a.data, out=a.out, batch_size=a.batch_size, device=a.device,
                  split=a.split, images=a.images, min_score=a.min_score, workers=a.workers)
    try:
        if a.nproc > 1:
            spawn(_predict_rank, (kwargs,), a.nproc)
            n = len(json.loads(Path(a.out).read_text()))
        else:
            n = predict(**kwargs)
    except (AmodalDataError, ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{n} detections -> {a.out}")


if __name__ == "__main__":
    main()
