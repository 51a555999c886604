"""The whole `nlpool export`: model -> ONNX -> int8 TFLite -> fused int8 TFLite -> memory plan -> firmware.

One explicit sequence of typed steps over every package: export's own steps (`export.pipeline`),
then the memory plan, the AOT firmware and the TFLM project, which need memory_planner and firmware
and so live here, above all of them. The user's choices arrive as one `ExportOptions`; each step
returns a frozen result that the next steps take as arguments, so the fused model is planned once
(`MemoryResult.plan`, handed to the AOT generator; the TFLM project runs the same file, and its
generator plans TFLM's arena, which neither folds PADs nor works in place) and the AOT firmware's board
outputs are what the TFLM firmware, run under QEMU, is compared with.

A step that finds a failed check (over budget, firmware not generated, not bit-exact or below the
user's bars, TFLM not matching) returns it as a `Failure` and the export goes on, so the output folder
holds the complete evidence; later steps that cannot run say which failure stopped them, and
`ExportOutcome.exit_code` is the first failure's code.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.host_run import HostModel, long_softmax_row
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
    fuse_custom_ops,
    measure_fidelity,
    prepare_data,
)
from firmware.aot import CMSIS_NN_HINT, CmsisNn, cmsis_nn_scratch, find_cmsis_nn, generate_project
from firmware.boards import check_sram_budget
from firmware.common import Profile, ProjectIO, Rgb888Input
from firmware.run import check_tools
from firmware.tflm import (
    TREE_HINT,
    SramBudgetExceeded,
    build_for_target,
    find_tree,
    generate_tflm_project,
    run_on_target,
    target_report,
    tflm_plan,
)
from firmware.verify import FirmwareMeasurement, format_firmware_table, measure_firmware
from memory_planner import MemoryPlan, plan_tflite, write_reports
from nlpool.checkpoint import TrainingRecord
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import read_model
from nlpool.core.units import format_size
from nlpool.data import Normalization, export_images
from nlpool.models import ModelConfig, PixelInput

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
    """What the user chose for one export (the CLI's flags; the defaults are the CLI's).

    `calib_data`: a data spec (nlpool.data.CALIB_DATA_SPECS) to calibrate and measure on; None means
    the model's own training data when it names data that exists, else the synthetic set.
    `input_format`: `normalized` (the network's float input, quantised) or `rgb888` (camera pixels: the
    normalisation moves inside the network and the int8 input is pixel - 128).
    """

    target: str
    sram_bytes: int
    out_dir: Path
    calib_data: str | None = None
    input_format: str = "normalized"
    calib_samples: int = 200
    run_firmware: bool = True
    firmware_inputs: int = 100
    # Firmware vs PyTorch top-1 agreement needed to pass (trained weights only). 0.98: with TFLM's double
    # rounding (what runs on the device) the default model agrees on 98 of its 100 held-out inputs.
    min_top1: float = 0.98
    min_cosine: float = 0.99  # firmware vs PyTorch cosine needed to pass (trained weights only)
    keep_failed: bool = False  # let a failed export replace a passing earlier one (its evidence is otherwise dropped)
    tflm_dir: Path | None = None  # the user's TFLM source tree (else $NLPOOL_TFLM_DIR; none: the TFLM run is skipped)
    # The user's CMSIS-NN tree (else $NLPOOL_CMSIS_NN_DIR; none: the AOT firmware keeps nlpool's portable kernels).
    cmsis_nn_dir: Path | None = None


@dataclass(frozen=True)
class ModelToExport:
    """The PyTorch model and what the export needs to know about it.

    `description` is report.json's `model` section (a preset's config, or what a Python caller says);
    `training_data`, `normalization` and `class_names` come from the checkpoint's training record.
    Untrained logits are noise around zero: int8 cannot agree with them and that says nothing about
    the firmware, so the PyTorch-agreement bars only apply to `trained` weights.
    """

    model: nn.Module
    input_size: int
    num_classes: int
    description: dict[str, Any]
    weights: str
    trained: bool
    normalization: Normalization = field(default_factory=Normalization)
    class_names: tuple[str, ...] | None = None
    training_data: str | None = None

    @classmethod
    def from_config(cls, model: nn.Module, cfg: ModelConfig, weights: str, trained: bool,
                    record: TrainingRecord | None = None) -> ModelToExport:
        """A preset or checkpoint model; `record` is its checkpoint's training record when it has one."""
        extra = {} if record is None else {"normalization": record.normalization, "class_names": record.class_names,
                                            "training_data": record.data}
        return cls(model, cfg.input_size, cfg.num_classes, cfg.to_dict(), weights, trained, **extra)

    def title(self) -> str:
        """One line naming the model for the progress output."""
        d = self.description
        if "arch" in d:
            return f"{d['arch']} (width {d['width']}, pool {d['pool']}, {self.input_size}px)"
        return f"{d.get('name', type(self.model).__name__)} ({self.input_size}px, {self.num_classes} classes)"


