"""The two shared MLPerf Tiny reference models (VWW MobileNetV1-0.25x, IC ResNet-8: written by the
Keras converter, free batch, not made by nlpool) through the AOT generator, on QEMU Cortex-M4 with
nlpool's portable kernels and with CMSIS-NN: every output byte equals the host build's and the host
reference's (upstream TFLM's interpreter, `export.host_run.HostModel(kernels="tflm")`, the reference
for a model with FULLY_CONNECTED: docs/rounding.md, Models nlpool did not make).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import IC_MODEL, VWW_MODEL, aot_kernel_args, mlperf_model

pytest.importorskip("tflite_micro")

from export.host_run import HostModel, reference_kernels
from firmware.aot import generate_project
from firmware.aot.cmsis_nn import find_cmsis_nn
from firmware.run import HOST, build_and_run, check_tools
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import read_model

INPUTS = 8
MODELS = {"vww": VWW_MODEL, "ic": IC_MODEL}


@pytest.mark.parametrize("kernels", ["portable", "cmsis-nn"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_mlperf_model_bitexact_on_cortex_m4(tmp_path: Path, name: str, kernels: str) -> None:
    path = mlperf_model(MODELS[name])
    extra = aot_kernel_args("cortex-m4", kernels)
    model = read_model(path)
    assert model.free_batch  # the converter's -1 batch, planned and generated at batch 1
    rng = np.random.default_rng(23)
    inputs = rng.integers(-128, 128, size=(INPUTS, *model.tensors[model.inputs[0]].shape), dtype=np.int8)
    assert reference_kernels(model) == "tflm"  # both have FULLY_CONNECTED, which LiteRT rounds once
    host_reference = HostModel(path, kernels="tflm")
    expected = np.stack([host_reference.run_quantized(x) for x in inputs])
    info = generate_project(path, tmp_path / "project", 512 * 1024, "cortex-m4", **extra)
    host = build_and_run(tmp_path / "project", HOST, [inputs]).outputs[0]
    board = build_and_run(tmp_path / "project", "cortex-m4", [inputs])
    assert board.kernels == kernels
    assert bool(info.cmsis_nn_dir) == (kernels == "cmsis-nn")  # (VWW's ops all run generated kernels on M4 then)
    assert np.array_equal(host, expected.reshape(host.shape)), "host build vs TFLM"
    assert np.array_equal(board.outputs[0], host), f"Cortex-M4 {kernels} vs host build"


def test_mlperf_ic_on_cortex_m3_takes_cmsis_nns_plain_c_paths(tmp_path: Path) -> None:
    """The Cortex-M3 has no DSP extension: CMSIS-NN compiles its plain C paths there, bit-exact with TFLM."""
    try:
        check_tools("cortex-m3")
    except NlpoolError as exc:
        pytest.skip(str(exc))
    cmsis_nn = find_cmsis_nn(None)
    if cmsis_nn is None:
        pytest.skip("CMSIS-NN kernels not found: set NLPOOL_CMSIS_NN_DIR to the cmsis_nn source tree")
    path = mlperf_model(IC_MODEL)
    model = read_model(path)
    inputs = np.random.default_rng(29).integers(-128, 128, size=(2, *model.tensors[model.inputs[0]].shape), dtype=np.int8)
    expected = np.stack([HostModel(path, kernels="tflm").run_quantized(x) for x in inputs])
    generate_project(path, tmp_path / "project", 512 * 1024, "cortex-m3", cmsis_nn=cmsis_nn)
    board = build_and_run(tmp_path / "project", "cortex-m3", [inputs], estimate=True)
    assert board.kernels == "cmsis-nn"
    assert np.array_equal(board.outputs[0], expected.reshape(board.outputs[0].shape))
    elf = tmp_path / "project" / "build" / "cortex-m3" / "firmware.elf"
    assert "smlad" not in subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True).stdout
    assert board.timing is not None and board.timing.cycles_for(board.instructions_per_inference) >= board.instructions_per_inference
