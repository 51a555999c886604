"""The deployment steps every export ends with, whatever the model came from: memory plan, AOT firmware, TFLM project.

A PyTorch export (`export_flow`) reaches them with the fused int8 model it made; a `.tflite` export
(`tflite_flow`) with the user's int8 model. Both hand over a `Deployable`: the model read once, the
inputs the firmware runs and the references they are compared with, and the kernel trees resolved
(and CMSIS-NN's buffer sizes probed) once before any work. Each step returns a frozen result whose
attributes the verdicts read; `report_section` is the one place a result becomes report.json.

A step that finds a failed check (over budget, firmware not generated, not bit-exact or below the
user's bars, TFLM not matching) returns it as a `Failure` and the export goes on, so the output folder
holds the complete evidence; later steps that cannot run say which failure stopped them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from export.host_run import long_softmax_row
from export.pipeline import ExportRun, Step, StepResult
from firmware.aot import CMSIS_NN_HINT, CmsisNn, CmsisNnBuffers, cmsis_nn_buffers, find_cmsis_nn, generate_project
from firmware.common import ProjectInfo, ProjectIO
from firmware.tflm import (
    TREE_HINT,
    SramBudgetExceeded,
    TargetBuild,
    TargetRun,
    TflmProject,
    TflmTree,
    build_for_target,
    find_tree,
    generate_tflm_project,
    max_abs_diff,
    run_on_target,
    target_report,
    tflm_plan,
)
from firmware.verify import FirmwareMeasurement, format_firmware_table, measure_firmware
from memory_planner import MemoryPlan, plan_tflite, write_reports
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import TfliteModel

EXIT_CHECK_FAILED = 1  # a comparison failed (firmware or TFLM not matching), or a project could not be made
EXIT_OVER_BUDGET = 3  # same code as `nlpool plan` uses for "does not fit"
# Kept in report.json; the per-layer rows and offsets stay in memory.json (they are large).
MEMORY_REPORT_KEYS_DROPPED = ("layers", "offsets")

MEMORY = Step("memory", "plan memory against the SRAM budget (memory.md/json/png)")
FIRMWARE = Step("firmware", "AOT C firmware: generate, build, run on QEMU and host, compare")
TFLM = Step("tflm", "TFLM C++ project: generate, build against upstream TFLM, run on QEMU, compare with the AOT firmware")
DEPLOY_STEPS = (MEMORY, FIRMWARE, TFLM)


@dataclass(frozen=True)
class Failure:
    """A failed check: the exit code it gives, the error line printed, and the cause later steps name
    when they are skipped because of it."""

    exit_code: int
    message: str
    cause: str


def first_failure(*failures: Failure | None) -> Failure | None:
    return next((failure for failure in failures if failure is not None), None)


@dataclass(frozen=True)
class KernelTrees:
    """The user's CMSIS-NN and TFLM trees, found and checked before the export starts, and CMSIS-NN's
    buffer sizes for the model, probed once for the memory plan, the AOT generator and TFLM's arena."""

    cmsis_nn: CmsisNn | None
    tflm: TflmTree | None
    buffers: CmsisNnBuffers | None = None

    @classmethod
    def find(cls, cmsis_nn_dir: Path | None, tflm_dir: Path | None) -> KernelTrees:
        """Both trees from the flags or the environment; a wrong path is one NlpoolError line."""
        return cls(find_cmsis_nn(cmsis_nn_dir), find_tree(tflm_dir))

    def probed(self, model: TfliteModel) -> KernelTrees:
        """These trees with CMSIS-NN's buffer sizes for `model` (when there is a CMSIS-NN tree and the AOT
        runtime covers the model: otherwise the firmware step reports the op, and the model is planned as it is)."""
        if self.cmsis_nn is None:
            return self
        try:
            return KernelTrees(self.cmsis_nn, self.tflm, cmsis_nn_buffers(model, self.cmsis_nn))
        except NlpoolError:
            return self


