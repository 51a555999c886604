"""nlpool's per-layer generated kernels (firmware/aot/codegen, firmware/kernels/generated).

- their fast requantisation equals TFLM's double rounding wherever the generator takes it;
- the affine form the generator finds for an ADD layer is TFLM's ADD on every int8 input pair,
  narrow clamps and constant outputs included;
- on MLPerf Tiny's IC model on Cortex-M4 every CONV_2D and ADD runs its generated kernel (the
  firmware's own profile says which kernel ran) and the outputs are TFLM's, bit for bit;
- ADDs and convolutions of odd shapes run their generated kernels on Cortex-M4 bit-exact with TFLM
  (every assembly block and the C remainders), a broadcasting ADD stays on the portable kernel;
- the FULLY_CONNECTED kernel's packed weight words give exact sums wherever the generator packs them,
  and single-layer FULLY_CONNECTED / AVERAGE_POOL_2D models (odd sizes, batch 2, SAME padding, per-tensor
  and per-channel weights, packed and unpacked) run their generated kernels on Cortex-M4 bit-exact with TFLM;
- their plain-C path (the host build with GENERATED=all) gives the same bytes as the portable kernels;
- the Helium (MVE) kernels' vector requantisation is TFLM's for every multiplier and shift; on Cortex-M55
  (QEMU mps3-an547) IC's convolutions and a depthwise run in place over its input run them (the
  firmware's profile says so), bit-exact with TFLM, in the arena the plan gave the CMSIS-NN build.

Instruction counts are not asserted here: benchmarks/generated_kernels.py measures them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import IC_MODEL, VWW_MODEL, mlperf_model

from firmware.aot import CmsisNn, generate_project
from firmware.aot.codegen.add import affine_add, tflm_add
from firmware.aot.codegen.constants import constant_channels, input_ranges
from firmware.aot.codegen.fully_connected import fully_connected_kernel
from firmware.aot.codegen.mve_quant import mve_quant_table
from firmware.aot.codegen.requant import ACC_LIMIT, quant_table
from firmware.aot.ops.add import LEFT_SHIFT, AddParams
from firmware.aot.ops.fully_connected import FullyConnectedParams
from firmware.run import HOST, build_and_run, check_tools
from nlpool.core.errors import NlpoolError
from nlpool.core.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier


def _fast_requant(acc: np.ndarray, mult: int, right: int, round_term: int) -> np.ndarray:
    """nlg_requant's fast form (the zero point in the rounding term, saturated to int8), in exact integer arithmetic."""
    twice = 2 * acc.astype(np.int64)
    x = ((twice * mult + (1 << 31)) >> 32) + round_term
    return np.clip((x + np.where(twice < 0, -1, 0)) >> right, -128, 127)


def test_fast_requantisation_is_tflms_where_the_generator_takes_it() -> None:
    rng = np.random.default_rng(24)
    checked = 0
    for _ in range(300):
        taps = int(rng.integers(1, 600))
        weights = rng.integers(-128, 128, size=(1, taps)).astype(np.int8)
        mult = int(rng.integers(1 << 30, (1 << 31) - 1))
        shift = -int(rng.integers(0, 33))
        zero_point = int(rng.integers(-128, 128))
        table, fast = quant_table(weights, np.array([int(rng.integers(-(1 << 20), 1 << 20))]), int(rng.integers(-127, 129)),
                                  np.array([mult]), np.array([shift]), zero_point)
        assert not fast or 1 <= -shift <= 31
        if not fast:
            continue
        _, m, right, round_term = (int(v) for v in table[0])
        acc = np.concatenate([rng.integers(-ACC_LIMIT + 1, ACC_LIMIT, size=2000), np.arange(-3000, 3000),
                              [ACC_LIMIT - 1, -ACC_LIMIT + 1]]).astype(np.int64)
        want = np.clip(multiply_by_quantized_multiplier(acc.astype(np.int32), m, shift).astype(np.int64) + zero_point, -128, 127)
        np.testing.assert_array_equal(_fast_requant(acc, m, right, round_term), want)
        checked += 1
    assert checked > 150


