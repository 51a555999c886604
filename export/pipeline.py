"""export's own steps as typed functions, and the runner that turns a sequence of steps into one output folder.

Each step takes what it needs as typed arguments and returns a frozen result (`ExportData`,
`FoldResult`, `OnnxResult`, `TfliteResult`, `FusedResult`, `FidelityResult`) that later steps take as
input, so what flows between steps is visible in their signatures. A result also says what it adds
to report.json (`report_section`), which files it wrote (`written`) and what to print (`summary`).

`ExportRun` runs steps with progress lines and timing (report.json's `step_seconds`) inside a work
folder beside the output folder, then writes report.json and the manifest and moves the folder into
place (`outdir`); a failure or an interrupt removes it, so the output folder holds the previous complete
export or the new complete one, never a mix, and never loses a file nlpool did not write. The full
`nlpool export` sequence, which adds the memory plan and the
firmware (packages this one must not import), is wired in `nlpool.flow.export_flow`.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from nlpool.core import VERSION
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import TfliteModel, read_model, write_model
from nlpool.data import ExportImages, Normalization

from .attention_fusion import AttentionMatch, fuse_attention
from .fidelity import fidelity_report, format_table
from .fold_bn import fold_batchnorm
from .fusion import PoolMatch, fuse_model
from .host_run import HostModel, long_softmax_row
from .onnx_export import OPSET, check_onnx, export_onnx, onnx_session, run_onnx
from .outdir import REPORT_FILE, make_scratch_dir, make_work_dir, move_into_place, write_manifest
from .tflite_convert import convert_int8

FIDELITY_SAMPLES = 200
INPUT_FORMATS = ("normalized", "rgb888")
# Inputs the folded model and the ONNX file are checked on (a handful is enough to catch a wrong graph).
CHECK_SAMPLES = 8


class StepResult:
    """What every step result can tell the runner; a step with nothing to say keeps these defaults."""

    def report_section(self) -> dict[str, Any] | None:
        """This step's entry of report.json (under the step's section key), or None for no entry."""
        return None

    def written(self) -> tuple[Path, ...]:
        """Files and folders this step wrote into the work folder, in the order they are announced."""
        return ()

    def summary(self) -> str | None:
        """Lines printed under the step's progress line, or None."""
        return None


@dataclass(frozen=True)
class ExportData(StepResult):
    """Calibration images (train split) and held-out images, with labels when the data has them (val
    split), disjoint by construction, as the exported network takes them: normalised floats, or 0..255
    pixel values for an `rgb888` network (which normalises inside)."""

    calibration: torch.Tensor
    eval_images: torch.Tensor
    eval_labels: torch.Tensor | None
    calibration_source: str
    eval_source: str
    input_format: str
    class_names: tuple[str, ...] | None

    def report_section(self) -> dict[str, Any]:
        return {
            "calibration": {"samples": len(self.calibration), "source": self.calibration_source},
            "fidelity": {"samples": len(self.eval_images), "source": self.eval_source, "labelled": self.eval_labels is not None},
            "input_format": self.input_format,
            "class_names": list(self.class_names) if self.class_names else None,
        }


@dataclass(frozen=True)
class FoldResult(StepResult):
    """The model with BatchNorm folded into its convolutions, and how closely each folded layer matches."""

    model: nn.Module
    batchnorms_folded: int
    max_layer_relative_diff: float

    def report_section(self) -> dict[str, Any]:
        return {"batchnorms_folded": self.batchnorms_folded, "max_layer_relative_diff": self.max_layer_relative_diff}


@dataclass(frozen=True)
class OnnxResult(StepResult):
    """The ONNX file and its largest difference from the folded PyTorch model."""

    path: Path
    max_abs_diff_vs_pytorch: float

    def report_section(self) -> dict[str, Any]:
        return {"file": self.path.name, "opset": OPSET, "max_abs_diff_vs_pytorch": self.max_abs_diff_vs_pytorch}

    def written(self) -> tuple[Path, ...]:
        return (self.path,)


