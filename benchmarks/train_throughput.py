"""Training and inference images/s of the default model with self-attentive (nlp) vs average pooling.

The two models run interleaved, round after round; each round gives one nlp / avg ratio from two
measurements taken seconds apart, and the median over rounds is reported (with the spread), so load
from other processes on a shared machine hits both alike and the ratio stays meaningful even when the
absolute numbers do not.

    .venv/bin/python benchmarks/train_throughput.py [--rounds 5] [--batch-size 32] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from nlpool.data import synthetic_batch
from nlpool.models import build_model, preset_config


def train_rate(model: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * len(images) / (time.perf_counter() - start)


@torch.no_grad()
def eval_rate(model: torch.nn.Module, images: torch.Tensor, steps: int) -> float:
    model.eval()
    start = time.perf_counter()
    for _ in range(steps):
        model(images)
    return steps * len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=3, help="batches per measurement")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    base = preset_config("default")
    images, labels = synthetic_batch(args.batch_size, base.input_size, base.num_classes, split="train")
    runs = {}
    for pool in ("nlp", "avg"):
        torch.manual_seed(0)
        model = build_model(base.replace(pool=pool))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
        train_rate(model, optimizer, images, labels, 1)  # warm-up: allocator, oneDNN kernels
        runs[pool] = {"model": model, "optimizer": optimizer, "train": [], "eval": []}
    for _ in range(args.rounds):
        for run in runs.values():
            run["train"].append(train_rate(run["model"], run["optimizer"], images, labels, args.steps))
            run["eval"].append(eval_rate(run["model"], images, args.steps))

    print(f"default model ({base.arch} width {base.width}, s1={base.s1}, {base.input_size}x{base.input_size}), batch {args.batch_size},"
          f" {args.threads} thread(s), median of {args.rounds} rounds x {args.steps} batches")
    for pool, run in runs.items():
        params = sum(p.numel() for p in run["model"].parameters())
        print(f"  pool={pool:<4} params {params:>7}  train {statistics.median(run['train']):7.1f} images/s"
              f"  inference {statistics.median(run['eval']):7.1f} images/s")
    for phase in ("train", "eval"):
        ratios = sorted(nlp / avg for nlp, avg in zip(runs["nlp"][phase], runs["avg"][phase], strict=True))
        print(f"  {phase:<5} throughput ratio nlp / avg = {statistics.median(ratios):.2f}"
              f" (median of per-round ratios; range {ratios[0]:.2f}-{ratios[-1]:.2f})")


if __name__ == "__main__":
    main()