def test_channels_proved_constant_hold_their_value_for_every_input() -> None:
    """A 1x1 layer of 4 inputs and 4 channels: two dead ReLU channels (bias far below zero), one with zero
    weights, one that varies. The claim is checked on 20,000 random inputs and on the 16 corners of the
    input box, where a linear accumulator takes its extremes."""
    rng = np.random.default_rng(3)
    weights = np.array([[[40, -30, 20, 10]], [[0, 0, 0, 0]], [[40, -30, 20, 10]], [[1, 1, 1, 1]]], np.int8)
    bias = np.array([-900_000, 1234, 500, -100_000], np.int32)
    mults, shifts = np.full(4, 1_500_000_000), np.array([-10, -10, -10, -3])
    zp_in, zp_out, lo, hi = -5, -128, -128, 127
    x_lo, x_hi = input_ranges(4, -zp_in, {}, padded=False)
    found = constant_channels(weights, x_lo, x_hi, bias, mults, shifts, zp_out, lo, hi)
    assert set(found) == {0, 1, 3} and found[0] == found[3] == -128
    corners = np.array(np.meshgrid(*[[-128, 127]] * 4)).reshape(4, -1).T
    inputs = np.concatenate([rng.integers(-128, 128, size=(20_000, 4)), corners])
    acc = bias[None, :].astype(np.int64) + (inputs - zp_in) @ weights[:, 0, :].T.astype(np.int64)
    for channel, value in found.items():
        out = np.clip(multiply_by_quantized_multiplier(acc[:, channel].astype(np.int32), int(mults[channel]), int(shifts[channel]))
                      + zp_out, lo, hi)
        assert (out == value).all()
    varying = np.clip(multiply_by_quantized_multiplier(acc[:, 2].astype(np.int32), int(mults[2]), -10) + zp_out, lo, hi)
    assert len(set(varying.tolist())) > 1


def _add_params(rng: np.random.Generator) -> AddParams:
    """A random ADD layer as TFLite's Prepare makes it: scales over three decades, any zero points,
    no activation, ReLU (from the output zero point) or a narrow clamp like ReLU6 on a wide output range."""
    scale_a, scale_b = 10 ** rng.uniform(-3, 0, size=2)
    scale_out = max(scale_a, scale_b) * 10 ** rng.uniform(-0.5, 1.5)
    zp_a, zp_b, zp_out = (int(v) for v in rng.integers(-128, 128, size=3))
    twice_max = 2 * max(scale_a, scale_b)
    m1, s1 = quantize_multiplier(scale_a / twice_max)
    m2, s2 = quantize_multiplier(scale_b / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << LEFT_SHIFT) * scale_out))
    act_min, act_max = [(-128, 127), (zp_out, 127), (zp_out, min(127, zp_out + int(rng.integers(1, 120))))][int(rng.integers(0, 3))]
    dims = (1, 1, 1, 1, 1, 1)
    return AddParams(out_dims=dims, in1_strides=dims, in2_strides=dims, in1_offset=-zp_a, in2_offset=-zp_b, output_offset=zp_out,
                     left_shift=LEFT_SHIFT, in1_mult=m1, in1_shift=s1, in2_mult=m2, in2_shift=s2, out_mult=mo, out_shift=so,
                     act_min=act_min, act_max=act_max)


def test_affine_add_is_tflms_add_on_every_input_pair() -> None:
    """The kernel computes clamp(floor((A a + B b + C) / 2^k)) in int32 (SSAT, then the clamp): here in
    exact integers, against TFLM's three double-rounding rescales, on all 65,536 pairs of each layer."""
    rng = np.random.default_rng(11)
    grid = np.arange(-128, 128, dtype=np.int64)
    a, b = (v.reshape(-1) for v in np.meshgrid(grid, grid, indexing="ij"))
    found = 0
    for _ in range(40):
        p = _add_params(rng)
        form = affine_add(p)
        if form is None:
            continue
        total = form.a_mult * a + form.b_mult * b + form.constant
        assert total.min() >= -(1 << 31) and total.max() < 1 << 31
        got = np.clip(np.clip(total >> form.shift, -128, 127), p.act_min, p.act_max)
        np.testing.assert_array_equal(got, tflm_add(p, a, b))
        found += 1
    assert found >= 38  # a layer without a form keeps CMSIS-NN: allowed, but rare


def _cmsis_nn_tree() -> CmsisNn:
    from firmware.aot.cmsis_nn import find_cmsis_nn

    tree = find_cmsis_nn(None)
    if tree is None:
        pytest.skip("set NLPOOL_CMSIS_NN_DIR: the 3x3 layers borrow CMSIS-NN's planned scratch")
    return tree


