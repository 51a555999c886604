"""TFLM's tensor arena, predicted from the graph and measured with the real TFLM host interpreter.

TFLM's arena has a head (the non-persistent section: every activation tensor, placed by its greedy
memory planner, plus kernel scratch buffers) and a tail (persistent: interpreter structs per tensor
and per node, kernel op data such as per-channel requantisation arrays).

- Head: predicted exactly as TFLM plans it (`plans.greedy_by_size`: 16-byte aligned sizes, size
  descending, first fit over TFLM's inclusive lifetimes). The reference kernels of the ops our
  models use request no scratch, so none is added; a kernel that does (e.g. CMSIS-NN convolutions)
  adds its scratch on top.
- Tail: struct sizes depend on the pointer width. The host interpreter is 64-bit; a Cortex-M build
  is 32-bit and smaller. `predict_tail` gives the 64-bit host tail from counts (tensors, nodes,
  output channels) with per-item sizes measured on the host build; it is only an estimate for a
  target and is reported as such.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .graph import Graph
from .plans import ArenaPlan, greedy_by_size

# Per-item sizes of the 64-bit host build, read from its RecordingMicroAllocator output.
HOST_EVAL_TENSOR_BYTES = 24  # TfLiteEvalTensor, one per tensor of the subgraph
HOST_NODE_BYTES = 64  # NodeAndRegistration, one per operator
HOST_IO_TENSOR_BYTES = 64 + 32  # persistent TfLiteTensor + its quantisation record, per graph input/output
PER_CHANNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")


@dataclass(frozen=True)
class TflmPrediction:
    """TFLM's arena as predicted: `head_bytes` is the planned part (checked to <= 3 %)."""

    plan: ArenaPlan
    head_bytes: int
    tail_bytes_host: int

    @property
    def total_bytes_host(self) -> int:
        return self.head_bytes + self.tail_bytes_host

    def as_dict(self) -> dict[str, object]:
        return {
            "head_bytes": self.head_bytes,
            "tail_bytes_host_estimate": self.tail_bytes_host,
            "total_bytes_host_estimate": self.total_bytes_host,
            "note": "head = planned tensors (TFLM's greedy planner, 16-byte alignment); tail = interpreter structs, 64-bit host sizes",
        }


def predict_tail(graph: Graph) -> int:
    """Host-build persistent bytes that follow from counts: eval tensors, nodes, I/O tensors, per-channel arrays.

    Kernel op-data structs (a few dozen bytes per op, kernel-specific) are not modelled: the tail
    is an under-estimate by those.
    """
    tail = HOST_EVAL_TENSOR_BYTES * len(graph.tensors) + HOST_NODE_BYTES * len(graph.ops)
    tail += HOST_IO_TENSOR_BYTES * (len(graph.inputs) + len(graph.outputs))
    for op in graph.ops:
        if op.kind in PER_CHANNEL_OPS and op.outputs:
            shape = graph.tensors[op.outputs[0]].shape
            channels = shape[-1] if shape else 1  # a corrupted rank-0 output: the estimate stays an estimate
            tail += 2 * 4 * channels  # int32 output multiplier and shift per output channel
    return tail


def predict_tflm(graph: Graph) -> TflmPrediction:
    plan = greedy_by_size(graph)
    return TflmPrediction(plan=plan, head_bytes=plan.arena_bytes, tail_bytes_host=predict_tail(graph))


_LINE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_ITEM = re.compile(r"'([^']+)' used (\d+) bytes")


def measure_tflm(path: Path, arena_size: int = 8 << 20) -> dict[str, int]:
    """Run the model once in TFLM's host interpreter and return its recorded arena use.

    `print_allocations()` writes to the C++ stderr, so it is captured at the file-descriptor level.
    Returns {"total", "head", "tail", and each recorded category}.
    """
    import numpy as np
    from tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(path), arena_size=arena_size)
    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), 0)
    interpreter.invoke()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            interpreter.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    result = {kind: int(value) for kind, value in _LINE.findall(text)}
    result |= {name: int(value) for name, value in _ITEM.findall(text)}
    if "head" not in result:
        raise RuntimeError(f"TFLM printed no arena allocation for {path}: {text[:200]!r}")
    return result
