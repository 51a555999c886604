"""Helpers shared by the test modules (keep this file small: module-specific fixtures live with their tests)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

NLPOOL_SCRIPT = Path(sys.executable).with_name("nlpool")

# One intra-op thread per test process: the suite runs on 2 workers on 2 cores, and torch's default of
# one thread per core oversubscribes them. Measured on a loaded machine: a MobileNetV2-0.35x training
# step took 15.7 s wall with 2 threads and 0.43 s with 1.
torch.set_num_threads(1)

# MLPerf Tiny's reference models are third-party data read in place from ../shared (never copied here).
MLPERF_TINY_DIR = Path(os.environ.get("NLPOOL_MLPERF_TINY_DIR", Path(__file__).resolve().parents[2] / "shared/data/mlperf_tiny"))
VWW_MODEL = MLPERF_TINY_DIR / "vww_96_int8.tflite"
IC_MODEL = MLPERF_TINY_DIR / "pretrainedResnet_quant.tflite"


def mlperf_model(path: Path) -> Path:
    """`path` when the shared MLPerf Tiny models are beside the repository; else the test is skipped, except
    in CI, which always has them and must not pass by skipping."""
    if not path.is_file():
        import pytest

        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI runs with ../shared beside the repository")
        pytest.skip(f"{path} is not here (the shared MLPerf Tiny models)")
    return path


def run_cli(args: list[str], subprocess_run: bool = False) -> tuple[int, str, str]:
    """Run `nlpool <args>`; returns (exit code, stdout, stderr).

    In-process by default (fast, and an exception escaping `nlpool.cli.main` fails the test with its
    traceback). `subprocess_run=True` runs the installed console script, which is what a user sees.
    """
    if subprocess_run:
        done = subprocess.run([str(NLPOOL_SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False)
        return done.returncode, done.stdout, done.stderr
    from nlpool.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return code, out.getvalue(), err.getvalue()


@torch.no_grad()
def settle_batchnorm(model: nn.Module, input_size: int, seed: int = 0, batch: int = 4, min_var: float = 0.01) -> nn.Module:
    """Give every BatchNorm the statistics of one random batch, then switch to eval mode.

    A freshly initialised network in eval mode uses mean 0 / var 1 and its activations shrink towards
    zero layer after layer (MobileNetV2 logits come out around 1e-8), so "outputs agree within 1e-4"
    would hold for any graph. With settled statistics activations are O(1) and comparisons mean something.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one batch sets the statistics exactly
    generator = torch.Generator().manual_seed(seed)
    model.train()
    model(torch.randn(batch, 3, input_size, input_size, generator=generator))
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            # a channel that is (nearly) constant on the batch would get a gain up to 1/sqrt(eps) ~ 300 and
            # turn float rounding into visible differences; trained networks do not look like that
            module.running_var.clamp_(min=min_var)
    return model.eval()


def synthetic_export_data(input_size: int, calib_samples: int = 8, fidelity_samples: int = 8, num_classes: int = 10):
    """export.pipeline.ExportData of the synthetic set, as `nlpool export` prepares it by default."""
    from export.pipeline import prepare_data
    from nlpool.data import Normalization, export_images

    return prepare_data(export_images("synthetic", input_size, num_classes, calib_samples, fidelity_samples), Normalization())


def aot_kernel_args(target: str, kernels: str) -> dict:
    """`generate_project`'s keyword for a kernel set ("portable" or "cmsis-nn"); the test is skipped when
    the target's tools or the CMSIS-NN tree ($NLPOOL_CMSIS_NN_DIR) are not here."""
    import pytest

    from firmware.aot import find_cmsis_nn
    from firmware.run import check_tools
    from nlpool.core.errors import NlpoolError

    try:
        check_tools(target)
    except NlpoolError as exc:
        pytest.skip(str(exc))
    if kernels != "cmsis-nn":
        return {}
    cmsis_nn = find_cmsis_nn(None)
    if cmsis_nn is None:
        pytest.skip("CMSIS-NN kernels not found: set NLPOOL_CMSIS_NN_DIR to the cmsis_nn source tree")
    return {"cmsis_nn": cmsis_nn}