def _inputs(n: int) -> np.ndarray:
    return np.random.default_rng(5).integers(-128, 128, size=(n, 1, 32, 32, 3), dtype=np.int8)


def test_ic_on_cortex_m4_runs_generated_convolutions_and_adds_bitexact_with_tflm(tmp_path) -> None:
    from firmware.testing import tflm_reference

    model = mlperf_model(IC_MODEL)
    try:
        check_tools("cortex-m4")
    except NlpoolError as exc:
        pytest.skip(str(exc))
    info = generate_project(model, tmp_path / "ic", 256 * 1024, "cortex-m4", cmsis_nn=_cmsis_nn_tree())
    assert [k for op, k in zip(info.ops, info.op_kernels, strict=True) if op in ("CONV_2D", "ADD")] == ["generated"] * 12
    inputs = _inputs(3)
    board = build_and_run(tmp_path / "ic", "cortex-m4", inputs)
    assert board.profile is not None
    ran = {(o.op, o.kernel) for o in board.profile.ops}
    assert {("CONV_2D", "generated"), ("ADD", "generated")} <= ran
    assert not any(op in ("CONV_2D", "ADD") and k != "generated" for op, k in ran)
    np.testing.assert_array_equal(board.outputs[0], tflm_reference(model, [inputs])[0])
    np.testing.assert_array_equal(board.outputs[0], build_and_run(tmp_path / "ic", HOST, inputs).outputs[0])
    portable = build_and_run(tmp_path / "ic", "cortex-m4", inputs, portable=True)
    assert portable.profile is not None and {o.kernel for o in portable.profile.ops} <= {"portable", "folded"}


@pytest.mark.parametrize("path", [IC_MODEL, VWW_MODEL], ids=["ic", "vww"])
def test_generated_kernels_plain_c_path_on_the_host(tmp_path, monkeypatch, path) -> None:
    model = mlperf_model(path)
    generate_project(model, tmp_path / "p", 512 * 1024, "cortex-m4", cmsis_nn=_cmsis_nn_tree())
    shape = (2, 1, 32, 32, 3) if path == IC_MODEL else (2, 1, 96, 96, 3)
    inputs = np.random.default_rng(7).integers(-128, 128, size=shape, dtype=np.int8)
    portable = build_and_run(tmp_path / "p", HOST, inputs).outputs[0]
    (tmp_path / "p" / "build").rename(tmp_path / "portable-build")
    monkeypatch.setenv("GENERATED", "all")  # make reads it: nlpool_generated.c's plain-C path on the host
    generated = build_and_run(tmp_path / "p", HOST, inputs).outputs[0]
    np.testing.assert_array_equal(generated, portable)


def _saturate(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -(1 << 31), (1 << 31) - 1)


def _mve_requant(acc: np.ndarray, mult: int, left: int, neg_right: int) -> np.ndarray:
    """nlg_mve_requant's instructions on one lane, as the Armv8.1-M manual defines them, in exact integers:
    VSHL by register (wraps), VQRDMULH, VAND + VSHR #31 + VQADD (the fix-up), VRSHL by a negative count."""
    x = acc.astype(np.int64) << left
    x = ((x + (1 << 31)) % (1 << 32)) - (1 << 31)  # the 32-bit lane keeps the low bits
    x = _saturate((2 * x * mult + (1 << 31)) >> 32)  # VQRDMULH
    fixup = np.where((x & neg_right) < 0, -1, 0)  # the sign bit of x AND minus the right shift
    x = _saturate(x + fixup)
    right = -neg_right
    return (x + (1 << (right - 1))) >> right if right else x