@dataclass(frozen=True)
class TfliteResult(StepResult):
    """The full-integer int8 TFLite file as onnx2tf wrote it, read once."""

    path: Path
    model: TfliteModel

    def report_section(self) -> dict[str, Any]:
        return {"file": self.path.name, "ops": dict(Counter(self.model.op_names()))}

    def written(self) -> tuple[Path, ...]:
        return (self.path,)


@dataclass(frozen=True)
class FusedResult(StepResult):
    """The int8 TFLite file with each weighted pooling replaced by one NLPOOL_WEIGHTED_POOL op and each
    attention block by one NLPOOL_ATTENTION op: what both the AOT firmware and the TFLM project run,
    read once (`model`) and handed to every later step."""

    path: Path
    model: TfliteModel
    pools: tuple[PoolMatch, ...]
    attention: tuple[AttentionMatch, ...]
    attention_skipped: tuple[str, ...]

    def report_section(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "custom_ops": len(self.pools),
            "attention_ops": len(self.attention),
            "attention_left_unfused": list(self.attention_skipped),
            "ops": dict(Counter(self.model.op_names())),
            "pools": [
                {**m.names, "window": [m.params.filter_h, m.params.filter_w], "stride": [m.params.stride_h, m.params.stride_w]}
                for m in self.pools
            ],
            "attention": [{"name": m.name, "tokens": m.params.tokens, "width": m.params.width, "heads": m.params.heads,
                           "positional_table": bool(m.params.pos_step), "scratch_bytes": m.params.scratch_bytes()}
                          for m in self.attention],
        }

    def written(self) -> tuple[Path, ...]:
        return (self.path,)

    def summary(self) -> str | None:
        lines = [f"  {len(self.pools)} weighted pooling(s) and {len(self.attention)} attention block(s) fused"]
        lines += [f"  {reason}" for reason in self.attention_skipped]
        return "\n".join(lines)


@dataclass(frozen=True)
class FidelityResult(StepResult):
    """ONNX, int8 and fused int8 measured against PyTorch on the held-out images; PyTorch's outputs
    on them are kept for the firmware's comparison (the network runs on them once)."""

    samples: int
    source: str
    metrics: dict[str, dict[str, float]]
    pytorch: np.ndarray

    def report_section(self) -> dict[str, Any]:
        return {"samples": self.samples, "data": self.source, **self.metrics}

    def summary(self) -> str:
        return format_table(self.metrics, self.samples)


def _nhwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).contiguous().numpy()


def prepare_data(images: ExportImages, normalization: Normalization, input_format: str = "normalized") -> ExportData:
    """The user's images as the exported network's input.

    `rgb888`: pixels rounded to the 0..255 levels a camera delivers, and the calibration set gets one
    black and one white frame, so the int8 input's range is exactly 0..255 (scale 1, zero point -128:
    the int8 input is pixel - 128).
    """
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
    if input_format == "rgb888":
        calibration = torch.round(images.calibration.pixels * 255)
        shape = (1, *calibration.shape[1:])
        calibration = torch.cat([calibration, torch.zeros(shape), torch.full(shape, 255.0)])
        eval_images = torch.round(images.fidelity.pixels * 255)
    else:
        calibration, eval_images = normalization.apply(images.calibration.pixels), normalization.apply(images.fidelity.pixels)
    return ExportData(calibration, eval_images, images.fidelity.labels, images.calibration.source, images.fidelity.source,
                      input_format, images.class_names)


def fold_batchnorms(model: nn.Module, data: ExportData) -> FoldResult:
    """Fold BatchNorm into convolutions; every folded layer must equal BN(conv) within 1e-5 of its range."""
    folded, count, diff = fold_batchnorm(model, data.calibration[:CHECK_SAMPLES])
    return FoldResult(folded, count, diff)


