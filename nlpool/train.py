"""The training loop: SGD with momentum, the authors' step schedule, a checkpoint every epoch.

Read top to bottom, it is the whole story (in the spirit of nanoGPT's train.py):
  settings -> (optional) torchrun process group -> data (_train_loader) -> model and optimiser
  (_model_and_optimizer) -> resume (_resume) -> epochs (_train_epoch, evaluate, _checkpoint_fields).

Exact resume: every random choice in an epoch (shuffling, augmentation, dropout) is drawn from
generators seeded by (seed, epoch, rank) at the start of that epoch, and the learning rate is a pure
function of the epoch. A checkpoint written after epoch k (weights, optimiser state, k) therefore
fully determines epoch k + 1, and `--resume` reproduces an uninterrupted run bit for bit. A process
killed mid-epoch loses only that epoch: the checkpoint on disk is always the last complete one,
because it is replaced atomically.

Devices (`nlpool.device`): `Runtime.device` "auto" trains on the CUDA GPU when there is one, with
bf16 autocast and channels_last; the CPU path is unchanged fp32. The runtime is *how* a run executes,
not what it computes, so it is not checked on resume: a run started on a GPU can be resumed on a CPU
and the other way round (checkpoints hold CPU tensors). Exact resume is bit-exact on the CPU; on CUDA
the data order, augmentation and learning rates are exact and the weights agree to rounding
(`Placement.make_deterministic` says why).

Several processes: launch with `torchrun --nproc-per-node N -m nlpool.cli train ...`; each process
trains on a 1/N shard of every epoch with DistributedDataParallel over NCCL on GPUs (one GPU per
process) or gloo on CPUs, --batch-size is the global batch, and rank 0 alone writes the (same format)
checkpoint.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from nlpool.core.checks import SEED_RANGE, number
from nlpool.core.errors import NlpoolError

from .checkpoint import read_checkpoint, save_checkpoint
from .data import MEAN, STD, open_datasets
from .device import Placement, one_thread_worker, resolve_device
from .models import ModelConfig, build_model
from .prune import ChannelPruner, finish_pruning

SCHEDULES = ("step", "cosine")
STEP_MILESTONES = (0.6, 0.8, 0.9)  # fractions of the run where the step schedule divides lr by 5
STEP_FACTOR = 0.2
CPU = torch.device("cpu")
# The documented ranges of the numbers a run takes (checked before anything is built, nlpool.core.checks.number).
EPOCHS_RANGE = (1, 10_000)  # 10,000 epochs of the smallest data set at full speed is weeks; more is a typo
BATCH_SIZE_RANGE = (2, 65_536)  # batch norm needs 2 samples
LR_RANGE = (1e-8, 10.0)  # SGD with momentum diverges to NaN weights far below 10 on every model here
WORKERS_RANGE = (0, 256)


@dataclass(frozen=True)
class TrainSettings:
    """Everything besides the model that decides a run; stored in the checkpoint, checked on resume."""

    data: str = "synthetic"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 4e-5
    seed: int = 0
    schedule: str = "step"
    prune: float = 1.0  # keep 1 / prune of the hidden channels of `prune_stages` (nlpool.prune); 1 = no pruning
    prune_stages: tuple[int, ...] = (1,)

    def validated(self) -> TrainSettings:
        """Self, or NlpoolError naming the first flag whose value is NaN, infinite or outside its range."""
        number("--epochs", self.epochs, *EPOCHS_RANGE)
        number("--batch-size", self.batch_size, *BATCH_SIZE_RANGE)
        number("--lr", self.lr, *LR_RANGE)
        number("--seed", self.seed, *SEED_RANGE)
        if self.schedule not in SCHEDULES:
            raise NlpoolError(f"unknown schedule {self.schedule!r}: use --schedule {'|'.join(SCHEDULES)}")
        if self.prune < 1:
            raise NlpoolError(f"--prune must be >= 1 (e.g. 2x keeps half the channels), got {self.prune}")
        return self


@dataclass(frozen=True)
class Runtime:
    """How a run executes (not checked on resume): the --device, and DataLoader worker processes.

    `workers` None: none on the CPU (rendering or decoding in the training process is cheaper than
    competing with it for the cores), 4 on CUDA (the GPU would otherwise wait for images). With real
    images (augmented), the worker count decides which random stream each image's augmentation draws
    from: resume with the same --workers to stay exact.
    """

    device: str = "auto"
    workers: int | None = None

    def loader_workers(self, placement: Placement) -> int:
        if self.workers is not None:
            return number("--workers", self.workers, *WORKERS_RANGE)
        return 4 if placement.is_cuda else 0


def lr_at(settings: TrainSettings, epoch: int) -> float:
    """Learning rate of 0-based `epoch`: step (lr / 5 at 60, 80 and 90 % of the run) or cosine to 0."""
    if settings.schedule == "cosine":
        return settings.lr * 0.5 * (1 + math.cos(math.pi * epoch / settings.epochs))
    # ceil: a drop happens once that fraction of the run has passed (int() put all three at epoch 0 for 1 epoch);
    # the epsilon keeps 0.6 * 100 = 60.000000000000007 at epoch 60
    drops = sum(epoch >= math.ceil(fraction * settings.epochs - 1e-9) for fraction in STEP_MILESTONES)
    return settings.lr * STEP_FACTOR**drops


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when run directly)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = CPU

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Distributed:
    """This process's device; under torchrun (it sets WORLD_SIZE, RANK, LOCAL_RANK) also join the process
    group: NCCL when the processes train on GPUs (GPU LOCAL_RANK each), gloo on CPUs."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    chosen = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")) if world_size > 1 else 0)
    if world_size == 1:
        return Distributed(device=chosen)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), chosen)


