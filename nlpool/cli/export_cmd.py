"""`nlpool export`: model -> ONNX -> int8 TFLite -> fused int8 TFLite -> memory plan -> firmware.

Only flags: they become one `ExportOptions`, and `nlpool.flow.export_flow.export_model` does the work
(export's steps, memory plan, AOT firmware on QEMU, TFLM firmware on QEMU against the user's TFLM
tree). Exit codes: 0 all
checks pass; 1 a check failed or bad input; 2 usage error; 3 the model does not fit the SRAM budget
(reports are still written).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from firmware.boards import BOARDS, check_sram_budget
from nlpool.core.checks import range_text
from nlpool.core.errors import NlpoolError

from ..flow import export_defaults as defaults
from .model_options import MODEL_FLAGS, model_options, resolve
from .params import in_range, size_param

TARGETS = tuple(BOARDS)  # the board table is the one list of targets


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (C++ logging bypasses Python's sys.stderr) for the block."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# Flags that shape a PyTorch export only; given with a .tflite they are refused, not silently ignored.
PYTORCH_ONLY = ("input_format", "calib_samples", "min_top1", "min_cosine")


def _tflite_conflicts(context: click.Context, preset: str | None, checkpoint: Path | None, flags: dict[str, Any]) -> list[str]:
    """The flags given beside MODEL.tflite that only a PyTorch model can use."""
    named = [f"--{name.replace('_', '-')}" for name in MODEL_FLAGS if flags.get(name) is not None]
    named += ["--model"] if preset is not None else []
    named += ["--checkpoint"] if checkpoint is not None else []
    named += [f"--{name.replace('_', '-')}" for name in PYTORCH_ONLY
              if context.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)]
    return named


@click.command("export")
@click.argument("model_file", metavar="[MODEL.tflite]", required=False, type=click.Path(dir_okay=False, path_type=Path))
@model_options
@click.option("--target", type=click.Choice(TARGETS), required=True, help="Cortex-M core the model is exported for.")
@click.option("--sram", "sram_bytes", callback=size_param, required=True, help="SRAM budget, e.g. 512k, 1m, 524288, 2MiB.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=defaults.OUT_DIR,
    show_default=True,
    help="Output folder; built aside and moved into place when complete.",
)
@click.option("--calib-data", metavar="SPEC", default=None,
              help="Images to calibrate int8 on (train split) and measure fidelity on (val split): synthetic[:N], "
                   "folder:PATH, stl10:PATH or npy:FILE. Default: the checkpoint's own training data.")
@click.option("--input-format", type=click.Choice(["normalized", "rgb888"]), default=defaults.INPUT_FORMAT, show_default=True,
              help="rgb888: the firmware takes camera pixels (int8 = pixel - 128), the normalisation moves into the network.")
@click.option("--calib-samples", type=int, callback=in_range(*defaults.CALIB_SAMPLES_RANGE), default=defaults.CALIB_SAMPLES,
              show_default=True, help=f"Calibration images for int8 ({range_text(defaults.CALIB_SAMPLES_RANGE)}).")
@click.option("--no-run", is_flag=True, help="Generate the firmware projects but do not build and run them.")
@click.option(
    "--firmware-inputs", type=int, callback=in_range(*defaults.FIRMWARE_INPUTS_RANGE), default=defaults.FIRMWARE_INPUTS,
    show_default=True, help=f"Inputs run on the emulated firmware ({range_text(defaults.FIRMWARE_INPUTS_RANGE)})."
)
@click.option("--min-top1", type=float, callback=in_range(*defaults.MIN_TOP1_RANGE), default=defaults.MIN_TOP1, show_default=True,
              help="Firmware vs PyTorch top-1 agreement below this fails the export (trained weights only).")
@click.option("--keep-failed", is_flag=True,
              help="Let a failed export replace a passing earlier export in --out (by default the passing one is kept).")
@click.option("--min-cosine", type=float, callback=in_range(*defaults.MIN_COSINE_RANGE), default=defaults.MIN_COSINE, show_default=True,
              help="Firmware vs PyTorch cosine similarity below this fails the export (trained weights only).")
@click.option("--tflm-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Upstream TFLM source tree (create_tflm_tree.py output or a tflite-micro checkout) to build and run "
                   "the TFLM project against on QEMU [default: $NLPOOL_TFLM_DIR; none: that run is skipped].")
@click.option("--cmsis-nn-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Arm CMSIS-NN tree (a CMSIS-NN checkout, or a TFLM tree that carries one): the AOT firmware calls "
                   "CMSIS-NN for the ops it covers on Cortex-M [default: $NLPOOL_CMSIS_NN_DIR; none: nlpool's portable "
                   "kernels].")
@click.option("--clock", "clock_mhz", type=float, callback=in_range(*defaults.CLOCK_MHZ_RANGE), default=defaults.CLOCK_MHZ,
              metavar="MHZ", help="Core clock in MHz for the estimated milliseconds per op and per inference "
                                  "[default: a typical board's clock for the core, named in the output].")
@click.pass_context
def export_command(
    context: click.Context,
    model_file: Path | None,
    target: str,
    sram_bytes: int,
    out_dir: Path,
    calib_data: str | None,
    input_format: str,
    calib_samples: int,
    no_run: bool,
    firmware_inputs: int,
    min_top1: float,
    min_cosine: float,
    keep_failed: bool,
    tflm_dir: Path | None,
    cmsis_nn_dir: Path | None,
    clock_mhz: float | None,
    preset: str | None,
    checkpoint: Path | None,
    **flags: Any,
) -> None:
    """Export a PyTorch model (the default, model flags or --checkpoint) to ONNX, int8 TFLite and fused int8
    TFLite, measured against PyTorch, or take an int8 MODEL.tflite as it is; then plan its memory and build,
    run and compare both firmwares on the emulated core."""
    from export.outdir import check_output_dir

    over = check_sram_budget(target, sram_bytes)
    if over is not None:
        raise click.BadParameter(over, param_hint="--sram")
    out_dir = check_output_dir(out_dir)
    if model_file is not None:
        conflicts = _tflite_conflicts(context, preset, checkpoint, flags)
        if conflicts:
            raise NlpoolError(f"{model_file} is an int8 .tflite: {' '.join(conflicts)} apply only to PyTorch models; drop them")
    else:
        resolved = resolve(preset, checkpoint, **flags)
    with _quiet_stderr():  # TensorFlow's start-up chatter (CUDA probing on a CPU machine) is not for users
        from nlpool.flow.export_flow import ExportOptions, ModelToExport, export_model
        from nlpool.flow.tflite_flow import export_tflite

    options = ExportOptions(
        target=target,
        sram_bytes=sram_bytes,
        out_dir=out_dir,
        calib_data=calib_data,
        input_format=input_format,
        calib_samples=calib_samples,
        run_firmware=not no_run,
        firmware_inputs=firmware_inputs,
        min_top1=min_top1,
        min_cosine=min_cosine,
        keep_failed=keep_failed,
        tflm_dir=tflm_dir,
        cmsis_nn_dir=cmsis_nn_dir,
        clock_mhz=clock_mhz,
    )
    echo = lambda line: click.echo(line, err=True)  # noqa: E731 (progress goes to stderr)
    if model_file is not None:
        outcome = export_tflite(model_file, options, echo=echo)
    else:
        source = ModelToExport.from_config(resolved.model, resolved.config, resolved.weights, trained=resolved.record is not None,
                                           record=resolved.record)
        outcome = export_model(source, options, echo=echo)
    for path in outcome.written:
        click.echo(f"wrote {path}")
    if outcome.report_path is not None:
        click.echo(f"wrote {outcome.report_path}")
    for failure in outcome.failures:
        click.echo(f"error: {failure.message}", err=True)
    if outcome.failures:
        click.get_current_context().exit(outcome.exit_code)