@dataclass(frozen=True)
class Failure:
    """A failed check: the exit code it gives, the error line printed, and the cause later steps name
    when they are skipped because of it."""

    exit_code: int
    message: str
    cause: str


@dataclass(frozen=True)
class MemoryResult(StepResult):
    """The one memory plan of the fused model (the AOT generator takes it) and its verdict against the budget."""

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
    labels: np.ndarray | None


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
    profile: Profile | None = None  # MicroProfiler's per-op instructions of the run on the target

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
                f"{s['instructions_per_inference']:,} instructions per inference (the AOT firmware, "
                f"{s['aot_vs_tflm_instructions']['aot_kernels']} kernels, runs {s['aot_vs_tflm_instructions']['ratio']}x that)"
                + ("" if self.profile is None else "\n" + self.profile.format_table("TFLM per-op profile (MicroProfiler)")))


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


def plan_memory(fused: FusedResult, sram_bytes: int, work_dir: Path, cmsis_nn: CmsisNn | None) -> MemoryResult:
    """Plan the fused model's arena once (with CMSIS-NN's kernel buffers when the firmware will call it),
    write memory.md/json/png, and judge it against the SRAM budget."""
    try:
        kernel_scratch = cmsis_nn_scratch(fused.path, cmsis_nn) if cmsis_nn is not None else None
    except NlpoolError:  # ops the AOT runtime lacks: the firmware step reports them; plan the model as it is
        kernel_scratch = None
    plan = plan_tflite(fused.path, kernel_scratch=kernel_scratch)
    data = write_reports(plan, sram_bytes, work_dir)
    section = {key: value for key, value in data.items() if key not in MEMORY_REPORT_KEYS_DROPPED}
    return MemoryResult(plan, section, tuple(work_dir / f"memory.{suffix}" for suffix in ("md", "json", "png")))


def firmware_inputs(network: nn.Module, data: ExportData, fused: FusedResult, count: int) -> FirmwareInputs:
    """The first `count` held-out images as the firmware takes them, with both references to compare against."""
    images = data.eval_images[:count]
    with torch.no_grad():
        pytorch = network(images).numpy()
    host = HostModel(fused.path, kernels="tflm")
    inputs = np.stack([host.quantize_input(x[None]) for x in images.permute(0, 2, 3, 1).numpy()])
    reference = np.stack([host.run_quantized(x) for x in inputs])
    labels = None if data.eval_labels is None else data.eval_labels[:count].numpy()
    return FirmwareInputs(inputs, reference, pytorch, labels)


