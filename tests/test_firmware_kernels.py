"""Every AOT kernel against upstream TFLM, bit for bit, on randomised single-op int8 models.

Each case builds a tiny tf.function around one op with random shapes, strides, padding and weights,
converts it to a full-integer int8 model with random calibration ranges (so scales and zero points
vary), generates the AOT project, builds it for the host and compares every output byte with TFLM's
interpreter and reference kernels (the `tflite-micro` wheel: the arithmetic of the device, where
CMSIS-NN agrees with it). The host TFLite interpreter is checked too, within the per-op difference
docs/rounding.md documents. The weighted-pooling kernel is checked against the NumPy golden model of
docs/custom_op.md.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

import tensorflow as tf

from firmware.aot import generate_project
from firmware.aot.ops.weighted_pool import WeightedPoolParams
from firmware.run import build_and_run
from firmware.testing import convert, random_inputs, reference, tflm_reference

Case = Callable[[np.random.Generator], tuple[Callable, list[tuple[int, ...]]]]


def _w(rng: np.random.Generator, *shape: int) -> tf.Tensor:
    return tf.constant(rng.normal(0, rng.uniform(0.1, 1.0), size=shape).astype(np.float32))


def conv(k: int, stride: int, padding: str, dil: int, act: Callable | None, cin: int, cout: int, hw: tuple[int, int]) -> Case:
    def build(rng):
        w, b = _w(rng, k, k, cin, cout), _w(rng, cout)

        def fn(x):
            y = tf.nn.conv2d(x, w, stride, padding, dilations=dil) + b
            return act(y) if act else y

        return fn, [(1, *hw, cin)]

    return build


def depthwise(k: int, stride: int, padding: str, mult: int, cin: int, hw: tuple[int, int], dil: int = 1) -> Case:
    def build(rng):
        w, b = _w(rng, k, k, cin, mult), _w(rng, cin * mult)

        def fn(x):
            return tf.nn.relu6(tf.nn.depthwise_conv2d(x, w, [1, stride, stride, 1], padding, dilations=[dil, dil]) + b)

        return fn, [(1, *hw, cin)]

    return build


def dense(k: int, n: int, act: Callable | None, batch: int = 1) -> Case:
    def build(rng):
        w, b = _w(rng, k, n), _w(rng, n)

        def fn(x):
            y = tf.matmul(x, w) + b
            return act(y) if act else y

        return fn, [(batch, k)]

    return build


def binary(op: Callable, a: tuple[int, ...], b: tuple[int, ...]) -> Case:
    return lambda rng: (op, [a, b])


def unary(op: Callable, shape: tuple[int, ...]) -> Case:
    return lambda rng: (op, [shape])


CASES: dict[str, Case] = {
    "conv_3x3_s1_same_relu6": conv(3, 1, "SAME", 1, tf.nn.relu6, 3, 8, (9, 9)),
    "conv_3x3_s2_same": conv(3, 2, "SAME", 1, None, 4, 6, (10, 7)),
    "conv_1x1_valid_relu": conv(1, 1, "VALID", 1, tf.nn.relu, 16, 12, (5, 5)),
    "conv_5x5_s2_valid": conv(5, 2, "VALID", 1, None, 2, 5, (12, 11)),
    "conv_3x3_dilated": conv(3, 1, "SAME", 2, None, 3, 4, (8, 8)),
    "dw_3x3_s1_same": depthwise(3, 1, "SAME", 1, 8, (7, 7)),
    "dw_3x3_s2_same_mult2": depthwise(3, 2, "SAME", 2, 4, (9, 8)),
    "dw_5x5_valid": depthwise(5, 1, "VALID", 1, 6, (8, 9)),
    "dw_3x3_dilated": depthwise(3, 1, "SAME", 1, 4, (9, 9), dil=2),
    "fc_relu": dense(32, 10, tf.nn.relu),
    "fc_plain": dense(17, 5, None),
    "fc_wide_batched": dense(96, 64, None, batch=8),
    "relu_standalone": unary(lambda x: tf.nn.relu(x) * 0.5, (1, 6, 6, 3)),
    "relu6_standalone": unary(lambda x: tf.nn.relu6(x) * 0.5, (1, 6, 6, 3)),
    "add_same_shape": binary(tf.add, (1, 4, 5, 6), (1, 4, 5, 6)),
    "add_broadcast_relu": binary(lambda a, b: tf.nn.relu(a + b), (1, 4, 5, 6), (1, 1, 5, 6)),
    "mul_same_shape": binary(tf.multiply, (1, 3, 4, 8), (1, 3, 4, 8)),
    "mul_broadcast": binary(tf.multiply, (1, 6, 6, 4), (1, 1, 1, 4)),
    "avg_pool_2x2_valid": unary(lambda x: tf.nn.avg_pool2d(x, 2, 2, "VALID"), (1, 8, 9, 5)),
    "avg_pool_3x3_s2_same": unary(lambda x: tf.nn.avg_pool2d(x, 3, 2, "SAME"), (1, 9, 8, 4)),
    "max_pool_2x2_valid": unary(lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID"), (1, 8, 8, 3)),
    "max_pool_3x3_s2_same": unary(lambda x: tf.nn.max_pool2d(x, 3, 2, "SAME"), (1, 11, 10, 4)),
    "softmax_rows": unary(tf.nn.softmax, (1, 6, 13)),
    "softmax_wide": unary(tf.nn.softmax, (1, 100)),
    "logistic": unary(tf.sigmoid, (1, 5, 5, 7)),
    "mean_hw": unary(lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True), (1, 6, 7, 9)),
    "mean_hw_dropped": unary(lambda x: tf.reduce_mean(x, axis=[1, 2]), (2, 5, 4, 6)),  # Keras GlobalAveragePooling2D
    "hard_swish": unary(lambda x: x * tf.nn.relu6(x + 3.0) / 6.0, (1, 5, 6, 7)),  # fused into HARD_SWISH
    "transpose_0213": unary(lambda x: tf.transpose(x, [0, 2, 1, 3]), (1, 3, 5, 4)),
    "transpose_reshape": unary(lambda x: tf.reshape(tf.transpose(x, [0, 3, 1, 2]), (1, 4, 30)), (1, 5, 6, 4)),
    "strided_slice_step": unary(lambda x: x[:, 1:7:2, ::-1, 1:] * 1.0, (1, 8, 6, 5)),
    "strided_slice_shrink": unary(lambda x: x[:, 2, :, 1:3], (1, 4, 6, 5)),
    "slice": unary(lambda x: tf.nn.relu(tf.slice(x, [0, 1, 2, 0], [1, 3, -1, 3])), (1, 5, 6, 4)),
    "batch_matmul": binary(tf.matmul, (1, 2, 5, 7), (1, 2, 7, 3)),
    "batch_matmul_adj_y": binary(lambda a, b: tf.matmul(a, b, transpose_b=True), (2, 6, 4), (2, 5, 4)),
    "concat_requantize": binary(lambda a, b: tf.concat([a, b], axis=-1), (1, 4, 4, 3), (1, 4, 4, 5)),
    "resize_nearest_x2": unary(lambda x: tf.image.resize(x, (8, 10), method="nearest"), (1, 4, 5, 3)),
    "resize_nearest_align": unary(lambda x: tf.compat.v1.image.resize_nearest_neighbor(x, (7, 9), align_corners=True), (1, 4, 5, 3)),
    "resize_bilinear_half_pixel": unary(lambda x: tf.image.resize(x, (9, 7), method="bilinear"), (1, 4, 5, 3)),
    "resize_bilinear_align": unary(lambda x: tf.compat.v1.image.resize_bilinear(x, (7, 9), align_corners=True), (1, 4, 5, 3)),
    "pad": unary(lambda x: tf.pad(x, [[0, 0], [1, 2], [2, 1], [0, 0]]), (1, 4, 5, 3)),
}


def _run_case(tmp: Path, name: str, build: Case, seed: int, float_io: bool = False) -> tuple[int, list[str]]:
    rng = np.random.default_rng(seed)
    fn, shapes = build(rng)
    path = tmp / f"{name}.tflite"
    path.write_bytes(convert(fn, shapes, rng, float_io=float_io))
    inputs = random_inputs(path, rng)
    expected = tflm_reference(path, inputs)
    host_tflite = reference(path, inputs)
    info = generate_project(path, tmp / name, 512 * 1024)
    got = build_and_run(tmp / name, "host", inputs)
    tolerance = max((TFLITE_HOST_LSB.get(op, 0) for op in info.ops), default=0)
    for e, t, g in zip(expected, host_tflite, got.outputs, strict=True):
        assert g.shape == e.shape and g.dtype == e.dtype
        bad = int(np.count_nonzero(g != e))
        assert bad == 0, f"{name}: {bad} of {e.size} outputs differ from TFLM (ops {info.ops})"
        off = int(np.abs(g.astype(np.int64) - t.astype(np.int64)).max(initial=0))
        assert off <= tolerance, f"{name}: {off} LSB from the TFLite interpreter, documented {tolerance} (ops {info.ops})"
    return sum(e.size for e in expected), info.ops


# Largest difference (int8 steps) from the host TFLite interpreter's reference kernels, per op, as
# docs/rounding.md states: FULLY_CONNECTED rounds once there and twice in TFLM; a standalone RELU6
# is requantised there and only clamped in TFLM (any difference when the scales differ); SOFTMAX is a
# float exp table there and gemmlowp fixed point in TFLM (one LSB now and then), as is LOGISTIC (a
# float sigmoid table there, gemmlowp's fixed-point logistic in TFLM).
TFLITE_HOST_LSB = {"FULLY_CONNECTED": 1, "RELU6": 255, "SOFTMAX": 1, "LOGISTIC": 1}


# Arithmetic-heavy ops get a second random draw (other shapes' weights, scales, zero points).
SECOND_SEED = ("conv_3x3_s1_same_relu6", "conv_1x1_valid_relu", "dw_3x3_s2_same_mult2", "fc_wide_batched",
               "add_broadcast_relu", "mul_broadcast", "softmax_rows", "mean_hw", "batch_matmul", "logistic", "hard_swish")
RUNS = [(name, 0) for name in sorted(CASES)] + [(name, 1) for name in SECOND_SEED]


@pytest.mark.parametrize(("name", "draw"), RUNS)
def test_kernel_bitexact_vs_tflm(tmp_path: Path, name: str, draw: int) -> None:
    _, ops = _run_case(tmp_path, name, CASES[name], seed=sorted(CASES).index(name) + 1000 * draw)
    assert ops, "the converted model has no ops"


def test_float_io_quantize_dequantize(tmp_path: Path) -> None:
    """Float model inputs and outputs: QUANTIZE float->int8 and DEQUANTIZE at the edges.

    Documented bound: DEQUANTIZE's float result may differ from the interpreter's vectorised
    dequantisation by a few ulp (it does not compute scale * (q - zp) in that order); the int8
    values underneath are identical, so every output must lie within 4 ulp.
    """
    rng = np.random.default_rng(99)
    path = tmp_path / "float_io.tflite"
    path.write_bytes(convert(lambda x: tf.nn.avg_pool2d(x, 2, 2, "VALID"), [(1, 6, 6, 3)], rng, float_io=True))
    inputs = random_inputs(path, rng)
    expected = reference(path, inputs)[0]
    info = generate_project(path, tmp_path / "proj", 512 * 1024)
    got = build_and_run(tmp_path / "proj", "host", inputs).outputs[0]
    assert info.ops == ["QUANTIZE", "AVERAGE_POOL_2D", "DEQUANTIZE"]
    ulp = np.spacing(np.abs(expected).astype(np.float32))
    assert np.all(np.abs(got - expected) <= 4 * ulp)


@pytest.mark.parametrize("seed", range(16))
def test_logistic_table_is_tflm_for_every_input(tmp_path: Path, seed: int) -> None:
    """LOGISTIC's generation-time table equals TFLM's kernel on all 256 inputs (input scale over
    three decades, zero points anywhere, one-sided ranges included)."""
    from nlpool.core.fixedpoint import logistic_int8_table
    from nlpool.core.tflite import read_model

    rng = np.random.default_rng(300 + seed)
    mag = 10 ** rng.uniform(-1.5, 1.5)
    lo, hi = [(-rng.uniform(0, 1) * mag, rng.uniform(0.05, 1) * mag), (rng.uniform(0, 0.3) * mag, mag),
              (-mag, -rng.uniform(0, 0.3) * mag)][seed % 3]
    path = tmp_path / "logistic.tflite"
    path.write_bytes(convert(tf.sigmoid, [(1, 256)], rng, ranges=[(lo, hi)]))
    graph = read_model(path)
    t = graph.tensors[graph.inputs[0]]
    every = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256)
    expected = tflm_reference(path, [every])[0].reshape(-1)
    got = logistic_int8_table(t.scale, t.zero_point)
    differ = np.flatnonzero(got != expected) - 128
    assert differ.size == 0, f"scale {t.scale} zero point {t.zero_point}: inputs {differ} differ"


@pytest.mark.parametrize("seed", range(12))
def test_hard_swish_table_is_tflm_for_every_input(tmp_path: Path, seed: int) -> None:
    """HARD_SWISH's generation-time table equals TFLM's kernel on all 256 inputs (input scale over
    three decades, ranges around zero and one-sided); where TFLM's Prepare refuses the quantisation
    (output multiplier of 1 or more), the table refuses it too."""
    from firmware.aot.quant import hard_swish_int8_table
    from nlpool.core.tflite import read_model

    rng = np.random.default_rng(500 + seed)
    mag = 10 ** rng.uniform(-1.5, 1.5)
    lo, hi = [(-rng.uniform(0, 1) * mag, rng.uniform(0.05, 1) * mag), (rng.uniform(0, 0.3) * mag, mag),
              (-mag, -rng.uniform(0, 0.3) * mag)][seed % 3]
    path = tmp_path / "hard_swish.tflite"
    path.write_bytes(convert(lambda x: x * tf.nn.relu6(x + 3.0) / 6.0, [(1, 256)], rng, ranges=[(lo, hi)]))
    graph = read_model(path)
    assert [op.name for op in graph.operators] == ["HARD_SWISH"]
    t, o = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    every = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256)
    try:
        expected = tflm_reference(path, [every])[0].reshape(-1)
    except RuntimeError:  # TFLM's Prepare failed
        with pytest.raises(ValueError, match="HARD_SWISH"):
            hard_swish_int8_table(t.scale, t.zero_point, o.scale, o.zero_point)
        return
    got = hard_swish_int8_table(t.scale, t.zero_point, o.scale, o.zero_point)
    differ = np.flatnonzero(got != expected) - 128
    assert differ.size == 0, f"input {t.scale}/{t.zero_point} output {o.scale}/{o.zero_point}: inputs {differ} differ"


def test_unsupported_op_is_listed(tmp_path: Path) -> None:
    from nlpool.core.errors import NlpoolError

    rng = np.random.default_rng(5)
    path = tmp_path / "tanh.tflite"
    path.write_bytes(convert(lambda x: tf.tanh(x) + tf.nn.elu(x), [(1, 8)], rng))
    with pytest.raises(NlpoolError, match=r"no kernel for op \d \(ELU\), op \d \(TANH\)"):
        generate_project(path, tmp_path / "proj", 512 * 1024)
    assert not (tmp_path / "proj").exists()


# ---------------------------------------------------------------------------------------------
# NLPOOL_WEIGHTED_POOL: the C kernel against the NumPy golden model (export/golden.py).


_CTYPES = {"int32_t": ctypes.c_int32, "const int32_t *": ctypes.POINTER(ctypes.c_int32)}


class _WPParams(ctypes.Structure):
    """The C struct as the op unit declares it (the same list the firmware's initialiser uses)."""

    _fields_ = [(name, _CTYPES[ctype.spelling]) for name, ctype in WeightedPoolParams.c_fields()]


def test_weighted_pool_unit_matches_the_hand_written_header() -> None:
    """The op unit mirrors kernels/nlpool_weighted_pool.h (which the TFLM project shares) field for field."""
    header = (Path(__file__).resolve().parent.parent / "firmware" / "kernels" / "nlpool_weighted_pool.h").read_text()
    body = re.search(r"typedef struct \{(.*?)\} nlpool_weighted_pool_params_t;", header, re.S).group(1)
    declared = []
    for decl in filter(str.strip, re.sub(r"/\*.*?\*/", "", body, flags=re.S).split(";")):
        const, base, star, names = re.fullmatch(r"\s*(const )?(\w+)\s*(\*?)\s*(.*?)\s*", decl, re.S).groups()
        declared += [(name.strip(), f"{const or ''}{base}{' *' if star else ''}") for name in names.split(",")]
    unit = [(name, ctype.spelling.strip()) for name, ctype in WeightedPoolParams.c_fields()]
    assert declared == unit


@pytest.fixture(scope="module")
def weighted_pool_lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    src = Path(__file__).resolve().parent.parent / "firmware" / "kernels" / "nlpool_weighted_pool.c"
    lib = tmp_path_factory.mktemp("wp") / "libwp.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    dll = ctypes.CDLL(str(lib))
    dll.nlpool_weighted_pool.argtypes = [ctypes.POINTER(_WPParams), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    dll.nlpool_weighted_pool.restype = None
    return dll


@pytest.mark.parametrize("seed", range(12))
def test_weighted_pool_matches_golden(weighted_pool_lib: ctypes.CDLL, seed: int) -> None:
    golden = pytest.importorskip("export.golden")
    from nlpool.core.custom_ops import WeightedPoolParams

    rng = np.random.default_rng(1000 + seed)
    s = int(rng.choice([1, 2, 4, 8]))
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 9))
    h, w = s * int(rng.integers(1, 5)) + int(rng.integers(0, s)), s * int(rng.integers(1, 5)) + int(rng.integers(0, s))
    x_qp = (float(rng.uniform(0.005, 0.2)), int(rng.integers(-128, 128)))
    r_qp = (float(rng.uniform(0.005, 0.2)), int(rng.integers(-128, 128)))
    y_qp = (x_qp[0] * float(rng.uniform(0.3, 3.0)), int(rng.integers(-128, 128)))
    params = WeightedPoolParams.from_quantization((s, s), (s, s), x_qp, r_qp, y_qp)
    x = rng.integers(-128, 128, size=(n, h, w, c), dtype=np.int8)
    r = rng.integers(-128, 128, size=(n, h, w, c), dtype=np.int8)
    expected = golden.weighted_pool(params, x, r)
    table = np.asarray(params.table, np.int32)
    p = _WPParams(n, h, w, c, h // s, w // s, s, s, s, s, params.x_zero_point, params.out_zero_point,
                  params.out_multiplier, params.out_shift, table.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)))
    got = np.zeros(expected.shape, np.int8)
    weighted_pool_lib.nlpool_weighted_pool(ctypes.byref(p), x.ctypes.data, r.ctypes.data, got.ctypes.data)
    assert np.array_equal(got, expected), f"{np.count_nonzero(got != expected)} of {got.size} differ (s={s})"
