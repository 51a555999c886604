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

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.host_run import HostModel, quantize
from export.pipeline import (
    EXPORT_STEPS,
    FIDELITY_SAMPLES,
    ExportData,
    ExportRun,
    FidelityResult,
    FusedResult,
    convert_to_int8,
    echo_to_stderr,
    export_to_onnx,
    fold_batchnorms,
    fuse_custom_ops,
    measure_fidelity,
    prepare_data,
)
from firmware.boards import check_sram_budget
from firmware.common import ProjectIO, Rgb888Input
from firmware.run import check_tools
from firmware.verify import FirmwareMeasurement
from nlpool.checkpoint import TrainingRecord
from nlpool.core.errors import NlpoolError
from nlpool.core.units import format_size
from nlpool.data import Normalization, export_images
from nlpool.models import ModelConfig, PixelInput

from . import export_defaults as defaults
from .deploy import (
    DEPLOY_STEPS,
    FIRMWARE,
    MEMORY,
    TFLM,
    Deployable,
    ExportOutcome,
    FirmwareInputs,
    FirmwareVerdict,
    KernelTrees,
    build_firmware,
    build_tflm,
    finish,
    first_failure,
    plan_memory,
)

RANDOM_WEIGHTS_NOTE = "not enforced: random weights (pass --checkpoint or use the shipped default)"
STEPS = (*EXPORT_STEPS, *DEPLOY_STEPS)


@dataclass(frozen=True)
class ExportOptions:
    """What the user chose for one export (the CLI's flags; the defaults, theirs and the API's, are `export_defaults`).

    `calib_data`: a data spec (nlpool.data.CALIB_DATA_SPECS) to calibrate and measure on; None means
    the model's own training data when it names data that exists, else the synthetic set.
    `input_format`: `normalized` (the network's float input, quantised) or `rgb888` (camera pixels: the
    normalisation moves inside the network and the int8 input is pixel - 128).
    """

    target: str
    sram_bytes: int
    out_dir: Path
    calib_data: str | None = None
    input_format: str = defaults.INPUT_FORMAT
    calib_samples: int = defaults.CALIB_SAMPLES
    run_firmware: bool = True
    firmware_inputs: int = defaults.FIRMWARE_INPUTS
    min_top1: float = defaults.MIN_TOP1  # firmware vs PyTorch agreement bars (trained weights only), why: export_defaults
    min_cosine: float = defaults.MIN_COSINE
    keep_failed: bool = False  # let a failed export replace a passing earlier one (its evidence is otherwise dropped)
    tflm_dir: Path | None = None  # the user's TFLM source tree (else $NLPOOL_TFLM_DIR; none: the TFLM run is skipped)
    # The user's CMSIS-NN tree (else $NLPOOL_CMSIS_NN_DIR; none: the AOT firmware keeps nlpool's portable kernels).
    cmsis_nn_dir: Path | None = None
    clock_mhz: float | None = defaults.CLOCK_MHZ  # the estimated milliseconds' clock (None: the core's typical board clock)


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


def judge_firmware(measurement: FirmwareMeasurement, options: ExportOptions, trained: bool) -> FirmwareVerdict:
    """Pass or fail for the firmware's measurements, and the PyTorch bars that applied (or why none did).

    The one place a PyTorch export's verdict is made: bit-exactness with the host build and the
    reference chain always decides; the user's --min-top1 / --min-cosine bars on agreement with
    PyTorch decide too for trained weights.
    """
    bitexact = measurement.bitexact_vs_host and measurement.bitexact_vs_reference
    if not trained:
        return FirmwareVerdict(bitexact, RANDOM_WEIGHTS_NOTE)
    bars = {"min_top1_agreement": options.min_top1, "min_cosine": options.min_cosine}
    top1, cosine = measurement.top1_agreement_vs_pytorch, measurement.cosine_vs_pytorch
    agrees = top1 is not None and cosine is not None and top1 >= options.min_top1 and cosine >= options.min_cosine
    return FirmwareVerdict(bitexact and agrees, bars)


