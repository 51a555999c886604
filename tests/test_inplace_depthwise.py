"""The in-place depthwise convolution: planned where it lowers the arena, run by its own kernel,
bit-exact with upstream TFLM, and the plan, the generated arena and the linker agree."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import tensorflow as tf

from firmware.aot import generate_project
from firmware.run import HOST, build_and_run
from firmware.testing import convert, tflm_reference
from memory_planner import plan_tflite
from nlpool.core.inplace import MAX_INPLACE_TAPS, inplace_depthwise_scratch

needs_qemu = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                                reason="arm-none-eabi-gcc and qemu-system-arm are needed")


def _model(path: Path, dilation: int, taps: int, seed: int) -> Path:
    """conv (3 -> 16 channels) -> depthwise (stride 1, SAME) -> conv (16 -> 4): the depthwise is the peak."""
    rng = np.random.default_rng(seed)
    w1 = tf.constant(rng.normal(0, 0.5, size=(1, 1, 3, 16)).astype(np.float32))
    dw = tf.constant(rng.normal(0, 0.5, size=(taps, taps, 16, 1)).astype(np.float32))
    b = tf.constant(rng.normal(0, 0.5, size=(16,)).astype(np.float32))
    w2 = tf.constant(rng.normal(0, 0.5, size=(1, 1, 16, 4)).astype(np.float32))

    def fn(x):
        f = tf.nn.conv2d(x, w1, 1, "SAME")
        d = tf.nn.relu6(tf.nn.depthwise_conv2d(f, dw, [1, 1, 1, 1], "SAME", dilations=[dilation, dilation]) + b)
        return tf.nn.conv2d(d, w2, 1, "SAME")

    path.write_bytes(convert(fn, [(1, 13, 11, 3)], rng))
    return path


@pytest.mark.parametrize(("dilation", "taps", "seed"), [(1, 3, 0), (2, 3, 1), (1, 5, 2)])
def test_peak_depthwise_runs_in_place_bitexact(tmp_path, dilation, taps, seed):
    model = _model(tmp_path / "m.tflite", dilation, taps, seed)
    plan = plan_tflite(model)
    (dw,) = [op for op in plan.graph.ops if op.kind == "DEPTHWISE_CONV_2D"]
    assert dw.inplace and (dw.index, dw.inputs[0], dw.outputs[0]) in plan.best.aliases
    pad = (taps - 1) * dilation
    assert plan.scratch_slots()[dw.index][1] == (13 + pad) * (11 + pad)  # one channel plane with its padding
    # without it the arena holds both 13x11x16 tensors: with it, one tensor and the padded plane
    assert plan.best.arena_bytes < plan_tflite(model, inplace=False).best.arena_bytes
    info = generate_project(model, tmp_path / "p", 512 * 1024, plan=plan)
    assert info.arena_bytes == plan.best.arena_bytes
    assert "nl_depthwise_conv2d_inplace(" in (tmp_path / "p" / "model.c").read_text()
    inputs = np.random.default_rng(seed).integers(-128, 128, size=(6, 1, 13, 11, 3), dtype=np.int8)
    expected = tflm_reference(model, [inputs])[0]
    got = build_and_run(tmp_path / "p", HOST, inputs).outputs[0]
    assert np.array_equal(got.reshape(expected.shape), expected)


@needs_qemu
def test_inplace_depthwise_on_the_board_and_the_linker_agree(tmp_path):
    model = _model(tmp_path / "m.tflite", 1, 3, 4)
    info = generate_project(model, tmp_path / "p", 512 * 1024)
    inputs = np.random.default_rng(4).integers(-128, 128, size=(4, 1, 13, 11, 3), dtype=np.int8)
    board = build_and_run(tmp_path / "p", "cortex-m7", inputs)
    expected = tflm_reference(model, [inputs])[0]
    assert np.array_equal(board.outputs[0].reshape(expected.shape), expected)
    assert board.arena_bytes == info.arena_bytes == plan_tflite(model).best.arena_bytes
    assert board.sram_used_bytes >= info.arena_bytes  # the linker placed the planned arena


def test_a_depthwise_off_the_peak_keeps_its_fast_kernel(tmp_path):
    """Stride 2 cannot run in place; a stride-1 depthwise whose step is not the peak is left alone."""
    rng = np.random.default_rng(9)
    dw = tf.constant(rng.normal(0, 0.5, size=(3, 3, 8, 1)).astype(np.float32))
    up = tf.constant(rng.normal(0, 0.5, size=(1, 1, 8, 64)).astype(np.float32))

    def fn(x):
        d = tf.nn.depthwise_conv2d(x, dw, [1, 1, 1, 1], "SAME")
        return tf.nn.conv2d(d, up, 1, "SAME")  # 8x more bytes out than in: the peak

    model = tmp_path / "m.tflite"
    model.write_bytes(convert(fn, [(1, 10, 10, 8)], rng))
    plan = plan_tflite(model)
    assert not any(op.inplace for op in plan.graph.ops)
    generate_project(model, tmp_path / "p", 512 * 1024, plan=plan)
    assert "nl_depthwise_conv2d_inplace(" not in (tmp_path / "p" / "model.c").read_text()


def test_the_contracts_tap_limit_is_the_kernels() -> None:
    """nlpool.core.inplace (read by the planner and the AOT generator) allows exactly the filters the C kernel's
    tap arrays hold; past the limit the convolution is planned and generated out of place."""
    source = (Path(__file__).resolve().parent.parent / "firmware" / "kernels" / "depthwise_conv2d_inplace.c").read_text()
    assert re.search(r"#define NL_DW_MAX_TAPS (\d+)", source).group(1) == str(MAX_INPLACE_TAPS)
    assert inplace_depthwise_scratch((5, 6), (5, 6), (8, 8), (1, 1), (1, 1)) == 12 * 13
    assert inplace_depthwise_scratch((5, 6), (5, 6), (9, 8), (1, 1), (1, 1)) == 0
