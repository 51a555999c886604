"""`nlpool train`: train any model on synthetic, STL10 or image-folder data, resumably, on 1..N processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from nlpool.core.checks import SEED_RANGE, number, output_path, range_text
from nlpool.core.errors import NlpoolError

from ..checkpoint import load_model
from ..data import DATA_SPECS
from ..device import configure_threads
from ..prune import parse_ratio, parse_stages
from ..train import BATCH_SIZE_RANGE, EPOCHS_RANGE, LR_RANGE, SCHEDULES, WORKERS_RANGE, Runtime, TrainSettings, train
from .device_options import device_options
from .model_options import MODEL_FLAGS, config_from_flags, model_options


@click.command("train")
@model_options
@click.option("--data", required=True, help=f"Training data: {DATA_SPECS}.")
@click.option("--epochs", type=int, required=True, help=f"Number of epochs ({range_text(EPOCHS_RANGE)}).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Checkpoint to write after every epoch.")
@click.option("--batch-size", type=int, default=TrainSettings.batch_size, show_default=True,
              help=f"Global batch, split over processes ({range_text(BATCH_SIZE_RANGE)}).")
@click.option("--lr", type=float, default=TrainSettings.lr, show_default=True,
              help=f"Initial learning rate, SGD with momentum 0.9 ({range_text(LR_RANGE)}).")
@click.option("--seed", type=int, default=TrainSettings.seed, show_default=True,
              help=f"Seeds weights, shuffling, augmentation, data ({range_text(SEED_RANGE)}).")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=TrainSettings.schedule, show_default=True,
              help="step: lr / 5 at 60, 80, 90 % of the epochs; cosine: cosine decay to 0.")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where its last complete epoch ended.")
@click.option("--prune", "prune_ratio", default=None, help="Channel pruning, e.g. 2x: keep half the hidden channels (docs/pruning.md).")
@click.option("--prune-stages", default="1", show_default=True, help="Stages to prune (stage k ends at the k-th pooling layer): 1, 1,2 ...")
@device_options
@click.option("--workers", type=int, default=None, help="DataLoader worker processes (default: 0 on the CPU, 4 on a GPU).")
def train_command(
    data: str, epochs: int, out: Path, batch_size: int, lr: float, seed: int, schedule: str, resume: bool,
    prune_ratio: str | None, prune_stages: str, device: str, threads: int | None, workers: int | None,
    preset: str | None, checkpoint: Path | None, **flags: Any,
) -> None:
    """Train a model; --checkpoint starts from a checkpoint's weights (and model) instead of random ones.

    Several processes (DDP: NCCL on GPUs, gloo on CPUs): torchrun --nproc-per-node 2 --no-python nlpool train ...
    """
    # Every value first, before a model is built or an epoch trained: a bad --out or --lr costs nothing.
    prune = {"prune": parse_ratio(prune_ratio), "prune_stages": parse_stages(prune_stages)} if prune_ratio is not None else {}
    settings = TrainSettings(data=data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, schedule=schedule, **prune).validated()
    out = output_path("--out", out)
    if workers is not None:
        number("--workers", workers, *WORKERS_RANGE)
    configure_threads(threads)
    init_weights = None
    if checkpoint is not None:
        if preset is not None or any(flags.get(name) is not None for name in MODEL_FLAGS):
            raise NlpoolError("--checkpoint defines the model to fine-tune: drop --model and the other model flags")
        model, cfg = load_model(checkpoint)
        init_weights = model.state_dict()
    else:
        cfg = config_from_flags(preset, **flags)
    train(cfg, settings, out, resume=resume, init_weights=init_weights, runtime=Runtime(device, workers))
