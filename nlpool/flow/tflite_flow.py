"""`nlpool export MODEL.tflite`: an int8 TFLite model someone else made -> memory plan -> both firmwares, verified.

Most users arrive with a `.tflite` the TensorFlow/Keras converter wrote (MLPerf Tiny's reference models
are such files). There is no PyTorch model, so the export's first half (BN fold, ONNX, onnx2tf, fusion,
fidelity against PyTorch) does not apply and its report fields are absent, never invented. The rest
is the PyTorch export's own deployment steps (`deploy`): the same memory plan, AOT project and TFLM
project, run on QEMU on the same inputs and compared bit for bit.

The host reference every firmware output is compared with is the TFLite interpreter (LiteRT, reference
kernels) where it computes what TFLM computes, otherwise upstream TFLM's own interpreter (the
`tflite-micro` wheel): `export.host_run.reference_kernels`, the per-op rule in docs/rounding.md. The
other interpreter runs the same inputs and its largest difference from the reference is reported
beside it, so a user sees both numbers.

Inputs: seeded random int8 by default; `--calib-data` images are scaled onto the range the model's
input quantisation can represent (0..1 for scale 1/255, 0..255 for scale 1 with zero point -128) and
quantised with its scale and zero point.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.host_run import host_outputs_isolated, quantize, reference_kernels
from export.pipeline import ExportRun, Step, StepResult, echo_to_stderr
from firmware.boards import check_sram_budget
from firmware.run import check_tools
from firmware.verify import FirmwareMeasurement
from memory_planner import graph_from_model
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import Tensor, TfliteModel, read_model
from nlpool.core.units import format_size
from nlpool.data import export_images

from . import export_defaults as defaults
from .deploy import (
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
    plan_memory,
)
from .export_flow import ExportOptions

INPUT_SEED = 0
NO_PYTORCH_NOTE = "not applicable: the model came as a .tflite, so there is no PyTorch model to compare with"
REFERENCE_NAMES = {"tflm": "TFLM's interpreter on the host (tflite-micro)",
                   "tflite": "the TFLite interpreter's reference kernels (LiteRT), which compute what TFLM does for these ops"}

MODEL = Step("model", "read and check the model (operators, shapes, quantisation)")
INPUTS = Step("inputs", "firmware inputs and the host reference's outputs for them")
STEPS = (MODEL, MEMORY, INPUTS, FIRMWARE, TFLM)


def _tensor_report(tensor: Tensor) -> dict[str, Any]:
    return {"name": tensor.name, "shape": list(tensor.shape), "dtype": tensor.dtype,
            "scale": tensor.scale if tensor.scales.size == 1 else None,
            "zero_point": tensor.zero_point if tensor.scales.size == 1 else None}


@dataclass(frozen=True)
class ModelResult(StepResult):
    """The user's model, read and validated once, and what report.json says about it."""

    model: TfliteModel
    sha256: str
    note: str | None  # the converter's -1 batch, run at batch 1

    def report_section(self) -> dict[str, Any]:
        m = self.model
        return {"file": m.path.name, "path": str(m.path.absolute()), "sha256": self.sha256, "bytes": m.file_bytes,
                "ops": dict(Counter(m.op_names())), "operators": len(m.operators), "free_batch": m.free_batch,
                "inputs": [_tensor_report(m.tensors[i]) for i in m.inputs],
                "outputs": [_tensor_report(m.tensors[i]) for i in m.outputs]}

    def summary(self) -> str:
        m = self.model
        ops = ", ".join(f"{name} x{count}" for name, count in Counter(m.op_names()).most_common())
        lines = [f"  {len(m.operators)} ops: {ops}"]
        return "\n".join([*lines, f"  {self.note}"] if self.note else lines)


def read_user_model(path: Path) -> ModelResult:
    """Read and validate the file (one line for a damaged one); a single input and output are what both firmwares take."""
    model = read_model(path)
    graph_from_model(model)  # dataflow and sizes as the planner needs them: a damaged model stops here, before any work
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise NlpoolError(f"{path} has {len(model.inputs)} inputs and {len(model.outputs)} outputs: nlpool's firmwares take "
                          "models with one input and one output")
    for index in (*model.inputs, *model.outputs):
        tensor = model.tensors[index]
        if tensor.dtype not in ("int8", "float32"):
            raise NlpoolError(f"{path}: model input/output '{tensor.name}' is {tensor.dtype}: convert the model with int8 "
                              "(or float32 around an int8 body) inputs and outputs")
    return ModelResult(model, hashlib.sha256(path.read_bytes()).hexdigest(), model.free_batch_note())


