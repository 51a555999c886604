"""Random single-op instances for the batched firmware fuzz (tests/test_firmware_random_ops.py).

Each `OpInstance` is one TFLite builtin with random shapes, strides, padding, activation and
weights, as a TensorFlow function of its own input(s). `batch_function` puts many of them side by
side in one tf.function (each op its own inputs and its own output), so that one conversion, one
generated project and one firmware build cover them all. Every draw comes from a seeded
`np.random.Generator`; `OpInstance.describe()` names the op and its parameters for failure messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class OpInstance:
    """One op: `kinds` are the TFLite builtins that may produce its output (the one it tests)."""

    kind: str
    params: dict[str, Any]
    shapes: list[tuple[int, ...]]
    fn: Callable[..., Any]
    kinds: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        self.kinds = self.kinds or (self.kind,)

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.kind}({args}; inputs {self.shapes})"


def _weights(rng: np.random.Generator, *shape: int) -> Any:
    import tensorflow as tf

    return tf.constant(rng.normal(0, 10 ** rng.uniform(-2.0, 0.5), size=shape).astype(np.float32))


def draw_ranges(rng: np.random.Generator, ops: Sequence[OpInstance]) -> list[tuple[float, float]]:
    """Calibration (low, high) for every input of `ops` (in order) over three decades of magnitude:
    mostly around zero, one in six only positive (zero point -128), one in six only negative (zero
    point 127). Not only negative into a fused RELU/RELU6: an output always 0 calibrates to a scale
    near 1e-8, an ADD output multiplier above 1 that TFLM's Prepare rejects by aborting."""
    out = []
    for op in ops:
        negative = op.params.get("act", "none") == "none"
        for _ in op.shapes:
            mag = 10 ** rng.uniform(-1.5, 1.5)
            roll = rng.random()
            if roll < 1 / 6:
                out.append((rng.uniform(0.0, 0.3) * mag, mag))
            elif roll < 2 / 6 and negative:
                out.append((-mag, -rng.uniform(0.0, 0.3) * mag))
            else:
                out.append((-rng.uniform(0.0, 1.0) * mag, rng.uniform(0.05, 1.0) * mag))
    return out


def _activation(rng: np.random.Generator) -> tuple[str, Callable[[Any], Any]]:
    import tensorflow as tf

    name = str(rng.choice(["none", "relu", "relu6"]))
    return name, {"none": lambda y: y, "relu": tf.nn.relu, "relu6": tf.nn.relu6}[name]


def _int(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi] (both ends included)."""
    return int(rng.integers(lo, hi + 1))


def _large(rng: np.random.Generator) -> bool:
    """One draw in five gets larger sizes."""
    return bool(rng.random() < 0.2)


def _spatial(rng: np.random.Generator, k: tuple[int, int], dil: tuple[int, int], padding: str,
             lo: int = 1, hi: int = 12) -> tuple[int, int]:
    """H, W with at least one output position for a kh x kw window (dilated) under `padding`."""
    out = []
    for kk, dd in zip(k, dil, strict=True):
        low = max(lo, (kk - 1) * dd + 1) if padding == "VALID" else lo
        out.append(_int(rng, low, max(low, hi)))
    return out[0], out[1]


def _pair(rng: np.random.Generator, choices: Sequence[int]) -> tuple[int, int]:
    """Mostly square (the same value twice), one draw in three two independent values."""
    a = int(rng.choice(choices))
    return (a, a) if rng.random() < 2 / 3 else (a, int(rng.choice(choices)))


def _window(rng: np.random.Generator, sizes: Sequence[int], strides: Sequence[int],
            square_stride: bool = False) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Kernel size, strides and dilations of a convolution (TF dilates only with unit strides)."""
    k = _pair(rng, sizes)
    s = (int(rng.choice(strides)),) * 2 if square_stride else _pair(rng, strides)
    dil = _pair(rng, [1, 1, 2, 3]) if s == (1, 1) and max(k) > 1 else (1, 1)
    return k, s, dil


