"""``python -m models.train``: train any model of :data:`models.MODELS` on amodaldata shards.

Training is iteration-based, as detectron2 and torchvision's references train detectors: ``--max-iter``
steps of ``--batch-size`` images per rank, a linear warm-up over ``--warmup-iters`` from
``--warmup-factor`` x the learning rate, and a step decay by ``--gamma`` at each of ``--lr-steps``. The
learning rate given (by a recipe or ``--lr``) is the one of the recipe's reference batch
(``--ref-batch``); it is scaled linearly with the global batch (Goyal et al. 2017), and the log says so.
``--recipe`` presets the papers' settings (:data:`RECIPES`); each preset value can be overridden by its flag.
The training scenes come from shards (``--data``) or are generated while training (``--generate 'shapes
--per-class 6'``, the options of ``amodaldata gen``; ``--scenes-per-epoch`` fresh ones per epoch, as Liu et
al. 2019 Sec. 4 train: :mod:`models.generated`).

One process, or one per rank under ``torchrun`` (``WORLD_SIZE`` > 1) or ``--nproc N``: the process group is
initialised from the environment (NCCL on CUDA, gloo on CPU), the model is wrapped in
``DistributedDataParallel``, each rank reads its own part of the shards (:mod:`models.data`), and rank 0
alone writes the log, the checkpoint and the console. Mixed precision: ``torch.autocast`` with float16 and a
``GradScaler`` on CUDA (the default there), or bfloat16 (``--amp-dtype bf16``, the only choice on CPU).
``--channels-last`` puts the convolution inputs in channels-last memory, which tensor cores prefer.

The console shows a progress bar (it/s, ETA, the current losses and learning rate); with ``--val SHARDS``
the model is scored every ``--eval-every`` iterations on those shards (COCO AP / AR of ``amodaldata eval``,
printed and logged). The run folder holds ``config.json`` (the resolved options), ``log.jsonl`` (one JSON
object per logged step, losses averaged over ranks; one per validation), ``checkpoint.pt`` (model,
optimiser and scaler state, the iteration reached; rewritten atomically every
``--checkpoint-every`` iterations and at the end) and, with ``--tensorboard``, TensorBoard event files.
Running the same command again resumes from the checkpoint, with or without mixed precision; a resumed
run takes the learning rate, schedule and weight decay of the command that resumes it (a longer
``--max-iter`` with new ``--lr-steps`` extends a run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from amodaldata.atomic import atomic_path
from amodaldata.cpus import available_cpus
from amodaldata.errors import AmodalDataError

from . import MODELS, TWO_STAGE, build_model
from .data import ShardDataset, collate, instance_sample, scene_sample, to_device

#: Paper settings (``--recipe``). ``ref_batch`` is the global batch the learning rate belongs to.
RECIPES: dict[str, dict[str, Any]] = {
    # Yin (2021) Sec. 4.2: KINS, batch 4, lr 0.0025, 48k iterations, SGD; detectron2's schedule otherwise
    # (momentum 0.9, weight decay 1e-4, 1000 warm-up iterations, decay x0.1 at 2/3 and 8/9 of the run)
    "kins": {"batch_size": 4, "ref_batch": 4, "lr": 0.0025, "max_iter": 48000, "optimizer": "sgd",
             "lr_steps": [32000, 42667], "num_classes": 7, "min_size": [800], "max_size": 1333},
    # Yin (2021) Sec. 4.2: COCOA-cls, batch 2, lr 0.0005, 10k iterations, SGD
    "cocoa-cls": {"batch_size": 2, "ref_batch": 2, "lr": 0.0005, "max_iter": 10000, "optimizer": "sgd",
                  "lr_steps": [6667, 8889], "num_classes": 80, "min_size": [800], "max_size": 1333},
    # D2SA (Follmann et al. 2019): the paper's schedule is not given; detectron2's 1x schedule at batch 4
    "d2sa": {"batch_size": 4, "ref_batch": 16, "lr": 0.02, "max_iter": 22500, "optimizer": "sgd",
             "lr_steps": [15000, 20000], "num_classes": 60, "min_size": [800], "max_size": 1333},
    # Liu et al. (2019) Sec. 4: Adam 1e-4, batch 2, 100 epochs of 1000 images, 256 x 256 inputs, NMS 0.7 for
    # the Mask R-CNN baseline of Table 1 (6 instances per class, 3 classes)
    "shapes": {"batch_size": 2, "ref_batch": 2, "lr": 1e-4, "max_iter": 50000, "optimizer": "adam",
               "weight_decay": 0.0, "warmup_iters": 0, "lr_steps": [], "num_classes": 3, "size": 256,
               "min_size": [256], "max_size": 256, "two_stage_options": {"box_nms_thresh": 0.7}},
}
#: Zhang et al. (2019) Sec. 4.6, the one setting the SLN paper gives for COCOA and D2SA alike: SGD, lr 0.2,
#: momentum 0.9, weight decay 5e-4 (none on normalisation layers), lambda_R,G,I,M = 1 (the model's default),
#: class-agnostic (SLN predicts no class). Input side 1024: Sec. 4.2's stage-1 features of 256 x 256 at stride
#: 4. Not given by the paper: the batch (the lr is taken as that of ``ref_batch`` 4), the iterations, the
#: warm-up and the decay steps (the trainer's defaults; set --max-iter and --lr-steps), the iterations of each
#: stage of the staged schedule (--stage).
_SLN_PAPER = {"optimizer": "sgd", "lr": 0.2, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 4,
              "ref_batch": 4, "num_classes": 1, "size": 1024}
#: Recipes of one model family, looked up before :data:`RECIPES` (a name may mean another paper's setting).
FAMILY_RECIPES: dict[str, dict[str, dict[str, Any]]] = {"sln": {"cocoa": _SLN_PAPER, "d2sa": _SLN_PAPER}}


@dataclass
class TrainConfig:
    """Every option of a training run (the command-line flags, :func:`parse_args`)."""

    model: str
    out: str
    data: str | None = None
    generate: str | None = None
    scenes_per_epoch: int = 1000
    recipe: str | None = None
    max_iter: int = 1000
    batch_size: int = 4
    ref_batch: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    warmup_iters: int = 1000
    warmup_factor: float = 0.001
    lr_steps: list[int] = field(default_factory=list)
    gamma: float = 0.1
    grad_clip: float = 0.0
    size: int = 256
    min_size: list[int] = field(default_factory=lambda: [800])
    max_size: int = 1333
    flip: bool = True
    stage: str | None = None
    backbone: str = "resnet50"
    pretrained: str | None = None
    split: str | None = None
    images: str | None = None
    num_classes: int = 1
    max_level: int = 4
    layers: int = 2
    val: str | None = None
    val_split: str | None = None
    eval_every: int = 0
    device: str = "auto"
    amp: bool | None = None
    amp_dtype: str = "fp16"
    channels_last: bool = False
    sync_bn: bool = False
    workers: int = 0
    seed: int = 0
    log_every: int = 20
    checkpoint_every: int = 1000
    tensorboard: bool = False
    progress: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def two_stage(self) -> bool:
        return self.model in TWO_STAGE

    def model_config(self) -> dict[str, Any]:
        """Keyword options of the model: the data-shaped ones, then ``options`` (``--set``) on top."""
        if self.two_stage:
            scratch = self.pretrained is None
            base: dict[str, Any] = {"num_classes": self.num_classes, "backbone": self.backbone,
                                    "norm": "bn" if scratch else "frozen", "trainable_layers": 5 if scratch else 3}
        else:
            base = {"sln": {"max_level": self.max_level, "backbone": self.backbone},
                    "embedding": {"num_classes": self.num_classes, "layers": self.layers,
                                  "backbone": self.backbone}}[self.model]
        return {**base, **self.options}

    def data_config(self) -> dict[str, Any]:
        """What shapes a sample (stored in the checkpoint, so prediction reads its data the same way)."""
        if self.two_stage:
            return {"kind": "instances", "min_size": list(self.min_size), "max_size": self.max_size,
                    "num_classes": self.num_classes}
        return {"kind": "dense", "size": self.size, "max_level": self.max_level, "layers": self.layers,
                "num_classes": self.num_classes}

    def base_lr(self) -> float:
        return self.lr if self.lr is not None else {"sgd": 0.02, "adam": 1e-4}[self.optimizer_kind()]

    def optimizer_kind(self) -> str:
        return self.optimizer or ("adam" if self.model == "embedding" else "sgd")


#: Defaults of each model family where they differ from :class:`TrainConfig`'s: detectron2's for the
#: two-stage models (lr 0.02 at batch 16, weight decay 1e-4); SLN Sec. 4.6 (SGD, weight decay 5e-4); the
#: embedding net (Liu et al. 2019 Sec. 4: Adam 1e-4, batch 2, no weight decay).
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "two-stage": {"ref_batch": 16, "weight_decay": 1e-4},
    "sln": {"ref_batch": 4, "weight_decay": 5e-4},
    "embedding": {"ref_batch": 2, "weight_decay": 0.0, "warmup_iters": 0, "batch_size": 2},
}


def family(model: str) -> str:
    return "two-stage" if model in TWO_STAGE else model


def resolve(model: str, recipe: str | None, given: dict[str, Any]) -> TrainConfig:
    """The run's options: :class:`TrainConfig`'s defaults, the model family's, the recipe's, then ``given``."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    own = FAMILY_RECIPES.get(family(model), {})
    if recipe is not None and recipe not in RECIPES and recipe not in own:
        raise ValueError(f"unknown recipe {recipe!r} for {model}; choose one of {', '.join({**RECIPES, **own})}")
    values = {**FAMILY_DEFAULTS[family(model)], **own.get(recipe or "", RECIPES.get(recipe or "", {}))}
    preset = values.pop("two_stage_options", {})          # model options of a recipe's two-stage baseline
    options = {**(preset if model in TWO_STAGE else {}), **given.pop("options", {})}
    return TrainConfig(model=model, recipe=recipe, **{**values, **given, "options": options})


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


