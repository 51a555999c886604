"""Fuse every self-attention block of onnx2tf's output into one streamed NLPOOL_ATTENTION custom op.

onnx2tf lowers MultiHeadSelfAttention to about 27 int8 ops:

    grid ─ TRANSPOSE, RESHAPE, [ADD pos], TRANSPOSE ─ FULLY_CONNECTED (N, 3E) ─┬ STRIDED_SLICE, ADD, MUL, RESHAPE, TRANSPOSE ─ q
                                                                               ├ STRIDED_SLICE, ADD, RESHAPE, TRANSPOSE ─ k^T
                                                                               └ STRIDED_SLICE, ADD, RESHAPE, TRANSPOSE ─ v
    q, k^T ─ BATCH_MATMUL ─ SOFTMAX ─ BATCH_MATMUL (with v) ─ TRANSPOSE, RESHAPE ─ FULLY_CONNECTED ─ TRANSPOSE, RESHAPE, TRANSPOSE ─ grid

The pass anchors on a SOFTMAX between two BATCH_MATMULs and proves the rest by *meaning*, not by a
fixed op list: the layout ops (TRANSPOSE, RESHAPE, STRIDED_SLICE) are replayed on arrays of element
indices, so a branch is accepted when its BATCH_MATMUL operand reads exactly head h, token n,
channel d of a column window of the projection, whatever sequence of layout ops got it there; an
ADD or MUL with a constant on the way becomes a step of the op with one constant per column.
The op's input and output are the furthest tensors whose element order is the token-major (N, E)
matrix, so the NHWC grid itself is read and written and every transpose around the block goes.

A block that does not match (LayerNorm of the prenorm form, a separate FULLY_CONNECTED per
projection, a fused activation, quantisation that differs across a layout op, ...) is left unfused
with its reason: the graph stays correct, only less memory-efficient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nlpool.core.custom_ops import (
    ATTENTION_OP_NAME,
    MAX_STEPS,
    SOFTMAX_OUTPUT_SCALE,
    SOFTMAX_OUTPUT_ZERO_POINT,
    AttentionParams,
    add_step,
    mul_step,
)
from nlpool.core.fixedpoint import quantize_multiplier, softmax_fixed_params
from nlpool.core.tflite import schema

from .graph_edit import INT8, GraphView, compact, opcode_index, quant_params, tensor_name

LAYOUT_OPS = ("TRANSPOSE", "RESHAPE", "STRIDED_SLICE")
STEP_OPS = ("ADD", "MUL")
NUMPY_OF = {schema.TensorType.INT8: np.int8, schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64}


class NoMatch(Exception):
    """This block is not the pattern; the message says why (it stays unfused)."""


@dataclass(frozen=True)
class AttentionMatch:
    """One matched attention block: the ops it replaces and the custom op's tensors and options."""

    ops: frozenset[int]
    tokens: int
    output: int
    pos_table: np.ndarray | None  # (N, E) int8 in token order, with its (scale, zero point)
    pos_qp: tuple[float, int] | None
    qkv_weights: int
    qkv_bias: int
    out_weights: int
    out_bias: int
    params: AttentionParams
    name: str


@dataclass(frozen=True)
class AttentionFusion:
    """What the pass did: the fused blocks, and each block it left unfused with the reason."""

    matches: tuple[AttentionMatch, ...]
    skipped: tuple[str, ...]


def _const(view: GraphView, tensor: int) -> np.ndarray | None:
    """A constant tensor's values, shaped; None for an activation."""
    t = view.tensor(tensor)
    data = view.model.buffers[t.buffer].data if t.buffer < len(view.model.buffers) else None
    if data is None or len(data) == 0 or t.type not in NUMPY_OF:
        return None
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    return np.frombuffer(bytes(np.asarray(data, dtype=np.uint8)), dtype=NUMPY_OF[t.type]).reshape(shape)


def _shape(view: GraphView, tensor: int) -> tuple[int, ...]:
    shape = view.tensor(tensor).shape
    return tuple(int(d) for d in (shape if shape is not None else []))