@dataclass(frozen=True)
class FirmwareInputs:
    """The inputs both firmwares run, the host reference's outputs for them, and (PyTorch exports) PyTorch's
    logits and the data's labels. `reference_name` says which host reference computed `reference`."""

    inputs: np.ndarray
    reference: np.ndarray
    pytorch: np.ndarray | None
    labels: np.ndarray | None
    reference_name: str = "the fused model's reference chain"


@dataclass(frozen=True)
class Deployable:
    """What the deployment steps take: the int8 model read once (the file both firmwares run), what
    report.json calls it, and how its input is fed (`io`: the camera-frame header, None for a model
    whose input nlpool knows nothing about)."""

    model: TfliteModel
    file_name: str
    io: ProjectIO | None
    input_report: Mapping[str, Any]


@dataclass(frozen=True)
class MemoryResult(StepResult):
    """The one memory plan of the model (the AOT generator takes it) and its verdict against the budget."""

    plan: MemoryPlan
    fits: bool
    message: str
    report: Mapping[str, Any]  # the planner's own serialisation (memory.json without the per-layer rows)
    files: tuple[Path, ...]

    @property
    def failure(self) -> Failure | None:
        if self.fits:
            return None
        return Failure(EXIT_OVER_BUDGET, f"over budget: {self.message} (see memory.md)", "over the SRAM budget")

    def report_section(self) -> dict[str, Any]:
        return dict(self.report)

    def written(self) -> tuple[Path, ...]:
        return self.files

    def summary(self) -> str:
        return f"  memory: {self.message}"


def plan_memory(model: Deployable, sram_bytes: int, work_dir: Path, trees: KernelTrees) -> MemoryResult:
    """Plan the model's arena once (with CMSIS-NN's kernel buffers when the firmware will call it),
    write memory.md/json/png, and judge it against the SRAM budget."""
    plan = plan_tflite(model.model, kernel_scratch=trees.buffers.scratch() if trees.buffers is not None else None)
    data = write_reports(plan, sram_bytes, work_dir)
    report = {key: value for key, value in data.items() if key not in MEMORY_REPORT_KEYS_DROPPED}
    return MemoryResult(plan, bool(data["fits"]), str(data["message"]), report,
                        tuple(work_dir / f"memory.{suffix}" for suffix in ("md", "json", "png")))


@dataclass(frozen=True)
class FirmwareVerdict:
    """The firmware's pass or fail, and the PyTorch bars that applied (or why none did)."""

    passed: bool
    bars: Mapping[str, float] | str


@dataclass(frozen=True)
class FirmwareResult(StepResult):
    """The AOT project (`info` None when it could not be generated, `error` says why), and, when it
    ran, its measurement and verdict; `not_run` says why it did not run."""

    target: str
    project_dir: Path | None
    info: ProjectInfo | None
    kernels_note: str
    input_report: Mapping[str, Any]
    error: str | None = None
    not_run: str | None = None
    failure: Failure | None = None
    inputs: FirmwareInputs | None = None
    measurement: FirmwareMeasurement | None = None
    verdict: FirmwareVerdict | None = None
    accuracy_on_labels: float | None = None

    def report_section(self) -> dict[str, Any]:
        if self.info is None:
            return {"target": self.target, "generated": False, "error": self.error}
        if self.measurement is None or self.verdict is None:
            return {"target": self.target, "arena_bytes": self.info.arena_bytes,
                    "kernels": "cmsis-nn" if self.info.cmsis_nn_dir else "portable", "kernels_note": self.kernels_note,
                    "input": dict(self.input_report), "run": self.not_run}
        return {**self.measurement.to_json(), "passed": self.verdict.passed, "pytorch_bars": self.verdict.bars,
                "input": dict(self.input_report), "kernels_note": self.kernels_note, "accuracy_on_labels": self.accuracy_on_labels}

    def written(self) -> tuple[Path, ...]:
        return () if self.project_dir is None else (self.project_dir,)

    def summary(self) -> str | None:
        if self.measurement is None or self.verdict is None:
            return None
        return format_firmware_table(self.measurement, self.verdict.passed)