def firmware_inputs(fidelity: FidelityResult, data: ExportData, fused: FusedResult, count: int) -> FirmwareInputs:
    """The first `count` held-out images as the firmware takes them, with both references to compare
    against: the fused model as TFLM computes it on the host, and PyTorch's logits (from the fidelity step)."""
    host = HostModel(fused.model, kernels="tflm")
    images = data.eval_images[:count].permute(0, 2, 3, 1).numpy()
    inputs = np.stack([host.quantize_input(x[None]) for x in images])
    reference = np.stack([host.run_quantized(x) for x in inputs])
    labels = None if data.eval_labels is None else data.eval_labels[:count].numpy()
    return FirmwareInputs(inputs, reference, fidelity.pytorch[:count], labels)


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
    tensor = fused.model.tensors[fused.model.inputs[0]]
    if tensor.per_tensor_quantization is None or tensor.dtype != "int8":
        raise NlpoolError(f"{fused.path} has a {tensor.dtype} input: export it with int8 input quantisation")
    scale, zero_point = tensor.per_tensor_quantization
    levels = torch.arange(256, dtype=torch.float32).view(1, 1, 256).expand(3, 1, 256)
    if data.input_format == "rgb888":
        values, formula = levels, f"round(pixel / {scale:.7g}) {_signed(zero_point)}"
    else:
        values = normalization.apply(levels / 255)
        formula = (f"round(((pixel / 255 - mean[c]) / std[c]) / {scale:.7g}) {_signed(zero_point)}, mean {list(normalization.mean)},"
                   f" std {list(normalization.std)}")
    tables = quantize(values.numpy(), scale, zero_point).reshape(3, 256)
    _, height, width, _ = tensor.shape
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

    Raises NlpoolError for what stops an export (a missing toolchain, a wrong tree, bad data, a model
    export cannot handle), all checked before the first step; checks that fail are returned in
    `ExportOutcome.failures` with the folder written.
    """
    defaults.check_export_numbers(options.calib_samples, options.firmware_inputs, options.min_top1, options.min_cosine,
                                  options.clock_mhz)
    problem = check_sram_budget(options.target, options.sram_bytes)
    if problem is not None:
        raise NlpoolError(problem)
    input_bytes = 3 * source.input_size * source.input_size
    if input_bytes > options.sram_bytes:
        raise NlpoolError(f"the {source.input_size}x{source.input_size}x3 int8 input alone needs {format_size(input_bytes)}, more than"
                          f" the --sram budget of {format_size(options.sram_bytes)}: use a smaller --input-size or a larger budget")
    if options.run_firmware:
        check_tools(options.target)  # before the long export: say how to install a missing toolchain or QEMU
    trees = KernelTrees.find(options.cmsis_nn_dir, options.tflm_dir)  # a wrong path stops the export before it starts
    spec, warning = choose_data(options, source)
    images = export_images(spec, source.input_size, source.num_classes, options.calib_samples, FIDELITY_SAMPLES)
    class_names = images.class_names or source.class_names
    if class_names is not None and len(class_names) != source.num_classes:
        raise NlpoolError(f"{len(class_names)} class names for a model of {source.num_classes} classes: "
                          "pass the data the model was trained on")
    network = exported_network(source, options.input_format)
    echo(f"exporting {source.title()} from {source.weights}")
    echo(f"target {options.target}, SRAM budget {format_size(options.sram_bytes)}, data {spec}, input {options.input_format}")
    for line in (warning, images.shortfall):
        if line:
            echo(line)
    header = {"model": {**source.description, "weights": source.weights}, "target": options.target, "sram_bytes": options.sram_bytes}
    step_data, step_fold, step_onnx, step_tflite, step_fuse, step_fidelity = EXPORT_STEPS
    step_data = step_data.about(f"{spec}: {len(images.calibration)} to calibrate, {len(images.fidelity)} to measure")
    step_fidelity = step_fidelity.about(f"{len(images.fidelity)} inputs")
    target, sram = options.target, options.sram_bytes
    with ExportRun(options.out_dir, STEPS, header, echo) as run:
        work = run.work_dir
        data = run.run(step_data, prepare_data, replace(images, class_names=class_names), source.normalization, options.input_format)
        folded = run.run(step_fold, fold_batchnorms, network, data)
        onnx = run.run(step_onnx, export_to_onnx, folded, data, work)
        tflite = run.run(step_tflite, convert_to_int8, onnx, data, work, run.scratch_dir)
        fused = run.run(step_fuse, fuse_custom_ops, tflite, work)
        fidelity = run.run(step_fidelity, measure_fidelity, network, data, onnx, tflite, fused)
        trees = trees.probed(fused.model)
        io = ProjectIO(rgb888_input(fused, data, source.normalization), source.num_classes, data.class_names)
        deployable = Deployable(fused.model, fused.path.name, io, {
            "format": options.input_format, "int8_is_pixel_minus_128": io.rgb888.is_pixel_minus_128,
            "rgb888_to_input": io.rgb888.description, "header": "nlpool_io.h"})
        memory = run.run(MEMORY, plan_memory, deployable, sram, work, trees)
        not_run = None if options.run_firmware else "skipped (--no-run)"
        if memory.failure is not None:
            not_run = f"skipped: {memory.failure.cause}"
        firmware = run.run(FIRMWARE, build_firmware, deployable, memory,
                           lambda: firmware_inputs(fidelity, data, fused, options.firmware_inputs),
                           lambda measured: judge_firmware(measured, options, source.trained), target, sram, trees, work, not_run,
                           clock_mhz=options.clock_mhz)
        blocked = first_failure(memory.failure, firmware.failure)
        tflm_not_run = f"skipped: {blocked.cause}" if blocked is not None else not_run
        tflm = run.run(TFLM, build_tflm, deployable, firmware, firmware.inputs, target, sram, trees, work, tflm_not_run,
                       clock_mhz=options.clock_mhz)
        return finish(run, options.out_dir, options.keep_failed, (memory.failure, firmware.failure, tflm.failure))
