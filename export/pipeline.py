"""The export pipeline: named steps over one shared context, written atomically into the output folder.

Each step is a function `step(ctx: ExportContext) -> None` that reads what earlier steps left in the
context, writes its files into `ctx.work_dir` (recording them in `ctx.artifacts`) and its findings
under its own key of `ctx.report`. `run_pipeline` runs the steps in order with progress lines, then
writes report.json and moves the finished folder into place; a failure or an interrupt removes it, so
the output folder is either the previous complete export or the new complete one, never a mix.

Later stages (memory plan, firmware) join by appending steps: the CLI, which may import every package,
calls `run_pipeline(ctx, [*export_steps(), Step("memory", plan_step, "plan memory"), ...])`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from nlpool.core.tflite import read_model
from nlpool.data import synthetic_batch
from nlpool.models import ModelConfig

from .fidelity import fidelity_report, format_table
from .fold_bn import fold_batchnorm
from .fusion import fuse_file
from .host_run import HostModel
from .onnx_export import OPSET, check_onnx, export_onnx, onnx_session, run_onnx
from .outdir import REPORT_FILE, make_work_dir, move_into_place
from .tflite_convert import convert_int8

FIDELITY_SAMPLES = 200
DEFAULT_CALIB_SAMPLES = 64
DATA_SEED = 0
# The synthetic task of 10 classes gives the inputs; its labels only mean something to a 10-class model
# trained on it (the shipped default), which then also gets accuracies in the fidelity report.
DATA_CLASSES = 10


@dataclass
class ExportContext:
    """What every step shares. `work_dir` becomes `out_dir` when all steps succeed."""

    model: nn.Module
    cfg: ModelConfig
    weights: str
    target: str
    sram_bytes: int
    out_dir: Path
    calib_samples: int = DEFAULT_CALIB_SAMPLES
    fidelity_samples: int = FIDELITY_SAMPLES
    work_dir: Path = Path()
    scratch_dir: Path = Path()  # for side files that are not part of the output (removed at the end)
    artifacts: dict[str, Path] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # in-memory results handed between steps
    echo: Callable[[str], None] = lambda line: click.echo(line, err=True)

    def example(self) -> torch.Tensor:
        return torch.zeros(1, 3, self.cfg.input_size, self.cfg.input_size)


@dataclass(frozen=True)
class Step:
    """`name` keys the step in report.json's step_seconds; `title` is the progress line."""

    name: str
    run: Callable[[ExportContext], None]
    title: str = ""


def _nhwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).contiguous().numpy()


def step_data(ctx: ExportContext) -> None:
    """Calibration images (train split) and fidelity images (val split): disjoint by construction."""
    ctx.state["calib"], _ = synthetic_batch(ctx.calib_samples, ctx.cfg.input_size, DATA_CLASSES, DATA_SEED, "train")
    ctx.state["eval"], ctx.state["eval_labels"] = synthetic_batch(ctx.fidelity_samples, ctx.cfg.input_size, DATA_CLASSES, DATA_SEED, "val")
    ctx.report["data"] = {
        "calibration": {"samples": ctx.calib_samples, "source": f"synthetic, seed {DATA_SEED}, train split"},
        "fidelity": {"samples": ctx.fidelity_samples, "source": f"synthetic, seed {DATA_SEED}, val split"},
    }


def step_fold(ctx: ExportContext) -> None:
    """Fold BatchNorm into convolutions; every folded layer must equal BN(conv) within 1e-5 of its range."""
    folded, count, diff = fold_batchnorm(ctx.model, ctx.state["calib"][:8])
    ctx.state["folded"] = folded
    ctx.report["fold_bn"] = {"batchnorms_folded": count, "max_layer_relative_diff": diff}


def step_onnx(ctx: ExportContext) -> None:
    """ONNX (opset 17) via onnxsim; ONNX Runtime within 1e-4 of the folded PyTorch model it was exported from."""
    path = ctx.work_dir / "model.onnx"
    export_onnx(ctx.state["folded"], ctx.example(), path)
    diff = check_onnx(path, ctx.state["folded"], ctx.state["calib"][:8])
    ctx.artifacts["onnx"] = path
    ctx.report["onnx"] = {"file": path.name, "opset": OPSET, "max_abs_diff_vs_pytorch": diff}


def step_tflite(ctx: ExportContext) -> None:
    """Full-integer int8 TFLite through onnx2tf, calibrated on the calibration images."""
    path = convert_int8(ctx.artifacts["onnx"], ctx.state["calib"], ctx.scratch_dir / "onnx2tf", ctx.work_dir / "model_int8.tflite")
    ctx.artifacts["tflite_int8"] = path
    ctx.report["tflite_int8"] = {"file": path.name, "ops": dict(Counter(read_model(path).op_names()))}


