"""The custom op's golden integer model against the real-valued formula it stands for."""

from __future__ import annotations

import numpy as np
import pytest

from export.golden import weighted_pool
from nlpool.core.custom_ops import MAX_WINDOW_ELEMENTS, WeightedPoolParams, weight_table
from nlpool.core.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier


def float_reference(x_q, r_q, s, x_qp, r_qp, y_qp):
    """Quantised y of sum(pi * x) / sum(pi) per window, pi = exp(sigmoid(r)), computed in float64."""
    (sx, zx), (sr, zr), (sy, zy) = x_qp, r_qp, y_qp
    x = sx * (x_q.astype(np.float64) - zx)
    pi = np.exp(1.0 / (1.0 + np.exp(-sr * (r_q.astype(np.float64) - zr))))
    n, h, w, c = x.shape
    oh, ow = h // s, w // s
    x, pi = x[:, : oh * s, : ow * s], pi[:, : oh * s, : ow * s]
    num = (pi * x).reshape(n, oh, s, ow, s, c).sum(axis=(2, 4))
    den = pi.reshape(n, oh, s, ow, s, c).sum(axis=(2, 4))
    return np.clip(np.round(num / den / sy) + zy, -128, 127)


CASES = [
    # (stride, x (scale, zp), r (scale, zp), y (scale, zp))
    (2, (0.02, 0), (0.05, 3), (0.02, 0)),
    (2, (0.011, 52), (0.0063, 46), (0.0055, 67)),
    (2, (0.05, -128), (0.1, 127), (0.04, -128)),  # extreme zero points
    (2, (0.05, 127), (0.1, -128), (0.06, 127)),
    (4, (1e-4, -60), (1e-4, 0), (2e-4, 10)),  # tiny scales; r nearly constant
    (4, (8.0, 5), (2.0, -7), (4.0, -3)),  # large scales; sigmoid saturated
    (8, (0.03, 11), (0.5, 0), (0.007, -100)),  # 64-element window, y range narrower than x
    (3, (0.02, -3), (0.04, 9), (0.02, 4)),  # odd stride: trailing rows/columns dropped
]


@pytest.mark.parametrize(("stride", "x_qp", "r_qp", "y_qp"), CASES)
def test_golden_matches_float_formula_within_one_lsb(stride, x_qp, r_qp, y_qp):
    rng = np.random.default_rng(stride * 1000 + x_qp[1])
    shape = (2, 3 * stride + (1 if stride == 3 else 0), 2 * stride, 5)
    x_q = rng.integers(-128, 128, shape).astype(np.int8)
    r_q = rng.integers(-128, 128, shape).astype(np.int8)
    params = WeightedPoolParams.from_quantization((stride, stride), (stride, stride), x_qp, r_qp, y_qp)
    y = weighted_pool(params, x_q, r_q)
    expected = float_reference(x_q, r_q, stride, x_qp, r_qp, y_qp)
    assert y.shape == expected.shape and y.dtype == np.int8
    assert np.abs(y.astype(np.int32) - expected).max() <= 1


def test_table_follows_the_contract():
    table = weight_table(0.05, 3)
    assert table.shape == (256,) and table.dtype == np.int32
    q = np.arange(-128, 128)
    expected = np.round(np.exp(1 / (1 + np.exp(-0.05 * (q - 3)))) * 2**14)
    np.testing.assert_array_equal(table, expected)
    saturated = weight_table(100.0, 0)
    assert saturated.min() >= 16384 and saturated.max() <= 44536


def test_options_survive_the_flexbuffer_round_trip():
    params = WeightedPoolParams.from_quantization((2, 2), (2, 2), (0.011, 52), (0.0063, 46), (0.0055, 67))
    assert WeightedPoolParams.from_flexbuffer(params.to_flexbuffer()) == params


def test_constant_input_gives_that_constant():
    """Any weights average a constant window to itself: only the final requantisation rounds."""
    params = WeightedPoolParams.from_quantization((2, 2), (2, 2), (0.02, 5), (0.3, -2), (0.02, 5))
    x = np.full((1, 4, 4, 3), 37, np.int8)
    r = np.random.default_rng(0).integers(-128, 128, x.shape).astype(np.int8)
    assert (weighted_pool(params, x, r) == 37).all()


def test_requantisation_matches_tflite_rounding():
    multiplier, shift = quantize_multiplier(0.3)
    assert multiplier == round(0.6 * 2**31) and shift == -1
    values = np.array([-1000, -5, -3, 0, 3, 5, 1000, 2**20])
    got = multiply_by_quantized_multiplier(values, multiplier, shift)
    np.testing.assert_array_equal(got, [-300, -2, -1, 0, 1, 2, 300, round(0.3 * 2**20)])


def test_out_of_range_parameters_are_refused():
    with pytest.raises(ValueError, match="window"):
        WeightedPoolParams.from_quantization((9, 9), (9, 9), (0.1, 0), (0.1, 0), (0.1, 0))
    assert MAX_WINDOW_ELEMENTS == 64
    with pytest.raises(ValueError, match="fixed-point range"):
        WeightedPoolParams.from_quantization((2, 2), (2, 2), (1e-9, 0), (0.1, 0), (1.0, 0))


def test_quantize_multiplier_rounds_a_tie_away_from_zero_as_tflite_does():
    """(1 + 2^-20)(1 + 2^-11) / 2 has a Q31 mantissa of exactly ...5: TfLiteRound (std::round) goes up."""
    real = (1 + 2.0**-20) * (1 + 2.0**-11) / 2
    assert quantize_multiplier(real) == ((1 << 30) + (1 << 19) + (1 << 10) + 1, 0)
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0**-40) == (0, 0)  # every bit would be shifted out
    assert quantize_multiplier(2.0**40) == (2**31 - 1, 30)  # saturated: a larger left shift overflows int32