def build_firmware(model: Deployable, memory: MemoryResult, make_inputs: Callable[[], FirmwareInputs],
                   judge: Callable[[FirmwareMeasurement], FirmwareVerdict], target: str, sram_bytes: int, trees: KernelTrees,
                   work_dir: Path, not_run: str | None, clock_mhz: float | None = None) -> FirmwareResult:
    """Generate the AOT C project from the memory plan (on CMSIS-NN where it covers an op, when a tree is
    given); unless `not_run` says why not, build it and run it on QEMU and on the host on the inputs
    `make_inputs` gives (made only then: a model the runtime cannot take costs no reference run), and have
    `judge` decide. The run's estimated milliseconds assume `clock_mhz` (None: the core's typical board clock)."""
    project_dir = work_dir / "firmware_aot"
    cmsis_nn = trees.cmsis_nn
    note = f"CMSIS-NN from {cmsis_nn.root}" if cmsis_nn else f"no CMSIS-NN tree: {CMSIS_NN_HINT}"
    try:
        info = generate_project(model.model, project_dir, sram_bytes, target, plan=memory.plan, io=model.io, cmsis_nn=cmsis_nn,
                                buffers=trees.buffers)
    except NlpoolError as err:  # e.g. ops the kernels do not cover: keep the rest of the export
        return FirmwareResult(target, None, None, note, model.input_report, error=str(err),
                              failure=Failure(EXIT_CHECK_FAILED, f"no firmware: {err}", f"firmware generation failed: {err}"))
    if not_run is not None:
        return FirmwareResult(target, project_dir, info, note, model.input_report, not_run=not_run)
    inputs = make_inputs()
    try:
        measurement = measure_firmware(project_dir, target, inputs.inputs, inputs.reference, inputs.pytorch, clock_mhz=clock_mhz)
    except NlpoolError as err:  # does not link within the budget, faults, hangs: the evidence is still written
        return FirmwareResult(target, project_dir, info, note, model.input_report, not_run=f"failed: {err}", inputs=inputs,
                              failure=Failure(EXIT_CHECK_FAILED, f"firmware run failed: {err}", f"the firmware run failed: {err}"))
    verdict = judge(measurement)
    accuracy = None
    if inputs.labels is not None:  # int8 logits share one scale, so their arg-max is the dequantised one's
        predicted = measurement.board.outputs[0].reshape(len(inputs.labels), -1).argmax(axis=1)
        accuracy = float(np.mean(predicted == inputs.labels))
    failure = None if verdict.passed else Failure(EXIT_CHECK_FAILED, "firmware check failed: see the firmware table above and report.json",
                                                  "the firmware check failed")
    return FirmwareResult(target, project_dir, info, note, model.input_report, failure=failure, inputs=inputs,
                          measurement=measurement, verdict=verdict, accuracy_on_labels=accuracy)


