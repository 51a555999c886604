"""Random int8 attention blocks written op for op as onnx2tf writes them, for the fusion and kernel tests.

Building the graph directly (rather than converting a PyTorch layer with onnx2tf, ~10 s each) lets a
test draw hundreds of blocks: tokens, heads, widths, positional table or not, and every tensor's
scale and zero point, calibrated from a float run of the same block on the drawn input range so
that the int8 values use their range instead of saturating.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.attention_fusion import AttentionFusion, fuse_attention
from nlpool.core.tflite import model_bytes, read_model, schema, write_model

OPS = schema.BuiltinOperator
OPTIONS = schema.BuiltinOptions


@dataclass(frozen=True)
class Block:
    """One drawn block: the model's bytes and what it was drawn with."""

    content: bytes
    grid: tuple[int, int]
    width: int
    heads: int
    pos: bool
    input_qp: tuple[float, int]


class _Builder:
    def __init__(self) -> None:
        self.model = schema.ModelT()
        self.model.version = 3
        self.model.buffers = [schema.BufferT()]
        self.graph = schema.SubGraphT()
        self.graph.tensors, self.graph.operators = [], []
        self.model.subgraphs = [self.graph]
        self.model.operatorCodes = []
        self.codes: dict[int, int] = {}

    def tensor(self, shape: tuple[int, ...], dtype: int, qp: tuple[list[float], list[int]] | None = None,
               data: np.ndarray | None = None, name: str = "t") -> int:
        t = schema.TensorT()
        t.shape, t.type, t.name = list(shape), dtype, f"{name}_{len(self.graph.tensors)}".encode()
        t.buffer = 0
        if data is not None:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8).copy()
            self.model.buffers.append(buffer)
            t.buffer = len(self.model.buffers) - 1
        if qp is not None:
            t.quantization = schema.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = list(qp[0]), list(qp[1])
        self.graph.tensors.append(t)
        return len(self.graph.tensors) - 1

    def const_i32(self, values: list[int]) -> int:
        return self.tensor((len(values),), schema.TensorType.INT32, data=np.asarray(values, dtype=np.int32), name="shape")

    def op(self, code: int, inputs: list[int], outputs: list[int], options_type: int = 0, options: object = None) -> None:
        if code not in self.codes:
            oc = schema.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
            self.model.operatorCodes.append(oc)
            self.codes[code] = len(self.model.operatorCodes) - 1
        o = schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes[code], inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.graph.operators.append(o)


def _calibrate(values: np.ndarray, rng: np.random.Generator) -> tuple[float, int]:
    """(scale, zero point) of an int8 tensor holding `values`, a little wider or narrower at random."""
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = max(hi - lo, 1e-3) / 255.0 * rng.uniform(0.85, 1.25)
    return scale, int(np.clip(round(-128 - lo / scale), -128, 127))


def _quantize(values: np.ndarray, qp: tuple[float, int]) -> np.ndarray:
    return np.clip(np.round(values / qp[0]) + qp[1], -128, 127).astype(np.int8)