def test_mve_requantisation_is_tflms_for_every_multiplier_and_shift() -> None:
    """The vector form needs no proof per layer (unlike the DSP kernels' fast form): it is checked here for
    left and right shifts, accumulators over the whole int32 range (that TFLM's left shift keeps in it)
    and the rounding ties."""
    rng = np.random.default_rng(55)
    for _ in range(400):
        mult = int(rng.integers(1 << 30, (1 << 31) - 1))
        shift = int(rng.integers(-31, 8))
        table, any_left = mve_quant_table(np.zeros(4, np.int64), None, 0, np.full(4, mult), np.full(4, shift))
        _, m, left, neg_right = (int(v) for v in table.reshape(4, 4)[:, 0])
        assert any_left == (shift > 0)
        acc = np.concatenate([rng.integers(-(1 << 31), 1 << 31, size=3000), np.arange(-4096, 4096),
                              [-(1 << 31), (1 << 31) - 1, -(1 << 31) + 1]]).astype(np.int32)
        if right := -neg_right:  # ties of the right shift: x = (2k + 1) 2^(right-1) after the multiply
            acc = np.concatenate([acc, ((2 * rng.integers(-1000, 1000, size=200) + 1) << (right - 1)).astype(np.int32)])
        acc = acc[(acc.astype(np.int64) << left >= -(1 << 31)) & (acc.astype(np.int64) << left < 1 << 31)]  # TFLM's domain
        want = multiply_by_quantized_multiplier(acc, m, shift).astype(np.int64)
        np.testing.assert_array_equal(_mve_requant(acc, m, left, neg_right), want)


def _needs_m55() -> None:
    try:
        check_tools("cortex-m55")
    except NlpoolError as exc:
        pytest.skip(str(exc))


def test_ic_on_cortex_m55_runs_generated_mve_convolutions_bitexact_with_tflm(tmp_path) -> None:
    """3x3 (window copied to the scratch) and 1x1 layers, strides 1 and 2; CMSIS-NN's MVE kernels are the fallback."""
    from firmware.testing import tflm_reference

    model = mlperf_model(IC_MODEL)
    _needs_m55()
    info = generate_project(model, tmp_path / "ic", 256 * 1024, "cortex-m55", cmsis_nn=_cmsis_nn_tree())
    assert [k for op, k in zip(info.ops, info.mve_op_kernels, strict=True) if op == "CONV_2D"] == ["generated"] * 9
    inputs = _inputs(3)
    board = build_and_run(tmp_path / "ic", "cortex-m55", inputs)
    assert board.profile is not None
    assert [o.kernel for o in board.profile.ops] == info.mve_op_kernels
    np.testing.assert_array_equal(board.outputs[0], tflm_reference(model, [inputs])[0])


def _peak_depthwise_model(path, dilation: int, taps: int):
    """conv 1x1 (3 -> 8) -> depthwise stride 1 SAME (the peak: run in place) -> depthwise stride 2 VALID
    -> conv 3x3 (8 -> 4): tall enough that the MVE kernel's ring of rows fits the in-place plane."""
    tf = pytest.importorskip("tensorflow")
    from firmware.testing import convert

    rng = np.random.default_rng(taps + dilation)
    w1 = tf.constant(rng.normal(0, 0.5, size=(1, 1, 3, 8)).astype(np.float32))
    dw = tf.constant(rng.normal(0, 0.5, size=(taps, taps, 8, 1)).astype(np.float32))
    dw2 = tf.constant(rng.normal(0, 0.5, size=(3, 3, 8, 1)).astype(np.float32))
    b = tf.constant(rng.normal(0, 0.5, size=(8,)).astype(np.float32))
    w2 = tf.constant(rng.normal(0, 0.5, size=(3, 3, 8, 4)).astype(np.float32))

    def fn(x):
        f = tf.nn.conv2d(x, w1, 1, "SAME")
        d = tf.nn.relu6(tf.nn.depthwise_conv2d(f, dw, [1, 1, 1, 1], "SAME", dilations=[dilation, dilation]) + b)
        d = tf.nn.depthwise_conv2d(d, dw2, [1, 2, 2, 1], "VALID")
        return tf.nn.conv2d(d, w2, 1, "SAME")

    path.write_bytes(convert(fn, [(1, 40, 12, 3)], rng))
    return path