def _input_quantization(model: TfliteModel) -> tuple[float, int]:
    """Scale and zero point of the int8 values the model's body takes: the input's own, or for a float input
    (the converter's default) those of the QUANTIZE op that reads it."""
    tensor = model.tensors[model.inputs[0]]
    if tensor.dtype == "int8" and tensor.per_tensor_quantization is not None:
        return tensor.per_tensor_quantization
    for op in model.operators:
        if op.name == "QUANTIZE" and op.inputs[0] == model.inputs[0]:
            quantized = model.tensors[op.outputs[0]].per_tensor_quantization
            if quantized is not None:
                return quantized
    raise NlpoolError(f"{model.path}: its {tensor.dtype} input has no per-tensor int8 quantisation to draw inputs from: "
                      "convert it with full-integer quantisation")


def input_values(model: TfliteModel, count: int, calib_data: str | None) -> tuple[np.ndarray, str]:
    """`count` inputs as the model takes them (int8, or float values that quantise exactly for a float input)
    and where they came from."""
    tensor = model.tensors[model.inputs[0]]
    scale, zero_point = _input_quantization(model)
    shape = tensor.shape
    if calib_data is None:
        levels = np.random.default_rng(INPUT_SEED).integers(-128, 128, size=(count, *shape), dtype=np.int64).astype(np.int8)
        source = f"seeded random int8 (seed {INPUT_SEED})"
    else:
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
            raise NlpoolError(f"--calib-data gives square RGB images, but {model.path.name}'s input is {tuple(shape)}: "
                              "leave --calib-data out to run it on seeded random inputs")
        images = export_images(calib_data, shape[1], 2, 1, count).fidelity  # any class count: labels are not used
        if len(images.pixels) < count:
            raise NlpoolError(f"--calib-data {calib_data} gives {len(images.pixels)} images, --firmware-inputs asks for {count}: "
                              "pass more images or a smaller --firmware-inputs")
        low, high = (-128 - zero_point) * scale, (127 - zero_point) * scale
        pixels = images.pixels.permute(0, 2, 3, 1).numpy()[:, None]  # (n, 1, h, w, 3): batch 1 per input
        levels = quantize(low + pixels * (high - low), scale, zero_point)
        source = f"{images.source}, scaled onto the input's range {low:.4g}..{high:.4g}"
    if tensor.dtype == "float32":  # the converter's float edge: values its QUANTIZE maps back to exactly these levels
        return ((levels.astype(np.float32) - zero_point) * np.float32(scale)).astype(np.float32), source
    return levels, source


@dataclass(frozen=True)
class InputsResult(StepResult):
    """The firmware inputs and the host reference's outputs for them, with the other interpreter's difference from it."""

    inputs: FirmwareInputs
    source: str
    other_name: str
    other_max_abs_diff: int | None  # in output quantisation steps; None: the other interpreter could not run the model
    other_note: str | None

    def report_section(self) -> dict[str, Any]:
        return {"count": len(self.inputs.inputs), "source": self.source, "reference": self.inputs.reference_name,
                "other_interpreter": self.other_name, "other_max_abs_diff_vs_reference": self.other_max_abs_diff,
                **({"other_note": self.other_note} if self.other_note else {})}

    def summary(self) -> str:
        other = (f"{self.other_name} differs from it by at most {self.other_max_abs_diff} step(s)"
                 if self.other_max_abs_diff is not None else f"{self.other_name} not compared: {self.other_note}")
        return f"  {len(self.inputs.inputs)} inputs ({self.source}); reference: {self.inputs.reference_name}; {other}"


