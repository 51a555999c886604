"""The Python API for any network built from nlpool's layers: `nlpool.export_model` and `nlpool.plan_model`.

A user's own CNN (not one of the presets) goes through exactly the steps `nlpool export` runs; what
comes back is a typed report whose fields are report.json's sections, so a script reads the same
numbers the command writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from torch import nn

from firmware.boards import BOARDS
from memory_planner import as_json, build_plan, graph_from_torch
from nlpool.core.errors import NlpoolError
from nlpool.core.units import parse_size
from nlpool.data import Normalization

from . import export_defaults as defaults
from .export_flow import ExportOptions, ModelToExport, echo_to_stderr
from .export_flow import export_model as run_export


@dataclass(frozen=True)
class ExportReport:
    """report.json as typed fields (each section a dict, as in the file), plus where it went and the verdict."""

    out_dir: Path
    exit_code: int
    failures: tuple[str, ...]
    model: dict[str, Any]
    target: str
    sram_bytes: int
    data: dict[str, Any]
    fold_bn: dict[str, Any]
    onnx: dict[str, Any]
    tflite_int8: dict[str, Any]
    tflite_int8_fused: dict[str, Any]
    fidelity: dict[str, Any]
    memory: dict[str, Any]
    firmware: dict[str, Any]
    tflm: dict[str, Any]
    step_seconds: dict[str, float]
    total_seconds: float

    @property
    def passed(self) -> bool:
        """True when every check passed (the command's exit code 0)."""
        return self.exit_code == 0


@dataclass(frozen=True)
class PlanReport:
    """`nlpool plan --json` as typed fields: the peak, where it is, the verdict and the per-layer rows."""

    peak_bytes: int
    fits: bool
    message: str
    budget_bytes: int
    layers: list[dict[str, Any]]
    details: dict[str, Any]


def _sram_bytes(sram: int | str) -> int:
    if isinstance(sram, bool) or not isinstance(sram, (int, str)):
        raise NlpoolError(f"sram must be a byte count or a size such as '512k', got {sram!r}")
    if isinstance(sram, int):
        if sram <= 0:
            raise NlpoolError(f"sram must be a positive number of bytes, got {sram}")
        return sram
    return parse_size(sram)


def _check_model(model: nn.Module, input_size: int) -> None:
    if not isinstance(model, nn.Module):
        raise NlpoolError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 8:
        raise NlpoolError(f"input_size is the square input's side in pixels (>= 8), got {input_size!r}")


def export_model(
    model: nn.Module,
    input_size: int,
    *,
    target: str,
    sram: int | str,
    calib: str | None = None,
    out: str | Path = defaults.OUT_DIR,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    normalization: Normalization = Normalization(),  # noqa: B008 (a frozen value)
    input_format: str = defaults.INPUT_FORMAT,
    trained: bool = True,
    run_firmware: bool = True,
    firmware_inputs: int = defaults.FIRMWARE_INPUTS,
    min_top1: float = defaults.MIN_TOP1,
    min_cosine: float = defaults.MIN_COSINE,
    tflm_dir: str | Path | None = None,
    cmsis_nn_dir: str | Path | None = None,
    clock_mhz: float | None = defaults.CLOCK_MHZ,
    echo: Callable[[str], None] = echo_to_stderr,
) -> ExportReport:
    """Export `model` (NCHW float input of `input_size` x `input_size`, logits out) as `nlpool export` does.

    `calib` is a data spec (`folder:PATH`, `stl10:PATH`, `npy:FILE`, `synthetic[:N]`); without it the
    synthetic set is used with a warning. `num_classes` defaults to the model's output width.
    `tflm_dir` / `cmsis_nn_dir` are the user's TFLM and CMSIS-NN trees (default: $NLPOOL_TFLM_DIR,
    $NLPOOL_CMSIS_NN_DIR). `clock_mhz`: the clock of the estimated milliseconds (default: the core's
    typical board clock, named in the report). Raises NlpoolError for bad arguments or what stops an export; failed
    checks are in the report.
    """
    _check_model(model, input_size)
    if target not in BOARDS:
        raise NlpoolError(f"unknown target {target!r}: use one of {', '.join(BOARDS)}")
    model = model.eval()
    if num_classes is None:
        import torch

        with torch.no_grad():
            num_classes = int(model(torch.zeros(1, 3, input_size, input_size)).shape[-1])
    names = tuple(class_names) if class_names is not None else None
    description = {"name": type(model).__name__, "input_size": input_size, "num_classes": num_classes,
                   "parameters": sum(p.numel() for p in model.parameters())}
    source = ModelToExport(model, input_size, num_classes, description, "given by the caller", trained,
                           normalization, names, None)
    options = ExportOptions(target, _sram_bytes(sram), Path(out).expanduser(), calib_data=calib, input_format=input_format,
                            run_firmware=run_firmware, firmware_inputs=firmware_inputs, min_top1=min_top1, min_cosine=min_cosine,
                            tflm_dir=Path(tflm_dir) if tflm_dir is not None else None,
                            cmsis_nn_dir=Path(cmsis_nn_dir) if cmsis_nn_dir is not None else None, clock_mhz=clock_mhz)
    outcome = run_export(source, options, echo)
    sections = {f.name: outcome.report.get(f.name) for f in fields(ExportReport) if f.name not in ("out_dir", "exit_code", "failures")}
    return ExportReport(options.out_dir, outcome.exit_code, tuple(f.message for f in outcome.failures), **sections)


def plan_model(model: nn.Module, input_size: int, *, sram: int | str) -> PlanReport:
    """Plan the peak activation memory of `model` at int8 sizes, as it would be exported, against `sram`."""
    _check_model(model, input_size)
    budget = _sram_bytes(sram)
    plan = build_plan(graph_from_torch(model.eval(), input_size, name=type(model).__name__))
    data = as_json(plan, budget)
    return PlanReport(int(data["peak_bytes"]), bool(data["fits"]), str(data["message"]), budget, data.get("layers", []), data)
