"""The paper's Table 2 in miniature: MobileNetV2-0.35x top-1 per pooling method and s1, with planned peak memory.

    .venv/bin/python benchmarks/pooling_trend.py --quick --methods strided,avg,lip,nlp --seeds 2 --workers 1 --json trend.json
    .venv/bin/python benchmarks/pooling_trend.py                         # full mode: for a GPU (see below)
    .venv/bin/python benchmarks/pooling_trend.py --data synthetic|stl10:/path/to/stl10_binary [--quick]

Trains strided, average, LIP, GaussianPool, RNNPool and nlp pooling, each at s1 in {1, 2, 4}, plus nlp
with 2x channel pruning of the first stage, `--seeds` seeds each, on the detail task (docs/training.md:
the benchmark task with headroom; `--data synthetic` is the older, saturated one) or STL10, with
`nlpool.train.train` exactly as `nlpool train` does, on `--device` (auto: the GPU when present).
Every run is one process with one intra-op thread; `--workers` runs go side by side (on a GPU they
share it). Prints mean ± std top-1 (%) on the validation split per cell, and beside it each
configuration's planned peak activation memory (int8, the memory planner's best arena plan of the
final, physically pruned network, attention scores included). `--json` keeps every run's result;
run again with the same settings and more --seeds or --methods and only the missing runs train.

The input is 128x128 in both modes: the smallest size at which s1 = 4 still leaves every later stage
a map at least as large as its stride, so all three columns see the same images.

Modes (per run):
    --quick  detail:1000 (250 validation images), 6 epochs, batch 32, lr 0.005 cosine: the scale a shared
             2-core CPU allows (measured: about 4 minutes per method and seed under load); too few passes to
             learn the task's fine half, so it shows the pipeline and the colour half, not the trend.
    full     detail:8000 (2000 validation images), 20 epochs, batch 128, lr 0.02 cosine: the recipe that
             trained the synthetic task on an H200 in about a minute per run; hours per run on a CPU.
Every setting can be overridden (--train-size, --epochs, --batch-size, --lr, --seeds, --input-size).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

METHODS = ("strided", "avg", "lip", "gaussian", "rnnpool", "nlp", "nlp+prune2x")
S1_VALUES = (1, 2, 4)
QUICK = {"train_size": 1000, "epochs": 6, "batch_size": 32, "lr": 0.005}
FULL = {"train_size": 8000, "epochs": 20, "batch_size": 128, "lr": 0.02}


@dataclass(frozen=True)
class Run:
    method: str
    s1: int
    seed: int


@dataclass(frozen=True)
class Plan:
    data: str
    input_size: int
    epochs: int
    batch_size: int
    lr: float
    device: str = "auto"


def model_config(method: str, s1: int, input_size: int, num_classes: int = 10):
    from nlpool.models import ModelConfig

    return ModelConfig(pool=method.split("+")[0], s1=s1, input_size=input_size, num_classes=num_classes).validated()


def loader_workers(device: str, runs_at_once: int) -> int | None:
    """DataLoader workers per run: on a GPU, the machine's cores shared by the runs side by side (each
    run's own process takes one), at most 4; None (the trainer's default) on the CPU.

    Measured on a 16-core H200 machine (docs/training.md): 14 runs side by side with 4 loader workers
    each finished no run in 470 s, while 4 runs with 3 workers each trained at 2,500-3,200 images/s.
    """
    from nlpool.device import resolve_device

    if resolve_device(device).type != "cuda":
        return None
    return max(1, min(4, (os.cpu_count() or 1) // runs_at_once - 1))


def train_one(run: Run, plan: Plan, workdir: str, workers: int | None = None) -> dict:
    """One training run in a worker process (`workers`: its DataLoader workers); returns its final
    validation accuracy and the final config."""
    import torch

    from nlpool.train import Runtime, TrainSettings, train

    torch.set_num_threads(1)
    cfg = model_config(run.method, run.s1, plan.input_size)
    prune = {"prune": 2.0, "prune_stages": (1,)} if run.method.endswith("+prune2x") else {}
    settings = TrainSettings(
        data=plan.data, epochs=plan.epochs, batch_size=plan.batch_size, lr=plan.lr, seed=run.seed, schedule="cosine", **prune
    )
    out = Path(workdir) / f"{run.method}_s1{run.s1}_seed{run.seed}.pt"
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        payload = train(cfg, settings, out, runtime=Runtime(plan.device, workers))
    return {
        **asdict(run),
        "val_acc": payload["history"][-1]["val_acc"],
        "train_acc": payload["history"][-1]["train_acc"],
        "seconds": time.perf_counter() - start,
        "images_per_s": statistics.median(h["images_per_s"] for h in payload["history"]),
        "device": payload["history"][-1]["device"],
        "config": payload["config"],
    }


def planned_peak(config: dict) -> int:
    """Best-plan arena bytes of the network a final checkpoint config describes (weights do not matter)."""
    from memory_planner import plan_model
    from nlpool.models import ModelConfig, build_model

    cfg = ModelConfig.from_dict(config)
    return plan_model(build_model(cfg).eval(), cfg).peak_bytes


def peaks_of(results: list[dict]) -> dict[tuple[str, int], int]:
    """Planned peak per (method, s1), from the final config of its first run (all seeds share it)."""
    peaks: dict[tuple[str, int], int] = {}
    for result in results:
        key = (result["method"], result["s1"])
        if key not in peaks:
            peaks[key] = planned_peak(result["config"])
    return peaks


def format_table(results: list[dict], peaks: dict[tuple[str, int], int], title: str) -> str:
    lines = [title, f"{'method':<14}" + "".join(f"{f's1={s1}':<32}" for s1 in S1_VALUES)]
    lines.append("-" * len(lines[-1]))
    for method in METHODS:
        cells = []
        for s1 in S1_VALUES:
            accs = [100 * r["val_acc"] for r in results if r["method"] == method and r["s1"] == s1]
            if not accs:
                cells.append(f"{'-':<32}")
                continue
            std = statistics.stdev(accs) if len(accs) > 1 else 0.0
            peak = peaks.get((method, s1))
            memory = f"{peak / 1024:.1f} KiB" if peak is not None else "n/a"
            cells.append(f"{f'{statistics.mean(accs):5.1f} ± {std:4.1f} (n={len(accs)})  {memory}':<32}")
        lines.append(f"{method:<14}" + "".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the scale a shared 2-core CPU allows (see above)")
    parser.add_argument("--data", default="detail", help="detail (default: the fine-detail task), synthetic, or stl10:PATH")
    parser.add_argument("--train-size", type=int, help="detail / synthetic training images (validation: a quarter)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--methods", default=",".join(METHODS), help=f"subset of {','.join(METHODS)}")
    parser.add_argument("--s1", default=",".join(map(str, S1_VALUES)), help="subset of 1,2,4")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (one CPU thread each; they share the GPU)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: the CUDA GPU when present")
    parser.add_argument("--json", type=Path,
                        help="write every run's result here as runs finish; when it exists (same settings), only the missing runs train")
    parser.add_argument("--report", type=Path, help="only print the table of a --json file (e.g. of an interrupted run)")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        print(format_table(saved["results"], peaks_of(saved["results"]), saved["title"]))
        return

    base = QUICK if args.quick else FULL
    train_size = args.train_size or base["train_size"]
    data = f"{args.data}:{train_size}" if args.data in ("detail", "synthetic") else args.data
    plan = Plan(data, args.input_size, args.epochs or base["epochs"], args.batch_size or base["batch_size"], args.lr or base["lr"],
                args.device)
    methods = [m for m in args.methods.split(",") if m]
    s1_values = [int(s) for s in args.s1.split(",") if s]
    unknown = sorted(set(methods) - set(METHODS)) + [s for s in s1_values if s not in S1_VALUES]
    if unknown:
        parser.error(f"unknown methods or s1 values: {unknown}")
    runs = [Run(m, s1, seed) for seed in range(args.seeds) for s1 in s1_values for m in methods]
    for run in {(r.method, r.s1) for r in runs}:
        model_config(*run, args.input_size)  # fail before training on an impossible configuration

    title = (
        f"MobileNetV2-0.35x on {plan.data}, {plan.input_size}x{plan.input_size}, {plan.epochs} epochs, batch {plan.batch_size},"
        f" lr {plan.lr} cosine, seeds 0..{args.seeds - 1}: top-1 % mean ± std, and planned peak activation memory (int8, best plan)"
    )
    print(title, flush=True)
    start = time.perf_counter()
    results = []
    if args.json and args.json.is_file():  # continue an interrupted or smaller table: same settings, more seeds or methods
        saved = json.loads(args.json.read_text())
        if saved["plan"] != asdict(plan):
            parser.error(f"{args.json} holds runs of other settings ({saved['plan']}): pass another --json")
        results = saved["results"]  # all of them stay in the file and the table
        done = {(r["method"], r["s1"], r["seed"]) for r in results}
        runs = [r for r in runs if (r.method, r.s1, r.seed) not in done]
        print(f"{len(results)} runs read from {args.json}, {len(runs)} left to train", flush=True)
    with tempfile.TemporaryDirectory() as workdir, ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        workers = loader_workers(plan.device, args.workers)
        futures = {pool.submit(train_one, run, plan, workdir, workers): run for run in runs}
        for future in tqdm(as_completed(futures), total=len(futures), desc="runs", unit="run"):
            result = future.result()
            results.append(result)
            tqdm.write(f"{result['method']:<12} s1={result['s1']} seed={result['seed']}: top-1 {100 * result['val_acc']:.1f} %"
                       f" ({result['seconds']:.0f} s on {result['device']}, {result['images_per_s']:.0f} images/s)")
            if args.json:
                args.json.write_text(json.dumps({"title": title, "plan": asdict(plan), "results": results}, indent=1))
    print()
    print(format_table(results, peaks_of(results), title))
    devices = ", ".join(sorted({r["device"] for r in results}))
    print(f"wall time {time.perf_counter() - start:.0f} s, {len(runs)} runs trained now on {devices}, {args.workers} workers")


if __name__ == "__main__":
    main()