def conv_2d(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    k, stride, dil = _window(rng, [1, 1, 3, 3, 3, 5], [1, 1, 2, 3])
    padding = str(rng.choice(["SAME", "VALID"]))
    act_name, act = _activation(rng)
    batch, cin, cout = int(rng.choice([1, 1, 1, 2])), _int(rng, 1, 12), _int(rng, 1, 16)
    h, w = _spatial(rng, k, dil, padding, 1, 11)
    if _large(rng):  # channel counts in multiples of 4 and 8 (the vectorised kernels' blocks), larger maps
        cin, cout = 4 * _int(rng, 1, 8), 4 * _int(rng, 1, 8)
        h, w = _spatial(rng, k, dil, padding, 6, 16)
    wt, b = _weights(rng, *k, cin, cout), _weights(rng, cout)

    def fn(x):
        return act(tf.nn.conv2d(x, wt, [1, *stride, 1], padding, dilations=[1, *dil, 1]) + b)

    params = {"k": k, "stride": stride, "dilation": dil, "padding": padding, "act": act_name, "cout": cout}
    return OpInstance("CONV_2D", params, [(batch, h, w, cin)], fn)


def depthwise_conv_2d(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    k, stride, dil = _window(rng, [1, 3, 3, 5], [1, 1, 2], square_stride=True)  # TF: equal strides only
    padding = str(rng.choice(["SAME", "VALID"]))
    mult = int(rng.choice([1, 1, 2]))
    act_name, act = _activation(rng)
    cin = _int(rng, 1, 12)
    h, w = _spatial(rng, k, dil, padding, 1, 11)
    if _large(rng):
        cin = 4 * _int(rng, 1, 12)
        h, w = _spatial(rng, k, dil, padding, 6, 16)
    wt, b = _weights(rng, *k, cin, mult), _weights(rng, cin * mult)

    def fn(x):
        return act(tf.nn.depthwise_conv2d(x, wt, [1, *stride, 1], padding, dilations=list(dil)) + b)

    params = {"k": k, "stride": stride, "dilation": dil, "padding": padding, "mult": mult, "act": act_name}
    return OpInstance("DEPTHWISE_CONV_2D", params, [(1, h, w, cin)], fn)


def fully_connected(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    batch, depth, units = int(rng.choice([1, 1, 2, 3, 8])), _int(rng, 1, 64), _int(rng, 1, 32)
    if _large(rng):
        depth, units = 8 * _int(rng, 1, 40), 4 * _int(rng, 1, 24)
    act_name, act = _activation(rng)
    bias = bool(rng.random() < 0.8)
    wt, b = _weights(rng, depth, units), _weights(rng, units)
    # one draw in four a 3-D input: FULLY_CONNECTED with keep_num_dims
    shape = (batch, depth) if rng.random() < 0.75 else (_int(rng, 1, 2), batch, depth)

    def fn(x):
        y = tf.matmul(x, wt)
        return act(y + b if bias else y)

    params = {"units": units, "bias": bias, "act": act_name}
    return OpInstance("FULLY_CONNECTED", params, [shape], fn)


def _broadcast_pair(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    rank = int(rng.choice([1, 2, 3, 4, 4, 5, 6]))
    full = tuple(_int(rng, 1, 7 if rank <= 4 else 4) for _ in range(rank))
    if _large(rng):
        full = (*full[:-1], 4 * _int(rng, 2, 24))
    style = str(rng.choice(["same", "same", "rhs", "lhs", "both", "scalar"]))
    if style == "same":
        return full, full, style
    if style == "scalar":
        return full, (1,) * rank, style
    a = tuple(d if rng.random() < 0.6 else 1 for d in full)
    b = tuple(d if rng.random() < 0.6 else 1 for d in full)
    if style == "rhs":
        a = full
    elif style == "lhs":
        b = full
    return a, b, style


def _binary(kind: str, op: Callable[[Any, Any], Any], rng: np.random.Generator) -> OpInstance:
    a, b, style = _broadcast_pair(rng)
    act_name, act = _activation(rng)
    params = {"broadcast": style, "act": act_name}
    return OpInstance(kind, params, [a, b], lambda x, y: act(op(x, y)))


def add(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    return _binary("ADD", tf.add, rng)


def mul(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    return _binary("MUL", tf.multiply, rng)


def _pool(kind: str, rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    k, stride = _pair(rng, [1, 2, 2, 3, 4]), _pair(rng, [1, 2, 2, 3])
    padding = str(rng.choice(["SAME", "VALID"]))
    c = 4 * _int(rng, 1, 10) if _large(rng) else _int(rng, 1, 10)
    h, w = _spatial(rng, k, (1, 1), padding, 1, 12)
    pool = tf.nn.avg_pool2d if kind == "AVERAGE_POOL_2D" else tf.nn.max_pool2d
    params = {"k": k, "stride": stride, "padding": padding}
    return OpInstance(kind, params, [(int(rng.choice([1, 1, 2])), h, w, c)], lambda x: pool(x, k, stride, padding))


def average_pool_2d(rng: np.random.Generator) -> OpInstance:
    return _pool("AVERAGE_POOL_2D", rng)


def max_pool_2d(rng: np.random.Generator) -> OpInstance:
    return _pool("MAX_POOL_2D", rng)


def _shape(rng: np.random.Generator, rank_lo: int = 1, rank_hi: int = 4, hi: int = 8) -> tuple[int, ...]:
    return tuple(_int(rng, 1, hi) for _ in range(_int(rng, rank_lo, rank_hi)))


def softmax(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    shape = (*_shape(rng, 1, 3, 6), _int(rng, 81, 300) if _large(rng) else _int(rng, 1, 80))
    return OpInstance("SOFTMAX", {"depth": shape[-1]}, [shape], tf.nn.softmax)


def logistic(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    return OpInstance("LOGISTIC", {}, [_shape(rng, 1, 4, 9)], tf.sigmoid)


def pad(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    shape = _shape(rng, 1, 4, 7)
    pads = [[_int(rng, 0, 3), _int(rng, 0, 3)] for _ in shape]
    if not any(p for pair in pads for p in pair):
        pads[-1][1] = 1
    constant = 0.0 if rng.random() < 0.7 else float(np.round(rng.uniform(-2, 2), 2))
    params = {"paddings": pads, "value": constant}
    return OpInstance("PAD", params, [shape], lambda x: tf.pad(x, pads, constant_values=constant), ("PAD", "PADV2"))


def transpose(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    # every dimension above 1: a permutation that only moves size-1 dimensions converts to RESHAPE
    shape = tuple(_int(rng, 2, 5) for _ in range(_int(rng, 2, 5)))
    perm = [int(p) for p in rng.permutation(len(shape))]
    while perm == sorted(perm):
        perm = [int(p) for p in rng.permutation(len(shape))]
    return OpInstance("TRANSPOSE", {"perm": perm}, [shape], lambda x: tf.transpose(x, perm))


def batch_matmul(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    batch = tuple(_int(rng, 1, 3) for _ in range(_int(rng, 1, 2)))
    rows, depth, cols = _int(rng, 1, 9), _int(rng, 1, 16), _int(rng, 1, 9)
    adj_x, adj_y = bool(rng.random() < 0.25), bool(rng.random() < 0.5)
    rhs_batch = (1,) * len(batch) if rng.random() < 0.2 else batch
    lhs = (*batch, depth, rows) if adj_x else (*batch, rows, depth)
    rhs = (*rhs_batch, cols, depth) if adj_y else (*rhs_batch, depth, cols)
    params = {"adj_x": adj_x, "adj_y": adj_y, "rhs_broadcast": rhs_batch != batch}
    return OpInstance("BATCH_MATMUL", params, [lhs, rhs], lambda a, b: tf.matmul(a, b, transpose_a=adj_x, transpose_b=adj_y))


def reshape(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    shape = _shape(rng, 1, 4, 6)
    target = [int(t) for t in rng.permutation(list(shape))]
    if rng.random() < 0.4:
        target = [int(np.prod(shape))]
    if rng.random() < 0.4:
        at = _int(rng, 0, len(target))
        target = [*target[:at], 1, *target[at:]]
    while target == list(shape):  # the converter drops a reshape to the same shape
        at = _int(rng, 0, len(target))
        target = [*target[:at], 1, *target[at:]]
    return OpInstance("RESHAPE", {"to": target}, [shape], lambda x: tf.reshape(x, target))


def _slice_bound(rng: np.random.Generator, value: int | None, d: int) -> int | None:
    """`value`, or None where TF's default means the same, or the same index counted from the end."""
    if value is None:
        return None
    return value - d if rng.random() < 0.3 and value < d else value


def strided_slice(rng: np.random.Generator) -> OpInstance:
    shape = _shape(rng, 1, 4, 8)
    # one axis (4 or more) steps by other than 1: with unit steps only the converter writes SLICE
    strided = _int(rng, 0, len(shape) - 1)
    shape = tuple(max(d, 4) if i == strided else d for i, d in enumerate(shape))
    slices: list[int | slice] = []
    spec: list[str] = []
    shrunk = 0
    for axis, d in enumerate(shape):
        if axis != strided and rng.random() < 0.15 and d > 1 and shrunk < len(shape) - 1:
            i = _int(rng, -d, d - 1)
            slices.append(i)
            spec.append(str(i))
            shrunk += 1
            continue
        step = int(rng.choice([2, 3, -1, -2] if axis == strided else [1, 1, 2, 3, -1, -2]))
        if step > 0:
            span = step + 1 if axis == strided else 1  # two elements at least on the strided axis
            begin = _int(rng, 0, d - span) if rng.random() < 0.8 else None
            end = _int(rng, (begin or 0) + span, d) if rng.random() < 0.8 else None
        else:
            least = 2 if axis == strided else 1  # elements selected, at least
            begin = _int(rng, least - 1, d - 1) if rng.random() < 0.8 else None
            top = d - 1 if begin is None else begin
            end = _int(rng, 0, top - least) if top >= least and rng.random() < 0.6 else None
        b, e = _slice_bound(rng, begin, d), _slice_bound(rng, end, d)
        slices.append(slice(b, e, step))
        spec.append(f"{'' if b is None else b}:{'' if e is None else e}:{step}")
    key = tuple(slices)
    return OpInstance("STRIDED_SLICE", {"slice": "[" + ", ".join(spec) + "]"}, [shape], lambda x: x[key])


def concatenation(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    base = list(_shape(rng, 1, 4, 6))
    axis = _int(rng, 0, len(base) - 1)
    parts = _int(rng, 2, 4)
    shapes = []
    for _ in range(parts):
        s = list(base)
        s[axis] = _int(rng, 1, 6)
        shapes.append(tuple(s))
    neg = axis - len(base) if rng.random() < 0.5 else axis
    return OpInstance("CONCATENATION", {"axis": neg, "parts": parts}, shapes, lambda *xs: tf.concat(list(xs), axis=neg))


def resize(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    method = str(rng.choice(["nearest", "bilinear"]))
    mode = str(rng.choice(["half_pixel", "align_corners", "asymmetric"]))
    h, w, c = _int(rng, 1, 7), _int(rng, 1, 7), _int(rng, 1, 5)
    oh, ow = _int(rng, 1, 14), _int(rng, 1, 14)
    if mode == "align_corners":
        f = (tf.compat.v1.image.resize_nearest_neighbor if method == "nearest" else tf.compat.v1.image.resize_bilinear)

        def fn(x):
            return f(x, (oh, ow), align_corners=True)
    elif mode == "asymmetric":
        f = (tf.compat.v1.image.resize_nearest_neighbor if method == "nearest" else tf.compat.v1.image.resize_bilinear)

        def fn(x):
            return f(x, (oh, ow), align_corners=False, half_pixel_centers=False)
    else:
        def fn(x):
            return tf.image.resize(x, (oh, ow), method=method)

    kind = "RESIZE_NEAREST_NEIGHBOR" if method == "nearest" else "RESIZE_BILINEAR"
    return OpInstance(kind, {"size": (oh, ow), "mode": mode}, [(int(rng.choice([1, 1, 2])), h, w, c)], fn)


def mean(rng: np.random.Generator) -> OpInstance:
    import tensorflow as tf

    # H x W of 2 at least: the converter drops a mean over one element
    shape = (int(rng.choice([1, 1, 2])), _int(rng, 1, 9), _int(rng, 2, 9), _int(rng, 1, 12))
    return OpInstance("MEAN", {}, [shape], lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True))


# Kind -> generator. Resizes draw nearest or bilinear, so they get two slots.
GENERATORS: dict[str, Callable[[np.random.Generator], OpInstance]] = {
    "CONV_2D": conv_2d, "DEPTHWISE_CONV_2D": depthwise_conv_2d, "FULLY_CONNECTED": fully_connected,
    "ADD": add, "MUL": mul, "AVERAGE_POOL_2D": average_pool_2d, "MAX_POOL_2D": max_pool_2d,
    "SOFTMAX": softmax, "PAD": pad, "TRANSPOSE": transpose, "BATCH_MATMUL": batch_matmul,
    "RESHAPE": reshape, "STRIDED_SLICE": strided_slice, "CONCATENATION": concatenation,
    "RESIZE": resize, "MEAN": mean, "LOGISTIC": logistic,
}


def draw_batch(rng: np.random.Generator, count: int) -> list[OpInstance]:
    """`count` ops, the kinds in turn (shuffled), so that every kind appears in every batch of at
    least len(GENERATORS) ops and the batches together cover each kind about equally."""
    order: list[str] = []
    while len(order) < count:
        order += [str(k) for k in rng.permutation(list(GENERATORS))]
    return [GENERATORS[k](rng) for k in order[:count]]


def batch_function(ops: Sequence[OpInstance]) -> tuple[Callable[..., Any], list[tuple[int, ...]]]:
    """One function of all the ops' inputs (in op order) returning one output per op (in op order)."""
    shapes = [s for op in ops for s in op.shapes]
    arity = [len(op.shapes) for op in ops]

    def fn(*xs):
        outs, at = [], 0
        for op, n in zip(ops, arity, strict=True):
            outs.append(op.fn(*xs[at:at + n]))
            at += n
        return tuple(outs)

    return fn, shapes
