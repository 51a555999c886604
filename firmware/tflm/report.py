"""`report.json`'s `tflm` key: the TFLM host build's outputs against nlpool's AOT firmware on the host.

Both runtimes call the same weighted-pooling C function, so a difference can only come from the
builtin kernels or the interpreter. The host build uses XMOS's TFLM fork, with nlpool's own kernels
for the ops the fork lacks or gets wrong (`host_shims`, listed in the entry), so the expected result
is bit-exactness and `host_verified` means exactly that.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from firmware.io_header import ProjectIO
from firmware.tflm.host import HostRun, run_host
from firmware.tflm.project import TflmProject, generate_tflm_project
from memory_planner import MemoryPlan


def max_abs_diff(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> int:
    """Largest difference in quantised steps over every output element."""
    if len(outputs) != len(reference):
        raise ValueError(f"{len(outputs)} outputs vs {len(reference)} reference outputs")
    worst = 0
    for got, want in zip(outputs, reference, strict=True):
        got = np.asarray(got).astype(np.int64)
        want = np.asarray(want).astype(np.int64).reshape(got.shape)
        worst = max(worst, int(np.abs(got - want).max(initial=0)))
    return worst


def tflm_report(project: TflmProject, run: HostRun, reference: Sequence[np.ndarray],
                reference_name: str = "aot_host") -> dict[str, object]:
    """The `tflm` entry of report.json for one host run compared with `reference`."""
    diff = max_abs_diff(run.outputs, reference)
    return {
        "host_verified": diff == 0,
        "max_abs_diff_vs_aot": diff,
        "reference": reference_name,
        "inferences": int(run.outputs[0].shape[0]),
        "ops": project.ops,
        "host_shims": project.host_shims,
        "target": project.target,
        "arena_bytes": project.arena_bytes,
        "predicted_arena_bytes": project.predicted_arena_bytes,
        "host_arena_used_bytes": run.arena_used_bytes,
        "project": project.path.name,
        "verified_with": ("x86-64 build against XMOS's TFLM fork (xmos-ai-tools); "
                          "not built against upstream TFLM for Cortex-M"),
    }


def generate_and_verify(fused_tflite: str | Path, out_dir: str | Path, target: str, inputs: Sequence[np.ndarray],
                        reference: Sequence[np.ndarray], arena_bytes: int | None = None,
                        sram_budget: int | None = None, tail_bytes: int | None = None,
                        plan: MemoryPlan | None = None, io: ProjectIO | None = None) -> tuple[TflmProject, dict[str, object]]:
    """Writes the project, builds and runs it on the host, and returns it with its report entry.

    `inputs` / `reference` are one array per model input / output with a leading inference axis
    (the AOT host run's outputs on the same inputs). The host build's files are removed afterwards
    so the project folder holds sources only. `plan` is as for `generate_tflm_project`.
    """
    project = generate_tflm_project(fused_tflite, out_dir, target, arena_bytes, sram_budget, tail_bytes, plan, io)
    try:
        run = run_host(project.path, inputs)
    finally:
        shutil.rmtree(project.path / "build", ignore_errors=True)
    return project, tflm_report(project, run, reference)
