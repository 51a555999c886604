"""Training and inference images/s of the default model with self-attentive (nlp) vs average pooling, CPU vs GPU.

Each device runs the models the way `nlpool train` does there (`nlpool.device.Placement`): fp32 on
the CPU; bf16 autocast and channels_last on CUDA. The two models run interleaved, round after round;
each round gives one nlp / avg ratio from two measurements taken seconds apart, and the median over
rounds is reported (with the spread), so load from other processes on a shared machine hits both
alike and the ratio stays meaningful even when the absolute numbers do not.

    .venv/bin/python benchmarks/train_throughput.py [--devices cpu,cuda] [--rounds 9] [--batch-size 32] [--threads N]

--devices defaults to the CPU plus the GPU when PyTorch sees one; --batch-size applies to both
(`--gpu-batch-size` sets the GPU's, 128 by default: a GPU is only busy with large batches).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from nlpool.data import synthetic_batch
from nlpool.device import Placement, configure_threads, resolve_device
from nlpool.models import build_model, preset_config


def _sync(place: Placement) -> None:
    if place.is_cuda:
        torch.cuda.synchronize(place.device)


def train_rate(model: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
               steps: int, place: Placement) -> float:
    model.train()
    _sync(place)
    start = time.perf_counter()
    for _ in range(steps):
        with place.autocast():
            logits = model(images).float()
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(place)
    return steps * len(images) / (time.perf_counter() - start)


@torch.no_grad()
def eval_rate(model: torch.nn.Module, images: torch.Tensor, steps: int, place: Placement) -> float:
    model.eval()
    _sync(place)
    start = time.perf_counter()
    for _ in range(steps):
        with place.autocast():
            model(images)
    _sync(place)
    return steps * len(images) / (time.perf_counter() - start)


def measure(place: Placement, batch_size: int, rounds: int, steps: int) -> None:
    base = preset_config("default")
    images, labels = synthetic_batch(batch_size, base.input_size, base.num_classes, split="train")
    images, labels = place.images(images), place.labels(labels)
    runs = {}
    for pool in ("nlp", "avg"):
        torch.manual_seed(0)
        model = place.model(build_model(base.replace(pool=pool)))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
        train_rate(model, optimizer, images, labels, 2, place)  # warm-up: allocator, oneDNN / cuDNN kernels
        runs[pool] = {"model": model, "optimizer": optimizer, "train": [], "eval": []}
    for _ in range(rounds):
        for run in runs.values():
            run["train"].append(train_rate(run["model"], run["optimizer"], images, labels, steps, place))
            run["eval"].append(eval_rate(run["model"], images, steps, place))

    load = ", load average {:.1f} {:.1f} {:.1f} on {} cores".format(*os.getloadavg(), os.cpu_count())  # how busy the machine was
    where = torch.cuda.get_device_name(place.device) if place.is_cuda else f"CPU, {torch.get_num_threads()} thread(s), fp32{load}"
    layout = ", bf16 autocast, channels_last" if place.is_cuda else ""
    print(f"{where}{layout}: default model ({base.arch} width {base.width}, s1={base.s1}, {base.input_size}x{base.input_size}),"
          f" batch {batch_size}, median of {rounds} rounds x {steps} batches")
    for pool, run in runs.items():
        params = sum(p.numel() for p in run["model"].parameters())
        print(f"  pool={pool:<4} params {params:>7}  train {statistics.median(run['train']):8.1f} images/s"
              f"  inference {statistics.median(run['eval']):8.1f} images/s")
    for phase in ("train", "eval"):
        ratios = sorted(nlp / avg for nlp, avg in zip(runs["nlp"][phase], runs["avg"][phase], strict=True))
        print(f"  {phase:<5} throughput ratio nlp / avg = {statistics.median(ratios):.2f}"
              f" (median of per-round ratios; range {ratios[0]:.2f}-{ratios[-1]:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default=None, help="comma-separated cpu,cuda (default: cpu, plus cuda when present)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=3, help="batches per measurement")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--gpu-batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: nlpool's, see docs/training.md)")
    args = parser.parse_args()
    configure_threads(args.threads)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for name in devices:
        place = Placement(resolve_device(name))
        measure(place, args.gpu_batch_size if place.is_cuda else args.batch_size, args.rounds, args.steps)


if __name__ == "__main__":
    main()