def build_firmware(source: ModelToExport, network: nn.Module, data: ExportData, fused: FusedResult, memory: MemoryResult,
                   io: ProjectIO, options: ExportOptions, cmsis_nn: CmsisNn | None, work_dir: Path,
                   blocked_by: Failure | None) -> FirmwareResult:
    """Generate the AOT C project from the memory plan (on CMSIS-NN where it covers an op, when a tree is
    given); unless --no-run or an earlier failure, build it and run it on QEMU and on the host, and judge
    the comparisons."""
    project_dir = work_dir / "firmware_aot"
    try:
        info = generate_project(fused.path, project_dir, options.sram_bytes, options.target, plan=memory.plan, io=io,
                                cmsis_nn=cmsis_nn)
    except NlpoolError as err:  # e.g. ops the kernels do not cover (LIP keeps EXP): keep the rest of the export
        return FirmwareResult(None, {"target": options.target, "generated": False, "error": str(err)},
                              Failure(EXIT_CHECK_FAILED, f"no firmware: {err}", f"firmware generation failed: {err}"))
    not_run = {"target": options.target, "arena_bytes": info.arena_bytes,
               "kernels": "cmsis-nn" if cmsis_nn else "portable",
               "kernels_note": f"CMSIS-NN from {cmsis_nn.root}" if cmsis_nn else f"no CMSIS-NN tree: {CMSIS_NN_HINT}",
               "input": {"format": options.input_format, "int8_is_pixel_minus_128": io.rgb888.is_pixel_minus_128,
                         "rgb888_to_input": io.rgb888.description, "header": "nlpool_io.h"}}
    if blocked_by is not None:
        return FirmwareResult(project_dir, {**not_run, "run": f"skipped: {blocked_by.cause}"})
    if not options.run_firmware:
        return FirmwareResult(project_dir, {**not_run, "run": "skipped (--no-run)"})
    inputs = firmware_inputs(network, data, fused, options.firmware_inputs)
    try:
        measurement = measure_firmware(project_dir, options.target, inputs.inputs, inputs.reference, inputs.pytorch)
    except NlpoolError as err:  # does not link within the budget, faults, hangs: the evidence is still written
        return FirmwareResult(project_dir, {**not_run, "run": f"failed: {err}"},
                              Failure(EXIT_CHECK_FAILED, f"firmware run failed: {err}", f"the firmware run failed: {err}"))
    passed, bars = judge_firmware(measurement.report, options, source.trained)
    section = {**measurement.report, "passed": passed, "pytorch_bars": bars, "input": not_run["input"],
               "kernels_note": not_run["kernels_note"], "accuracy_on_labels": None}
    if inputs.labels is not None:  # int8 logits share one scale, so their arg-max is the dequantised one's
        predicted = measurement.board.outputs[0].reshape(len(inputs.labels), -1).argmax(axis=1)
        section["accuracy_on_labels"] = float(np.mean(predicted == inputs.labels))
    failure = None if passed else Failure(EXIT_CHECK_FAILED, "firmware check failed: see the firmware table above and report.json",
                                          "the firmware check failed")
    return FirmwareResult(project_dir, section, failure, inputs, measurement)


def build_tflm(fused: FusedResult, firmware: FirmwareResult, io: ProjectIO, options: ExportOptions,
               work_dir: Path, blocked_by: Failure | None) -> TflmResult:
    """Generate the TFLM project for the fused model (`FusedResult.path`: both custom ops, the same file
    the AOT firmware runs); when the AOT firmware ran and a TFLM tree is given, build it against that
    tree, run it under QEMU on the AOT firmware's inputs and compare the outputs (both runtimes call the
    same C functions for the custom ops, and TFLM's builtin kernels round as the AOT kernels do)."""
    project_dir = work_dir / "firmware_tflm"
    try:
        tree = find_tree(options.tflm_dir)
        # TFLM neither folds PADs nor works in place, and its CMSIS-NN kernels ask for this core's
        # scratch: the AOT firmware's plan is not TFLM's.
        project = generate_tflm_project(fused.path, project_dir, options.target, sram_budget=options.sram_bytes, io=io,
                                        plan=tflm_plan(fused.path, options.target, tree))
        not_run = {"file": fused.path.name, "target_verified": False, "target": options.target, "ops": project.ops,
                   "predicted_arena_bytes": project.predicted_arena_bytes, "arena_bytes": project.arena_bytes}
        if blocked_by is not None or firmware.measurement is None or firmware.inputs is None:
            why = f"skipped: {blocked_by.cause}" if blocked_by is not None else "skipped (--no-run)"
            return TflmResult(project_dir, {**not_run, "run": why})
        if tree is None:
            return TflmResult(project_dir, {**not_run, "run": f"skipped: no TFLM source tree; {TREE_HINT}"})
        row = long_softmax_row(read_model(fused.path))
        if row:  # an attention block left unfused: TFLM's reference SOFTMAX aborts on long rows
            return TflmResult(project_dir, {**not_run, "run": f"skipped: an unfused attention's SOFTMAX rows hold {row} tokens, "
                                            "beyond what TFLM's SOFTMAX computes (docs/rounding.md)"})
        try:
            build = build_for_target(project_dir, options.target, tree)
        except SramBudgetExceeded as err:  # TFLM cannot deploy at this budget; the AOT firmware (the product) did
            aot_arena = firmware.measurement.board.arena_bytes
            return TflmResult(project_dir, {**not_run, "run": f"not run: {err}; TFLM's arena alone is predicted at "
                                            f"{project.predicted_arena_bytes:,} B, the AOT firmware's is {aot_arena:,} B"})
        run = run_on_target(project_dir, options.target, build.elf, firmware.inputs.inputs, tree=tree)
    except NlpoolError as err:  # e.g. EXP left in the model, a bad tree, the build failing: keep the rest of the export
        written = project_dir if (project_dir / "Makefile").is_file() else None  # the sources, to debug the build
        return TflmResult(written, {"target_verified": False, "target": options.target, "error": str(err)},
                          Failure(EXIT_CHECK_FAILED, f"TFLM project failed: {err}", f"the TFLM project failed: {err}"))
    finally:
        shutil.rmtree(project_dir / "build", ignore_errors=True)  # the output folder keeps sources only
    section = {"file": fused.path.name,
               **target_report(project, tree, build, run, firmware.measurement.board.outputs[0], firmware.inputs.pytorch)}
    aot = firmware.measurement.board
    # The AOT firmware's instructions over TFLM's, both measured on the same board and inputs in this export.
    section["aot_vs_tflm_instructions"] = {"aot_kernels": aot.kernels, "ratio": round(
        aot.instructions_per_inference / run.instructions_per_inference, 3) if aot.instructions_per_inference else None}
    failure = None if section["max_abs_diff_vs_aot"] == 0 else Failure(
        EXIT_CHECK_FAILED, "TFLM firmware output differs from the AOT firmware: see report.json's tflm key", "TFLM output differs")
    return TflmResult(project_dir, section, failure, run.profile)