@dataclass(frozen=True)
class TflmResult(StepResult):
    """The TFLM project (`project` None when it could not be made: `error` says why) and, when it ran on
    the target, its run compared with `compared_with` (the AOT firmware's board outputs, or the host
    reference where the AOT firmware did not run); `not_run` says why it did not run."""

    target: str
    file_name: str
    project_dir: Path | None
    project: TflmProject | None = None
    error: str | None = None
    not_run: str | None = None
    failure: Failure | None = None
    tree: TflmTree | None = None
    build: TargetBuild | None = None
    run: TargetRun | None = None
    compared_with: np.ndarray | None = None
    compared_name: str = "aot"
    pytorch: np.ndarray | None = None
    aot_instructions: int | None = None
    aot_kernels: str | None = None

    @property
    def max_abs_diff(self) -> int | None:
        """Largest output difference in int8 steps from what it was compared with (None: it did not run)."""
        if self.run is None or self.compared_with is None:
            return None
        return max_abs_diff(self.run.outputs, [self.compared_with])

    def report_section(self) -> dict[str, Any]:
        if self.project is None:
            return {"target_verified": False, "target": self.target, "error": self.error}
        if self.run is None or self.tree is None or self.build is None or self.compared_with is None:
            return {"file": self.file_name, "target_verified": False, "target": self.target, "ops": self.project.ops,
                    "predicted_arena_bytes": self.project.predicted_arena_bytes, "arena_bytes": self.project.arena_bytes,
                    "run": self.not_run}
        section: dict[str, Any] = {"file": self.file_name, **target_report(self.project, self.tree, self.build, self.run,
                                                                            self.compared_with, self.pytorch)}
        if self.compared_name != "aot":  # the AOT firmware did not run: the host reference stands in for it
            section["max_abs_diff_vs_reference"] = section.pop("max_abs_diff_vs_aot")
            section["reference"] = self.compared_name
            return section
        instructions = self.run.instructions_per_inference
        # The AOT firmware's instructions over TFLM's, both measured on the same board and inputs in this export.
        section["aot_vs_tflm_instructions"] = {"aot_kernels": self.aot_kernels, "ratio": round(
            self.aot_instructions / instructions, 3) if self.aot_instructions and instructions else None}
        return section

    def written(self) -> tuple[Path, ...]:
        return () if self.project_dir is None else (self.project_dir,)

    def summary(self) -> str | None:
        if self.run is None or self.project is None:
            return f"  TFLM on target: {self.not_run}" if self.not_run else None
        diff = self.max_abs_diff
        against = "the AOT firmware" if self.compared_name == "aot" else self.compared_name
        verdict = "bit-exact with" if diff == 0 else "DIFFERS from"
        used, predicted = self.run.arena_used_bytes, self.project.predicted_arena_bytes
        lines = (f"  TFLM ({self.run.kernels} kernels) on {self.target} under QEMU: {verdict} {against} on "
                 f"{self.run.outputs[0].shape[0]} inputs (max |diff| {diff} int8 steps); arena used "
                 f"{used:,} B, predicted {predicted:,} B; {self.run.instructions_per_inference:,} instructions per inference")
        cycles, timing = self.run.estimated_cycles, self.run.timing
        if cycles is not None and timing is not None:
            lines += (f"; estimated {cycles:,} cycles, {timing.milliseconds(cycles):.2f} ms at {timing.describe_clock()}"
                      " (timing model)")
        if self.compared_name == "aot" and self.aot_instructions and self.run.instructions_per_inference:
            ratio = round(self.aot_instructions / self.run.instructions_per_inference, 3)
            lines += f" (the AOT firmware, {self.aot_kernels} kernels, runs {ratio}x that)"
        if self.run.profile is not None:
            lines += "\n" + self.run.profile.format_table("TFLM per-op profile (MicroProfiler)",
                                                          clock_mhz=self.run.timing.clock_mhz if self.run.timing else None)
        return lines