@pytest.mark.parametrize(("dilation", "taps"), [(1, 3), (2, 3)])
def test_inplace_depthwise_on_cortex_m55_runs_generated_mve_bitexact_with_tflm(tmp_path, dilation, taps) -> None:
    from firmware.testing import tflm_reference
    from memory_planner import plan_tflite

    _needs_m55()
    model = _peak_depthwise_model(tmp_path / "m.tflite", dilation, taps)
    plan = plan_tflite(model)
    inplace = [op.index for op in plan.graph.ops if op.inplace]
    assert len(inplace) == 1
    info = generate_project(model, tmp_path / "p", 256 * 1024, "cortex-m55", plan=plan)
    assert info.arena_bytes == plan.best.arena_bytes
    assert "generated" in info.mve_op_kernels and info.mve_op_kernels[inplace[0]] == "generated"
    assert info.op_kernels[inplace[0]] == "portable"  # a DSP core runs the portable in-place kernel there
    inputs = np.random.default_rng(dilation).integers(-128, 128, size=(4, 1, 40, 12, 3), dtype=np.int8)
    board = build_and_run(tmp_path / "p", "cortex-m55", inputs)
    assert board.profile is not None
    assert [o.kernel for o in board.profile.ops] == info.mve_op_kernels
    np.testing.assert_array_equal(board.outputs[0], tflm_reference(model, [inputs])[0])


def test_odd_adds_and_convolutions_run_generated_on_cortex_m4_bitexact_with_tflm(tmp_path) -> None:
    """Odd shapes through each generated path on QEMU M4, bit for bit with TFLM:
    - three same-shape ADDs of 140 elements (not a multiple of the kernel's 8-element unroll): none,
      ReLU and ReLU6 fused, each input with its own scale and zero point; a broadcasting ADD stays on
      the portable kernel (CMSIS-NN does not broadcast either);
    - 3x3 convolutions over 4 channels (9 groups of 4 taps: one before the assembly loop), 7 columns
      (a last single pixel), padded windows copied a word per tap, a dilated one, odd channel counts;
    - 1x1 convolutions over 4 and 12 channels (1 and 3 groups, stride 1 and 2): the direct tile."""
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    from firmware.testing import convert, tflm_reference

    try:
        check_tools("cortex-m4")
    except NlpoolError as exc:
        pytest.skip(str(exc))
    rng = np.random.default_rng(13)
    w = {name: tf.constant(rng.normal(0, 0.3, size=shape).astype(np.float32)) for name, shape in
         {"c3": (3, 3, 4, 5), "dil": (3, 3, 4, 3), "c12": (3, 3, 4, 12), "p12": (1, 1, 12, 3), "p4": (1, 1, 4, 7)}.items()}

    def fn(x, y, z):
        s = x + y
        c12 = tf.nn.relu(tf.nn.conv2d(s, w["c12"], 1, "SAME"))
        return (s, tf.nn.relu(s + x), tf.nn.relu6(y + z), x + z[:, :1, :1, :], tf.nn.conv2d(s, w["c3"], 1, "SAME"),
                tf.nn.conv2d(x, w["dil"], 1, "SAME", dilations=2), tf.nn.conv2d(c12, w["p12"], 2, "VALID"),
                tf.nn.conv2d(y, w["p4"], 1, "VALID"))

    shape = (1, 5, 7, 4)
    model = tmp_path / "odd.tflite"
    model.write_bytes(convert(fn, [shape] * 3, rng, ranges=[(-1.0, 3.0), (-0.05, 0.02), (0.0, 9.0)]))
    info = generate_project(model, tmp_path / "p", 64 * 1024, "cortex-m4", cmsis_nn=_cmsis_nn_tree())
    want_kernels = {"ADD": ["generated"] * 3 + ["portable"], "CONV_2D": ["generated"] * 5}
    assert {op: sorted(k for o, k in zip(info.ops, info.op_kernels, strict=True) if o == op) for op in want_kernels} == want_kernels
    inputs = [rng.integers(-128, 128, size=(4, *shape), dtype=np.int8) for _ in range(3)]
    board = build_and_run(tmp_path / "p", "cortex-m4", inputs)
    assert board.profile is not None
    assert {op: sorted(o.kernel for o in board.profile.ops if o.op == op) for op in want_kernels} == want_kernels
    for got, want in zip(board.outputs, tflm_reference(model, inputs), strict=True):
        np.testing.assert_array_equal(got, want)


def _fc_params(weights: np.ndarray) -> FullyConnectedParams:
    rows, k = weights.shape
    return FullyConnectedParams(batches=1, accum_depth=k, out_depth=rows, per_channel=1, input_offset=3, filter_offset=0,
                                output_offset=-5, act_min=-128, act_max=127, filter=weights.reshape(-1), bias=None,
                                out_mult=np.full(rows, 1 << 30), out_shift=np.full(rows, -9), kernel_sums=None)