def _first(*failures: Failure | None) -> Failure | None:
    return next((failure for failure in failures if failure is not None), None)


def spec_exists(spec: str) -> bool:
    """Whether a data spec names data that is there (the synthetic set always is)."""
    kind, _, arg = spec.partition(":")
    return kind == "synthetic" or (bool(arg) and Path(arg).exists())


def choose_data(options: ExportOptions, source: ModelToExport) -> tuple[str, str | None]:
    """The data spec to calibrate and measure on, and a warning line when it is not the model's own data."""
    if options.calib_data is not None:
        return options.calib_data, None
    own = source.training_data
    if own is not None and spec_exists(own):
        return own, None
    if not source.trained or (own is not None and own.startswith("synthetic")):
        return "synthetic", None
    why = f"its training data {own} is not there" if own else "the model names no training data"
    return "synthetic", (f"warning: int8 ranges and fidelity come from synthetic images ({why}): "
                         "pass --calib-data folder:PATH (or stl10:PATH, npy:FILE) with the model's own images")


def _signed(value: int) -> str:
    return f"+ {value}" if value >= 0 else f"- {-value}"


def rgb888_input(fused: FusedResult, data: ExportData, normalization: Normalization) -> Rgb888Input:
    """The per-channel tables from a camera byte to the fused model's int8 input, computed by the very
    arithmetic the fidelity chain uses (so a frame fed through them is exactly what was measured)."""
    host = HostModel(fused.path)
    if host.input_qp is None:
        raise NlpoolError(f"{fused.path} has a float input: export it with int8 input quantisation")
    scale, zero_point = host.input_qp
    levels = torch.arange(256, dtype=torch.float32).view(1, 1, 256).expand(3, 1, 256)
    if data.input_format == "rgb888":
        values, formula = levels, f"round(pixel / {scale:.7g}) {_signed(zero_point)}"
    else:
        values = normalization.apply(levels / 255)
        formula = (f"round(((pixel / 255 - mean[c]) / std[c]) / {scale:.7g}) {_signed(zero_point)}, mean {list(normalization.mean)},"
                   f" std {list(normalization.std)}")
    tables = host.quantize_input(values.numpy()).reshape(3, 256).astype(np.int8)
    _, height, width, _ = host.input_shape
    rgb = Rgb888Input(height, width, tables, "")
    description = "int8 = pixel - 128" if rgb.is_pixel_minus_128 else f"int8 = clamp({formula}, -128, 127)"
    return replace(rgb, description=description)


