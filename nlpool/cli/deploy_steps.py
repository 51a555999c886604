"""The steps `nlpool export` runs after the export package's own: memory plan, AOT firmware, TFLM project.

They live with the CLI because this is the one place allowed to import every package (export ->
memory_planner -> firmware). A step that finds a failed check (over budget, firmware not bit-exact,
TFLM not matching) records it in `ctx.state["failures"]` and lets the export finish, so the output
folder holds the complete evidence; the command then exits non-zero with the failure's message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from nlpool.core.errors import NlpoolError

from .model_options import RANDOM_WEIGHTS

# Kept in report.json; the per-layer rows and offsets stay in memory.json (they are large).
MEMORY_REPORT_KEYS_DROPPED = ("layers", "offsets")
# The TFLM host build runs a few inputs: it proves the generated project, the AOT run proves the rest.
TFLM_HOST_INPUTS = 8
EXIT_CHECK_FAILED = 1  # a comparison failed (firmware or TFLM not matching)
EXIT_OVER_BUDGET = 3  # same code as `nlpool plan` uses for "does not fit"


def _fail(ctx: Any, code: int, message: str) -> None:
    ctx.state.setdefault("failures", []).append((code, message))


def _firmware_inputs(ctx: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Held-out images quantised for the fused model, its reference int8 outputs, and PyTorch's logits."""
    from export.host_run import HostModel

    if "firmware_inputs" not in ctx.state:  # computed once, shared by the AOT and TFLM steps
        images = ctx.state["eval"][: ctx.state["firmware_inputs_count"]]
        with torch.no_grad():
            pytorch = ctx.model(images).numpy()
        host = HostModel(ctx.artifacts["tflite_int8_fused"])
        inputs = np.stack([host.quantize_input(x[None]) for x in images.permute(0, 2, 3, 1).numpy()])
        reference = np.stack([host.run_quantized(x) for x in inputs])
        ctx.state["firmware_inputs"] = (inputs, reference, pytorch)
    return ctx.state["firmware_inputs"]


def step_memory(ctx: Any) -> None:
    """Plan the fused model's arena, write memory.md/json/png, and judge it against the SRAM budget."""
    from memory_planner import plan_tflite, verdict, write_reports

    plan = plan_tflite(ctx.artifacts["tflite_int8_fused"])
    data = write_reports(plan, ctx.sram_bytes, ctx.work_dir)
    for name in ("md", "json", "png"):
        ctx.artifacts[f"memory_{name}"] = ctx.work_dir / f"memory.{name}"
    ctx.report["memory"] = {key: value for key, value in data.items() if key not in MEMORY_REPORT_KEYS_DROPPED}
    result = verdict(plan, ctx.sram_bytes)
    ctx.echo(f"  memory: {result['message']}")
    if not result["fits"]:
        _fail(ctx, EXIT_OVER_BUDGET, f"over budget: {result['message']} (see memory.md)")


def step_firmware(ctx: Any) -> None:
    """Generate the AOT C project; unless --no-run, build it and run it on QEMU and on the host."""
    from firmware.aot import generate_project
    from firmware.verify import firmware_report, format_firmware_table

    project_dir = ctx.work_dir / "firmware_aot"
    try:
        info = generate_project(ctx.artifacts["tflite_int8_fused"], project_dir, ctx.sram_bytes, ctx.target)
    except NlpoolError as err:  # e.g. ops the kernels do not cover (LIP keeps EXP): keep the rest of the export
        ctx.report["firmware"] = {"target": ctx.target, "generated": False, "error": str(err)}
        _fail(ctx, EXIT_CHECK_FAILED, f"no firmware: {err}")
        return
    ctx.artifacts["firmware_aot"] = project_dir
    if ctx.state.get("failures"):
        ctx.report["firmware"] = {"target": ctx.target, "arena_bytes": info.arena_bytes, "run": "skipped: over the SRAM budget"}
        return
    if not ctx.state["run_firmware"]:
        ctx.report["firmware"] = {"target": ctx.target, "arena_bytes": info.arena_bytes, "run": "skipped (--no-run)"}
        return
    inputs, reference, pytorch = _firmware_inputs(ctx)
    report = firmware_report(project_dir, ctx.target, inputs, reference, pytorch)
    bitexact = report["bitexact_vs_host"] and report["bitexact_vs_reference"]
    min_top1, min_cosine = ctx.state["min_top1"], ctx.state["min_cosine"]
    if ctx.weights == RANDOM_WEIGHTS:
        # Untrained logits are noise around zero: int8 cannot agree with them, and that says nothing
        # about the firmware. The bit-exactness checks still decide.
        report["pytorch_bars"] = "not enforced: random weights (pass --checkpoint or use the shipped default)"
        report["passed"] = bitexact
    else:
        report["pytorch_bars"] = {"min_top1_agreement": min_top1, "min_cosine": min_cosine}
        report["passed"] = bitexact and report["top1_agreement_vs_pytorch"] >= min_top1 and report["cosine_vs_pytorch"] >= min_cosine
    ctx.report["firmware"] = report
    ctx.echo(format_firmware_table(report))
    if not report["passed"]:
        _fail(ctx, EXIT_CHECK_FAILED, "firmware check failed: see the firmware table above and report.json")


def step_tflm(ctx: Any) -> None:
    """Generate the TFLM project; unless --no-run, build it on the host against real TFLM and compare."""
    from firmware.run import build_and_run
    from firmware.tflm import generate_and_verify, generate_tflm_project

    fused = ctx.artifacts["tflite_int8_fused"]
    project_dir = ctx.work_dir / "firmware_tflm"
    ctx.artifacts["firmware_tflm"] = project_dir
    if not ctx.state["run_firmware"] or ctx.state.get("failures"):
        project = generate_tflm_project(fused, project_dir, ctx.target, sram_budget=ctx.sram_bytes)
        ctx.report["tflm"] = {"host_verified": False, "ops": project.ops, "arena_bytes": project.arena_bytes, "run": "skipped"}
        return
    inputs = _firmware_inputs(ctx)[0][:TFLM_HOST_INPUTS]
    aot_host = build_and_run(ctx.work_dir / "firmware_aot", "host", inputs).outputs[0]
    _, entry = generate_and_verify(fused, project_dir, ctx.target, [inputs], [aot_host], sram_budget=ctx.sram_bytes)
    ctx.report["tflm"] = entry
    ctx.echo(f"  TFLM host build: {'bit-exact with' if entry['host_verified'] else 'DIFFERS from'} the AOT host build"
             f" on {len(inputs)} inputs (max |diff| {entry['max_abs_diff_vs_aot']} int8 steps)")
    if not entry["host_verified"]:
        _fail(ctx, EXIT_CHECK_FAILED, "TFLM project output differs from the AOT firmware: see report.json's tflm key")



def deploy_steps() -> list[tuple[str, Callable[[Any], None], str]]:
    """(name, function, title) of the steps appended after export's own."""
    return [
        ("memory", step_memory, "plan memory against the SRAM budget (memory.md/json/png)"),
        ("firmware", step_firmware, "AOT C firmware: generate, build, run on QEMU and host, compare"),
        ("tflm", step_tflm, "TFLM C++ project: generate, build against TFLM on the host, compare"),
    ]