def _fc_call_args(call: str) -> list[str]:
    """The literal arguments of a generated nlg_fc call (in, out, w, q, batches, k, kw, rows, group, packed, ...)."""
    return call[call.index("(") + 1:call.rindex(")")].split(", ")


def _fc_kernel_sums(weights: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, bool]:
    """(samples, rows) sums as nlg_fc computes them from the generated weight words (32-bit wrapping
    SMLADs, a packed pair's second row as (A - B) >> 8), and whether the layer was packed."""
    kernel = fully_connected_kernel(_fc_params(weights), 0)
    assert kernel is not None
    rows, k = weights.shape
    args = _fc_call_args(kernel.call)
    kw, group, packed = int(args[6]), int(args[8]), args[9] == "1"
    words = dict((suffix, v) for _, suffix, v in kernel.arrays)["w"].astype(np.uint32)
    xp = np.zeros((x.shape[0], 4 * kw), np.int64)
    xp[:, :k] = x
    raw = words.view(np.int16).astype(np.int64).reshape(-1, 2)  # each word's (low, high) int16 halves
    word_bytes = words.view(np.int8).astype(np.int64).reshape(-1, 4)
    sx, sx_hi = word_bytes[:, [0, 2]], word_bytes[:, [1, 3]]  # SXTB16 and SXTB16 ROR 8
    sums, at = np.zeros((x.shape[0], rows + rows % 2), np.int64), 0
    for first in range(0, rows, 2 * group):
        pairs = min(group, (rows - first + 1) // 2)
        a = np.zeros((x.shape[0], pairs), np.int64)
        b = np.zeros((x.shape[0], pairs), np.int64)
        for g in range(kw):
            x02, x13 = xp[:, [4 * g, 4 * g + 2]], xp[:, [4 * g + 1, 4 * g + 3]]
            for p in range(pairs):
                w0, w1 = at, at + 1
                if packed:
                    a[:, p] += x02 @ raw[w0] + x13 @ raw[w1]
                    b[:, p] += x02 @ sx[w0] + x13 @ sx[w1]
                else:
                    b[:, p] += x02 @ sx[w0] + x13 @ sx_hi[w0]
                    a[:, p] += x02 @ sx[w1] + x13 @ sx_hi[w1]
                at += 2
        for p in range(pairs):
            wrap = ((a[:, p] - b[:, p]) + (1 << 31)) % (1 << 32) - (1 << 31)
            sums[:, first + 2 * p] = b[:, p]
            sums[:, first + 2 * p + 1] = wrap >> 8 if packed else a[:, p]
    return sums[:, :rows], packed


def test_fully_connected_weight_words_give_exact_sums() -> None:
    """Random layers (packed), one with a -128 that packing cannot hold and one whose sums reach 2^23
    (both unpacked), against w @ x on random inputs and on the inputs that maximise each row's |sum|."""
    rng = np.random.default_rng(11)
    random_layer = rng.integers(-127, 128, size=(11, 37)).astype(np.int8)
    minus_128 = rng.integers(-127, 128, size=(5, 9)).astype(np.int8)
    minus_128[0, 4], minus_128[1, 4] = -3, -128
    large = np.where(rng.random((4, 640)) < 0.5, -127, 127).astype(np.int8)
    for weights, want_packed in [(random_layer, True), (minus_128, False), (large, False)]:
        signs = np.sign(weights.astype(np.int64))
        x = np.concatenate([rng.integers(-128, 128, size=(200, weights.shape[1])), -128 * signs, 127 * signs,
                            np.full((1, weights.shape[1]), -128)])
        sums, packed = _fc_kernel_sums(weights, x)
        assert packed == want_packed
        np.testing.assert_array_equal(sums, x @ weights.T.astype(np.int64))


def _fc_pool_model(tmp_path, per_tensor: bool) -> tuple[Path, list[np.ndarray]]:
    """Side by side: FULLY_CONNECTED layers of odd sizes (every last pass: rows % 6 of 1, 4, 5 and 0 where packed,
    rows % 4 of 0 where not; inputs % 4 of 1, 2, 3; batch 2; a 4-byte input; large weights of one magnitude,
    which the kernel cannot pack) and
    AVERAGE_POOL_2D (KWS's 25x5 window over 64 channels, SAME windows on 13 and 12 channels, batch 2,
    and a 17x16 window of 272 taps, which stays on CMSIS-NN)."""
    import tensorflow as tf

    from firmware.testing import convert

    rng = np.random.default_rng(13 + per_tensor)
    fcs = [(1, 37, 13), (2, 30, 6), (1, 7, 7), (1, 3, 5), (1, 4, 10), (1, 640, 8)]
    pools = [((1, 25, 5, 64), (25, 5), (1, 1), "VALID"), ((2, 7, 9, 13), (3, 3), (2, 2), "SAME"),
             ((1, 6, 6, 12), (2, 3), (1, 2), "SAME"), ((1, 17, 16, 4), (17, 16), (1, 1), "VALID")]
    weights = [rng.normal(0, 0.3, size=(k, n)).astype(np.float32) for _, k, n in fcs[:-1]]
    weights.append(np.where(rng.random((640, 8)) < 0.5, -1.0, 1.0).astype(np.float32))
    biases = [rng.normal(0, 0.3, size=n).astype(np.float32) for _, _, n in fcs]

    def fn(*xs):
        out = [tf.nn.relu(tf.matmul(x, tf.constant(w)) + tf.constant(b)) for x, w, b in zip(xs[:len(fcs)], weights, biases, strict=True)]
        return (*out, *(tf.nn.avg_pool2d(x, k, s, pad) for x, (_, k, s, pad) in zip(xs[len(fcs):], pools, strict=True)))

    shapes = [(b, k) for b, k, _ in fcs] + [shape for shape, *_ in pools]
    path = tmp_path / "fc_pool.tflite"
    path.write_bytes(convert(fn, shapes, rng, per_tensor_dense=per_tensor))
    return path, [rng.integers(-128, 128, size=(2, *shape), dtype=np.int8) for shape in shapes]


@pytest.mark.parametrize("per_tensor", [False, True], ids=["per-channel", "per-tensor"])
def test_fully_connected_and_average_pool_generated_on_cortex_m4_bitexact_with_tflm(tmp_path, monkeypatch, per_tensor) -> None:
    from firmware.testing import tflm_reference
    from nlpool.core.tflite import read_model

    try:
        check_tools("cortex-m4")
    except NlpoolError as exc:
        pytest.skip(str(exc))
    path, inputs = _fc_pool_model(tmp_path, per_tensor)
    model = read_model(path)
    assert {model.tensors[op.inputs[1]].scales.size > 1 for op in model.operators if op.name == "FULLY_CONNECTED"} == {not per_tensor}
    info = generate_project(path, tmp_path / "p", 256 * 1024, "cortex-m4", cmsis_nn=_cmsis_nn_tree())
    want_kernels = ["generated"] * 9 + ["cmsis-nn"]  # the 272-tap window is over the kernel's int16 sums
    assert [k for op, k in zip(info.ops, info.op_kernels, strict=True) if op in ("FULLY_CONNECTED", "AVERAGE_POOL_2D")] == want_kernels
    calls = [_fc_call_args(line) for line in (tmp_path / "p" / "kernels" / "nl_generated.c").read_text().splitlines()
             if line.strip().startswith("nlg_fc(")]
    assert [c[9] for c in calls] == ["1"] * 5 + ["0"]  # packed pairs, but not the 640 weights of one magnitude
    board = build_and_run(tmp_path / "p", "cortex-m4", inputs)
    assert board.profile is not None
    ran = [(o.op, o.kernel) for o in board.profile.ops if o.op in ("FULLY_CONNECTED", "AVERAGE_POOL_2D")]
    assert sorted(ran) == sorted(zip(["FULLY_CONNECTED"] * 6 + ["AVERAGE_POOL_2D"] * 4, want_kernels, strict=True))
    want = tflm_reference(path, inputs)
    for got, expected in zip(board.outputs, want, strict=True):
        np.testing.assert_array_equal(got.reshape(expected.shape), expected)
    if not per_tensor:  # the templates' plain-C path (GENERATED=all on the host) computes the same bytes
        monkeypatch.setenv("GENERATED", "all")
        for got, expected in zip(build_and_run(tmp_path / "p", HOST, inputs).outputs, want, strict=True):
            np.testing.assert_array_equal(got.reshape(expected.shape), expected)