def export_to_onnx(folded: FoldResult, data: ExportData, work_dir: Path) -> OnnxResult:
    """ONNX (opset 17) via onnxsim; ONNX Runtime within 1e-4 of the folded PyTorch model it was exported from."""
    path = work_dir / "model.onnx"
    size = data.calibration.shape[-1]
    export_onnx(folded.model, torch.zeros(1, 3, size, size), path)
    return OnnxResult(path, check_onnx(path, folded.model, data.calibration[:CHECK_SAMPLES]))


def convert_to_int8(onnx: OnnxResult, data: ExportData, work_dir: Path, scratch_dir: Path) -> TfliteResult:
    """Full-integer int8 TFLite through onnx2tf, calibrated on the calibration images."""
    path = convert_int8(onnx.path, data.calibration, scratch_dir / "onnx2tf", work_dir / "model_int8.tflite")
    return TfliteResult(path, read_model(path))


def fuse_custom_ops(tflite: TfliteResult, work_dir: Path) -> FusedResult:
    """Rewrite every weighted pooling into one NLPOOL_WEIGHTED_POOL custom op, then every attention
    block into one NLPOOL_ATTENTION op; a block that does not match keeps its ops and the report says why.

    The attention op's FULLY_CONNECTED steps round twice (`fc_double_rounding=True`), as the AOT
    runtime's kernels/fully_connected.c and upstream TFLM do (docs/rounding.md), so the fused op is
    bit-exact with the unfused graph it replaces as TFLM runs it (`HostModel(kernels="tflm")`)."""
    path = work_dir / "model_int8_fused.tflite"
    tree = read_model(tflite.path).raw  # a tree of its own: fusion edits it, and `tflite.model` stays the unfused model
    pools = tuple(fuse_model(tree))
    attention = fuse_attention(tree, fc_double_rounding=True)
    write_model(tree, path)
    return FusedResult(path, read_model(path), pools, attention.matches, attention.skipped)


def measure_fidelity(model: nn.Module, data: ExportData, onnx: OnnxResult, tflite: TfliteResult,
                     fused: FusedResult) -> FidelityResult:
    """ONNX, int8 and fused int8 against PyTorch on inputs never used for calibration, and each one's
    accuracy on the data's labels when it has them."""
    images = data.eval_images
    with torch.no_grad():
        reference = model(images).numpy()
    nhwc = _nhwc(images)
    session = onnx_session(onnx.path)

    def host(name: str, tflite_model: TfliteModel) -> Callable[[], np.ndarray]:
        host_model = HostModel(tflite_model)
        return lambda: np.concatenate([host_model.predict(x[None]) for x in tqdm(nhwc, desc=f"  {name}", leave=False, unit="input")])

    runners = {"onnx": lambda: run_onnx(session, images.numpy())}
    skipped = {}
    row = long_softmax_row(tflite.model)
    if row:  # the unfused attention's SOFTMAX over 512+ tokens aborts the reference interpreter
        skipped["tflite_int8"] = (f"not measured: its attention SOFTMAX rows hold {row} tokens, on which TFLite's reference "
                                  "kernel aborts (docs/rounding.md); the fused model runs them")
    else:
        runners["tflite_int8"] = host("tflite_int8", tflite.model)
    runners["tflite_int8_fused"] = host("tflite_int8_fused", fused.model)
    metrics = fidelity_report(reference, runners, labels=None if data.eval_labels is None else data.eval_labels.numpy())
    return FidelityResult(len(images), data.eval_source, {**metrics, **{k: {"note": v} for k, v in skipped.items()}}, reference)


@dataclass(frozen=True)
class Step:
    """`name` keys the step in report.json's step_seconds, `section` keys its findings (the name unless
    they are about something else, like the fused model), `title` is its progress line."""

    name: str
    title: str
    section: str = ""

    @property
    def report_key(self) -> str:
        return self.section or self.name

    def about(self, detail: str) -> Step:
        """The step with what this run feeds it in its title (the data's source, how many inputs), known only once
        the data is loaded; it is still the same step for the runner (steps are matched by name)."""
        return replace(self, title=f"{self.title} ({detail})")