def _strided_slice(view: GraphView, op: schema.OperatorT, idx: np.ndarray) -> np.ndarray:
    """TFLite's STRIDED_SLICE on an index array (begin/end masks, positive or negative strides)."""
    o = op.builtinOptions
    if o is not None and (o.ellipsisMask or o.newAxisMask or o.shrinkAxisMask or getattr(o, "offset", False)):
        raise NoMatch("STRIDED_SLICE with ellipsis, new-axis, shrink or offset masks")
    begin, end, strides = (_const(view, int(t)) for t in op.inputs[1:4])
    if begin is None or end is None or strides is None:
        raise NoMatch("STRIDED_SLICE with non-constant bounds")
    slices = []
    for axis in range(idx.ndim):
        b = None if o is not None and o.beginMask >> axis & 1 else int(begin[axis])
        e = None if o is not None and o.endMask >> axis & 1 else int(end[axis])
        slices.append(slice(b, e, int(strides[axis])))
    return idx[tuple(slices)]


def _replay(view: GraphView, op_index: int, idx: np.ndarray) -> np.ndarray:
    """The index array after one layout op (its output's shape is checked against the graph)."""
    op = view.graph.operators[op_index]
    name = view.name(op_index)
    if name == "TRANSPOSE":
        perm = _const(view, int(op.inputs[1]))
        if perm is None:
            raise NoMatch("TRANSPOSE with a non-constant permutation")
        out = idx.transpose([int(p) for p in perm])
    elif name == "RESHAPE":
        out = idx.reshape(_shape(view, int(op.outputs[0])))
    else:
        out = _strided_slice(view, op, idx)
    if out.shape != _shape(view, int(op.outputs[0])):
        raise NoMatch(f"{name} op {op_index} does not produce its declared shape")
    return out


def _same_quant(view: GraphView, op_index: int) -> None:
    op = view.graph.operators[op_index]
    a, b = view.tensor(int(op.inputs[0])), view.tensor(int(op.outputs[0]))
    if a.type != INT8 or b.type != INT8 or quant_params(a) is None or quant_params(a) != quant_params(b):
        raise NoMatch(f"{view.name(op_index)} op {op_index} is not int8 with one quantisation on both sides")


def _no_activation(view: GraphView, op_index: int) -> None:
    options = view.graph.operators[op_index].builtinOptions
    if options is not None and getattr(options, "fusedActivationFunction", 0) != schema.ActivationFunctionType.NONE:
        raise NoMatch(f"{view.name(op_index)} op {op_index} has a fused activation")


def _qp(view: GraphView, tensor: int, role: str) -> tuple[float, int]:
    t = view.tensor(tensor)
    if t.type != INT8 or quant_params(t) is None:
        raise NoMatch(f"{role} {view.describe(tensor)} is not a per-tensor quantised int8 tensor")
    return quant_params(t)


Branch = tuple[int, list[tuple[int, ...]], list[np.ndarray]]  # (first column, step records, per-column constants)


@dataclass(frozen=True)
class _Scores:
    """The anchor's two BATCH_MATMULs and the block's sizes read from the score shape."""

    score_mm: int  # q k^T
    mix_mm: int  # probabilities x v
    heads: int
    tokens: int


@dataclass(frozen=True)
class _Projection:
    """The q/k/v projection (FULLY_CONNECTED op), the model width E, and each branch."""

    fc: int
    width: int
    q: Branch
    k: Branch
    v: Branch


