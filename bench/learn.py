"""What each model learns on CPU in a fixed budget, on the same generated shapes scenes.

Generates ``--scenes`` shapes scenes (Liu et al. 2019's layered shapes: outlined circles, triangles and
rectangles, ``--per-class`` of each, ``--size`` px), ``--held-out`` of them (another seed) held out; trains
each model of ``--models`` from scratch for ``--budget`` CPU minutes (the process's CPU time, all threads
counted, so a loaded machine slows the wall clock, not the figure), scoring it on the held-out scenes every
``--eval-every`` CPU minutes; prints the curve (AP, AP50, AP heavy, AR100 against CPU minutes and
iterations), the K=2 layer oracle's AP on the same held-out scenes (what a perfect two-layer model reaches),
and each model's train steps/s (median of 7 timed steps) against torchvision's plain Mask R-CNN step on the
same batch, same backbone and same head widths (the floor).

    python bench/learn.py [--models arcnn,orcnn,jigsaw,arcnn-add,sln,embedding] [--budget 30] [--threads 2]

CPU settings (a GPU run uses the papers' widths, ``bench/train_gpu.sh``), every model on a ResNet-18 trained
from scratch with BatchNorm (no network here, so no pretrained weights) and Adam at 1e-3: the two-stage
models with FPN, box and mask heads narrowed to 64 / 256 / 64 channels, anchors 8-128 px, 128 ROIs per image;
SLN with 64-channel layering modules and RPN and 16 ROIs per image; the embedding net with heads of 64 / 64 / 32 filters. Scores are class-aware over the three
classes, except SLN's (it predicts no class: class-agnostic). Results go to ``--out`` (runs, the curve as
``learn.json``); an interrupted bench resumes each run from its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from amodaldata.evaluation import evaluate_oracle
from amodaldata.shards import read_shards
from generators.shapes import ShapesConfig
from generators.tasks import generate_dataset
from models import TWO_STAGE, build_model
from models.data import ShardDataset, collate
from models.predict import evaluate_model
from models.train import TrainConfig, make_sampler, resolve, train

#: Model options of the CPU runs (module docstring).
CPU_TWO_STAGE = {"fpn_channels": 64, "box_fc": 256, "mask_channels": 64, "anchor_sizes": [8, 16, 32, 64, 128],
                 "rpn_pre_nms_top_n_train": 600, "rpn_post_nms_top_n_train": 300, "rpn_pre_nms_top_n_test": 300,
                 "rpn_post_nms_top_n_test": 150, "box_batch_size_per_image": 128}
CPU_DENSE = {"sln": {"backbone": "resnet18", "anchor_sizes": [8, 16, 32, 64, 128], "hidden": 64, "rpn_channels": 64,
                     "rpn_pre_nms": [600, 300], "rpn_post_nms": [300, 100], "rois_per_image": 16},
             "embedding": {"backbone": "resnet18", "head": [64, 64, 32]}}


def shapes(out: Path, scenes: int, held_out: int, size: int, per_class: int) -> tuple[Path, Path]:
    """The training and held-out shards (generated once, kept in ``out``)."""
    config = ShapesConfig(size=size, per_class=(per_class, per_class))
    train_dir, val_dir = out / "shapes-train", out / "shapes-validation"
    generate_dataset(config, train_dir, scenes - held_out, seed=1, split="train", workers=1, progress=False)
    generate_dataset(config, val_dir, held_out, seed=2, split="validation", workers=1, progress=False)
    return train_dir, val_dir


def config(model: str, data: Path, out: Path, size: int, max_iter: int, batch: int) -> TrainConfig:
    given = {"data": str(data), "out": str(out), "max_iter": max_iter, "batch_size": batch, "ref_batch": batch,
             "device": "cpu", "log_every": 10, "checkpoint_every": 10 ** 9, "progress": False, "num_classes": 3,
             "warmup_iters": 50, "lr_steps": [], "optimizer": "adam", "weight_decay": 0.0, "lr": 1e-3}
    if model in TWO_STAGE:
        given.update(backbone="resnet18", min_size=[size], max_size=size, options=dict(CPU_TWO_STAGE))
    else:   # SLN predicts no class: it is trained and scored class-agnostic
        given.update(size=size, options=dict(CPU_DENSE[model]), num_classes=1 if model == "sln" else 3)
    return resolve(model, None, given)


def train_curve(model: str, train_dir: Path, val_dir: Path, out: Path, args: argparse.Namespace) -> list[dict]:
    """Train in chunks of ``--eval-every`` CPU minutes (each resuming the last), scoring after each."""
    run = out / f"run-{model}"
    curve_file = run / "curve.json"
    curve = json.loads(curve_file.read_text()) if curve_file.is_file() else []
    spent = curve[-1]["cpu_min"] if curve else 0.0
    iteration = curve[-1]["iteration"] if curve else 0
    chunk = args.chunk_iters
    while spent < args.budget:
        cfg = config(model, train_dir, run, args.size, iteration + chunk, args.batch)
        tic = time.process_time()
        train(cfg)
        spent += (time.process_time() - tic) / 60
        iteration += chunk
        state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
        net = build_model(model, state["config"])
        net.load_state_dict(state["state_dict"])
        scores = evaluate_model(net.eval(), val_dir, state["data"], batch_size=8)
        curve.append({"cpu_min": round(spent, 2), "iteration": iteration, **{k: round(v, 4) for k, v in scores.items()}})
        run.mkdir(parents=True, exist_ok=True)
        curve_file.write_text(json.dumps(curve, indent=1))
        print(f"  {model:9s} {spent:6.1f} CPU min  it {iteration:6d}  AP {scores['AP']:.3f}  AP50 {scores['AP50']:.3f}"
              f"  AP heavy {scores['AP_heavy']:.3f}  AR100 {scores['AR100']:.3f}", flush=True)
        # the next chunk: as many iterations as fit in --eval-every CPU minutes at the speed just seen
        per_iter = (time.process_time() - tic) / chunk
        chunk = max(10, int(args.eval_every * 60 / per_iter))
    return curve


def _median_step(step, steps: int) -> float:
    """Steps per second from the median of ``steps`` timed steps (after one warm-up step)."""
    step()
    times = []
    for _ in range(steps):
        tic = time.perf_counter()
        step()
        times.append(time.perf_counter() - tic)
    return 1 / statistics.median(times)


def _trainer(net: torch.nn.Module, loss_of):
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        loss = sum(loss_of(net).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def step_speed(model: str, batch: dict, size: int, steps: int = 7) -> float:
    """Training steps per second of one model on one batch."""
    cfg = config(model, Path("."), Path("."), size, 1, len(batch["images"]))
    net = build_model(model, cfg.model_config()).train()
    return _median_step(_trainer(net, lambda n: n(batch)), steps)


def torchvision_speed(batch: dict, steps: int = 7) -> float:
    """The floor: torchvision's plain Mask R-CNN (one mask head), same backbone, widths and ROI settings."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

    from models.rcnn import resnet_fpn
    o = CPU_TWO_STAGE
    body = resnet_fpn("resnet18", torch.nn.BatchNorm2d, 5, o["fpn_channels"])
    net = MaskRCNN(body, min_size=1, max_size=10 ** 4, _skip_resize=True,
                   rpn_anchor_generator=AnchorGenerator(tuple((s,) for s in o["anchor_sizes"]), ((0.5, 1.0, 2.0),) * 5),
                   box_head=TwoMLPHead(o["fpn_channels"] * 49, o["box_fc"]), box_predictor=FastRCNNPredictor(o["box_fc"], 4),
                   mask_head=MaskRCNNHeads(o["fpn_channels"], [o["mask_channels"]] * 4, 1),
                   mask_predictor=MaskRCNNPredictor(o["mask_channels"], o["mask_channels"], 4),
                   **{k: v for k, v in o.items() if k.startswith(("rpn_", "box_batch"))}).train()
    images = list(batch["images"])
    targets = [{"boxes": t["boxes"], "labels": t["labels"], "masks": t["amodal"]} for t in batch["targets"]]
    return _median_step(_trainer(net, lambda n: n(images, targets)), steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="arcnn,orcnn,jigsaw,arcnn-add,sln,embedding")
    p.add_argument("--scenes", type=int, default=2000, help="scenes generated, held-out ones included")
    p.add_argument("--held-out", type=int, default=200)
    p.add_argument("--size", type=int, default=128, help="image side, px")
    p.add_argument("--per-class", type=int, default=6, help="shapes of each class per scene (the paper's 6)")
    p.add_argument("--budget", type=float, default=30.0, help="CPU minutes of training per model")
    p.add_argument("--eval-every", type=float, default=5.0, help="CPU minutes between held-out scores")
    p.add_argument("--chunk-iters", type=int, default=50, help="iterations of the first chunk (speed probe)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--out", default="bench-out/learn")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    train_dir, val_dir = shapes(out, args.scenes, args.held_out, args.size, args.per_class)
    held = list(read_shards(val_dir))
    oracle = evaluate_oracle(held, [2], class_aware=True).results[0]
    heavy = next(b for b in oracle.buckets if b.bucket.subset == "all" and b.bucket.level == "heavy")
    print(f"{len(held)} held-out scenes of {args.size} px, {args.per_class} shapes per class; "
          f"K=2 layer oracle: AP {oracle.overall.ap:.3f}, AP heavy {heavy.ap:.3f}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    sample = iter(ShardDataset(train_dir, sampler=make_sampler(
        {"kind": "instances", "min_size": [args.size], "max_size": args.size, "num_classes": 3}, train=False)))
    instances = collate([next(sample) for _ in range(args.batch)])
    dense = collate([s for _, s in zip(range(args.batch), ShardDataset(train_dir, args.size, num_classes=3))])
    floor = torchvision_speed(instances)
    print(f"train steps/s at batch {args.batch}: torchvision Mask R-CNN {floor:.2f} (the floor)")
    for m in models:
        speed = step_speed(m, instances if m in TWO_STAGE else dense, args.size)
        print(f"  {m:9s} {speed:.2f} steps/s = {speed / floor:.2f} x torchvision's")
    results = {"oracle_K2": {"AP": oracle.overall.ap, "AP_heavy": heavy.ap}, "torchvision_steps_per_s": floor,
               "models": {}}
    for m in models:
        print(f"{m}: {args.budget:g} CPU minutes")
        results["models"][m] = train_curve(m, train_dir, val_dir, out, args)
    (out / "learn.json").write_text(json.dumps(results, indent=1))
    print(f"{'model':9s}  {'CPU min':>7s}  {'AP':>6s}  {'AP50':>6s}  {'AP heavy':>8s}  {'AR100':>6s}   (K=2 oracle AP "
          f"{oracle.overall.ap:.3f})")
    for m, curve in results["models"].items():
        last = curve[-1]
        print(f"{m:9s}  {last['cpu_min']:7.1f}  {last['AP']:6.3f}  {last['AP50']:6.3f}  {last['AP_heavy']:8.3f}  "
              f"{last['AR100']:6.3f}")


if __name__ == "__main__":
    main()
