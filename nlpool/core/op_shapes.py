"""Output shapes that follow from an operator's inputs and options, checked against the shapes a file declares.

A .tflite file states every tensor's shape, and every consumer (the planner, the host runner, both firmware
generators) sizes buffers from those statements. A file whose statements disagree between ops (a PAD whose
output is 2^30 rows high from a 32-row input) would otherwise be planned as given: `nlpool plan` said "fits"
and predicted a 315 GB TFLM arena for one. The reader (`tflite.read_model`) asks `output_shape_problem` for
each builtin op whose output shape is derivable; ops not listed here are left to the consumers that know them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .tflite import Operator, Tensor

PADDING_SAME = 0  # tflite::Padding; VALID is 1
# Ops whose single output has the shape of their only (or first) input.
SAME_SHAPE = frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "QUANTIZE",
                        "DEQUANTIZE", "EXP", "SOFTMAX", "LOG_SOFTMAX", "ABS", "NEG", "SQRT", "RSQRT"})
# Elementwise ops of two inputs: the output has their broadcast shape.
BROADCAST = frozenset({"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"})
POOLS = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D"})


def _window_output(size: int, window: int, stride: int, dilation: int, padding: int) -> int:
    """TFLite's output length of a sliding window: SAME ceil(size / stride), VALID over the dilated window."""
    if padding == PADDING_SAME:
        return (size + stride - 1) // stride
    return max(0, (size - (window - 1) * dilation - 1) // stride + 1)


def _spatial(inp: tuple[int, ...], window: tuple[int, int], options: Any, channels: int) -> tuple[int, ...]:
    dilation = (getattr(options, "dilationHFactor", 1), getattr(options, "dilationWFactor", 1))
    height = _window_output(inp[1], window[0], options.strideH, dilation[0], options.padding)
    width = _window_output(inp[2], window[1], options.strideW, dilation[1], options.padding)
    return (inp[0], height, width, channels)


def _show(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "a scalar"


def output_shape_problem(op: Operator, tensors: tuple[Tensor, ...]) -> str | None:
    """Why `op`'s declared output shape cannot be what its inputs and options produce, or None when it is
    (or when this op's shape rule is not one of those checked here). Ranks and options are already checked."""
    if len(op.outputs) != 1 or not op.inputs or op.inputs[0] < 0:
        return None
    inp = tensors[op.inputs[0]].shape
    out = tensors[op.outputs[0]].shape
    expected: tuple[int, ...] | None = None
    if op.name in SAME_SHAPE:
        expected = inp
    elif op.name in BROADCAST and len(op.inputs) == 2 and op.inputs[1] >= 0:
        other = tensors[op.inputs[1]].shape
        try:
            expected = tuple(np.broadcast_shapes(inp, other))
        except ValueError:
            return f"its inputs of shapes {_show(inp)} and {_show(other)} do not broadcast"
    elif op.name in ("PAD", "PADV2", "MIRROR_PAD"):
        paddings = tensors[op.inputs[1]].data if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
        if paddings is None:
            return None  # computed at run time: nothing to compare
        if paddings.shape != (len(inp), 2):
            return f"its paddings have shape {_show(paddings.shape)} for an input of rank {len(inp)}"
        expected = tuple(int(size + before + after) for size, (before, after) in zip(inp, paddings.tolist(), strict=True))
    elif op.name == "CONV_2D":
        filters = tensors[op.inputs[1]].shape
        expected = _spatial(inp, (filters[1], filters[2]), op.options, filters[0])
    elif op.name == "DEPTHWISE_CONV_2D":
        filters = tensors[op.inputs[1]].shape
        expected = _spatial(inp, (filters[1], filters[2]), op.options, filters[3])
    elif op.name in POOLS:
        expected = _spatial(inp, (op.options.filterHeight, op.options.filterWidth), op.options, inp[3])
    elif op.name == "FULLY_CONNECTED":
        units, depth = tensors[op.inputs[1]].shape
        elements = math.prod(inp)
        if depth == 0 or elements % depth:
            return f"its input of {_show(inp)} elements does not split into rows of the weights' depth {depth}"
        if not out or out[-1] != units or math.prod(out) != elements // depth * units:
            return (f"its output is {_show(out)} but {elements // depth} row(s) through {units} units give "
                    f"{elements // depth * units} values ending in {units}")
        return None
    elif op.name == "RESHAPE":
        if math.prod(out) != math.prod(inp):
            return f"it reshapes {_show(inp)} ({math.prod(inp)} values) to {_show(out)} ({math.prod(out)} values)"
        return None
    if expected is None or tuple(expected) == tuple(out):
        return None
    return f"its output is {_show(out)} but its inputs and options give {_show(expected)}"