def _all_reduce(values: list[float], ddp: Distributed) -> list[float]:
    if ddp.world_size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=ddp.device)  # NCCL reduces GPU tensors only
    dist.all_reduce(tensor)
    return tensor.tolist()


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, batch_size: int, ddp: Distributed = Distributed()) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy) over `dataset`, each process scoring its own shard."""
    shard = Subset(dataset, range(ddp.rank, len(dataset), ddp.world_size))
    place = Placement(ddp.device)
    model.eval()
    loss_sum = correct = count = 0.0
    for images, labels in DataLoader(shard, batch_size=batch_size, pin_memory=place.is_cuda):
        images, labels = place.images(images), place.labels(labels)
        with place.autocast():
            logits = model(images).float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
        count += len(labels)
    loss_sum, correct, count = _all_reduce([loss_sum, correct, count], ddp)
    return loss_sum / count, correct / count


def _check_resumable(payload: dict[str, Any], cfg: ModelConfig, settings: TrainSettings, out: Path) -> None:
    stored_cfg = ModelConfig.from_dict(payload["config"])
    if stored_cfg != cfg:
        stored_values = stored_cfg.to_dict()
        diff = [name for name, value in cfg.to_dict().items() if stored_values[name] != value]
        raise NlpoolError(f"--resume: {out} holds a different model ({', '.join(diff)} differ): pass the same model flags or another --out")
    stored = payload.get("train")
    if not isinstance(stored, dict):
        raise NlpoolError(f"--resume: {out} holds no training state (shipped or stripped weights): start a new run with another --out")
    diff = [f"{name}={stored.get(name)!r} vs {value!r}" for name, value in asdict(settings).items() if stored.get(name) != value]
    if diff:
        raise NlpoolError(f"--resume: {out} was trained with other settings ({'; '.join(diff)}): rerun the original command with --resume")


@dataclass(frozen=True)
class EpochTotals:
    """One epoch's training sums over every process, and this process's wall time for it."""

    loss_sum: float
    correct: float
    seen: float
    seconds: float

    @property
    def loss(self) -> float:
        return self.loss_sum / self.seen

    @property
    def accuracy(self) -> float:
        return self.correct / self.seen

    @property
    def images_per_s(self) -> float:
        return self.seen / self.seconds

    def record(self, epoch: int, lr: float, val_loss: float, val_acc: float, device: str) -> dict[str, float | str]:
        """The epoch's line of the checkpoint's history."""
        return {"epoch": epoch + 1, "lr": lr, "train_loss": self.loss, "train_acc": self.accuracy,
                "val_loss": val_loss, "val_acc": val_acc, "images_per_s": self.images_per_s, "device": device}


def train(
    cfg: ModelConfig,
    settings: TrainSettings,
    out: str | Path,
    resume: bool = False,
    init_weights: dict[str, torch.Tensor] | None = None,
    runtime: Runtime = Runtime(),
) -> dict[str, Any]:
    """Train `cfg` as `settings` say, writing `out` after every epoch; returns the final checkpoint dict.

    `resume` continues from `out` when it exists (and starts afresh when it does not, so a restart
    script can always pass it). `init_weights` start the model from a state dict instead of random.
    The final checkpoint drops the optimiser state: it is only needed to continue an unfinished run.
    """
    cfg, settings, out = cfg.validated(), settings.validated(), Path(out)
    ddp = init_distributed(runtime.device)
    place = Placement(ddp.device)
    workers = runtime.loader_workers(place)
    if settings.batch_size % ddp.world_size:
        raise NlpoolError(f"--batch-size {settings.batch_size} is not divisible by {ddp.world_size} processes: pick a multiple")
    determinism = place.make_deterministic()

    train_set, val_set = open_datasets(settings.data, cfg.input_size, cfg.num_classes, settings.seed)
    sampler, loader = _train_loader(train_set, settings, ddp, place, workers)
    model, optimizer, pruner = _model_and_optimizer(cfg, settings, init_weights, place, len(loader))
    history: list[dict[str, float | str]] = []
    start_epoch = 0
    if resume and out.is_file():
        payload = read_checkpoint(out)
        start_epoch, history = _resume(payload, cfg, settings, out, model, optimizer, pruner)
        if start_epoch >= settings.epochs:
            if ddp.is_main:
                tqdm.write(f"{out} already holds all {settings.epochs} epochs: nothing to resume")
            return payload
    net = DistributedDataParallel(model, device_ids=[ddp.device] if place.is_cuda else None) if ddp.world_size > 1 else model
    if ddp.is_main:
        layout = ", bf16 autocast, channels_last" if place.is_cuda else ""
        tqdm.write(f"training on {ddp.device}{layout}, {torch.get_num_threads()} CPU thread(s), {workers} loader worker(s);"
                   f" resume: {determinism}")

    payload: dict[str, Any] = {}
    for epoch in range(start_epoch, settings.epochs):
        lr = lr_at(settings, epoch)
        totals = _train_epoch(net, loader, sampler, optimizer, pruner, settings, epoch, lr, place, ddp)
        val_loss, val_acc = evaluate(model, val_set, loader.batch_size, ddp)
        history.append(totals.record(epoch, lr, val_loss, val_acc, ddp.device.type))
        finished = epoch + 1 == settings.epochs
        payload = _checkpoint_fields(settings, epoch, history, train_set, None if finished else optimizer,
                                     None if finished else pruner)
        if finished and pruner is not None:  # the smaller network, checked against the masked one on validation images
            model.to("cpu", memory_format=torch.contiguous_format)  # the smaller network is built on the CPU
            model, cfg = finish_pruning(pruner, cfg, next(iter(DataLoader(val_set, batch_size=min(16, len(val_set)))))[0])
        if ddp.is_main:
            save_checkpoint(out, model, cfg, **payload)
            tqdm.write(
                f"epoch {epoch + 1}/{settings.epochs}: train loss {totals.loss:.4f} acc {totals.accuracy:.4f}"
                f" | val loss {val_loss:.4f} acc {val_acc:.4f} | {totals.images_per_s:.0f} images/s | saved {out}"
            )
    if ddp.world_size > 1:
        dist.barrier()
    return {"config": cfg.to_dict(), "model": {name: value.cpu() for name, value in model.state_dict().items()}, **payload}


def _train_loader(train_set: Dataset, settings: TrainSettings, ddp: Distributed, place: Placement,
                  workers: int) -> tuple[DistributedSampler, DataLoader]:
    """This process's shard of every epoch, in batches of its share of --batch-size (the last partial batch dropped)."""
    if len(train_set) < settings.batch_size:
        raise NlpoolError(f"{settings.data} has {len(train_set)} training images, fewer than --batch-size {settings.batch_size}")
    sampler = DistributedSampler(train_set, ddp.world_size, ddp.rank, shuffle=True, seed=settings.seed, drop_last=True)
    loader = DataLoader(
        train_set, batch_size=settings.batch_size // ddp.world_size, sampler=sampler, drop_last=True,
        num_workers=workers, pin_memory=place.is_cuda, worker_init_fn=one_thread_worker if workers else None,
    )  # workers restart every epoch, seeded from the epoch's generator (_train_epoch): resume stays exact
    return sampler, loader


