"""Generation-time tables and ranges: what TFLite's Prepare functions compute for builtin ops.

The requantisation multiplier itself comes from nlpool.core.fixedpoint (one rule for every package).

Float32 steps are emulated with NumPy float32 so that tables and ranges match the interpreter.
"""

from __future__ import annotations

import numpy as np

from nlpool.core.fixedpoint import round_half_away

F32 = np.float32


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 (fused NONE, RELU, RELU_N1_TO_1, RELU6)."""

    def q(f: float) -> int:
        return zero_point + round_half_away(float(F32(f) / F32(scale)))

    if activation == 0:
        return -128, 127
    if activation == 1:
        return max(-128, q(0.0)), 127
    if activation == 2:
        return max(-128, q(-1.0)), min(127, q(1.0))
    if activation == 3:
        return max(-128, q(0.0)), min(127, q(6.0))
    raise ValueError(f"fused activation {activation}")
