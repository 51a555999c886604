"""PAD folded into the VALID convolution after it: planned without the padded tensor, generated
without the PAD, and bit-exact with upstream TFLM (which runs the PAD) on the host, the boards and
CMSIS-NN."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import tensorflow as tf

from firmware.aot import find_cmsis_nn, generate_project
from firmware.run import HOST, build_and_run
from firmware.testing import convert, tflm_reference
from memory_planner import foldable_pads, plan_tflite
from nlpool.core.tflite import read_model

needs_qemu = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                                reason="arm-none-eabi-gcc and qemu-system-arm are needed")


def _model(path: Path, seed: int, shared: bool = False) -> Path:
    """PAD -> CONV_2D (VALID) -> RELU -> PAD -> DEPTHWISE_CONV_2D (VALID), asymmetric pads (which the
    converter keeps as PAD ops); `shared` makes the first PAD's output feed a second op too."""
    rng = np.random.default_rng(seed)
    w = tf.constant(rng.normal(0, 0.5, size=(3, 3, 4, 8)).astype(np.float32))
    dw = tf.constant(rng.normal(0, 0.5, size=(3, 3, 8, 1)).astype(np.float32))

    def fn(x):
        padded = tf.pad(x, [[0, 0], [2, 0], [0, 1], [0, 0]])
        y = tf.nn.relu(tf.nn.conv2d(padded, w, 1, "VALID"))
        z = tf.nn.depthwise_conv2d(tf.pad(y, [[0, 0], [1, 1], [2, 0], [0, 0]]), dw, [1, 1, 1, 1], "VALID")
        return (z, tf.reduce_mean(padded, axis=[1, 2])) if shared else z

    path.write_bytes(convert(fn, [(1, 9, 8, 4)], rng))
    return path


def test_pads_before_valid_convolutions_are_folded_and_bitexact(tmp_path):
    model = _model(tmp_path / "m.tflite", 0)
    assert read_model(model).op_names() == ["PAD", "CONV_2D", "PAD", "DEPTHWISE_CONV_2D"]
    assert foldable_pads(read_model(model)) == {0: 1, 2: 3}
    plan = plan_tflite(model)
    assert [op.index for op in plan.graph.ops if op.folded] == [0, 2]
    padded = read_model(model).tensors[read_model(model).operators[0].outputs[0]]
    assert padded.index not in plan.best.offsets  # the padded tensor takes no memory
    info = generate_project(model, tmp_path / "p", 512 * 1024, plan=plan)
    assert info.op_kernels[::2] == ["folded", "folded"] and "cmsis-nn" not in info.op_kernels
    assert "nl_pad(" not in (tmp_path / "p" / "model.c").read_text()
    inputs = np.random.default_rng(1).integers(-128, 128, size=(8, 1, 9, 8, 4), dtype=np.int8)
    expected = tflm_reference(model, [inputs])[0]
    got = build_and_run(tmp_path / "p", HOST, inputs).outputs[0]
    assert np.array_equal(got.reshape(expected.shape), expected)


def test_a_pad_with_another_reader_is_not_folded(tmp_path):
    model = read_model(_model(tmp_path / "m.tflite", 2, shared=True))
    assert 0 not in foldable_pads(model) and foldable_pads(model)  # the second PAD still folds


@needs_qemu
@pytest.mark.parametrize("kernels", ["portable", "cmsis-nn"])
def test_folded_pads_on_the_board(tmp_path, kernels):
    tree = os.environ.get("NLPOOL_CMSIS_NN_DIR")
    if kernels == "cmsis-nn" and not tree:
        pytest.skip("no CMSIS-NN tree (set NLPOOL_CMSIS_NN_DIR)")
    model = _model(tmp_path / "m.tflite", 3)
    generate_project(model, tmp_path / "p", 512 * 1024, cmsis_nn=find_cmsis_nn(tree) if kernels == "cmsis-nn" else None)
    inputs = np.random.default_rng(3).integers(-128, 128, size=(6, 1, 9, 8, 4), dtype=np.int8)
    expected = tflm_reference(model, [inputs])[0]
    board = build_and_run(tmp_path / "p", "cortex-m7", inputs)
    assert board.kernels == kernels
    assert np.array_equal(board.outputs[0].reshape(expected.shape), expected)
    assert [o.kernel for o in board.profile.ops][0::2] == ["folded", "folded"]