R = TypeVar("R", bound=StepResult)
P = ParamSpec("P")


def echo_to_stderr(line: str) -> None:
    """Progress goes to stderr so stdout holds only the list of written files."""
    print(line, file=sys.stderr)


class ExportRun:
    """Runs the steps of one export into a work folder and, on `finish`, moves it into place.

    Use as a context manager: leaving the block without `finish` (a step raised, an interrupt)
    removes the work folder, and the scratch folder (onnx2tf's intermediates) always goes.
    `steps` lists every step up front so progress lines can say "[3/9]".
    """

    def __init__(self, out_dir: Path, steps: Sequence[Step], header: dict[str, Any],
                 echo: Callable[[str], None] = echo_to_stderr) -> None:
        self.out_dir = out_dir.expanduser().absolute()
        self.steps = list(steps)
        self.echo = echo
        self.report: dict[str, Any] = {**header, "step_seconds": {}}
        self.work_dir = Path()
        self.scratch_dir = Path()
        self._written: list[Path] = []
        self._started = 0.0

    def __enter__(self) -> ExportRun:
        self.work_dir = make_work_dir(self.out_dir)
        try:
            self.scratch_dir = make_scratch_dir()
        except OSError as err:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            raise NlpoolError(f"cannot create a scratch folder in {tempfile.gettempdir()} ({err.strerror}): set TMPDIR to a writable folder"
                              ) from None
        self._started = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self.work_dir.exists():
            shutil.rmtree(self.work_dir, ignore_errors=True)
        if self.scratch_dir.exists():
            shutil.rmtree(self.scratch_dir, ignore_errors=True)

    def run(self, step: Step, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run one step: progress lines, its time in step_seconds, its report section, its files."""
        number = f"[{[s.name for s in self.steps].index(step.name) + 1}/{len(self.steps)}]"
        self.echo(f"{number} {step.title} ...")
        start = time.perf_counter()
        result = function(*args, **kwargs)
        section = result.report_section()
        if section is not None:
            self.report[step.report_key] = section
        self._written.extend(result.written())
        summary = result.summary()
        if summary:
            self.echo(summary)
        seconds = time.perf_counter() - start
        self.report["step_seconds"][step.name] = round(seconds, 2)
        self.echo(f"{number} done in {seconds:.1f} s")
        return result

    def finish(self, passed: bool = True, keep_failed: bool = False) -> tuple[list[Path], Path] | None:
        """Write report.json and the manifest and move the folder into place; returns the written paths and
        report.json's, as they are after the move, or None when a failed export (`passed` False) was not
        allowed to replace a passing one (see `outdir.move_into_place`)."""
        self.report["total_seconds"] = round(time.perf_counter() - self._started, 2)
        (self.work_dir / REPORT_FILE).write_text(json.dumps(self.report, indent=2) + "\n")
        write_manifest(self.work_dir, passed, VERSION)
        if not move_into_place(self.work_dir, self.out_dir, passed, keep_failed):
            return None
        written = [self.out_dir / path.relative_to(self.work_dir) for path in self._written]
        return written, self.out_dir / REPORT_FILE


EXPORT_STEPS = (
    Step("data", "calibration and fidelity images"),
    Step("fold_bn", "fold BatchNorm into convolutions"),
    Step("onnx", "export ONNX (opset 17, onnxsim) and check it with ONNX Runtime"),
    Step("tflite_int8", "convert to int8 TFLite with onnx2tf (about a minute)"),
    Step("fuse", "fuse each weighted pooling and attention block into one NLPOOL_WEIGHTED_POOL / NLPOOL_ATTENTION op",
         section="tflite_int8_fused"),
    Step("fidelity", "fidelity of ONNX, int8 and fused int8 vs PyTorch"),
)
"""The steps this package owns, in the order `nlpool export` runs them."""
