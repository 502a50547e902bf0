"""``python -m models.train``: train SLN, ARCNN or the layered embedding net on amodaldata shards.

One process, or one per rank under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment): the process group
is initialised from the environment (NCCL on CUDA, gloo on CPU), the model is wrapped in
``DistributedDataParallel``, each rank reads its own part of the shards (:mod:`models.data`), and rank 0
alone writes the log and the checkpoint. Mixed precision: ``torch.autocast`` with float16 and a
``GradScaler`` on CUDA, or bfloat16 (``--amp-dtype bf16``, the only choice on CPU) without scaling.

The run folder holds ``config.json`` (the options), ``log.jsonl`` (one JSON object per logged step and one
per epoch, losses averaged over ranks) and ``checkpoint.pt`` (model, optimiser and scaler state, the epoch
reached; rewritten atomically after every epoch). Running the same command again resumes from it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from amodaldata.cpus import available_cpus
from amodaldata.errors import AmodalDataError

from . import MODELS, build_model
from .data import ShardDataset, collate, to_device

#: Optimiser and learning rate of each model when not given: SGD with momentum 0.9 and weight decay 5e-4
#: (none on normalisation layers) as SLN Sec. 4.6 and Mask R-CNN; Adam at 1e-4 as seed 002.
DEFAULT_OPTIMIZER = {"sln": ("sgd", 0.02), "arcnn": ("sgd", 0.02), "embedding": ("adam", 1e-4)}


@dataclass
class TrainConfig:
    """Every option of a training run (the command-line flags)."""

    model: str
    data: str
    out: str
    epochs: int = 10
    batch_size: int = 4
    lr: float | None = None
    optimizer: str | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    grad_clip: float = 0.0
    size: int = 256
    split: str | None = None
    images: str | None = None
    num_classes: int = 1
    max_level: int = 4
    layers: int = 2
    device: str = "auto"
    amp: bool | None = None
    amp_dtype: str = "fp16"
    workers: int = 0
    seed: int = 0
    log_every: int = 10
    options: dict[str, Any] = field(default_factory=dict)

    def model_config(self) -> dict[str, Any]:
        """Keyword options of the model: the data-shaped ones, then ``options`` (``--set``) on top."""
        base: dict[str, Any] = {"sln": {"max_level": self.max_level},
                                "arcnn": {"num_classes": self.num_classes},
                                "embedding": {"num_classes": self.num_classes, "layers": self.layers}}[self.model]
        return {**base, **self.options}

    def data_config(self) -> dict[str, Any]:
        return {"size": self.size, "max_level": self.max_level, "layers": self.layers,
                "num_classes": self.num_classes}


@dataclass
class Runtime:
    """Where this process runs: rank, world size, device, and whether a process group is up."""

    rank: int
    world_size: int
    device: torch.device
    distributed: bool

    @property
    def main(self) -> bool:
        return self.rank == 0


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA (the local rank's GPU) when available, else CPU; ``cuda`` fails without a GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for but CUDA is not available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if name != "cpu":
        raise ValueError(f"unknown device {name!r} (auto, cpu or cuda)")
    return torch.device("cpu")


def setup(device: str) -> Runtime:
    """Initialise the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1), pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Runtime(0, 1, select_device(device), False)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = select_device(device, local_rank)
    if dev.type == "cpu":       # ranks on one machine share its cores
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
        torch.set_num_threads(max(1, available_cpus() // local_world))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method="env://")
    return Runtime(dist.get_rank(), dist.get_world_size(), dev, True)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay except on norm layers and biases, SLN Sec. 4.6) or Adam."""
    kind, default_lr = DEFAULT_OPTIMIZER[cfg.model]
    kind = cfg.optimizer or kind
    lr = cfg.lr if cfg.lr is not None else default_lr
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr)
    raise ValueError(f"unknown optimizer {kind!r} (sgd or adam)")


def autocast_settings(cfg: TrainConfig, device: torch.device) -> tuple[bool, torch.dtype]:
    """Whether to autocast and to which dtype: on by default on CUDA only; float16 needs CUDA."""
    enabled = cfg.amp if cfg.amp is not None else device.type == "cuda"
    if cfg.amp_dtype not in ("fp16", "bf16"):
        raise ValueError(f"unknown --amp-dtype {cfg.amp_dtype!r} (fp16 or bf16)")
    dtype = torch.float16 if cfg.amp_dtype == "fp16" and device.type == "cuda" else torch.bfloat16
    return enabled, dtype


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a temporary file beside it, then a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by :func:`train` (tensors and plain values only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _mean_over_ranks(values: dict[str, float], rt: Runtime) -> dict[str, float]:
    if not rt.distributed:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64,
                     device=rt.device if rt.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return dict(zip(values, (t / rt.world_size).tolist()))


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) a training run; return the checkpoint path."""
    if cfg.model not in MODELS:
        raise ValueError(f"unknown model {cfg.model!r}; choose one of {', '.join(MODELS)}")
    rt = setup(cfg.device)
    out = Path(cfg.out)
    ckpt_path = out / "checkpoint.pt"
    torch.manual_seed(cfg.seed + rt.rank)
    model = build_model(cfg.model, cfg.model_config()).to(rt.device)
    optimizer = make_optimizer(model, cfg)
    amp, amp_dtype = autocast_settings(cfg, rt.device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)
    start_epoch, step = 0, 0
    if ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        if state["model"] != cfg.model or state["config"] != cfg.model_config() or state["data"] != cfg.data_config():
            raise ValueError(f"{ckpt_path} holds a different run ({state['model']}, {state['config']}, "
                             f"{state['data']}); use another --out")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, step = state["epoch"], state["step"]
    net: nn.Module = (DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda"
                                              else None) if rt.distributed else model)
    dataset = ShardDataset(cfg.data, cfg.size, split=cfg.split, max_level=cfg.max_level, layers=cfg.layers,
                           num_classes=cfg.num_classes, images=cfg.images, shuffle=True, seed=cfg.seed,
                           rank=rt.rank, world_size=rt.world_size)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.workers, collate_fn=collate,
                        pin_memory=rt.device.type == "cuda")
    if rt.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    log = out / "log.jsonl"
    try:
        for epoch in range(start_epoch, cfg.epochs):
            dataset.set_epoch(epoch)
            net.train()
            sums: dict[str, float] = {}
            batches, tic = 0, time.perf_counter()
            for batch in loader:
                batch = to_device(batch, rt.device)
                with torch.autocast(rt.device.type, dtype=amp_dtype, enabled=amp):
                    losses = net(batch)
                loss = torch.stack([v.float() for v in losses.values()]).sum()
                if not scaler.is_enabled() and not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss at epoch {epoch}, step {step}: "
                                             f"{ {k: float(v) for k, v in losses.items()} }")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                step += 1
                batches += 1
                values = {"loss": loss.item(), **{k: v.detach().item() for k, v in losses.items()}}
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v
                if step % cfg.log_every == 0:
                    values = _mean_over_ranks(values, rt)
                    if rt.main:
                        _append(log, {"epoch": epoch, "step": step, **values})
            means = _mean_over_ranks({k: v / max(batches, 1) for k, v in sums.items()}, rt)
            if rt.main:
                _append(log, {"epoch": epoch, "step": step, "epoch_mean": means, "batches": batches,
                              "seconds": round(time.perf_counter() - tic, 3)})
                save_checkpoint(ckpt_path, {
                    "model": cfg.model, "config": cfg.model_config(), "data": cfg.data_config(),
                    "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(), "epoch": epoch + 1, "step": step,
                })
            if rt.distributed:
                dist.barrier()
    finally:
        if rt.distributed:
            dist.destroy_process_group()
    return ckpt_path