def _steps_apart(model: TfliteModel, a: np.ndarray, b: np.ndarray) -> int:
    """Largest difference of two output batches in the output's quantisation steps (float edges: divided by the
    scale of the int8 tensor the DEQUANTIZE reads)."""
    if a.dtype != np.float32:
        return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max(initial=0))
    out = model.outputs[0]
    scales = [model.tensors[op.inputs[0]].scale for op in model.operators if op.name == "DEQUANTIZE" and op.outputs[0] == out]
    return round(float(np.abs(a.astype(np.float64) - b).max(initial=0)) / (scales[0] if scales and scales[0] else 1.0))


def make_inputs(model: TfliteModel, count: int, calib_data: str | None) -> InputsResult:
    """The inputs and the host reference's outputs for them; the other interpreter's on the same inputs for comparison."""
    values, source = input_values(model, count, calib_data)
    kernels = reference_kernels(model)
    reference = host_outputs_isolated(model, kernels, values)
    inputs = FirmwareInputs(values, reference, None, None, REFERENCE_NAMES[kernels])
    other_kernels = "tflite" if kernels == "tflm" else "tflm"
    other_name = "the TFLite interpreter (LiteRT, reference kernels)" if other_kernels == "tflite" else "TFLM's interpreter"
    try:
        other = host_outputs_isolated(model, other_kernels, values)
    except (NlpoolError, RuntimeError, ValueError) as err:  # the other interpreter refuses the model
        return InputsResult(inputs, source, other_name, None, str(err).splitlines()[0])
    return InputsResult(inputs, source, other_name, _steps_apart(model, other, reference), None)


def judge_bitexact(measurement: FirmwareMeasurement) -> FirmwareVerdict:
    """A `.tflite` export passes when the firmware is bit-exact with its host build and the host reference."""
    return FirmwareVerdict(measurement.bitexact_vs_host and measurement.bitexact_vs_reference, NO_PYTORCH_NOTE)


def export_tflite(path: Path, options: ExportOptions, echo: Callable[[str], None] = echo_to_stderr) -> ExportOutcome:
    """Run `nlpool export MODEL.tflite` into `options.out_dir` (built aside, moved into place when complete).

    Raises NlpoolError for what stops it before any work (a damaged model, a wrong tree, a missing tool,
    a budget beyond the board); failed checks are in `ExportOutcome.failures` with the folder written.
    """
    defaults.check_export_numbers(options.calib_samples, options.firmware_inputs, options.min_top1, options.min_cosine,
                                  options.clock_mhz)
    problem = check_sram_budget(options.target, options.sram_bytes)
    if problem is not None:
        raise NlpoolError(problem)
    checked = read_user_model(path)
    if options.run_firmware:
        check_tools(options.target)
    trees = KernelTrees.find(options.cmsis_nn_dir, options.tflm_dir)
    model, target, sram = checked.model, options.target, options.sram_bytes
    echo(f"exporting {path} ({len(model.operators)} ops, {format_size(model.file_bytes)})")
    echo(f"target {target}, SRAM budget {format_size(sram)}, inputs {options.calib_data or 'seeded random int8'}")
    header = {"model": {"file": path.name, "weights": "given as a .tflite"}, "target": target, "sram_bytes": sram}
    with ExportRun(options.out_dir, STEPS, header, echo) as run:
        work = run.work_dir
        run.run(MODEL, lambda: checked)
        trees = trees.probed(model)
        deployable = Deployable(model, path.name, None, {"format": model.tensors[model.inputs[0]].dtype, "header": None})
        memory = run.run(MEMORY, plan_memory, deployable, sram, work, trees)
        not_run = None if options.run_firmware else "skipped (--no-run)"
        if memory.failure is not None:
            not_run = f"skipped: {memory.failure.cause}"
        inputs = run.run(INPUTS, make_inputs, model, options.firmware_inputs, options.calib_data).inputs if not_run is None else None
        firmware = run.run(FIRMWARE, build_firmware, deployable, memory, lambda: inputs, judge_bitexact, target, sram, trees, work,
                           not_run, clock_mhz=options.clock_mhz)
        # An op the AOT runtime lacks does not stop TFLM (which has it): its run is compared with the host reference.
        tflm = run.run(TFLM, build_tflm, deployable, firmware, inputs, target, sram, trees, work, not_run, clock_mhz=options.clock_mhz)
        return finish(run, options.out_dir, options.keep_failed, (memory.failure, firmware.failure, tflm.failure))