def exported_network(source: ModelToExport, input_format: str) -> nn.Module:
    """The network the export converts: the model itself, or with its normalisation inside for rgb888 input."""
    if input_format == "rgb888":
        return PixelInput(source.model, source.normalization.mean, source.normalization.std).eval()
    return source.model


def export_model(source: ModelToExport, options: ExportOptions, echo: Callable[[str], None] = echo_to_stderr) -> ExportOutcome:
    """Run every step of `nlpool export` into `options.out_dir` (built aside, moved into place when complete).

    Raises NlpoolError for what stops an export (a missing toolchain, bad data, a model export cannot
    handle); checks that fail are returned in `ExportOutcome.failures` with the folder written.
    """
    problem = check_sram_budget(options.target, options.sram_bytes)
    if problem is not None:
        raise NlpoolError(problem)
    input_bytes = 3 * source.input_size * source.input_size
    if input_bytes > options.sram_bytes:
        raise NlpoolError(f"the {source.input_size}x{source.input_size}x3 int8 input alone needs {format_size(input_bytes)}, more than"
                          f" the --sram budget of {format_size(options.sram_bytes)}: use a smaller --input-size or a larger budget")
    if options.run_firmware:
        check_tools(options.target)  # before the long export: say how to install a missing toolchain or QEMU
    cmsis_nn = find_cmsis_nn(options.cmsis_nn_dir)  # a wrong path stops the export before it starts
    spec, warning = choose_data(options, source)
    images = export_images(spec, source.input_size, source.num_classes, options.calib_samples, FIDELITY_SAMPLES)
    class_names = images.class_names or source.class_names
    if class_names is not None and len(class_names) != source.num_classes:
        raise NlpoolError(f"{len(class_names)} class names for a model of {source.num_classes} classes: "
                          "pass the data the model was trained on")
    network = exported_network(source, options.input_format)
    echo(f"exporting {source.title()} from {source.weights}")
    echo(f"target {options.target}, SRAM budget {format_size(options.sram_bytes)}, data {spec}, input {options.input_format}")
    if warning:
        echo(warning)
    header = {"model": {**source.description, "weights": source.weights}, "target": options.target, "sram_bytes": options.sram_bytes}
    step_data, step_fold, step_onnx, step_tflite, step_fuse, step_fidelity = EXPORT_STEPS
    with ExportRun(options.out_dir, STEPS, header, echo) as run:
        work = run.work_dir
        data = run.run(step_data, prepare_data, replace(images, class_names=class_names), source.normalization, options.input_format)
        folded = run.run(step_fold, fold_batchnorms, network, data)
        onnx = run.run(step_onnx, export_to_onnx, folded, data, work)
        tflite = run.run(step_tflite, convert_to_int8, onnx, data, work, run.scratch_dir)
        fused = run.run(step_fuse, fuse_custom_ops, tflite, work)
        run.run(step_fidelity, measure_fidelity, network, data, onnx, tflite, fused)
        memory = run.run(MEMORY, plan_memory, fused, options.sram_bytes, work, cmsis_nn)
        io = ProjectIO(rgb888_input(fused, data, source.normalization), source.num_classes, data.class_names)
        firmware = run.run(FIRMWARE, build_firmware, source, network, data, fused, memory, io, options, cmsis_nn, work,
                           memory.failure)
        tflm = run.run(TFLM, build_tflm, fused, firmware, io, options, work, _first(memory.failure, firmware.failure))
        failures = tuple(failure for failure in (memory.failure, firmware.failure, tflm.failure) if failure is not None)
        placed = run.finish(passed=not failures, keep_failed=options.keep_failed)
    if placed is None:
        kept = Failure(failures[0].exit_code, f"the passing earlier export in {options.out_dir} was kept and this failed one"
                       " discarded: pass --keep-failed to replace it with the failed export's evidence", "")
        return ExportOutcome(run.report, (), None, (*failures, kept))
    written, report_path = placed
    return ExportOutcome(run.report, tuple(written), report_path, failures)
