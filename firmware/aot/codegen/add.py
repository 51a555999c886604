"""ADD as a generated kernel (template firmware/kernels/generated/nlg_add.h): TFLM's arithmetic as one
affine form per layer, proved equal on every input pair.

TFLM's int8 ADD rescales each input (shifted left 20 bits) to twice the larger input scale with a
double-rounding multiply, adds, and requantises the sum with a third one: three multiplies with
rounding fix-ups per element (CMSIS-NN's kernel: about 80 instructions on Cortex-M4). Its output is
a function of the two int8 inputs alone, so the generator looks for integers (A, B, C, k) with

    y(a, b) = clamp(floor((A a + B b + C) / 2^k), act_min, act_max)

and checks the claim on all 65,536 input pairs against TFLM's arithmetic (nlpool.core.fixedpoint,
what nl_add and the golden model compute): an exhaustive proof, as the inputs are int8. The kernel is
then two multiply-accumulates and an SSAT with its shift per element. The three roundings make the
true function only nearly affine; the search tries slopes next to the real-valued ones (each input's
scale over the output's) at growing precision k and takes the first (A, B) for which some C meets
every pair's two bounds, with A a + B b + C inside int32 for every pair. A layer for which none is
found (or whose inputs broadcast) keeps CMSIS-NN's kernel or the portable one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.aot.codegen.kernel import GeneratedKernel
from firmware.aot.ops.add import AddParams
from firmware.aot.ops.common import row_major_strides
from nlpool.core.fixedpoint import multiply_by_quantized_multiplier

MAX_PRECISION = 30  # k: beyond it A a + B b + C leaves int32 for any slope that moves the output
SLOPE_RADIUS = 4  # candidates A0 - 4 .. A0 + 4 around the rounded real slope (likewise B)
INT32_LIMIT = 1 << 31
MAX_FULL_CHECKS = 64  # every layer measured needs at most 9; a layer without a form would try thousands (seconds)
SAMPLE_STEP = 61  # the first sample: every 61st pair (61 is prime to 256, so it walks across both inputs)


@dataclass(frozen=True)
class AffineAdd:
    """y = clamp(floor((a_mult a + b_mult b + constant) / 2^shift)) for int8 a, b: exact for this layer."""

    a_mult: int
    b_mult: int
    constant: int
    shift: int


def tflm_add(p: AddParams, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLM's int8 ADD of same-shape inputs, to the bit (nl_add's add_one over arrays)."""
    left = 1 << p.left_shift
    scaled_a = multiply_by_quantized_multiplier((a.astype(np.int64) + p.in1_offset) * left, p.in1_mult, p.in1_shift)
    scaled_b = multiply_by_quantized_multiplier((b.astype(np.int64) + p.in2_offset) * left, p.in2_mult, p.in2_shift)
    total = multiply_by_quantized_multiplier(scaled_a + scaled_b, p.out_mult, p.out_shift) + p.output_offset
    return np.clip(total, p.act_min, p.act_max)


def affine_add(p: AddParams) -> AffineAdd | None:
    """The layer's affine form, None where the search finds none (the caller keeps the other kernels)."""
    grid = np.arange(-128, 128, dtype=np.int64)
    a, b = (v.reshape(-1) for v in np.meshgrid(grid, grid, indexing="ij"))
    pairs = _Pairs(a, b, tflm_add(p, a, b), p.act_min, p.act_max)
    if (pairs.y == pairs.y[0]).all():  # every pair clamped to one bound: no slope near the real ones gives it
        return AffineAdd(0, 0, int(pairs.y[0]) * 2, 1)
    # the real-valued slopes of the integer pipeline: each input's rescale times the output's
    out_real = p.out_mult * 2.0 ** (p.out_shift - 31)
    a_real = p.in1_mult * 2.0 ** (p.in1_shift - 31 + p.left_shift) * out_real
    b_real = p.in2_mult * 2.0 ** (p.in2_shift - 31 + p.left_shift) * out_real
    offsets = np.arange(-SLOPE_RADIUS, SLOPE_RADIUS + 1, dtype=np.int64)
    sample = np.arange(0, a.size, SAMPLE_STEP)  # the pairs tried first; a pair that rules out a candidate joins them
    full_checks = 0
    for shift in range(1, MAX_PRECISION + 1):
        a_mults, b_mults = (v.reshape(-1) for v in np.meshgrid(round(a_real * 2**shift) + offsets, round(b_real * 2**shift) + offsets))
        while a_mults.size:
            lower, upper = pairs.bounds(a_mults, b_mults, shift, sample)
            passing = np.flatnonzero(lower.max(axis=1) <= upper.min(axis=1))
            if passing.size == 0:
                break
            i = passing[0]
            full_checks += 1
            if full_checks > MAX_FULL_CHECKS:
                return None
            lower, upper = pairs.bounds(a_mults[i:i + 1], b_mults[i:i + 1], shift, None)
            if lower.max() <= upper.min():
                constant = int((lower.max() + upper.min()) // 2)
                total = a_mults[i] * a + b_mults[i] * b + constant
                if total.min() >= -INT32_LIMIT and total.max() < INT32_LIMIT:
                    return AffineAdd(int(a_mults[i]), int(b_mults[i]), constant, shift)
                a_mults, b_mults = np.delete(a_mults, i), np.delete(b_mults, i)
            else:  # the pairs that bound C hardest for this candidate join the sample
                sample = np.union1d(sample, [lower.argmax(), upper.argmin()])
    return None


@dataclass(frozen=True)
class _Pairs:
    """Every int8 input pair and TFLM's output for it."""

    a: np.ndarray
    b: np.ndarray
    y: np.ndarray
    act_min: int
    act_max: int

    def bounds(self, a_mults: np.ndarray, b_mults: np.ndarray, shift: int, chosen: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Per candidate (A, B) (rows) and pair (columns, all or the chosen ones): the least and
        greatest C with floor((A a + B b + C) / 2^k) = y. A pair at a clamp bound bounds only one
        side (the clamp does the rest)."""
        a, b, y = (self.a, self.b, self.y) if chosen is None else (self.a[chosen], self.b[chosen], self.y[chosen])
        linear = a_mults[:, None] * a[None, :] + b_mults[:, None] * b[None, :]
        lower = np.where(y > self.act_min, (y << shift) - linear, -(1 << 62))
        upper = np.where(y < self.act_max, ((y + 1) << shift) - 1 - linear, 1 << 62)
        return lower, upper


def add_kernel(p: AddParams, position: int) -> GeneratedKernel | None:
    """The layer's kernel, None where its inputs broadcast or no affine form is found."""
    dense = tuple(row_major_strides(p.out_dims))
    if tuple(p.in1_strides) != dense or tuple(p.in2_strides) != dense:
        return None
    form = affine_add(p)
    if form is None:
        return None
    count = int(np.prod(p.out_dims))
    call = (f"nlg_add(in1, in2, out, {count}, {form.a_mult}, {form.b_mult}, {form.constant}, {form.shift}, "
            f"{p.act_min}, {p.act_max});")
    return GeneratedKernel("add", position, "nlg_add.h", (), call, inputs=("in1", "in2"))
