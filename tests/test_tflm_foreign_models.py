"""TFLM projects of models nlpool did not make, built against upstream TFLM on Cortex-M4 and run on QEMU.

MLPerf Tiny's VWW and IC (Keras-converted, shared beside the repository), with reference and CMSIS-NN
kernels: AllocateTensors succeeds in the arena the project declares, the planner's prediction is within
2 % of `arena_used_bytes()`, and the outputs are bit for bit those of TFLM's own x86 build (the
`tflite_micro` wheel, reference kernels; TFLM's CMSIS-NN kernels compute the same int8 results). Also:
a model of FULLY_CONNECTED ops only links with CMSIS-NN (its kernel calls a convolution function), a
model with float input and output around its int8 body runs, and a too-small arena fails in one line.

TFLM objects come from nlpool's cache (~/.cache/nlpool): the first run compiles them (minutes), later
runs link and run only (seconds per model).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import IC_MODEL, VWW_MODEL, mlperf_model

from firmware.run import FirmwareRunError, check_tools
from firmware.tflm import build_for_target, find_tree, generate_tflm_project, run_on_target, tflm_plan
from nlpool.core.errors import NlpoolError

TREES = {kernels: os.environ.get(var) for kernels, var in (("cmsis-nn", "NLPOOL_TFLM_DIR"), ("reference", "NLPOOL_TFLM_REF_DIR"))}
TARGET = "cortex-m4"


@pytest.fixture(scope="module", autouse=True)
def _tools():
    if not all(TREES.values()):
        pytest.skip("no TFLM trees (set NLPOOL_TFLM_DIR and NLPOOL_TFLM_REF_DIR)")
    try:
        check_tools(TARGET)
    except NlpoolError as err:
        pytest.skip(str(err))


def _host_tflm(model: Path, inputs: np.ndarray) -> np.ndarray:
    """TFLM's own interpreter on x86 (reference kernels), one inference per input."""
    from tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(model), arena_size=4 << 20)
    outputs = []
    for x in inputs:
        interpreter.set_input(x, 0)
        interpreter.invoke()
        outputs.append(np.copy(interpreter.get_output(0)))
    return np.stack(outputs)


def _run(model: Path, kernels: str, tmp_path: Path, inputs: np.ndarray):
    tree = find_tree(TREES[kernels])
    plan = tflm_plan(model, TARGET, tree)
    project = generate_tflm_project(model, tmp_path / f"tflm-{kernels}", TARGET, plan=plan, tree=tree)
    build = build_for_target(project.path, TARGET, tree)
    return plan, project, run_on_target(project.path, TARGET, build.elf, inputs, tree=tree)


@pytest.mark.parametrize("kernels", ["reference", "cmsis-nn"])
@pytest.mark.parametrize("model", [VWW_MODEL, IC_MODEL], ids=["vww", "ic"])
def test_mlperf_tiny_models_run_in_the_predicted_arena_bit_exact(model, kernels, tmp_path):
    model = mlperf_model(model)
    from nlpool.core.tflite import read_model

    shape = read_model(model).tensors[read_model(model).inputs[0]].shape
    inputs = np.random.default_rng(7).integers(-128, 128, size=(2, *shape), dtype=np.int8)
    plan, project, run = _run(model, kernels, tmp_path, inputs)
    predicted = plan.tflm.total_bytes_target
    assert abs(predicted - run.arena_used_bytes) <= 0.02 * run.arena_used_bytes, (predicted, run.arena_used_bytes)
    assert run.arena_used_bytes <= project.arena_bytes
    assert np.array_equal(run.outputs[0], _host_tflm(model, inputs))


def _fc_only_model(tmp_path: Path, float_io: bool) -> Path:
    tf = pytest.importorskip("tensorflow")
    from firmware.testing import convert

    rng = np.random.default_rng(3)
    w1 = tf.constant(rng.normal(size=(40, 24)).astype(np.float32))
    w2 = tf.constant(rng.normal(size=(24, 10)).astype(np.float32))
    path = tmp_path / ("fc_float_io.tflite" if float_io else "fc.tflite")
    path.write_bytes(convert(lambda x: tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2), [(1, 40)], rng, float_io=float_io))
    return path