def draw_block(rng: np.random.Generator, max_side: int = 12) -> Block:
    """One random block: input (1, gh, gw, E) NHWC tokens, output the same shape."""
    heads = int(rng.choice([1, 2, 4]))
    head_dim = int(rng.integers(1, 9))
    width = heads * head_dim
    gh, gw = int(rng.integers(1, max_side + 1)), int(rng.integers(1, max_side + 1))
    n = gh * gw
    pos = bool(rng.integers(0, 2))
    b = _Builder()

    def qtensor(shape: tuple[int, ...], values: np.ndarray, qp: tuple[float, int] | None = None) -> tuple[int, tuple[float, int]]:
        qp = qp or _calibrate(values, rng)
        return b.tensor(shape, schema.TensorType.INT8, ([qp[0]], [qp[1]])), qp

    def layout(src: int, shape: tuple[int, ...], qp: tuple[float, int], perm: list[int] | None = None) -> int:
        out = b.tensor(shape, schema.TensorType.INT8, ([qp[0]], [qp[1]]))
        if perm is None:
            options = schema.ReshapeOptionsT()
            options.newShape = list(shape)
            b.op(OPS.RESHAPE, [src, b.const_i32(list(shape))], [out], OPTIONS.ReshapeOptions, options)
        else:
            b.op(OPS.TRANSPOSE, [src, b.const_i32(perm)], [out], OPTIONS.TransposeOptions, schema.TransposeOptionsT())
        return out

    def const_q(values: np.ndarray) -> tuple[int, np.ndarray, tuple[float, int]]:
        qp = _calibrate(values, rng)
        q = _quantize(values, qp)
        index = b.tensor(values.shape, schema.TensorType.INT8, ([qp[0]], [qp[1]]), data=q, name="c")
        return index, (q.astype(np.float64) - qp[1]) * qp[0], qp

    def binary(code: int, x: int, c: int, out_values: np.ndarray, shape: tuple[int, ...]) -> tuple[int, tuple[float, int]]:
        out, qp = qtensor(shape, out_values)
        add = code == OPS.ADD
        options_type, options = (OPTIONS.AddOptions, schema.AddOptionsT()) if add else (OPTIONS.MulOptions, schema.MulOptionsT())
        b.op(code, [x, c] if rng.integers(0, 2) else [c, x], [out], options_type, options)
        return out, qp

    def fully_connected(x: int, xv: np.ndarray, x_qp: tuple[float, int], out_ch: int, bias: bool) -> tuple[int, np.ndarray]:
        wf = rng.normal(0, rng.uniform(0.2, 1.0), (out_ch, xv.shape[-1]))
        w_scale = np.maximum(np.abs(wf).max(axis=1), 1e-3) / 127.0
        wq = np.clip(np.round(wf / w_scale[:, None]), -127, 127).astype(np.int8)
        w = b.tensor(wq.shape, schema.TensorType.INT8, (list(w_scale), [0] * out_ch), data=wq, name="w")
        values = xv @ (wq.astype(np.float64) * w_scale[:, None]).T
        inputs = [x, w]
        if bias:
            bf = rng.normal(0, 0.5, out_ch)
            b_scale = x_qp[0] * w_scale
            bq = np.round(bf / b_scale).astype(np.int32)
            inputs.append(b.tensor((out_ch,), schema.TensorType.INT32, (list(b_scale), [0] * out_ch), data=bq, name="b"))
            values = values + bq * b_scale
        else:
            inputs.append(-1)
        out, _ = qtensor((1, n, out_ch), values)
        options = schema.FullyConnectedOptionsT()
        options.keepNumDims = True
        b.op(OPS.FULLY_CONNECTED, inputs, [out], OPTIONS.FullyConnectedOptions, options)
        return out, values

    span = rng.uniform(0.5, 4.0)
    x_float = rng.uniform(-span * rng.uniform(0, 1), span, (n, width))
    x_qp = _calibrate(x_float, rng)
    xv = (_quantize(x_float, x_qp).astype(np.float64) - x_qp[1]) * x_qp[0]
    src = b.tensor((1, gh, gw, width), schema.TensorType.INT8, ([x_qp[0]], [x_qp[1]]), name="tokens")
    b.graph.inputs = [src]
    if pos:
        t = layout(src, (1, width, gh, gw), x_qp, [0, 3, 1, 2])
        t = layout(t, (1, width, n), x_qp)
        c, cv, _ = const_q(rng.uniform(0, rng.uniform(0.2, 2.0), (1, width, n)))
        xv = xv + cv[0].T
        t, qp = binary(OPS.ADD, t, c, xv, (1, width, n))
        tokens = layout(t, (1, n, width), qp, [0, 2, 1])
    else:
        tokens, qp = layout(src, (1, n, width), x_qp), x_qp
    qkv, qkv_v = fully_connected(tokens, xv, qp, 3 * width, bias=False)
    qkv_qp = (b.graph.tensors[qkv].quantization.scale[0], b.graph.tensors[qkv].quantization.zeroPoint[0])
    branches = {}
    for i, role in enumerate("qkv"):
        sliced = b.tensor((1, n, width), schema.TensorType.INT8, ([qkv_qp[0]], [qkv_qp[1]]))
        b.op(OPS.STRIDED_SLICE, [qkv, b.const_i32([0, 0, i * width]), b.const_i32([1, n, (i + 1) * width]), b.const_i32([1, 1, 1])],
             [sliced], OPTIONS.StridedSliceOptions, schema.StridedSliceOptionsT())
        values = qkv_v[:, i * width : (i + 1) * width]
        c, cv, _ = const_q(rng.normal(0, 0.5, (1, 1, width)))
        values = values + cv[0]
        t, qp = binary(OPS.ADD, sliced, c, values, (1, n, width))
        if role == "q":
            c, cv, _ = const_q(np.full((), head_dim**-0.5))
            values = values * float(cv)
            t, qp = binary(OPS.MUL, t, c, values, (1, n, width))
        t = layout(t, (1, n, heads, head_dim), qp)
        perm = [0, 2, 3, 1] if role == "k" else [0, 2, 1, 3]
        shape = (1, heads, head_dim, n) if role == "k" else (1, heads, n, head_dim)
        branches[role] = (layout(t, shape, qp, perm), values.reshape(n, heads, head_dim).transpose(1, 0, 2), qp)
    (q, qv, _), (k, kv, _), (v, vv, _) = branches["q"], branches["k"], branches["v"]
    scores_v = qv @ kv.transpose(0, 2, 1)
    scores, _ = qtensor((1, heads, n, n), scores_v)
    b.op(OPS.BATCH_MATMUL, [q, k], [scores], OPTIONS.BatchMatMulOptions, schema.BatchMatMulOptionsT())
    probs_v = np.exp(scores_v - scores_v.max(axis=-1, keepdims=True))
    probs_v /= probs_v.sum(axis=-1, keepdims=True)
    probs, _ = qtensor((1, heads, n, n), probs_v, (1.0 / 256.0, -128))
    softmax = schema.SoftmaxOptionsT()
    softmax.beta = 1.0
    b.op(OPS.SOFTMAX, [scores], [probs], OPTIONS.SoftmaxOptions, softmax)
    mixed_v = probs_v @ vv
    mixed, m_qp = qtensor((1, heads, n, head_dim), mixed_v)
    b.op(OPS.BATCH_MATMUL, [probs, v], [mixed], OPTIONS.BatchMatMulOptions, schema.BatchMatMulOptionsT())
    t = layout(mixed, (1, n, heads, head_dim), m_qp, [0, 2, 1, 3])
    t = layout(t, (1, n, width), m_qp)
    out, _ = fully_connected(t, mixed_v.transpose(1, 0, 2).reshape(n, width), m_qp, width, bias=True)
    out_qp = (b.graph.tensors[out].quantization.scale[0], b.graph.tensors[out].quantization.zeroPoint[0])
    grid_out = layout(out, (1, gh, gw, width), out_qp)
    b.graph.outputs = [grid_out]
    return Block(model_bytes(b.model), (gh, gw), width, heads, pos, x_qp)


def reference(content: bytes, x: np.ndarray, kernels: str = "tflm") -> np.ndarray:
    """The unfused block's output for input x: TFLM's interpreter and reference kernels ("tflm", the
    arithmetic nlpool's firmware follows: FULLY_CONNECTED rounds twice) or the TFLite interpreter's
    reference kernels ("tflite": FULLY_CONNECTED rounds once), docs/rounding.md."""
    if kernels == "tflm":
        from tflite_micro import runtime

        interpreter = runtime.Interpreter.from_bytes(content, arena_size=16 << 20)
        interpreter.set_input(x, 0)
        interpreter.invoke()
        return interpreter.get_output(0).copy()
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def fused(content: bytes, tmp: Path, fc_double_rounding: bool = True) -> tuple[Path, AttentionFusion]:
    """The block written to `tmp`, fused by export.attention_fusion: (fused model path, what the pass did)."""
    src, dst = tmp / "block.tflite", tmp / "block_fused.tflite"
    src.write_bytes(content)
    raw = read_model(src).raw
    result = fuse_attention(raw, fc_double_rounding)
    write_model(raw, dst)
    return dst, result