def step_fuse(ctx: ExportContext) -> None:
    """Rewrite every weighted pooling into one NLPOOL_WEIGHTED_POOL custom op."""
    path = ctx.work_dir / "model_int8_fused.tflite"
    matches = fuse_file(ctx.artifacts["tflite_int8"], path)
    ctx.artifacts["tflite_int8_fused"] = path
    ctx.report["tflite_int8_fused"] = {
        "file": path.name,
        "custom_ops": len(matches),
        "ops": dict(Counter(read_model(path).op_names())),
        "pools": [
            {**m.names, "window": [m.params.filter_h, m.params.filter_w], "stride": [m.params.stride_h, m.params.stride_w]} for m in matches
        ],
    }


def step_fidelity(ctx: ExportContext) -> None:
    """ONNX, int8 and fused int8 against PyTorch on inputs never used for calibration."""
    images = ctx.state["eval"]
    with torch.no_grad():
        reference = ctx.model(images).numpy()
    nhwc = _nhwc(images)
    session = onnx_session(ctx.artifacts["onnx"])

    def host(key: str) -> Callable[[], np.ndarray]:
        model = HostModel(ctx.artifacts[key])
        return lambda: np.concatenate([model.predict(x[None]) for x in tqdm(nhwc, desc=f"  {key}", leave=False, unit="input")])

    report = fidelity_report(
        reference,
        {
            "onnx": lambda: run_onnx(session, images.numpy()),
            "tflite_int8": host("tflite_int8"),
            "tflite_int8_fused": host("tflite_int8_fused"),
        },
        labels=ctx.state["eval_labels"].numpy() if ctx.cfg.num_classes == DATA_CLASSES else None,
    )
    ctx.report["fidelity"] = {"samples": len(images), "data": ctx.report["data"]["fidelity"]["source"], **report}
    ctx.echo(format_table(report, len(images)))


def export_steps() -> list[Step]:
    """The steps of `nlpool export` this package owns, in order."""
    return [
        Step("data", step_data, "calibration and fidelity images (synthetic set)"),
        Step("fold_bn", step_fold, "fold BatchNorm into convolutions"),
        Step("onnx", step_onnx, "export ONNX (opset 17, onnxsim) and check it with ONNX Runtime"),
        Step("tflite_int8", step_tflite, "convert to int8 TFLite with onnx2tf (about a minute)"),
        Step("fuse", step_fuse, "fuse each weighted pooling into one NLPOOL_WEIGHTED_POOL op"),
        Step("fidelity", step_fidelity, f"fidelity of ONNX, int8 and fused int8 vs PyTorch ({FIDELITY_SAMPLES} inputs)"),
    ]


def run_pipeline(ctx: ExportContext, steps: list[Step]) -> dict[str, Any]:
    """Run `steps` in order, then write report.json and move the folder into place; returns the report."""
    ctx.out_dir = ctx.out_dir.expanduser().absolute()
    ctx.work_dir = make_work_dir(ctx.out_dir)
    scratch = tempfile.TemporaryDirectory(prefix="nlpool-export-")
    ctx.scratch_dir = Path(scratch.name)
    ctx.report.update(
        model={**ctx.cfg.to_dict(), "weights": ctx.weights},
        target=ctx.target,
        sram_bytes=ctx.sram_bytes,
        step_seconds={},
    )
    total = time.perf_counter()
    try:
        for number, step in enumerate(steps, start=1):
            ctx.echo(f"[{number}/{len(steps)}] {step.title or step.name} ...")
            start = time.perf_counter()
            step.run(ctx)
            seconds = time.perf_counter() - start
            ctx.report["step_seconds"][step.name] = round(seconds, 2)
            ctx.echo(f"[{number}/{len(steps)}] done in {seconds:.1f} s")
        ctx.report["total_seconds"] = round(time.perf_counter() - total, 2)
        (ctx.work_dir / REPORT_FILE).write_text(json.dumps(ctx.report, indent=2) + "\n")
        move_into_place(ctx.work_dir, ctx.out_dir)
        ctx.artifacts = {key: ctx.out_dir / path.relative_to(ctx.work_dir) for key, path in ctx.artifacts.items()}
    finally:
        shutil.rmtree(ctx.work_dir, ignore_errors=True)
        scratch.cleanup()
    return ctx.report
