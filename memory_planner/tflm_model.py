"""TFLM's tensor arena, predicted from the graph and measured with the real TFLM host interpreter.

TFLM's arena has a head (the non-persistent section: every activation tensor, placed by its greedy
memory planner, plus kernel scratch buffers) and a tail (persistent: interpreter structs per tensor
and per node, kernel op data such as per-channel requantisation arrays).

- Head: predicted exactly as TFLM plans it (`plans.greedy_by_size`: 16-byte aligned sizes, size
  descending, first fit over TFLM's inclusive lifetimes). The reference kernels of the builtin ops
  our models use request no scratch; NLPOOL_ATTENTION's kernel requests its scratch (a tensor of the
  planning graph, live at that op only), and a caller's kernel scratch (e.g. CMSIS-NN convolutions)
  is planned the same way.
- Tail: struct sizes depend on the pointer width. `predict_target_tail` gives the tail of a 32-bit
  Cortex-M build from what TFLM allocates, with the struct sizes of a 32-bit build: the interpreter's
  objects, one TfLiteEvalTensor per tensor, one NodeAndRegistration per op, each op's builtin options
  and kernel data (every kernel buffer rounded up to TFLM's 16-byte arena alignment), per-channel
  multiplier and shift arrays (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED), BATCH_MATMUL's
  transposed right-hand side, NLPOOL_ATTENTION's option arrays and one handle per scratch request.
  Checked against TFLM's RecordingMicroAllocator on QEMU (docs/tflm.md).
  `predict_tail` keeps the 64-bit host estimate for the host interpreter.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nlpool.core.custom_ops import STEP_FIELDS
from nlpool.core.tflite import Operator, TfliteModel

from .graph import Graph, Op
from .plans import ArenaPlan, greedy_by_size

# Per-item sizes of the 64-bit host build, read from its RecordingMicroAllocator output.
HOST_EVAL_TENSOR_BYTES = 24  # TfLiteEvalTensor, one per tensor of the subgraph
HOST_NODE_BYTES = 64  # NodeAndRegistration, one per operator
HOST_IO_TENSOR_BYTES = 64 + 32  # persistent TfLiteTensor + its quantisation record, per graph input/output
PER_CHANNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")

# 32-bit Cortex-M build (arm-none-eabi-gcc 12, TF_LITE_STATIC_MEMORY, short enums), sizeof() measured
# against upstream TFLM commit 90b983c2 (reference kernels).
ARENA_ALIGNMENT = 16  # MicroArenaBufferAlignment(): a kernel's persistent buffers start 16-byte aligned
TARGET_EVAL_TENSOR_BYTES = 12  # TfLiteEvalTensor, one per tensor of the subgraph
TARGET_NODE_BYTES = 32  # NodeAndRegistration, one per operator
# Graph inputs/outputs get a persistent TfLiteTensor (32) and its quantisation (TfLiteAffineQuantization 12
# and a one-element zero-point TfLiteIntArray 8; the scales are read in place from the flatbuffer), and
# the interpreter one array of tensor pointers for the inputs and one for the outputs (16-byte slots).
TARGET_IO_TENSOR_BYTES = 32 + 20
# MicroAllocator, GreedyMemoryPlanner, SingleArenaBufferAllocator, SubgraphAllocations,
# MicroBuiltinDataAllocator: in the tail too. (RecordingMicroAllocator on QEMU: VWW's tail 26,932 B exact.)
TARGET_INTERPRETER_BYTES = 36 + 44 + 36 + 8 + 8
# Kernel data each op's Init/Prepare allocates (sizeof OpData..., each rounded to ARENA_ALIGNMENT) and
# the builtin options struct the interpreter parses for it (4-byte aligned): (kernel data, options).
TARGET_OP_BYTES: dict[str, tuple[tuple[int, ...], int]] = {
    "ADD": ((60,), 4), "SUB": ((60,), 4), "MUL": ((36,), 4),
    "CONV_2D": ((56,), 28), "DEPTHWISE_CONV_2D": ((56,), 28), "FULLY_CONNECTED": ((48,), 8),
    "AVERAGE_POOL_2D": ((32,), 40), "MAX_POOL_2D": ((32,), 40),
    "PAD": ((56,), 0), "SOFTMAX": ((56,), 4), "STRIDED_SLICE": ((84,), 24),
    "RESHAPE": ((), 36), "RESIZE_BILINEAR": ((), 4), "RESIZE_NEAREST_NEIGHBOR": ((), 4), "TRANSPOSE": ((), 0),
    # OpDataBatchMatmul, its quantisation data, and the transposed right-hand side (TFLM copies it
    # unless adj_y; nlpool's models never set adj_y): eval tensor, 4-D dims, data (added per op).
    "BATCH_MATMUL": ((16, 28, 12, 20), 4),
    # nlpool's weighted pooling: its OpData holds the parameters and the 256-entry exp table.
    "CUSTOM:NLPOOL_WEIGHTED_POOL": ((60 + 4 + 1024 + 4,), 0),
}
# nlpool's attention kernel keeps one OpData (the C params struct and a few fields) and one buffer of
# the arrays its options hold, both defined in firmware/tflm/templates/nlpool_attention_op_data.h;
# tests/test_tflm_attention_kernel_data.py compiles these numbers against that header on the target.
TARGET_ATTENTION_OP_DATA_BYTES = 208  # sizeof(OpData) on the 32-bit target
ATTENTION_EXP_TABLE_WORDS = 256  # kExpTableSize: the softmax's exp of each int8 score difference 0..-255
ATTENTION_WORDS_PER_COLUMN = 8  # kWordsPerColumn: q/k/v multipliers and shifts (3 + 3), output multiplier and shift (1 + 1)
# Every op that requests scratch also costs TFLM one 4-byte handle.
TARGET_SCRATCH_HANDLE_BYTES = 4
# Ops not in the table: an OpData of this size (most TFLM OpData structs are 32-96 bytes).
TARGET_OTHER_OP_BYTES = ((64,), 8)
# While AllocateTensors plans the head, it holds temporarily, beside the tail: one AllocationInfo (24 B)
# per tensor, and the greedy planner's working arrays (40 B per buffer it places: requirements,
# sorted sizes and ids, list entry, offset) for every activation tensor.
TARGET_ALLOCATION_INFO_BYTES = 24
TARGET_PLANNER_BYTES_PER_BUFFER = 40
# While a kernel's Prepare runs, each tensor it asks for is a temporary TfLiteTensor (40 B on a 32-bit
# target, TF_LITE_STATIC_MEMORY) at the head, and a quantised one adds its TfLiteAffineQuantization (12 B)
# and a zero-point array (a TfLiteIntArray: 4 B + 4 B per channel). The tail meanwhile grows by the op's
# per-channel arrays, and TFLM's tail allocator does not check against the temporaries: an arena smaller
# than tail + temporaries overwrites them and Prepare fails on garbage (a per-channel FULLY_CONNECTED with
# 640 outputs in a model whose activations are small: seen as "kernel_util.cc:405 false was not true").
TARGET_TEMP_TENSOR_BYTES = 40
TARGET_TEMP_QUANTIZATION_BYTES = 12 + 4
# Ops whose TFLM kernel keeps an int32 multiplier and an int32 shift per output channel, whatever the
# weights' quantisation (FULLY_CONNECTED keeps them only for per-channel weights: `builtin_kernel_data`).
TARGET_PER_CHANNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")
# TFLM's kernels/cmsis_nn/ versions whose OpData differs from the reference kernel's (32-bit sizeof):
# FULLY_CONNECTED wraps OpDataFullyConnected (48) with two buffer indices, the kernel-sums pointer and
# three dimensions; the pooling kernels add a buffer index to OpDataPooling (32). CONV_2D, DEPTHWISE_CONV_2D
# (56 + 4) and SOFTMAX (SoftmaxParams + 8) round to the reference kernels' 16-byte slots.
TARGET_CMSIS_NN_OP_DATA = {"FULLY_CONNECTED": 72, "AVERAGE_POOL_2D": 36, "MAX_POOL_2D": 36}


def builtin_kernel_data(model: TfliteModel, kernels: str = "reference", mve: bool = False) -> dict[int, tuple[int, ...]]:
    """Op position -> the persistent buffers TFLM's kernel of a builtin op allocates where they depend on
    the model or the kernel set (the rest follow from `TARGET_OP_BYTES` by kind).

    FULLY_CONNECTED: its OpData, the per-channel multiplier and shift only for per-channel weights and,
    with CMSIS-NN on an MVE core (Cortex-M55), the kernel sums TFLM precomputes in Prepare for a constant
    filter (4 B per output; built with KERNELS_OPTIMIZED_FOR_SPEED, they replace the scratch buffer CMSIS-NN
    would ask for, `cmsis_nn_persistent_fc`). `kernels`: "reference" or "cmsis-nn"."""
    data: dict[int, tuple[int, ...]] = {}
    for op in model.operators:
        if op.is_custom:
            continue
        op_data = TARGET_CMSIS_NN_OP_DATA.get(op.name) if kernels == "cmsis-nn" else None
        if op.name == "FULLY_CONNECTED" and len(op.inputs) > 1 and op.outputs:
            weights = model.tensors[op.inputs[1]]
            channels = model.tensors[op.outputs[0]].shape[-1]
            buffers = [op_data or TARGET_OP_BYTES["FULLY_CONNECTED"][0][0]]
            if weights.scales.size > 1:
                buffers += [4 * channels, 4 * channels]
            if cmsis_nn_persistent_fc(model, op, kernels, mve):
                buffers.append(4 * channels)
            data[op.position] = tuple(buffers)
        elif op_data is not None:
            data[op.position] = (op_data,)
    return data


def cmsis_nn_persistent_fc(model: TfliteModel, op: Operator, kernels: str, mve: bool) -> bool:
    """Whether TFLM's CMSIS-NN FULLY_CONNECTED keeps its kernel sums persistent (and asks no scratch): int8
    input and weights, not run as a 1x1 convolution (output rank 2 or depth not a multiple of 4), a
    non-empty buffer (MVE cores only), constant weights and bias."""
    if kernels != "cmsis-nn" or not mve or op.name != "FULLY_CONNECTED":
        return False
    inp, weights, out = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]], model.tensors[op.outputs[0]]
    bias_constant = len(op.inputs) < 3 or op.inputs[2] < 0 or model.tensors[op.inputs[2]].constant
    as_conv_1x1 = len(out.shape) > 2 and weights.shape[-1] % 4 == 0
    return inp.dtype == "int8" and weights.dtype == "int8" and not as_conv_1x1 and weights.constant and bias_constant


def attention_kernel_data(width: int, has_pos_table: bool, steps: int) -> tuple[int, int]:
    """Persistent bytes of one NLPOOL_ATTENTION in TFLM: its OpData, and the arrays of its options (the
    softmax exp table, the per-column multipliers and shifts, the step records, all int32, then the
    steps' int8 constants, one per column); `steps` counts the q, k and v steps together, the
    positional ADD is one more step record."""
    words = ATTENTION_EXP_TABLE_WORDS + ATTENTION_WORDS_PER_COLUMN * width + STEP_FIELDS * (int(has_pos_table) + steps)
    return TARGET_ATTENTION_OP_DATA_BYTES, 4 * words + width * steps


@dataclass(frozen=True)
class TflmPrediction:
    """TFLM's arena as predicted: `head_bytes` is the planned part (checked to <= 3 %)."""

    plan: ArenaPlan
    head_bytes: int
    tail_bytes_host: int
    tail_bytes_target: int
    planning_bytes_target: int  # what AllocateTensors needs while kernels prepare or the planner plans: tail + temporaries

    @property
    def total_bytes_host(self) -> int:
        return self.head_bytes + self.tail_bytes_host

    @property
    def total_bytes_target(self) -> int:
        """The whole arena TFLM uses on a 32-bit Cortex-M target (what the generated project declares, plus a margin)."""
        return self.head_bytes + self.tail_bytes_target

    @property
    def required_bytes_target(self) -> int:
        """The smallest arena AllocateTensors succeeds in: the arena used, or more while it plans (models
        whose tail outweighs their activations, e.g. nlpool's small ResNet18)."""
        return max(self.total_bytes_target, self.planning_bytes_target)

    def as_dict(self) -> dict[str, object]:
        return {
            "head_bytes": self.head_bytes,
            "tail_bytes_host_estimate": self.tail_bytes_host,
            "total_bytes_host_estimate": self.total_bytes_host,
            "tail_bytes_target": self.tail_bytes_target,
            "total_bytes_target": self.total_bytes_target,
            "required_bytes_target": self.required_bytes_target,
            "note": "head = planned tensors (TFLM's greedy planner, 16-byte alignment); tail = interpreter structs, "
                    "kernel data and per-channel arrays, for the 64-bit host and the 32-bit Cortex-M target",
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
            channels = shape[graph.channel_axis] if shape else 1  # a corrupted rank-0 output: the estimate stays an estimate
            tail += 2 * 4 * channels  # int32 output multiplier and shift per output channel
    return tail


def _aligned(n: int) -> int:
    return (n + ARENA_ALIGNMENT - 1) // ARENA_ALIGNMENT * ARENA_ALIGNMENT


def predict_target_tail(graph: Graph) -> int:
    """TFLM's persistent bytes on a 32-bit Cortex-M target: interpreter objects, eval tensors, nodes, I/O
    tensors, each op's options and kernel data, per-channel arrays and BATCH_MATMUL's transposed operand."""
    # Scratch buffers are tensors of the planning graph, not of the model: TFLM gives them no eval tensor.
    scratch = {t for op in graph.ops for t in op.scratch}
    model_tensors = len(graph.tensors) - len(scratch)
    tail = TARGET_INTERPRETER_BYTES + TARGET_EVAL_TENSOR_BYTES * model_tensors + TARGET_NODE_BYTES * len(graph.ops)
    tail += TARGET_IO_TENSOR_BYTES * (len(graph.inputs) + len(graph.outputs))
    tail += _aligned(4 * len(graph.inputs)) + _aligned(4 * len(graph.outputs))
    for op in graph.ops:
        kernel_data, options = TARGET_OP_BYTES.get(op.kind, TARGET_OTHER_OP_BYTES)
        kernel_data = op.tflm_kernel_data or kernel_data
        tail += options + sum(_aligned(n) for n in kernel_data)
        if op.kind in TARGET_PER_CHANNEL_OPS and op.outputs:
            tail += 2 * _aligned(4 * graph.tensors[op.outputs[0]].shape[graph.channel_axis])
        if op.kind == "BATCH_MATMUL":
            tail += _aligned(graph.tensors[op.inputs[1]].nbytes)
    requests = sum(1 for op in graph.ops if op.scratch)
    return tail + _aligned(TARGET_SCRATCH_HANDLE_BYTES * requests)


def prepare_temporaries(graph: Graph, op: Op) -> int:
    """What TFLM holds temporarily at the head while `op`'s Prepare runs: every input and output as a
    temporary tensor with its quantisation (an upper bound: some kernels ask for fewer)."""
    temporaries = 0
    for index in (*op.inputs, *op.outputs):
        channels = graph.tensors[index].quant_channels
        temporaries += TARGET_TEMP_TENSOR_BYTES + (TARGET_TEMP_QUANTIZATION_BYTES + 4 * channels if channels else 0)
    return _aligned(temporaries)


def predict_tflm(graph: Graph) -> TflmPrediction:
    plan = greedy_by_size(graph)
    tail = predict_target_tail(graph)
    planning = (tail + _aligned(TARGET_ALLOCATION_INFO_BYTES * len(graph.tensors))
                + _aligned(TARGET_PLANNER_BYTES_PER_BUFFER * len(graph.activations)))
    # The whole tail stands for the tail at the op's Prepare (an upper bound: later ops' arrays come after).
    planning = max(planning, tail + max((prepare_temporaries(graph, op) for op in graph.ops), default=0))
    return TflmPrediction(plan=plan, head_bytes=plan.arena_bytes, tail_bytes_host=predict_tail(graph),
                          tail_bytes_target=tail, planning_bytes_target=planning)


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