def _spawned(rank: int, world_size: int, port: int, cfg: TrainConfig) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    train(cfg)


def launch(cfg: TrainConfig, nproc: int = 1) -> Path:
    """Train in ``nproc`` local processes (one per GPU, or gloo on CPU) without ``torchrun``; 1 = this one."""
    if nproc <= 1:
        return train(cfg)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_spawned, args=(nproc, port, cfg), nprocs=nproc, join=True)
    return Path(cfg.out) / "checkpoint.pt"


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, int]:
    """The run's options and the number of local processes (``--nproc``)."""
    p = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--data", required=True, help="shard file or folder")
    p.add_argument("--out", required=True, help="run folder (checkpoint.pt, log.jsonl, config.json)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4, help="images per rank and step")
    p.add_argument("--lr", type=float, default=None, help="default: 0.02 (sgd) for sln/arcnn, 1e-4 (adam) "
                   "for embedding")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=None)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--grad-clip", type=float, default=0.0, help="max gradient norm (0 = off)")
    p.add_argument("--size", type=int, default=256, help="input side (multiple of 8)")
    p.add_argument("--split", default=None, help="only the shards of this split")
    p.add_argument("--images", default=None, help="folder of images for rows stored without image bytes")
    p.add_argument("--num-classes", type=int, default=1, help="1 = class-agnostic (COCOA protocol)")
    p.add_argument("--max-level", type=int, default=4, help="layering maps: levels above are merged")
    p.add_argument("--layers", type=int, default=2, help="K of the embedding net's K-layer masks")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision (default: on with CUDA)")
    p.add_argument("--amp-dtype", choices=("fp16", "bf16"), default="fp16", help="fp16 needs CUDA")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes per rank")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=10, help="steps between log records")
    p.add_argument("--nproc", type=int, default=1,
                   help="start this many local DDP processes (instead of torchrun)")
    p.add_argument("--set", dest="options", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="model option (JSON value), e.g. --set channels=64 --set visible_head=false")
    a = p.parse_args(argv)
    opts = vars(a)
    opts["options"] = dict(opts["options"])
    nproc = opts.pop("nproc")
    return TrainConfig(**opts), nproc


def main(argv: list[str] | None = None) -> None:
    cfg, nproc = parse_args(argv)
    try:
        ckpt = launch(cfg, nproc)
    except (AmodalDataError, ValueError) as err:
        sys.exit(f"error: {err}")
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {ckpt}")


if __name__ == "__main__":
    main()
