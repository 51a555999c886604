"""nlpool's generated per-layer kernels against CMSIS-NN on MLPerf Tiny's IC and VWW models.

For each model and core: one AOT project (CMSIS-NN tree from $NLPOOL_CMSIS_NN_DIR), built twice on the
same emulated board: with the generated kernels (the default on DSP cores; the MVE ones on Cortex-M55)
and with `GENERATED=0` (CMSIS-NN for every op it covers). Prints instructions per inference (QEMU -icount: instructions,
not cycles), the convolutions' share, flash, arena, and whether both builds give TFLM's reference
outputs bit for bit.

    NLPOOL_CMSIS_NN_DIR=... PYTHONPATH=$PWD .venv/bin/python benchmarks/generated_kernels.py [cortex-m4 ...]

About 2 minutes per core on 2 shared cores.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from firmware.aot import find_cmsis_nn, generate_project
from firmware.run import FirmwareRun, build_and_run
from firmware.testing import tflm_reference

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf_tiny"
MODELS = {"IC (ResNet-8)": (SHARED / "pretrainedResnet_quant.tflite", (1, 32, 32, 3)),
          "VWW (MobileNetV1-0.25)": (SHARED / "vww_96_int8.tflite", (1, 96, 96, 3))}
INPUTS = 3


def _run(project: Path, target: str, inputs: np.ndarray, generated: bool) -> FirmwareRun:
    os.environ["GENERATED"] = "1" if generated else "0"  # the project's Makefile reads it
    try:
        return build_and_run(project, target, inputs)
    finally:
        del os.environ["GENERATED"]


def _conv_share(run: FirmwareRun) -> int:
    assert run.profile is not None
    return sum(o.instructions for o in run.profile.ops if o.op in ("CONV_2D", "DEPTHWISE_CONV_2D"))


def main(targets: list[str]) -> None:
    tree = find_cmsis_nn(None)
    if tree is None:
        sys.exit("set NLPOOL_CMSIS_NN_DIR to a CMSIS-NN tree (docs/firmware.md, CMSIS-NN kernels)")
    print("| model | core | kernels | instructions / inference | conv + depthwise | flash (B) | arena (B) | bit-exact vs TFLM |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
    for name, (path, shape) in MODELS.items():
        inputs = np.random.default_rng(0).integers(-128, 128, size=(INPUTS, *shape), dtype=np.int8)
        want = tflm_reference(path, [inputs])[0]
        with tempfile.TemporaryDirectory() as tmp:
            info = generate_project(path, Path(tmp) / "p", 256 * 1024, targets[0], cmsis_nn=tree)
            for target in targets:
                for generated in (False, True):
                    run = _run(Path(tmp) / "p", target, inputs, generated)
                    kernels = "generated + CMSIS-NN" if generated else "CMSIS-NN"
                    exact = bool(np.array_equal(run.outputs[0], want))
                    print(f"| {name} | {target} | {kernels} | {run.instructions_per_inference:,} | {_conv_share(run):,} | "
                          f"{run.flash_bytes:,} | {info.arena_bytes:,} | {exact} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["cortex-m4"])
