"""Tensor lifetimes (first and last op step at which a tensor occupies SRAM) and in-place groups.

The convention is TFLM's, so the TFLM prediction and the other plans share it: a tensor is live
from the step of the op that writes it (graph inputs: step 0) through the step of the last op that
reads it (graph outputs: the last step), both inclusive. An op's inputs and outputs are therefore
live together at its step, which is what a kernel needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import INPLACE_OPS, Graph


@dataclass(frozen=True)
class Buffer:
    """A block of SRAM holding one tensor, or several tensors an in-place chain writes over each other."""

    tensors: tuple[int, ...]
    size: int
    first: int
    last: int

    def overlaps(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


def tensor_lifetimes(graph: Graph) -> dict[int, tuple[int, int]]:
    """Activation tensor index -> (first step, last step), both inclusive (cached on the graph)."""
    cached = graph.extra.get("lifetimes")
    if cached is not None:
        return cached  # type: ignore[return-value]
    last_step = max(len(graph.ops) - 1, 0)
    inputs, outputs = set(graph.inputs), set(graph.outputs)
    spans: dict[int, tuple[int, int]] = {}
    for t in graph.activations:
        first = 0 if t in inputs or t not in graph.producer else graph.producer[t]
        readers = graph.consumers.get(t)
        last = readers[-1] if readers else first
        if t in outputs:
            last = last_step
        spans[t] = (first, max(first, last))
    graph.extra["lifetimes"] = spans
    return spans


def inplace_pairs(graph: Graph) -> list[tuple[int, int, int]]:
    """(op, input, output) triples where the output may take over the input's memory.

    Allowed when the op is element-wise or a reshape (`INPLACE_OPS`) or runs its in-place kernel
    (`Op.inplace`: first input only), the input is an activation of exactly the output's byte size,
    this op is its last reader, and it is not a graph output.
    """
    spans = tensor_lifetimes(graph)
    pairs = []
    for op in graph.ops:
        if (op.kind not in INPLACE_OPS and not op.inplace) or len(op.outputs) != 1 or op.outputs[0] not in spans:
            continue
        out = graph.tensors[op.outputs[0]]
        for t in dict.fromkeys(op.inputs[:1] if op.inplace else op.inputs):
            tensor = graph.tensors[t]
            if tensor.constant or t in graph.outputs or op.inputs.count(t) > 1:
                continue
            if tensor.nbytes == out.nbytes and spans[t][1] == op.index:
                pairs.append((op.index, t, out.index))
                break
    return pairs


def align(size: int, alignment: int) -> int:
    return -(-size // alignment) * alignment


def make_buffers(graph: Graph, alignment: int, inplace: bool = False) -> list[Buffer]:
    """One buffer per activation tensor, or per in-place chain when `inplace` (sizes aligned up)."""
    spans = tensor_lifetimes(graph)
    group = {t: [t] for t in spans}
    if inplace:
        for _op, src, dst in inplace_pairs(graph):
            merged = group[src] + group[dst]
            for t in merged:
                group[t] = merged
    buffers, seen = [], set()
    for t in spans:
        members = group[t]
        if id(members) in seen:
            continue
        seen.add(id(members))
        buffers.append(
            Buffer(
                tensors=tuple(members),
                size=align(max(graph.tensors[m].nbytes for m in members), alignment),
                first=min(spans[m][0] for m in members),
                last=max(spans[m][1] for m in members),
            )
        )
    return buffers


def live_bytes_per_step(graph: Graph, buffers: list[Buffer] | None = None) -> list[int]:
    """Bytes that must be resident at each op step (unaligned tensor bytes unless buffers are given)."""
    steps = [0] * max(len(graph.ops), 1)
    if buffers is None:
        items = [(graph.tensors[t].nbytes, first, last) for t, (first, last) in tensor_lifetimes(graph).items()]
    else:
        items = [(b.size, b.first, b.last) for b in buffers]
    for size, first, last in items:
        for step in range(first, last + 1):
            steps[step] += size
    return steps