def test_a_fully_connected_only_model_links_and_runs_with_cmsis_nn(tmp_path):
    """TFLM's CMSIS-NN FULLY_CONNECTED calls arm_convolve_1x1_s8_fast: the derived sources bring it."""
    from nlpool.core.tflite import read_model

    model = _fc_only_model(tmp_path, float_io=False)
    assert set(read_model(model).op_names()) == {"FULLY_CONNECTED"}
    inputs = np.random.default_rng(5).integers(-128, 128, size=(3, 1, 40), dtype=np.int8)
    plan, _project, run = _run(model, "cmsis-nn", tmp_path, inputs)
    assert run.kernels == "cmsis-nn"
    assert np.array_equal(run.outputs[0], _host_tflm(model, inputs))
    assert abs(plan.tflm.total_bytes_target - run.arena_used_bytes) <= 0.02 * run.arena_used_bytes


def test_a_wide_per_channel_layer_gets_the_arena_its_prepare_needs(tmp_path):
    """A per-channel FULLY_CONNECTED with 640 outputs after small activations (MLPerf Tiny's AD decoder):
    while its Prepare runs TFLM holds the weights' 640 zero points as temporaries beside the
    tail, more than the arena TFLM ends up using; the prediction covers them, and the arena of the
    used bytes alone (plus the margin) fails, as the project said before it did."""
    tf = pytest.importorskip("tensorflow")
    from firmware.testing import convert

    rng = np.random.default_rng(4)
    w1 = tf.constant(rng.normal(size=(16, 32)).astype(np.float32))
    w2 = tf.constant(rng.normal(size=(32, 640)).astype(np.float32))
    model = tmp_path / "wide.tflite"
    model.write_bytes(convert(lambda x: tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2), [(1, 16)], rng))
    inputs = rng.integers(-128, 128, size=(2, 1, 16), dtype=np.int8)
    plan, project, run = _run(model, "reference", tmp_path, inputs)
    assert plan.tflm.required_bytes_target > plan.tflm.total_bytes_target
    assert run.arena_used_bytes <= project.arena_bytes
    assert np.array_equal(run.outputs[0], _host_tflm(model, inputs))

    tree = find_tree(TREES["reference"])
    used_only = generate_tflm_project(model, tmp_path / "used-only", TARGET, arena_bytes=plan.tflm.total_bytes_target, tree=tree)
    with pytest.raises(FirmwareRunError, match="AllocateTensors failed"):
        run_on_target(used_only.path, TARGET, build_for_target(used_only.path, TARGET, tree).elf, inputs, tree=tree)


def test_float_input_and_output_around_an_int8_body_run(tmp_path):
    """The converter's default: QUANTIZE in, DEQUANTIZE out; the firmware reads and writes float32."""
    from nlpool.core.tflite import read_model

    model = _fc_only_model(tmp_path, float_io=True)
    ops = read_model(model).op_names()
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE"
    inputs = np.random.default_rng(6).normal(size=(3, 1, 40)).astype(np.float32)
    _plan, _project, run = _run(model, "cmsis-nn", tmp_path, inputs)
    assert run.outputs[0].dtype == np.float32
    assert np.array_equal(run.outputs[0], _host_tflm(model, inputs))


def test_an_arena_too_small_fails_in_one_line_with_both_numbers(tmp_path):
    """Given a prediction far too low (the margin's 1 KiB cannot save it), the run says so in one line."""
    model = mlperf_model(IC_MODEL)
    tree = find_tree(TREES["reference"])
    project = generate_tflm_project(model, tmp_path / "small", TARGET, arena_bytes=4096, tree=tree)
    build = build_for_target(project.path, TARGET, tree)
    with pytest.raises(FirmwareRunError) as failed:
        run_on_target(project.path, TARGET, build.elf, np.zeros((1, 1, 32, 32, 3), np.int8), tree=tree)
    message = str(failed.value)
    assert f"AllocateTensors failed in the {project.arena_bytes}-byte arena (nlpool predicted 4096 bytes" in message
    assert "TFLM says: " in message and "missing" in message and "\n" not in message
