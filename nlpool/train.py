"""The training loop: SGD with momentum, the authors' step schedule, a checkpoint every epoch.

Read top to bottom, it is the whole story (in the spirit of nanoGPT's train.py):
  settings -> (optional) torchrun process group -> data -> model -> optimiser -> resume -> epochs.

Exact resume: every random choice in an epoch (shuffling, augmentation, dropout) is drawn from
generators seeded by (seed, epoch, rank) at the start of that epoch, and the learning rate is a pure
function of the epoch. A checkpoint written after epoch k (weights, optimiser state, k) therefore
fully determines epoch k + 1, and `--resume` reproduces an uninterrupted run bit for bit. A process
killed mid-epoch loses only that epoch: the checkpoint on disk is always the last complete one,
because it is replaced atomically.

Several processes: launch with `torchrun --nproc-per-node N -m nlpool.cli train ...`; each process
trains on a 1/N shard of every epoch with DistributedDataParallel over gloo (CPU), --batch-size is the
global batch, and rank 0 alone writes the (same format) checkpoint.
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

from nlpool.core.errors import NlpoolError

from .checkpoint import read_checkpoint, save_checkpoint
from .data import MEAN, STD, open_datasets
from .models import ModelConfig, build_model
from .prune import ChannelPruner, finish_pruning

SCHEDULES = ("step", "cosine")
STEP_MILESTONES = (0.6, 0.8, 0.9)  # fractions of the run where the step schedule divides lr by 5
STEP_FACTOR = 0.2


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
        if self.epochs < 1:
            raise NlpoolError(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 2:
            raise NlpoolError(f"--batch-size must be >= 2 (batch norm needs 2 samples), got {self.batch_size}")
        if not self.lr > 0:
            raise NlpoolError(f"--lr must be positive, got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise NlpoolError(f"unknown schedule {self.schedule!r}: use --schedule {'|'.join(SCHEDULES)}")
        if self.prune < 1:
            raise NlpoolError(f"--prune must be >= 1 (e.g. 2x keeps half the channels), got {self.prune}")
        return self


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

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Distributed:
    """Join the gloo process group when started by torchrun (it sets WORLD_SIZE and RANK)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return Distributed(dist.get_rank(), dist.get_world_size())


def _all_reduce(values: list[float], ddp: Distributed) -> list[float]:
    if ddp.world_size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, batch_size: int, ddp: Distributed = Distributed()) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy) over `dataset`, each process scoring its own shard."""
    shard = Subset(dataset, range(ddp.rank, len(dataset), ddp.world_size))
    model.eval()
    loss_sum = correct = count = 0.0
    for images, labels in DataLoader(shard, batch_size=batch_size):
        logits = model(images)
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


def train(
    cfg: ModelConfig,
    settings: TrainSettings,
    out: str | Path,
    resume: bool = False,
    init_weights: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Train `cfg` as `settings` say, writing `out` after every epoch; returns the final checkpoint dict.

    `resume` continues from `out` when it exists (and starts afresh when it does not, so a restart
    script can always pass it). `init_weights` start the model from a state dict instead of random.
    The final checkpoint drops the optimiser state: it is only needed to continue an unfinished run.
    """
    cfg, settings, out = cfg.validated(), settings.validated(), Path(out)
    ddp = init_distributed()
    if settings.batch_size % ddp.world_size:
        raise NlpoolError(f"--batch-size {settings.batch_size} is not divisible by {ddp.world_size} processes: pick a multiple")
    torch.use_deterministic_algorithms(True)

    train_set, val_set = open_datasets(settings.data, cfg.input_size, cfg.num_classes, settings.seed)
    local_batch = settings.batch_size // ddp.world_size
    if len(train_set) < settings.batch_size:
        raise NlpoolError(f"{settings.data} has {len(train_set)} training images, fewer than --batch-size {settings.batch_size}")
    sampler = DistributedSampler(train_set, ddp.world_size, ddp.rank, shuffle=True, seed=settings.seed, drop_last=True)
    loader = DataLoader(train_set, batch_size=local_batch, sampler=sampler, drop_last=True)

    torch.manual_seed(settings.seed)
    model = build_model(cfg)
    if init_weights is not None:
        model.load_state_dict(init_weights)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    pruner = None
    if settings.prune > 1:  # masks from the F-norm of the initial (or fine-tuned) weights, regrown during training
        pruner = ChannelPruner.for_training(model, settings.prune, settings.prune_stages, settings.epochs, len(loader))
    history: list[dict[str, float]] = []
    start_epoch = 0
    if resume and out.is_file():
        payload = read_checkpoint(out)
        finished_pruned = pruner is not None and int(payload.get("epoch", 0)) >= settings.epochs
        _check_resumable(payload, pruner.pruned_config(cfg) if finished_pruned else cfg, settings, out)
        start_epoch, history = int(payload["epoch"]), list(payload["history"])
        if start_epoch >= settings.epochs:
            if ddp.is_main:
                tqdm.write(f"{out} already holds all {settings.epochs} epochs: nothing to resume")
            return payload
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        if pruner is not None:
            pruner.load_state_dict(payload["pruning"])
    net = DistributedDataParallel(model) if ddp.world_size > 1 else model

    payload: dict[str, Any] = {}
    for epoch in range(start_epoch, settings.epochs):
        lr = lr_at(settings, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        sampler.set_epoch(epoch)
        torch.manual_seed(settings.seed * 100_003 + epoch * 1009 + ddp.rank)  # augmentation, dropout
        net.train()
        loss_sum = correct = seen = 0.0
        start = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{settings.epochs}", unit="batch", disable=not ddp.is_main, dynamic_ncols=True)
        for images, labels in bar:
            logits = net(images)
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
        elapsed = time.perf_counter() - start
        loss_sum, correct, seen = _all_reduce([loss_sum, correct, seen], ddp)
        val_loss, val_acc = evaluate(model, val_set, local_batch, ddp)
        history.append(
            {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": loss_sum / seen,
                "train_acc": correct / seen,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "images_per_s": seen / elapsed,
            }
        )
        finished = epoch + 1 == settings.epochs
        payload = {
            "epoch": epoch + 1,
            "train": asdict(settings),
            "history": history,
            "input_mean": list(MEAN),
            "input_std": list(STD),
            # index -> name, so an export can label the firmware's outputs (image folders and STL10 have names)
            **({"classes": list(train_set.classes)} if hasattr(train_set, "classes") else {}),
            **({} if finished else {"optimizer": optimizer.state_dict()}),
            **({"pruning": pruner.state_dict()} if pruner is not None and not finished else {}),
        }
        if finished and pruner is not None:  # the smaller network, checked against the masked one on validation images
            model, cfg = finish_pruning(pruner, cfg, next(iter(DataLoader(val_set, batch_size=min(16, len(val_set)))))[0])
        if ddp.is_main:
            save_checkpoint(out, model, cfg, **payload)
            tqdm.write(
                f"epoch {epoch + 1}/{settings.epochs}: train loss {loss_sum / seen:.4f} acc {correct / seen:.4f}"
                f" | val loss {val_loss:.4f} acc {val_acc:.4f} | {seen / elapsed:.0f} images/s | saved {out}"
            )
    if ddp.world_size > 1:
        dist.barrier()
    return {"config": cfg.to_dict(), "model": model.state_dict(), **payload}