def _model_and_optimizer(cfg: ModelConfig, settings: TrainSettings, init_weights: dict[str, torch.Tensor] | None,
                         place: Placement, steps_per_epoch: int) -> tuple[nn.Module, torch.optim.SGD, ChannelPruner | None]:
    """The model (seeded, or from `init_weights`) on the device, its SGD optimiser, and the channel
    pruner when --prune asks for one (masks from the F-norm of the initial weights, regrown during training)."""
    torch.manual_seed(settings.seed)
    model = build_model(cfg)
    if init_weights is not None:
        model.load_state_dict(init_weights)
    place.model(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    pruner = None
    if settings.prune > 1:
        pruner = ChannelPruner.for_training(model, settings.prune, settings.prune_stages, settings.epochs, steps_per_epoch)
    return model, optimizer, pruner


def _resume(payload: dict[str, Any], cfg: ModelConfig, settings: TrainSettings, out: Path, model: nn.Module,
            optimizer: torch.optim.SGD, pruner: ChannelPruner | None) -> tuple[int, list[dict[str, float | str]]]:
    """(epochs done, history) of the checkpoint `payload`, after checking it is this run's; an unfinished run's
    weights, optimiser and pruning state are loaded into the fresh ones (a finished run has none to load)."""
    finished_pruned = pruner is not None and int(payload.get("epoch", 0)) >= settings.epochs
    _check_resumable(payload, pruner.pruned_config(cfg) if finished_pruned else cfg, settings, out)
    done = int(payload["epoch"])
    if done < settings.epochs:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        if pruner is not None:
            pruner.load_state_dict(payload["pruning"])
    return done, list(payload["history"])


def _train_epoch(net: nn.Module, loader: DataLoader, sampler: DistributedSampler, optimizer: torch.optim.SGD,
                 pruner: ChannelPruner | None, settings: TrainSettings, epoch: int, lr: float, place: Placement,
                 ddp: Distributed) -> EpochTotals:
    """One pass over this process's shard at learning rate `lr`, every random draw seeded by (seed, epoch, rank)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    sampler.set_epoch(epoch)
    torch.manual_seed(settings.seed * 100_003 + epoch * 1009 + ddp.rank)  # augmentation, dropout
    net.train()
    loss_sum = correct = seen = 0.0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{settings.epochs}", unit="batch", disable=not ddp.is_main, dynamic_ncols=True)
    for images, labels in bar:
        images, labels = place.images(images), place.labels(labels)
        with place.autocast():
            logits = net(images).float()
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if pruner is not None:
            pruner.step(optimizer)
        loss_sum += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
        rate = seen * ddp.world_size / (time.perf_counter() - start)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", img_s=f"{rate:.0f}", lr=f"{lr:.2g}")
    seconds = time.perf_counter() - start
    loss_sum, correct, seen = _all_reduce([loss_sum, correct, seen], ddp)
    return EpochTotals(loss_sum, correct, seen, seconds)


def _checkpoint_fields(settings: TrainSettings, epoch: int, history: list[dict[str, float | str]], train_set: Dataset,
                       optimizer: torch.optim.SGD | None, pruner: ChannelPruner | None) -> dict[str, Any]:
    """What the checkpoint after `epoch` holds beside the model; the optimiser and pruning state only while
    the run can still be resumed (None after the last epoch)."""
    return {
        "epoch": epoch + 1,
        "train": asdict(settings),
        "history": history,
        "input_mean": list(MEAN),
        "input_std": list(STD),
        # index -> name, so an export can label the firmware's outputs (image folders and STL10 have names)
        **({"classes": list(train_set.classes)} if hasattr(train_set, "classes") else {}),
        **({"optimizer": optimizer.state_dict()} if optimizer is not None else {}),
        **({"pruning": pruner.state_dict()} if pruner is not None else {}),
    }