def _head_grid(heads: int, tokens: int, head_dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h, n, d) index arrays over heads x tokens x head_dim."""
    return np.meshgrid(np.arange(heads), np.arange(tokens), np.arange(head_dim), indexing="ij")


class _Block:
    """Matching state for one SOFTMAX anchor."""

    def __init__(self, view: GraphView, softmax: int) -> None:
        self.view = view
        self.softmax = softmax
        self.ops: set[int] = {softmax}

    def op(self, index: int) -> schema.OperatorT:
        return self.view.graph.operators[index]

    def producer(self, tensor: int) -> int:
        if tensor not in self.view.producer:
            raise NoMatch(f"{self.view.describe(tensor)} has no producer")
        return self.view.producer[tensor]

    def only_reader(self, tensor: int) -> int:
        readers = self.view.consumers.get(tensor, [])
        if len(readers) != 1 or tensor in self.view.graph_outputs:
            raise NoMatch(f"{self.view.describe(tensor)} is read by {len(readers)} ops or is a graph output")
        return readers[0]

    # --- q, k, v: back from each BATCH_MATMUL operand to the one projection ---------------------

    def branch_path(self, operand: int) -> tuple[int, list[int]]:
        """(projection FULLY_CONNECTED, ops from it to `operand` in forward order)."""
        path: list[int] = []
        tensor = operand
        while True:
            op_index = self.producer(tensor)
            name = self.view.name(op_index)
            if name == "FULLY_CONNECTED":
                return op_index, path[::-1]
            if name in LAYOUT_OPS:
                _same_quant(self.view, op_index)
                tensor = int(self.op(op_index).inputs[0])
            elif name in STEP_OPS:
                _no_activation(self.view, op_index)
                tensor = self.step_input(op_index)
            else:
                raise NoMatch(f"{name} op {op_index} between the projection and a BATCH_MATMUL")
            path.append(op_index)

    def step_input(self, op_index: int) -> int:
        """The activation input of an ADD/MUL whose other input is a constant."""
        a, b = (int(t) for t in self.op(op_index).inputs[:2])
        consts = [_const(self.view, a) is not None, _const(self.view, b) is not None]
        if consts.count(True) != 1:
            raise NoMatch(f"{self.view.name(op_index)} op {op_index} does not combine an activation with a constant")
        return b if consts[0] else a

    def branch(self, root: int, path: list[int], operand_view: Callable[[np.ndarray], np.ndarray],
               expect: Callable[[int], np.ndarray], role: str,
               width: int, total: int) -> Branch:
        """(column, step records, per-column constants) of one branch, checked element by element."""
        view = self.view
        root_out = int(self.op(root).outputs[0])
        idx = np.arange(int(np.prod(_shape(view, root_out)))).reshape(_shape(view, root_out))
        at_step: list[tuple[int, np.ndarray]] = []
        for op_index in path:
            if view.name(op_index) in STEP_OPS:
                at_step.append((op_index, idx))
                if _shape(view, int(self.op(op_index).outputs[0])) != idx.shape:
                    raise NoMatch(f"{view.name(op_index)} op {op_index} broadcasts its activation")
            else:
                idx = _replay(view, op_index, idx)
        final = operand_view(idx)
        column = int(final.reshape(-1)[0])
        if not np.array_equal(final, expect(column)):
            raise NoMatch(f"the {role} operand is not heads x tokens x head_dim of one column window of the projection")
        if len(at_step) > MAX_STEPS:
            raise NoMatch(f"the {role} branch has more than {MAX_STEPS} ADD/MUL steps")
        records, consts = [], []
        for op_index, step_idx in at_step:
            op = self.op(op_index)
            x = self.step_input(op_index)
            c = next(int(t) for t in op.inputs[:2] if int(t) != x)
            out = int(op.outputs[0])
            qps = (_qp(view, x, "step input"), _qp(view, c, "step constant"), _qp(view, out, "step output"))
            records.append((add_step if view.name(op_index) == "ADD" else mul_step)(*qps))
            values = np.broadcast_to(_const(view, c), step_idx.shape).reshape(-1)
            cols = step_idx.reshape(-1) % total - column
            mine = (cols >= 0) & (cols < width)
            per_column = np.full(width, -1000)
            for j in range(width):
                seen = np.unique(values[mine & (cols == j)])
                if seen.size != 1:
                    raise NoMatch(f"the constant of {view.name(op_index)} op {op_index} is not one value per column")
                per_column[j] = seen[0]
            consts.append(per_column.astype(np.int8))
        return column, records, consts

    # --- the ends: tokens in, tokens out ---------------------------------------------------------

    def source(self, fc_input: int, tokens: int, width: int) -> tuple[int, list[int], int | None]:
        """(input tensor, layout/ADD ops from it to the projection, the positional ADD op or None):
        the furthest tensor back whose elements are the (N, E) token matrix in order."""
        view = self.view
        chain: list[int] = []
        candidates = [(fc_input, [])]
        tensor = fc_input
        while tensor in view.producer and len(view.consumers.get(tensor, [])) == 1 and tensor not in view.graph_outputs:
            op_index = view.producer[tensor]
            name = view.name(op_index)
            if name in LAYOUT_OPS:
                _same_quant(view, op_index)
                tensor = int(self.op(op_index).inputs[0])
            elif name == "ADD" and sum(view.name(i) == "ADD" for i in chain) == 0:
                _no_activation(view, op_index)
                tensor = self.step_input(op_index)
            else:
                break
            chain.append(op_index)
            candidates.append((tensor, chain[::-1]))
        for tensor, ops in reversed(candidates):
            if self.identity(tensor, ops, tokens * width):
                adds = [i for i in ops if view.name(i) == "ADD"]
                return tensor, ops, adds[0] if adds else None
        raise NoMatch("no tensor before the projection holds the tokens in (N, E) order")

    def identity(self, start: int, ops: list[int], size: int) -> bool:
        """Do `ops` carry `start`'s elements to their end in the same order?"""
        shape = _shape(self.view, start)
        if int(np.prod(shape)) != size:
            return False
        idx = np.arange(size).reshape(shape)
        try:
            for op_index in ops:
                if self.view.name(op_index) in LAYOUT_OPS:
                    idx = _replay(self.view, op_index, idx)
        except NoMatch:
            return False
        return np.array_equal(idx.reshape(-1), np.arange(size))

    def pos_table(self, add: int, source: int, ops: list[int], tokens: int, width: int) -> np.ndarray:
        """The positional constant in token order: the ADD's constant mapped back through the layout."""
        view = self.view
        idx = np.arange(tokens * width).reshape(_shape(view, source))
        for op_index in ops:
            if op_index == add:
                break
            idx = _replay(view, op_index, idx)
        const = _const(view, next(int(t) for t in self.op(add).inputs[:2] if int(t) != self.step_input(add)))
        if _shape(view, int(self.op(add).outputs[0])) != idx.shape:
            raise NoMatch("the positional ADD broadcasts its activation")
        table = np.empty(tokens * width, dtype=np.int8)
        table[idx.reshape(-1)] = np.broadcast_to(const, idx.shape).reshape(-1)
        return table.reshape(tokens, width)

    def destination(self, fc_output: int, size: int) -> tuple[int, list[int]]:
        """(output tensor, layout ops from the output projection to it): the furthest tensor on a
        single-reader layout chain that still holds the tokens in (N, E) order."""
        view = self.view
        best, chain, ops = fc_output, [], []
        idx = np.arange(size)
        tensor = fc_output
        while len(view.consumers.get(tensor, [])) == 1 and tensor not in view.graph_outputs:
            op_index = view.consumers[tensor][0]
            if view.name(op_index) not in LAYOUT_OPS or int(self.op(op_index).inputs[0]) != tensor:
                break
            try:
                _same_quant(view, op_index)
                idx = _replay(view, op_index, idx.reshape(_shape(view, tensor)))
            except NoMatch:
                break
            chain.append(op_index)
            tensor = int(self.op(op_index).outputs[0])
            if np.array_equal(idx.reshape(-1), np.arange(size)):
                best, ops = tensor, list(chain)
        return best, ops

    # --- the whole block -------------------------------------------------------------------------

    def match(self, fc_double_rounding: bool) -> AttentionMatch:
        """The block around this SOFTMAX as one NLPOOL_ATTENTION, or NoMatch naming the first thing that
        is not the pattern. Matched from the inside out: the scores, the q/k/v branches back to their
        one projection, the heads forward to the output projection, then the ends (how far the token
        matrix reaches before and after the block) and last the op's options."""
        scores = self.scores()
        projection = self.projection(scores)
        out_fc = self.output_projection(scores, projection.width)
        tokens, width = scores.tokens, projection.width
        source, in_ops, pos_add = self.source(int(self.op(projection.fc).inputs[0]), tokens, width)
        self.ops.update(in_ops)
        dest, out_ops = self.destination(int(self.op(out_fc).outputs[0]), tokens * width)
        self.ops.update(out_ops)
        self.check_private(dest)
        params = self.params(projection.fc, out_fc, scores.score_mm, scores.mix_mm, source, dest, pos_add, scores.heads, tokens,
                             width, projection.q, projection.k, projection.v, fc_double_rounding)
        pos = self.pos_table(pos_add, source, in_ops, tokens, width) if pos_add is not None else None
        pos_qp = None
        if pos_add is not None:
            pos_qp = _qp(self.view, next(int(t) for t in self.op(pos_add).inputs[:2] if int(t) != self.step_input(pos_add)), "table")
        qkv, out = self.op(projection.fc), self.op(out_fc)
        optional = [int(op.inputs[2]) if len(op.inputs) > 2 else -1 for op in (qkv, out)]
        return AttentionMatch(frozenset(self.ops), source, dest, pos, pos_qp, int(qkv.inputs[1]), optional[0],
                              int(out.inputs[1]), optional[1], params, tensor_name(self.view.tensor(dest)))

    def scores(self) -> _Scores:
        """The SOFTMAX's two BATCH_MATMULs (q k^T before it, its probabilities times v after it), each
        the only reader of what it reads from the block, and the square score shape's heads and tokens."""
        view = self.view
        probabilities = int(self.op(self.softmax).outputs[0])
        score_mm = self.producer(int(self.op(self.softmax).inputs[0]))
        mix_mm = self.only_reader(probabilities)
        if view.name(score_mm) != "BATCH_MATMUL" or view.name(mix_mm) != "BATCH_MATMUL":
            raise NoMatch("the SOFTMAX is not between two BATCH_MATMULs")
        if int(self.op(mix_mm).inputs[0]) != probabilities or self.op(mix_mm).builtinOptions.adjX:
            raise NoMatch("the softmax is not the plain left operand of the second BATCH_MATMUL")
        self.only_reader(int(self.op(score_mm).outputs[0]))
        self.ops |= {score_mm, mix_mm}
        probs_shape = _shape(view, probabilities)
        heads, tokens = int(np.prod(probs_shape[:-2])), probs_shape[-1]
        if probs_shape[-2] != tokens:
            raise NoMatch(f"scores {probs_shape} are not square")
        return _Scores(score_mm, mix_mm, heads, tokens)

    def projection(self, scores: _Scores) -> _Projection:
        """The one FULLY_CONNECTED (N, 3E) that q, k and v are column windows of, and each branch's
        column, steps and constants: every operand is checked element by element to be heads x tokens
        x head_dim of its window (k transposed when the score BATCH_MATMUL says adj_y)."""
        view = self.view
        score_op, mix_op = self.op(scores.score_mm), self.op(scores.mix_mm)
        q_op, k_op, v_op = (int(t) for t in (*score_op.inputs[:2], mix_op.inputs[1]))
        roots, paths = {}, {}
        for role, operand in (("q", q_op), ("k", k_op), ("v", v_op)):
            roots[role], paths[role] = self.branch_path(operand)
        if len(set(roots.values())) != 1:
            raise NoMatch("q, k and v do not come from one FULLY_CONNECTED projection")
        qkv = roots["q"]
        _no_activation(view, qkv)
        projected = _shape(view, int(self.op(qkv).outputs[0]))
        total = projected[-1]
        if total % 3:
            raise NoMatch(f"the projection width {total} is not 3 x E")
        width = total // 3
        if width % scores.heads:
            raise NoMatch(f"E = {width} is not divisible by {scores.heads} heads")
        if int(np.prod(projected)) != scores.tokens * total:
            raise NoMatch("the projection does not hold N x 3E values")
        h, n, d = _head_grid(scores.heads, scores.tokens, width // scores.heads)
        window = n * total + h * (width // scores.heads) + d  # the projection's element of (h, n, d), column window at 0

        def rows_view(operand_shape: tuple[int, ...], adj: bool) -> Callable[[np.ndarray], np.ndarray]:
            def apply(idx: np.ndarray) -> np.ndarray:
                out = idx.reshape(scores.heads, *operand_shape[-2:])
                return out.transpose(0, 2, 1) if adj else out
            return apply

        if score_op.builtinOptions.adjX:
            raise NoMatch("the score BATCH_MATMUL transposes q")
        q = self.branch(qkv, paths["q"], rows_view(_shape(view, q_op), False), lambda c: window + c, "q", width, total)
        k = self.branch(qkv, paths["k"], rows_view(_shape(view, k_op), bool(score_op.builtinOptions.adjY)),
                        lambda c: (window + c).transpose(0, 2, 1), "k", width, total)
        v = self.branch(qkv, paths["v"], rows_view(_shape(view, v_op), bool(mix_op.builtinOptions.adjY)),
                        lambda c: window + c, "v", width, total)
        for path in paths.values():
            self.ops.update(path)
        self.ops.add(qkv)
        return _Projection(qkv, width, q, k, v)

    def output_projection(self, scores: _Scores, width: int) -> int:
        """The FULLY_CONNECTED the mixed heads go to, through layout ops only, which must concatenate
        the heads token by token (each token's row is head 0's head_dim values, then head 1's, ...)."""
        view = self.view
        mixed = int(self.op(scores.mix_mm).outputs[0])
        tensor, layout = mixed, []
        while True:
            reader = self.only_reader(tensor)
            if view.name(reader) == "FULLY_CONNECTED" and int(self.op(reader).inputs[0]) == tensor:
                out_fc = reader
                break
            if view.name(reader) not in LAYOUT_OPS:
                raise NoMatch(f"{view.name(reader)} op {reader} between the attention and the output projection")
            _same_quant(view, reader)
            layout.append(reader)
            tensor = int(self.op(reader).outputs[0])
        heads, tokens, head_dim = scores.heads, scores.tokens, width // scores.heads
        idx = np.arange(heads * tokens * head_dim).reshape(_shape(view, mixed))
        for op_index in layout:
            idx = _replay(view, op_index, idx)
        h, n, d = _head_grid(heads, tokens, head_dim)
        concatenated = (h * tokens * head_dim + n * head_dim + d).transpose(1, 0, 2).reshape(tokens, width)
        if not np.array_equal(idx.reshape(tokens, width), concatenated):
            raise NoMatch("the heads are not concatenated token by token before the output projection")
        _no_activation(view, out_fc)
        self.ops.update(layout)
        self.ops.add(out_fc)
        return out_fc

    def check_private(self, dest: int) -> None:
        """Refuse the block when a tensor inside it (all but its output `dest`) is read outside it or is
        a graph output: the fused op would remove a tensor someone still needs."""
        for op_index in self.ops:
            for t in (int(t) for t in self.op(op_index).outputs):
                if t == dest:
                    continue
                outside = [c for c in self.view.consumers.get(t, []) if c not in self.ops]
                if outside or t in self.view.graph_outputs:
                    raise NoMatch(f"intermediate {self.view.describe(t)} is also read outside the block")

    def fc_fields(self, fc: int, out_channels: int, in_width: int) -> tuple[int, int, int, tuple[int, ...], tuple[int, ...]]:
        """(input offset, filter offset, output offset, multipliers, shifts) of a FULLY_CONNECTED."""
        view = self.view
        op = self.op(fc)
        x, w, y = int(op.inputs[0]), int(op.inputs[1]), int(op.outputs[0])
        weights = view.tensor(w)
        if _const(view, w) is None or weights.type != INT8 or _shape(view, w) != (out_channels, in_width):
            raise NoMatch(f"FULLY_CONNECTED op {fc} does not have constant int8 ({out_channels}, {in_width}) weights")
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            bias = view.tensor(int(op.inputs[2]))
            if _const(view, int(op.inputs[2])) is None or bias.type != schema.TensorType.INT32:
                raise NoMatch(f"FULLY_CONNECTED op {fc} has a non-constant or non-int32 bias")
        (sx, zx), (sy, zy) = _qp(view, x, "projection input"), _qp(view, y, "projection output")
        scales = np.asarray(weights.quantization.scale, dtype=np.float64)
        zero_points = np.asarray(weights.quantization.zeroPoint, dtype=np.int64)
        if scales.size not in (1, out_channels) or np.unique(zero_points).size != 1:
            raise NoMatch(f"FULLY_CONNECTED op {fc} weights are neither per-tensor nor per-output-channel")
        scales = np.broadcast_to(scales, (out_channels,))
        pairs = [quantize_multiplier(float(sx) * float(s) / float(sy)) for s in scales]
        return -zx, -int(zero_points[0]), zy, tuple(m for m, _ in pairs), tuple(s for _, s in pairs)

    def params(self, qkv: int, out_fc: int, score_mm: int, mix_mm: int, source: int, dest: int, pos_add: int | None,
               heads: int, tokens: int, width: int, q: Branch, k: Branch, v: Branch, fc_double_rounding: bool) -> AttentionParams:
        """The op's options: every offset, multiplier and shift the unfused ops' quantisation implies."""
        view = self.view
        qkv_in, qkv_filter, qkv_out, qkv_mult, qkv_shift = self.fc_fields(qkv, 3 * width, width)
        out_in, out_filter, out_out, out_mult, out_shift = self.fc_fields(out_fc, width, width)
        if (_qp(view, dest, "output") != _qp(view, int(self.op(out_fc).outputs[0]), "projection output")):
            raise NoMatch("the output's quantisation differs from the output projection's")
        pos_step: tuple[int, ...] = ()
        if pos_add is not None:
            x = self.step_input(pos_add)
            c = next(int(t) for t in self.op(pos_add).inputs[:2] if int(t) != x)
            pos_step = add_step(_qp(view, x, "tokens"), _qp(view, c, "table"), _qp(view, int(self.op(pos_add).outputs[0]), "tokens"))
        sq, zq = _qp(view, int(self.op(score_mm).inputs[0]), "q")
        sk, zk = _qp(view, int(self.op(score_mm).inputs[1]), "k")
        ss, zs = _qp(view, int(self.op(score_mm).outputs[0]), "scores")
        sp, zp = _qp(view, int(self.op(self.softmax).outputs[0]), "probabilities")
        if abs(sp - SOFTMAX_OUTPUT_SCALE) > 1e-9 or zp != SOFTMAX_OUTPUT_ZERO_POINT:
            raise NoMatch(f"the SOFTMAX output is not quantised at 1/256, zero point -128 (got {sp:.6g}, {zp})")
        sv, zv = _qp(view, int(self.op(mix_mm).inputs[1]), "v")
        sm, zm = _qp(view, int(self.op(mix_mm).outputs[0]), "mixed")
        score_m, score_s = quantize_multiplier(sq * sk / ss)
        mix_m, mix_s = quantize_multiplier(sp * sv / sm)
        try:
            softmax = softmax_fixed_params(ss, float(self.op(self.softmax).builtinOptions.beta))
        except ValueError as err:
            raise NoMatch(str(err)) from None
        branches = {}
        for role, (column, records, consts) in zip("qkv", (q, k, v), strict=True):
            branches[f"{role}_column"] = column
            branches[f"{role}_steps"] = tuple(int(v) for r in records for v in r)
            branches[f"{role}_consts"] = tuple(int(v) for c in consts for v in c)
        return AttentionParams(
            tokens=tokens, width=width, heads=heads, input_zero_point=_qp(view, source, "tokens")[1], output_zero_point=out_out,
            pos_step=pos_step, qkv_input_offset=qkv_in, qkv_filter_offset=qkv_filter, qkv_output_offset=qkv_out,
            qkv_multiplier=qkv_mult, qkv_shift=qkv_shift, **branches,
            score_lhs_offset=-zq, score_rhs_offset=-zk, score_multiplier=score_m, score_shift=score_s, score_output_offset=zs,
            softmax_multiplier=softmax[0], softmax_left_shift=softmax[1], softmax_diff_min=softmax[2],
            mix_rhs_offset=-zv, mix_multiplier=mix_m, mix_shift=mix_s, mix_output_offset=zm,
            out_input_offset=out_in, out_filter_offset=out_filter, out_multiplier=out_mult, out_shift=out_shift,
            fc_double_rounding=int(fc_double_rounding),
        )


def find_attention_blocks(model: schema.ModelT, subgraph: int = 0, fc_double_rounding: bool = True) -> AttentionFusion:
    """Every attention block of a subgraph that matches, and a reason for each SOFTMAX-between-
    BATCH_MATMULs that does not."""
    view = GraphView(model, subgraph)
    matches, skipped = [], []
    for index in range(len(view.graph.operators)):
        if view.name(index) != "SOFTMAX":
            continue
        producer = view.producer.get(int(view.graph.operators[index].inputs[0]))
        if producer is None or view.name(producer) != "BATCH_MATMUL":
            continue
        where = view.describe(int(view.graph.operators[index].outputs[0]))
        try:
            match = _Block(view, index).match(fc_double_rounding)
            match.params.check()
        except (NoMatch, ValueError) as err:
            skipped.append(f"attention at SOFTMAX op {index} ({where}) left unfused: {err}")
            continue
        if any(match.ops & other.ops for other in matches):
            skipped.append(f"attention at SOFTMAX op {index} ({where}) left unfused: it shares ops with another block")
            continue
        matches.append(match)
    return AttentionFusion(tuple(matches), tuple(skipped))


def _constant_tensor(model: schema.ModelT, graph: schema.SubGraphT, values: np.ndarray, qp: tuple[float, int], name: str) -> int:
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(values.astype(np.int8).tobytes(), dtype=np.uint8).copy()
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape = list(values.shape)
    tensor.type = INT8
    tensor.buffer = len(model.buffers) - 1
    tensor.name = name.encode()
    tensor.quantization = schema.QuantizationParametersT()
    tensor.quantization.scale, tensor.quantization.zeroPoint = [float(qp[0])], [int(qp[1])]
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def fuse_attention(model: schema.ModelT, fc_double_rounding: bool = True) -> AttentionFusion:
    """Replace every matching attention block of every subgraph by one NLPOOL_ATTENTION op (in place).

    `fc_double_rounding`: the op's FULLY_CONNECTED steps round twice, as upstream TFLM and nlpool's
    firmware do (the default, what `nlpool export` writes), or once, as the host TFLite interpreter does
    (docs/rounding.md); the fused op is bit-exact with the unfused graph under that arithmetic."""
    results = [find_attention_blocks(model, index, fc_double_rounding) for index in range(len(model.subgraphs))]
    for graph, result in zip(model.subgraphs, results, strict=True):
        replacement = {}
        for match in result.matches:
            op = schema.OperatorT()
            op.opcodeIndex = opcode_index(model, schema.BuiltinOperator.CUSTOM, ATTENTION_OP_NAME)
            pos = -1
            if match.pos_table is not None:
                pos = _constant_tensor(model, graph, match.pos_table, match.pos_qp, f"{match.name}/nlpool_pos_table")
            op.inputs = [match.tokens, pos, match.qkv_weights, match.qkv_bias, match.out_weights, match.out_bias]
            op.outputs = [match.output]
            op.customOptions = np.frombuffer(match.params.to_flexbuffer(), dtype=np.uint8).copy()
            op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
            replacement[max(match.ops)] = op
        removed = set().union(*(m.ops for m in result.matches)) if result.matches else set()
        graph.operators = [replacement.get(i, op) for i, op in enumerate(graph.operators) if i not in removed or i in replacement]
    compact(model)
    return AttentionFusion(tuple(m for r in results for m in r.matches), tuple(s for r in results for s in r.skipped))