def build_tflm(model: Deployable, firmware: FirmwareResult, inputs: FirmwareInputs | None, target: str, sram_bytes: int,
               trees: KernelTrees, work_dir: Path, not_run: str | None, clock_mhz: float | None = None) -> TflmResult:
    """Generate the TFLM project for the model (the same file the AOT firmware runs); unless `not_run` says
    why not, and given a TFLM tree, build it against that tree, run it under QEMU on `inputs` (the AOT
    firmware's, or where it did not run the export's own) and
    compare its outputs with the AOT firmware's on the same board (both runtimes follow TFLM's arithmetic),
    or, where the AOT firmware did not run, with the host reference."""
    project_dir = work_dir / "firmware_tflm"
    tree = trees.tflm
    try:
        # TFLM neither folds PADs nor works in place, and its CMSIS-NN kernels ask for this core's
        # scratch: the AOT firmware's plan is not TFLM's.
        project = generate_tflm_project(model.model, project_dir, target, sram_budget=sram_bytes, io=model.io,
                                        plan=tflm_plan(model.model, target, tree, trees.buffers))
        result = TflmResult(target, model.file_name, project_dir, project, tree=tree)
        if not_run is not None or inputs is None:
            return replace(result, not_run=not_run or "skipped (--no-run)")
        if tree is None:
            return replace(result, not_run=f"skipped: no TFLM source tree; {TREE_HINT}")
        row = long_softmax_row(model.model)
        if row:  # an attention block left unfused: TFLM's reference SOFTMAX aborts on long rows
            return replace(result, not_run=f"skipped: an unfused attention's SOFTMAX rows hold {row} tokens, "
                                            "beyond what TFLM's SOFTMAX computes (docs/rounding.md)")
        board = firmware.measurement.board if firmware.measurement is not None else None
        try:
            build = build_for_target(project_dir, target, tree)
        except SramBudgetExceeded as err:  # TFLM cannot deploy at this budget; the AOT firmware (the product) did
            aot_arena = f", the AOT firmware's is {board.arena_bytes:,} B" if board is not None else ""
            return replace(result, not_run=f"not run: {err}; TFLM's arena alone is predicted at "
                                            f"{project.predicted_arena_bytes:,} B{aot_arena}")
        run = run_on_target(project_dir, target, build.elf, inputs.inputs, tree=tree, estimate=True, clock_mhz=clock_mhz)
    except NlpoolError as err:  # a bad tree, the build failing: keep the rest of the export
        written = project_dir if (project_dir / "Makefile").is_file() else None  # the sources, to debug the build
        return TflmResult(target, model.file_name, written, error=str(err),
                          failure=Failure(EXIT_CHECK_FAILED, f"TFLM project failed: {err}", f"the TFLM project failed: {err}"))
    finally:
        shutil.rmtree(project_dir / "build", ignore_errors=True)  # the output folder keeps sources only
    if board is not None:
        compared, name = board.outputs[0], "aot"
    else:
        compared, name = inputs.reference.reshape(run.outputs[0].shape), inputs.reference_name
    result = replace(result, build=build, run=run, compared_with=compared, compared_name=name, pytorch=inputs.pytorch,
                      aot_instructions=board.instructions_per_inference if board is not None else None,
                      aot_kernels=board.kernels if board is not None else None)
    if result.max_abs_diff != 0:
        what = "the AOT firmware" if name == "aot" else name
        return replace(result, failure=Failure(EXIT_CHECK_FAILED, f"TFLM firmware output differs from {what}: see report.json's tflm key",
                                                "TFLM output differs"))
    return result


@dataclass(frozen=True)
class ExportOutcome:
    """What an export left: report.json's content, the paths written (in the output folder) and the failures."""

    report: dict[str, Any]
    written: tuple[Path, ...]
    report_path: Path | None  # None when the export failed and the passing earlier export was kept
    failures: tuple[Failure, ...]

    @property
    def exit_code(self) -> int:
        return self.failures[0].exit_code if self.failures else 0


def finish(run: ExportRun, out_dir: Path, keep_failed: bool, failures: tuple[Failure | None, ...]) -> ExportOutcome:
    """Write report.json and move the folder into place (a failed export replaces a passing one only with
    `keep_failed`), and say what the export left."""
    failed = tuple(failure for failure in failures if failure is not None)
    placed = run.finish(passed=not failed, keep_failed=keep_failed)
    if placed is None:
        kept = Failure(failed[0].exit_code, f"the passing earlier export in {out_dir} was kept and this failed one"
                       " discarded: pass --keep-failed to replace it with the failed export's evidence", "")
        return ExportOutcome(run.report, (), None, (*failed, kept))
    written, report_path = placed
    return ExportOutcome(run.report, tuple(written), report_path, failed)
