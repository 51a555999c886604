"""The whole `nlpool export`: model -> ONNX -> int8 TFLite -> fused int8 TFLite -> memory plan -> firmware.

One explicit sequence of typed steps over every package: export's own steps (`export.pipeline`),
then the memory plan, the AOT firmware and the TFLM project, which need memory_planner and firmware
and so live here, above all of them. The user's choices arrive as one `ExportOptions`; each step
returns a frozen result that the next steps take as arguments, so the fused model is planned once
(`MemoryResult.plan`, handed to both generators) and the AOT host run's outputs are what the TFLM host
build is compared with.

A step that finds a failed check (over budget, firmware not generated, not bit-exact or below the
user's bars, TFLM not matching) returns it as a `Failure` and the export goes on, so the output folder
holds the complete evidence; later steps that cannot run say which failure stopped them, and
`ExportOutcome.exit_code` is the first failure's code.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.host_run import HostModel
from export.pipeline import (
    EXPORT_STEPS,
    FIDELITY_SAMPLES,
    ExportData,
    ExportRun,
    FusedResult,
    Step,
    StepResult,
    convert_to_int8,
    echo_to_stderr,
    export_to_onnx,
    fold_batchnorms,
    fuse_pools,
    measure_fidelity,
    prepare_data,
)
from firmware.aot import generate_project
from firmware.run import check_tools
from firmware.tflm import TREE_HINT, build_for_target, find_tree, generate_tflm_project, run_on_target, target_report
from firmware.verify import FirmwareMeasurement, format_firmware_table, measure_firmware
from memory_planner import MemoryPlan, plan_tflite, write_reports
from nlpool.core.errors import NlpoolError
from nlpool.core.units import format_size
from nlpool.models import ModelConfig

EXIT_CHECK_FAILED = 1  # a comparison failed (firmware or TFLM not matching), or a project could not be made
EXIT_OVER_BUDGET = 3  # same code as `nlpool plan` uses for "does not fit"
# Kept in report.json; the per-layer rows and offsets stay in memory.json (they are large).
MEMORY_REPORT_KEYS_DROPPED = ("layers", "offsets")
RANDOM_WEIGHTS_NOTE = "not enforced: random weights (pass --checkpoint or use the shipped default)"

MEMORY = Step("memory", "plan memory against the SRAM budget (memory.md/json/png)")
FIRMWARE = Step("firmware", "AOT C firmware: generate, build, run on QEMU and host, compare")
TFLM = Step("tflm", "TFLM C++ project: generate, build against upstream TFLM, run on QEMU, compare with the AOT firmware")
STEPS = (*EXPORT_STEPS, MEMORY, FIRMWARE, TFLM)


@dataclass(frozen=True)
class ExportOptions:
    """What the user chose for one export (the CLI's flags; the defaults are the CLI's)."""

    target: str
    sram_bytes: int
    out_dir: Path
    calib_samples: int = 200
    run_firmware: bool = True
    firmware_inputs: int = 100
    # Firmware vs PyTorch top-1 agreement needed to pass (trained weights only). 0.98: with TFLM's double
    # rounding (what runs on the device) the default model agrees on 98 of its 100 held-out inputs.
    min_top1: float = 0.98
    min_cosine: float = 0.99  # firmware vs PyTorch cosine needed to pass (trained weights only)
    tflm_dir: Path | None = None  # the user's TFLM source tree (else $NLPOOL_TFLM_DIR; none: the TFLM run is skipped)


@dataclass(frozen=True)
class ModelToExport:
    """The PyTorch model, its config, where its weights came from (for the report) and whether they are trained.

    Untrained logits are noise around zero: int8 cannot agree with them and that says nothing about
    the firmware, so the PyTorch-agreement bars only apply to trained weights.
    """

    model: nn.Module
    cfg: ModelConfig
    weights: str
    trained: bool


@dataclass(frozen=True)
class Failure:
    """A failed check: the exit code it gives, the error line printed, and the cause later steps name
    when they are skipped because of it."""

    exit_code: int
    message: str
    cause: str


@dataclass(frozen=True)
class MemoryResult(StepResult):
    """The one memory plan of the fused model (both generators take it) and its verdict against the budget."""

    plan: MemoryPlan
    section: dict[str, Any]
    files: tuple[Path, ...]

    @property
    def failure(self) -> Failure | None:
        if self.section["fits"]:
            return None
        return Failure(EXIT_OVER_BUDGET, f"over budget: {self.section['message']} (see memory.md)", "over the SRAM budget")

    def report_section(self) -> dict[str, Any]:
        return self.section

    def written(self) -> tuple[Path, ...]:
        return self.files

    def summary(self) -> str:
        return f"  memory: {self.section['message']}"


@dataclass(frozen=True)
class FirmwareInputs:
    """Held-out images quantised for the fused model, the reference chain's int8 outputs, and PyTorch's logits."""

    inputs: np.ndarray
    reference: np.ndarray
    pytorch: np.ndarray


@dataclass(frozen=True)
class FirmwareResult(StepResult):
    """The AOT project (None when it could not be generated), its report entry and, when it ran, both runs."""

    project_dir: Path | None
    section: dict[str, Any]
    failure: Failure | None = None
    inputs: FirmwareInputs | None = None
    measurement: FirmwareMeasurement | None = None

    def report_section(self) -> dict[str, Any]:
        return self.section

    def written(self) -> tuple[Path, ...]:
        return () if self.project_dir is None else (self.project_dir,)

    def summary(self) -> str | None:
        return None if self.measurement is None else format_firmware_table(self.section, self.section["passed"])


@dataclass(frozen=True)
class TflmResult(StepResult):
    """The TFLM project and its report entry (its run on the target against the AOT firmware's, or why it did not run)."""

    project_dir: Path | None
    section: dict[str, Any]
    failure: Failure | None = None

    def report_section(self) -> dict[str, Any]:
        return self.section

    def written(self) -> tuple[Path, ...]:
        return () if self.project_dir is None else (self.project_dir,)

    def summary(self) -> str | None:
        s = self.section
        if not s.get("target_verified"):
            return f"  TFLM on target: {s['run']}" if "run" in s else None
        verdict = "bit-exact with" if s["max_abs_diff_vs_aot"] == 0 else "DIFFERS from"
        return (f"  TFLM ({s['kernels']} kernels) on {s['target']} under QEMU: {verdict} the AOT firmware on "
                f"{s['inferences']} inputs (max |diff| {s['max_abs_diff_vs_aot']} int8 steps); arena used "
                f"{s['target_arena_used_bytes']:,} B, predicted {s['predicted_arena_bytes']:,} B; "
                f"{s['instructions_per_inference']:,} instructions per inference")


@dataclass(frozen=True)
class ExportOutcome:
    """What an export left: report.json's content, the paths written (in the output folder) and the failures."""

    report: dict[str, Any]
    written: tuple[Path, ...]
    report_path: Path
    failures: tuple[Failure, ...]

    @property
    def exit_code(self) -> int:
        return self.failures[0].exit_code if self.failures else 0


def judge_firmware(report: dict[str, Any], options: ExportOptions, trained: bool) -> tuple[bool, dict[str, float] | str]:
    """Pass or fail for the firmware's measurements, and the PyTorch bars that applied (or why none did).

    The one place the verdict is made: bit-exactness with the host build and the reference chain
    always decides; the user's --min-top1 / --min-cosine bars on agreement with PyTorch decide too
    for trained weights.
    """
    bitexact = bool(report["bitexact_vs_host"] and report["bitexact_vs_reference"])
    if not trained:
        return bitexact, RANDOM_WEIGHTS_NOTE
    bars = {"min_top1_agreement": options.min_top1, "min_cosine": options.min_cosine}
    agrees = report["top1_agreement_vs_pytorch"] >= options.min_top1 and report["cosine_vs_pytorch"] >= options.min_cosine
    return bitexact and agrees, bars


def plan_memory(fused: FusedResult, sram_bytes: int, work_dir: Path) -> MemoryResult:
    """Plan the fused model's arena once, write memory.md/json/png, and judge it against the SRAM budget."""
    plan = plan_tflite(fused.path)
    data = write_reports(plan, sram_bytes, work_dir)
    section = {key: value for key, value in data.items() if key not in MEMORY_REPORT_KEYS_DROPPED}
    return MemoryResult(plan, section, tuple(work_dir / f"memory.{suffix}" for suffix in ("md", "json", "png")))


def firmware_inputs(model: nn.Module, data: ExportData, fused: FusedResult, count: int) -> FirmwareInputs:
    """The first `count` held-out images as the firmware takes them, with both references to compare against."""
    images = data.eval_images[:count]
    with torch.no_grad():
        pytorch = model(images).numpy()
    host = HostModel(fused.path, kernels="tflm")
    inputs = np.stack([host.quantize_input(x[None]) for x in images.permute(0, 2, 3, 1).numpy()])
    reference = np.stack([host.run_quantized(x) for x in inputs])
    return FirmwareInputs(inputs, reference, pytorch)


def build_firmware(source: ModelToExport, data: ExportData, fused: FusedResult, memory: MemoryResult,
                   options: ExportOptions, work_dir: Path, blocked_by: Failure | None) -> FirmwareResult:
    """Generate the AOT C project from the memory plan; unless --no-run or an earlier failure, build it and
    run it on QEMU and on the host, and judge the comparisons."""
    project_dir = work_dir / "firmware_aot"
    try:
        info = generate_project(fused.path, project_dir, options.sram_bytes, options.target, plan=memory.plan)
    except NlpoolError as err:  # e.g. ops the kernels do not cover (LIP keeps EXP): keep the rest of the export
        return FirmwareResult(None, {"target": options.target, "generated": False, "error": str(err)},
                              Failure(EXIT_CHECK_FAILED, f"no firmware: {err}", f"firmware generation failed: {err}"))
    not_run = {"target": options.target, "arena_bytes": info.arena_bytes}
    if blocked_by is not None:
        return FirmwareResult(project_dir, {**not_run, "run": f"skipped: {blocked_by.cause}"})
    if not options.run_firmware:
        return FirmwareResult(project_dir, {**not_run, "run": "skipped (--no-run)"})
    inputs = firmware_inputs(source.model, data, fused, options.firmware_inputs)
    try:
        measurement = measure_firmware(project_dir, options.target, inputs.inputs, inputs.reference, inputs.pytorch)
    except NlpoolError as err:  # does not link within the budget, faults, hangs: the evidence is still written
        return FirmwareResult(project_dir, {**not_run, "run": f"failed: {err}"},
                              Failure(EXIT_CHECK_FAILED, f"firmware run failed: {err}", f"the firmware run failed: {err}"))
    passed, bars = judge_firmware(measurement.report, options, source.trained)
    section = {**measurement.report, "passed": passed, "pytorch_bars": bars}
    failure = None if passed else Failure(EXIT_CHECK_FAILED, "firmware check failed: see the firmware table above and report.json",
                                          "the firmware check failed")
    return FirmwareResult(project_dir, section, failure, inputs, measurement)


def build_tflm(fused: FusedResult, memory: MemoryResult, firmware: FirmwareResult, options: ExportOptions,
               work_dir: Path, blocked_by: Failure | None) -> TflmResult:
    """Generate the TFLM project from the memory plan; when the AOT firmware ran and a TFLM tree is given,
    build it against that tree, run it under QEMU on the AOT firmware's inputs and compare the outputs."""
    project_dir = work_dir / "firmware_tflm"
    try:
        project = generate_tflm_project(fused.path, project_dir, options.target, sram_budget=options.sram_bytes,
                                        plan=memory.plan)
        not_run = {"target_verified": False, "target": options.target, "ops": project.ops,
                   "predicted_arena_bytes": project.predicted_arena_bytes, "arena_bytes": project.arena_bytes}
        tree = find_tree(options.tflm_dir)
        if blocked_by is not None or firmware.measurement is None or firmware.inputs is None:
            why = f"skipped: {blocked_by.cause}" if blocked_by is not None else "skipped (--no-run)"
            return TflmResult(project_dir, {**not_run, "run": why})
        if tree is None:
            return TflmResult(project_dir, {**not_run, "run": f"skipped: no TFLM source tree; {TREE_HINT}"})
        build = build_for_target(project_dir, options.target, tree)
        run = run_on_target(project_dir, options.target, build.elf, firmware.inputs.inputs)
    except NlpoolError as err:  # e.g. EXP left in the model, a bad tree, the build failing: keep the rest of the export
        written = project_dir if (project_dir / "Makefile").is_file() else None  # the sources, to debug the build
        return TflmResult(written, {"target_verified": False, "target": options.target, "error": str(err)},
                          Failure(EXIT_CHECK_FAILED, f"TFLM project failed: {err}", f"the TFLM project failed: {err}"))
    finally:
        shutil.rmtree(project_dir / "build", ignore_errors=True)  # the output folder keeps sources only
    section = target_report(project, tree, build, run, firmware.measurement.board.outputs[0], firmware.inputs.pytorch)
    failure = None if section["max_abs_diff_vs_aot"] == 0 else Failure(
        EXIT_CHECK_FAILED, "TFLM firmware output differs from the AOT firmware: see report.json's tflm key", "TFLM output differs")
    return TflmResult(project_dir, section, failure)


def _first(*failures: Failure | None) -> Failure | None:
    return next((failure for failure in failures if failure is not None), None)


def export_model(source: ModelToExport, options: ExportOptions, echo: Callable[[str], None] = echo_to_stderr) -> ExportOutcome:
    """Run every step of `nlpool export` into `options.out_dir` (built aside, moved into place when complete).

    Raises NlpoolError for what stops an export (a missing toolchain, a model export cannot handle);
    checks that fail are returned in `ExportOutcome.failures` with the folder written.
    """
    if options.run_firmware:
        check_tools(options.target)  # before the long export: say how to install a missing toolchain or QEMU
    cfg = source.cfg
    echo(f"exporting {cfg.arch} (width {cfg.width}, pool {cfg.pool}, {cfg.input_size}px) from {source.weights}")
    echo(f"target {options.target}, SRAM budget {format_size(options.sram_bytes)}")
    header = {"model": {**cfg.to_dict(), "weights": source.weights}, "target": options.target, "sram_bytes": options.sram_bytes}
    step_data, step_fold, step_onnx, step_tflite, step_fuse, step_fidelity = EXPORT_STEPS
    with ExportRun(options.out_dir, STEPS, header, echo) as run:
        work = run.work_dir
        data = run.run(step_data, prepare_data, cfg.input_size, options.calib_samples, FIDELITY_SAMPLES)
        folded = run.run(step_fold, fold_batchnorms, source.model, data)
        onnx = run.run(step_onnx, export_to_onnx, folded, data, work)
        tflite = run.run(step_tflite, convert_to_int8, onnx, data, work, run.scratch_dir)
        fused = run.run(step_fuse, fuse_pools, tflite, work)
        run.run(step_fidelity, measure_fidelity, source.model, cfg.num_classes, data, onnx, tflite, fused)
        memory = run.run(MEMORY, plan_memory, fused, options.sram_bytes, work)
        firmware = run.run(FIRMWARE, build_firmware, source, data, fused, memory, options, work, memory.failure)
        tflm = run.run(TFLM, build_tflm, fused, memory, firmware, options, work, _first(memory.failure, firmware.failure))
        written, report_path = run.finish()
    failures = tuple(failure for failure in (memory.failure, firmware.failure, tflm.failure) if failure is not None)
    return ExportOutcome(run.report, tuple(written), report_path, failures)
