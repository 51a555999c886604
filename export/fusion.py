"""Fuse every self-attentive weighted pooling into one int8 NLPOOL_WEIGHTED_POOL custom op.

onnx2tf turns `AvgPool_s(pi * x) / AvgPool_s(pi)` with `pi = exp(sigmoid(r))` into

    r -> LOGISTIC -> EXP -> pi ─┬─> AVERAGE_POOL_2D ───────────> DIV (denominator)
                       x ──> MUL ──> AVERAGE_POOL_2D ───────────> DIV (numerator) -> y

with QUANTIZE / DEQUANTIZE ops on any edge (TF 2.19 keeps DIV in float). The pass anchors on a
LOGISTIC whose output reaches an EXP, then demands the whole pattern: a partly matched pattern, an
intermediate tensor that anything outside the pattern reads, or parameters the integer op cannot
represent raise FusionError before the model is touched — never a half-rewritten graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlpool.core.custom_ops import WEIGHTED_POOL_OP_NAME, WeightedPoolParams
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import read_model, schema, write_model

from .graph_edit import INT8, GraphView, compact, opcode_index, quant_params, tensor_name

QDQ = ("QUANTIZE", "DEQUANTIZE")


class FusionError(NlpoolError):
    """The graph holds a weighted-pooling pattern the pass refuses to rewrite."""


@dataclass(frozen=True)
class PoolMatch:
    """One matched weighted pooling: its ops (to remove), the op's tensors and options.

    Indices refer to the graph before fusion (compaction renumbers tensors); names survive it.
    """

    ops: frozenset[int]
    x: int
    r: int
    y: int
    params: WeightedPoolParams
    names: dict[str, str]


def _next_ops(view: GraphView, tensor: int) -> list[tuple[int, int, list[int]]]:
    """(op, the tensor it reads, QUANTIZE/DEQUANTIZE ops crossed) for every reader of `tensor`."""
    found = []
    for op in view.consumers.get(tensor, []):
        if view.name(op) in QDQ:
            out = int(view.graph.operators[op].outputs[0])
            found += [(nxt, read, [op, *chain]) for nxt, read, chain in _next_ops(view, out)]
        else:
            found.append((op, tensor, []))
    return found


class _Matcher:
    def __init__(self, view: GraphView, anchor: int) -> None:
        self.view = view
        self.anchor = anchor
        self.ops: set[int] = {anchor}

    def fail(self, what: str) -> FusionError:
        where = self.view.describe(int(self.view.graph.operators[self.anchor].inputs[0]))
        return FusionError(
            f"weighted pooling at LOGISTIC op {self.anchor} (input {where}) only partly matches: {what}; the model cannot be fused"
        )

    def op(self, index: int) -> schema.OperatorT:
        return self.view.graph.operators[index]

    def single(self, tensor: int, expected: str) -> tuple[int, int]:
        """The one reader of `tensor` (through Q/DQ), which must be an `expected` op."""
        readers = _next_ops(self.view, tensor)
        names = [self.view.name(op) for op, _, _ in readers]
        if names != [expected]:
            raise self.fail(f"{self.view.describe(tensor)} should feed exactly one {expected}, it feeds {names or 'nothing'}")
        op, read, chain = readers[0]
        self.ops.update([op, *chain])
        return op, read

    def match(self) -> PoolMatch:
        view = self.view
        logistic = self.op(self.anchor)
        r = int(logistic.inputs[0])
        exp, _ = self.single(int(logistic.outputs[0]), "EXP")
        pi = int(self.op(exp).outputs[0])
        readers = _next_ops(view, pi)
        by_name = {view.name(op): (op, read, chain) for op, read, chain in readers}
        if len(readers) != 2 or set(by_name) != {"AVERAGE_POOL_2D", "MUL"}:
            raise self.fail(
                f"pi = EXP output should feed one AVERAGE_POOL_2D and one MUL, it feeds {sorted(view.name(op) for op, _, _ in readers)}"
            )
        pool_pi, _, chain_a = by_name["AVERAGE_POOL_2D"]
        mul, pi_read, chain_m = by_name["MUL"]
        self.ops.update([pool_pi, mul, *chain_a, *chain_m])
        mul_inputs = [int(t) for t in self.op(mul).inputs]
        if mul_inputs.count(pi_read) != 1:
            raise self.fail("the MUL does not multiply pi by another tensor")
        x = mul_inputs[1 - mul_inputs.index(pi_read)]
        pool_px, _ = self.single(int(self.op(mul).outputs[0]), "AVERAGE_POOL_2D")
        div, den_read = self.single(int(self.op(pool_pi).outputs[0]), "DIV")
        div_b, num_read = self.single(int(self.op(pool_px).outputs[0]), "DIV")
        if div_b != div or [int(t) for t in self.op(div).inputs] != [num_read, den_read]:
            raise self.fail("the two AVERAGE_POOL_2D outputs do not meet in one DIV as numerator (pi*x) over denominator (pi)")
        y = self._output(int(self.op(div).outputs[0]))
        self._check_options(mul, pool_pi, pool_px, div)
        self._check_private(y)
        names = {role: tensor_name(view.tensor(t)) for role, t in (("x", x), ("r", r), ("y", y))}
        return PoolMatch(frozenset(self.ops), x, r, y, self._params(x, r, y, pool_pi), names)

    def _output(self, tensor: int) -> int:
        """The int8 tensor the pattern produces: the DIV output, or the QUANTIZE of a float DIV output."""
        view = self.view
        if view.tensor(tensor).type == INT8:
            return tensor
        readers = view.consumers.get(tensor, [])
        if len(readers) != 1 or view.name(readers[0]) != "QUANTIZE" or tensor in view.graph_outputs:
            raise self.fail(f"the float DIV output {view.describe(tensor)} is not read by exactly one QUANTIZE")
        self.ops.add(readers[0])
        out = int(self.op(readers[0]).outputs[0])
        if view.tensor(out).type != INT8:
            raise self.fail(f"the pooling output {view.describe(out)} is not int8")
        return out

    def _check_options(self, mul: int, pool_pi: int, pool_px: int, div: int) -> None:
        for index in (mul, div):
            options = self.op(index).builtinOptions
            if options is not None and getattr(options, "fusedActivationFunction", 0) != schema.ActivationFunctionType.NONE:
                raise self.fail(f"{self.view.name(index)} op {index} has a fused activation")
        a, b = self.op(pool_pi).builtinOptions, self.op(pool_px).builtinOptions
        key = ("filterHeight", "filterWidth", "strideH", "strideW", "padding", "fusedActivationFunction")
        if [getattr(a, k) for k in key] != [getattr(b, k) for k in key]:
            raise self.fail("the two AVERAGE_POOL_2D ops have different windows, strides, padding or activation")
        if a.padding != schema.Padding.VALID or a.fusedActivationFunction != schema.ActivationFunctionType.NONE:
            raise self.fail("the AVERAGE_POOL_2D ops are not VALID-padded without activation")

    def _check_private(self, y: int) -> None:
        """No tensor the pattern computes (other than y) may be read outside it or be a graph output."""
        view = self.view
        for op in sorted(self.ops):
            for t in (int(t) for t in self.op(op).outputs):
                if t == y:
                    continue
                outside = [c for c in view.consumers.get(t, []) if c not in self.ops]
                if outside or t in view.graph_outputs:
                    users = f"op {outside[0]} ({view.name(outside[0])})" if outside else "the graph outputs"
                    raise FusionError(
                        f"weighted pooling at LOGISTIC op {self.anchor}: intermediate {view.describe(t)} is also used by {users};"
                        " fusing would remove it, so the model cannot be fused"
                    )

    def _params(self, x: int, r: int, y: int, pool: int) -> WeightedPoolParams:
        view = self.view
        tensors = {"x": x, "r": r, "y": y}
        qps = {}
        for role, t in tensors.items():
            tensor = view.tensor(t)
            if tensor.type != INT8 or quant_params(tensor) is None:
                raise self.fail(f"{role} = {view.describe(t)} is not a per-tensor quantised int8 tensor")
            qps[role] = quant_params(tensor)
        if list(view.tensor(x).shape) != list(view.tensor(r).shape) or len(view.tensor(x).shape) != 4:
            raise self.fail(f"x {list(view.tensor(x).shape)} and r {list(view.tensor(r).shape)} are not NHWC tensors of one shape")
        o = self.op(pool).builtinOptions
        try:
            return WeightedPoolParams.from_quantization(
                (o.filterHeight, o.filterWidth), (o.strideH, o.strideW), qps["x"], qps["r"], qps["y"]
            )
        except ValueError as err:
            raise self.fail(str(err)) from None


def find_weighted_pools(model: schema.ModelT, subgraph: int = 0) -> list[PoolMatch]:
    """Every weighted pooling of a subgraph, fully validated; FusionError on any partial match."""
    view = GraphView(model, subgraph)
    anchors = [
        index
        for index in range(len(view.graph.operators))
        if view.name(index) == "LOGISTIC"
        and any(view.name(op) == "EXP" for op, _, _ in _next_ops(view, int(view.graph.operators[index].outputs[0])))
    ]
    matches = [_Matcher(view, anchor).match() for anchor in anchors]
    seen: set[int] = set()
    for match in matches:
        if seen & match.ops:
            raise FusionError("two weighted-pooling patterns share ops: the model cannot be fused")
        seen |= match.ops
    return matches


def _custom_op(model: schema.ModelT, match: PoolMatch) -> schema.OperatorT:
    op = schema.OperatorT()
    op.opcodeIndex = opcode_index(model, schema.BuiltinOperator.CUSTOM, WEIGHTED_POOL_OP_NAME)
    op.inputs = [match.x, match.r]
    op.outputs = [match.y]
    op.customOptions = np.frombuffer(match.params.to_flexbuffer(), dtype=np.uint8).copy()
    op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    return op


def fuse_model(model: schema.ModelT) -> list[PoolMatch]:
    """Rewrite every weighted pooling of every subgraph in place; returns the matches (all or nothing)."""
    per_subgraph = [find_weighted_pools(model, index) for index in range(len(model.subgraphs))]
    for graph, matches in zip(model.subgraphs, per_subgraph, strict=True):
        # The custom op takes the place of its pattern's last op: x and r exist before it, y's readers follow.
        replacement = {max(m.ops): _custom_op(model, m) for m in matches}
        removed = set().union(*(m.ops for m in matches)) if matches else set()
        graph.operators = [
            replacement.get(index, op) for index, op in enumerate(graph.operators) if index not in removed or index in replacement
        ]
    compact(model)
    return [m for matches in per_subgraph for m in matches]


def fuse_file(src: Path, dst: Path) -> list[PoolMatch]:
    """Read `src`, fuse, write `dst`; `dst` is only written when every pattern fused."""
    model = read_model(src).raw
    matches = fuse_model(model)
    write_model(model, dst)
    return matches
