"""When a depthwise convolution can run in place, and the scratch its in-place kernel needs.

The contract of the in-place kernel (firmware/kernels/depthwise_conv2d_inplace.c), which overwrites
its input one channel at a time, holding that channel's plane aside with its SAME padding around it.
It lives in the base because two packages read it: the planner (from a .tflite or a PyTorch graph)
plans the scratch, and the AOT generator's DEPTHWISE_CONV_2D unit hands the kernel a scratch of the
same size; neither asks the other. tests/test_inplace_depthwise.py ties MAX_INPLACE_TAPS to the C
kernel's NL_DW_MAX_TAPS.
"""

from __future__ import annotations

MAX_INPLACE_TAPS = 64  # NL_DW_MAX_TAPS of the in-place depthwise kernel


def inplace_depthwise_scratch(in_hw: tuple[int, int], out_hw: tuple[int, int], filter_hw: tuple[int, int],
                              stride: tuple[int, int], dilation: tuple[int, int], multiplier: int = 1) -> int:
    """Bytes of scratch of the in-place kernel, 0 when the convolution cannot run in place: only a
    stride-1, multiplier-1 depthwise convolution whose output has its input's shape can."""
    (ih, iw), (fh, fw), (dh, dw) = in_hw, filter_hw, dilation
    if tuple(out_hw) != (ih, iw) or tuple(stride) != (1, 1) or multiplier != 1 or fh * fw > MAX_INPLACE_TAPS:
        return 0
    return int((ih + (fh - 1) * dh) * (iw + (fw - 1) * dw))