def _fast_cuda() -> None:
    """TensorFloat-32 for the float32 matmuls and convolutions left outside autocast (Ampere and newer)."""
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True


def make_optimizer(model: nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """SGD (momentum; weight decay except on normalisation layers and biases, SLN Sec. 4.6) or Adam."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay or 0.0}, {"params": no_decay, "weight_decay": 0.0}]
    kind = cfg.optimizer_kind()
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr)
    raise ValueError(f"unknown optimizer {kind!r} (sgd or adam)")


@dataclass(frozen=True)
class WarmupStepSchedule:
    """The learning-rate factor at an iteration: linear warm-up from ``warmup_factor``, then x ``gamma`` at
    each step (detectron2's ``WarmupMultiStepLR``)."""

    warmup_iters: int
    warmup_factor: float
    steps: tuple[int, ...]
    gamma: float

    def __call__(self, iteration: int) -> float:
        factor = self.gamma ** sum(iteration >= s for s in self.steps)
        if iteration < self.warmup_iters:
            alpha = iteration / self.warmup_iters
            factor *= self.warmup_factor * (1 - alpha) + alpha
        return factor


def resume_optimizer(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load a checkpoint's per-parameter state (momenta, Adam moments) into ``optimizer`` and keep the
    hyper-parameters it was built with (learning rate, weight decay, momentum), so that a resumed run does
    what its command and ``config.json`` say; the schedule's base is this learning rate."""
    built = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, hyper in zip(optimizer.param_groups, built):
        group.update(hyper)
        group["initial_lr"] = hyper["lr"]


def autocast_settings(cfg: TrainConfig, device: torch.device) -> tuple[bool, torch.dtype]:
    """Whether to autocast and to which dtype: on by default on CUDA only; float16 needs CUDA."""
    enabled = cfg.amp if cfg.amp is not None else device.type == "cuda"
    if cfg.amp_dtype not in ("fp16", "bf16"):
        raise ValueError(f"unknown --amp-dtype {cfg.amp_dtype!r} (fp16 or bf16)")
    dtype = torch.float16 if cfg.amp_dtype == "fp16" and device.type == "cuda" else torch.bfloat16
    return enabled, dtype


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically (:func:`amodaldata.atomic.atomic_path`)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by :func:`train` (tensors and plain values only)."""
    path = Path(path)
    if not path.is_file():
        raise AmodalDataError(f"checkpoint not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def make_sampler(data: dict[str, Any], *, train: bool, images: str | None = None,
                 with_targets: bool = True) -> Callable:
    """The function turning a scene (and the loader's random generator) into a sample for a data config."""
    folder = Path(images) if images is not None else None
    if data["kind"] == "instances":
        return partial(_instance, min_size=tuple(data["min_size"]), max_size=data["max_size"],
                       num_classes=data["num_classes"], images=folder, flip=train and data.get("flip", True),
                       with_targets=with_targets)
    return partial(_dense, size=(data["size"], data["size"]), max_level=data["max_level"], layers=data["layers"],
                   num_classes=data["num_classes"], images=folder, with_targets=with_targets)


def _instance(scene, rng, **kw):
    return instance_sample(scene, rng=rng, **kw)


def _dense(scene, rng, **kw):
    return scene_sample(scene, **kw)


class _Console:
    """Rank 0's progress bar (tqdm: it/s, ETA, losses, learning rate), log file and optional TensorBoard."""

    def __init__(self, cfg: TrainConfig, out: Path, start: int, enabled: bool) -> None:
        self.enabled, self.log = enabled, out / "log.jsonl"
        self.bar = None
        self.writer = None
        if not enabled:
            return
        from tqdm.auto import tqdm
        self.bar = tqdm(total=cfg.max_iter, initial=start, unit="it", dynamic_ncols=True, disable=not cfg.progress,
                        desc=f"train {cfg.model}")
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise AmodalDataError("--tensorboard needs the tensorboard package: pip install 'amodaldata[tensorboard]'")
            self.writer = SummaryWriter(str(out / "tensorboard"))

    def say(self, text: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(text)

    def record(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.log.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("iteration", "epoch"):
                    self.writer.add_scalar(key, value, record["iteration"])

    def step(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def losses(self, values: dict[str, float], lr: float) -> None:
        if self.bar is not None:
            short = {k.removeprefix("loss_"): f"{v:.3f}" for k, v in values.items()}
            self.bar.set_postfix(short | {"lr": f"{lr:.2e}"}, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _all_mean(values: torch.Tensor, rt: Runtime) -> torch.Tensor:
    if rt.distributed:
        values = values.to(rt.device if rt.device.type == "cuda" else "cpu")
        dist.all_reduce(values)
        values = values / rt.world_size
    return values


def _any_rank(flag: bool, rt: Runtime) -> bool:
    """True when ``flag`` is True on any rank (every rank learns it)."""
    if not rt.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=rt.device if rt.device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def validate(model: nn.Module, cfg: TrainConfig, rt: Runtime) -> dict[str, float]:
    """AP / AR of the model on ``cfg.val``: every rank predicts its share, rank 0 scores (others get {})."""
    from .predict import evaluate_model
    return evaluate_model(model, cfg.val, cfg.data_config(), split=cfg.val_split, images=cfg.images,
                          device=rt.device, batch_size=cfg.batch_size, rank=rt.rank, world_size=rt.world_size)


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) a training run; return the checkpoint path."""
    if cfg.model not in MODELS:
        raise ValueError(f"unknown model {cfg.model!r}; choose one of {', '.join(MODELS)}")
    if (cfg.data is None) == (cfg.generate is None):
        raise ValueError("give either --data (shards) or --generate (scenes generated while training)")
    rt = setup(cfg.device)
    out = Path(cfg.out)
    ckpt_path = out / "checkpoint.pt"
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, cfg.model_config())
    if cfg.stage:
        if cfg.model != "sln":
            raise ValueError(f"--stage is SLN's staged schedule (Zhang et al. 2019 Sec. 4.6), not {cfg.model}'s")
        model.set_stage(cfg.stage)
    if rt.device.type == "cuda":
        _fast_cuda()
    if cfg.sync_bn and rt.distributed:       # BatchNorm statistics over the global batch (from-scratch runs)
        if rt.device.type != "cuda":
            raise ValueError("--sync-bn needs CUDA: torch's SyncBatchNorm runs on GPUs only")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.to(rt.device)
    global_batch = cfg.batch_size * rt.world_size
    ref_batch = cfg.ref_batch or global_batch
    lr = cfg.base_lr() * global_batch / ref_batch
    optimizer = make_optimizer(model, cfg, lr)
    schedule = WarmupStepSchedule(cfg.warmup_iters, cfg.warmup_factor, tuple(cfg.lr_steps), cfg.gamma)
    amp, amp_dtype = autocast_settings(cfg, rt.device)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=amp and amp_dtype == torch.float16)
    start, epoch = 0, 0
    notes = []
    if ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        if (state["model"] != cfg.model or state["config"] != cfg.model_config() or state["data"] != cfg.data_config()
                or state.get("stage") != cfg.stage):
            raise ValueError(f"{ckpt_path} holds a different run ({state['model']}, stage {state.get('stage')}, "
                             f"{state['config']}, "
                             f"{state['data']}); use another --out")
        model.load_state_dict(state["state_dict"])
        resume_optimizer(optimizer, state["optimizer"])
        if state.get("scaler") and scaler.is_enabled():          # a run resumed with fp16 AMP switched on/off
            scaler.load_state_dict(state["scaler"])
        start, epoch = state["iteration"], state["epoch"]
        notes.append(f"resumed from {ckpt_path} at iteration {start}; learning rate, schedule and weight decay "
                     f"as this command gives them")
    elif cfg.pretrained is not None:
        from .weights import load_pretrained
        notes.append(load_pretrained(model, cfg.pretrained, cfg.backbone).summary())
    # the factor of iteration `start` applies to the first step (a resumed run follows this command's schedule)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule, last_epoch=start - 1)
    net: nn.Module = (DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda"
                                              else None) if rt.distributed else model)
    sampler = make_sampler({**cfg.data_config(), "flip": cfg.flip}, train=True, images=cfg.images)
    if cfg.generate:
        from .generated import GeneratedDataset
        dataset: ShardDataset | GeneratedDataset = GeneratedDataset(
            cfg.generate, scenes_per_epoch=cfg.scenes_per_epoch, seed=cfg.seed, rank=rt.rank,
            world_size=rt.world_size, sampler=sampler)
    else:
        dataset = ShardDataset(cfg.data, split=cfg.split, shuffle=True, seed=cfg.seed, rank=rt.rank,
                               world_size=rt.world_size, sampler=sampler)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.workers, collate_fn=collate,
                        pin_memory=rt.device.type == "cuda", persistent_workers=cfg.workers > 0)
    if rt.main:
        with atomic_path(out / "config.json") as tmp:
            tmp.write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    console = _Console(cfg, out, start, rt.main)
    console.say(f"{cfg.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
                f"{len(dataset) * rt.world_size} training scenes, {rt.world_size} rank(s) on {rt.device}, "
                f"AMP {'off' if not amp else str(amp_dtype).removeprefix('torch.')}")
    console.say(f"lr {lr:.4g} = {cfg.base_lr():g} x global batch {global_batch} / reference batch {ref_batch}"
                f" (linear scaling), {cfg.optimizer_kind()}, warm-up {cfg.warmup_iters}, steps {cfg.lr_steps}")
    for note in notes:
        console.say(note)

    def checkpoint(iteration: int) -> None:
        if rt.main:
            save_checkpoint(ckpt_path, {
                "model": cfg.model, "config": cfg.model_config(), "data": cfg.data_config(),
                "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(), "iteration": iteration,
                "epoch": epoch, "stage": cfg.stage,
            })

    iteration = start
    running: dict[str, torch.Tensor] = {}
    since, tic = 0, time.perf_counter()
    try:
        while iteration < cfg.max_iter:
            dataset.set_epoch(epoch)
            net.train()
            batches = 0
            for batch in loader:
                batches += 1
                batch = to_device(batch, rt.device)
                if cfg.channels_last and torch.is_tensor(batch["images"]):
                    batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
                with torch.autocast(rt.device.type, dtype=amp_dtype, enabled=amp):
                    losses = net(batch)
                loss = torch.stack([v.float() for v in losses.values()]).sum()
                if _any_rank(not bool(torch.isfinite(loss)), rt):
                    raise FloatingPointError(
                        f"non-finite loss at iteration {iteration} on rank {rt.rank} or another: "
                        f"{ {k: round(float(v.detach()), 4) for k, v in losses.items()} }; lower --lr or --amp off")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                iteration += 1
                since += 1
                for k, v in {"loss": loss, **losses}.items():
                    running[k] = running.get(k, 0) + v.detach().float()
                console.step()
                if iteration % cfg.log_every == 0 or iteration == cfg.max_iter:
                    keys = list(running)
                    means = _all_mean(torch.stack([running[k] for k in keys]) / since, rt).tolist()
                    values = dict(zip(keys, means))
                    elapsed = time.perf_counter() - tic
                    current = optimizer.param_groups[0]["lr"]
                    console.losses(values, current)
                    record = {"iteration": iteration, "epoch": epoch, **values, "lr": current,
                              "it_per_s": round(since / elapsed, 3),
                              "images_per_s": round(since * global_batch / elapsed, 2)}
                    if rt.device.type == "cuda":
                        record["gpu_peak_gb"] = round(torch.cuda.max_memory_allocated(rt.device) / 2 ** 30, 3)
                    console.record(record)
                    running, since, tic = {}, 0, time.perf_counter()
                if cfg.val and cfg.eval_every and iteration % cfg.eval_every == 0 and iteration < cfg.max_iter:
                    _validate_and_report(model, cfg, rt, console, iteration, epoch)
                    net.train()
                if iteration % cfg.checkpoint_every == 0:
                    checkpoint(iteration)
                if iteration >= cfg.max_iter:
                    break
            if batches == 0:
                raise AmodalDataError(f"{cfg.data or cfg.generate}: no batch of {cfg.batch_size} scene(s) for this "
                                      "rank")
            epoch += 1
        checkpoint(iteration)
        if cfg.val and start < cfg.max_iter:
            _validate_and_report(model, cfg, rt, console, iteration, epoch)
        if rt.distributed:
            dist.barrier()
    finally:
        console.close()
        if rt.distributed:
            dist.destroy_process_group()
    return ckpt_path


def _validate_and_report(model: nn.Module, cfg: TrainConfig, rt: Runtime, console: _Console, iteration: int,
                         epoch: int) -> None:
    scores = validate(model, cfg, rt)
    if rt.main:
        console.say(f"[{iteration}] validation on {cfg.val}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        console.record({"iteration": iteration, "epoch": epoch, "validation": scores,
                        **{f"val_{k}": v for k, v in scores.items()}})


def _spawned(rank: int, world_size: int, port: int, fn: Callable, args: tuple) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    fn(*args)


def spawn(fn: Callable, args: tuple, nproc: int) -> None:
    """Run ``fn(*args)`` in ``nproc`` local processes set up as ``torchrun`` would (one per GPU, or gloo on CPU)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_spawned, args=(nproc, port, fn, args), nprocs=nproc, join=True)


def launch(cfg: TrainConfig, nproc: int = 1) -> Path:
    """Train in ``nproc`` local processes without ``torchrun``; 1 = this one."""
    if nproc <= 1:
        return train(cfg)
    spawn(train, (cfg,), nproc)
    return Path(cfg.out) / "checkpoint.pt"


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


#: Help of each flag; the default shown is :class:`TrainConfig`'s (recipes and model families override it).
_HELP: dict[str, str] = {
    "recipe": "paper settings: " + ", ".join(RECIPES) + "; sln: " + ", ".join(FAMILY_RECIPES["sln"]),
    "generate": "train on scenes generated in the loader workers instead of --data: the generator and its "
                "options of `amodaldata gen` (e.g. 'shapes --per-class 6'; 'shapes --help' lists them)",
    "scenes_per_epoch": "with --generate: fresh scenes per epoch (Liu et al. 2019: 1000)",
    "max_iter": "training iterations", "batch_size": "images per rank and step",
    "ref_batch": "global batch the learning rate is given for (lr is scaled by global batch / this)",
    "lr": "learning rate at the reference batch (default: 0.02 with sgd, 1e-4 with adam)",
    "optimizer": "sgd or adam (default: adam for embedding, sgd otherwise)", "momentum": "SGD momentum",
    "weight_decay": "weight decay (none on norm layers and biases; family default: 1e-4 two-stage, 5e-4 sln, "
                    "0 embedding)",
    "warmup_iters": "linear warm-up iterations", "warmup_factor": "learning-rate factor at iteration 0",
    "lr_steps": "iterations where the learning rate is multiplied by --gamma", "gamma": "step decay factor",
    "grad_clip": "max gradient norm (0 = off)", "size": "input side of the dense models (sln, embedding)",
    "min_size": "shorter side(s) of the two-stage models' inputs (several: multi-scale training)",
    "max_size": "longest side of the two-stage models' inputs", "flip": "random horizontal flips (two-stage)",
    "backbone": "ResNet depth: resnet18, resnet34, resnet50, resnet101 (two-stage: with FPN; embedding: of "
                "DeepLabv3; sln: its encoder)",
    "stage": "sln: the stage of Zhang et al. (2019) Sec. 4.6 to train: glm, rpn, ilm (earlier modules frozen, "
             "later ones left out) or joint (default); chain them with --pretrained PREVIOUS/checkpoint.pt",
    "pretrained": "'torchvision' (named weights) or a state-dict file (torchvision or detectron2 layout)",
    "split": "only the training shards of this split", "images": "folder of images for rows without image bytes",
    "num_classes": "1 = class-agnostic (the COCOA protocol)", "max_level": "layering maps: levels above merge",
    "layers": "K of the embedding net's K-layer masks", "val": "shards to score every --eval-every iterations",
    "val_split": "split of the --val shards", "eval_every": "iterations between validations (0: at the end only)",
    "device": "auto, cpu or cuda", "amp": "mixed precision (default: on with CUDA)", "amp_dtype": "fp16 needs CUDA",
    "channels_last": "channels-last memory format for convolutions (faster on tensor cores)",
    "sync_bn": "synchronise BatchNorm statistics across ranks (training from scratch under DDP)",
    "workers": "DataLoader worker processes per rank", "seed": "random seed", "log_every": "steps between log records",
    "checkpoint_every": "iterations between checkpoints", "tensorboard": "also write TensorBoard events",
    "progress": "show the progress bar",
}


def build_parser() -> argparse.ArgumentParser:
    """The flags of :class:`TrainConfig`, with its defaults shown; a flag not given leaves the default to the
    model family and the recipe (:func:`resolve`)."""
    p = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.split("\n\n")[0],
                                epilog="recipes: " + "; ".join(f"{k}: {v}" for k, v in RECIPES.items())
                                + "; sln: " + "; ".join(f"{k}: {v}" for k, v in FAMILY_RECIPES["sln"].items()),
                                argument_default=argparse.SUPPRESS)
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--data", help="shard file or folder (or --generate)")
    p.add_argument("--out", required=True, help="run folder (checkpoint.pt, log.jsonl, config.json)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("model", "data", "out", "options"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        flag = "--" + f.name.replace("_", "-")
        text = f"{_HELP[f.name]} (default: {default})"
        if f.type in ("bool", "bool | None"):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, help=text)
        elif f.name in ("lr_steps", "min_size"):
            p.add_argument(flag, type=int, nargs="*", help=text)
        else:
            kind = {"int": int, "float": float, "int | None": int, "float | None": float}.get(f.type, str)
            p.add_argument(flag, type=kind, help=text, **({"choices": sorted({*RECIPES, *FAMILY_RECIPES["sln"]})}
                                                       if f.name == "recipe" else {}))
    p.add_argument("--nproc", type=int, default=1, help="start this many local DDP processes (instead of torchrun)")
    p.add_argument("--set", dest="options", type=_option, action="append", metavar="KEY=VALUE",
                   help="model option (JSON value), e.g. --set box_nms_thresh=0.7; an unknown key lists the valid ones")
    return p


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, int]:
    """The run's resolved options and the number of local processes (``--nproc``)."""
    given = vars(build_parser().parse_args(argv))
    nproc = given.pop("nproc", 1)
    given["options"] = dict(given.get("options", []))
    model, recipe = given.pop("model"), given.pop("recipe", None)
    return resolve(model, recipe, given), nproc


def main(argv: list[str] | None = None) -> None:
    cfg, nproc = parse_args(argv)
    try:
        ckpt = launch(cfg, nproc)
    except (AmodalDataError, ValueError, FloatingPointError) as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        sys.exit("interrupted: rerun the same command to resume from the last checkpoint")
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {ckpt}")


if __name__ == "__main__":
    main()
