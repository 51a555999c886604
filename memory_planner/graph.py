"""A small graph IR for memory planning: ops in execution order over sized tensors.

Both front ends (a .tflite file, a PyTorch model) become this IR, so lifetimes, plans and reports
are written once. Tensor indices are the front end's own (for .tflite: the TFLite tensor index), so a
plan's offsets can be handed to firmware that addresses tensors by that index.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from math import prod

from nlpool.core.custom_ops import ATTENTION_OP_NAME

# Ops whose output may be written over an input of the same byte size that dies at this op: each
# output element depends only on the input element at the same position (or the op only relabels the
# shape), so a kernel reading element i before writing element i is correct in place.
INPLACE_OPS = frozenset(
    {
        "RESHAPE",
        "SQUEEZE",
        "EXPAND_DIMS",
        "ADD",
        "SUB",
        "MUL",
        "DIV",
        "RELU",
        "RELU6",
        "LOGISTIC",
        "TANH",
        "EXP",
        "QUANTIZE",
        "DEQUANTIZE",
        "HARD_SWISH",
        "LEAKY_RELU",
        # Streams one token row at a time and writes output row n only after input row n was last
        # read (docs/custom_op.md): in place as well, though not element-wise.
        f"CUSTOM:{ATTENTION_OP_NAME}",
    }
)


@dataclass(frozen=True)
class Tensor:
    """One tensor: `constant` tensors live in flash (weights), the others need SRAM while live."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    itemsize: int
    constant: bool = False
    # Quantisation parameters TFLM copies into its arena when a kernel's Prepare asks for the tensor
    # (one per channel of a per-channel tensor, 1 per tensor, 0 unquantised).
    quant_channels: int = 0

    @property
    def nbytes(self) -> int:
        return prod(self.shape) * self.itemsize


@dataclass(frozen=True)
class Op:
    """One operator call; `kind` uses TFLite builtin names where one exists (CONV_2D, ADD, ...).

    `scratch` are tensors that stand for the kernel's scratch memory: live during this op only, they
    take arena space like any activation, so the plan holds them where the firmware expects them.

    `inplace_scratch` > 0 says the op has a kernel that writes its output over its first input
    through that many bytes of scratch (a stride-1 depthwise convolution, one channel plane at a
    time); `inplace` says the plan uses it (`Graph.with_inplace`).
    """

    index: int
    kind: str
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    scratch: tuple[int, ...] = ()
    inplace_scratch: int = 0
    inplace: bool = False
    folds_into: int = -1  # a PAD the convolution at this op index can do itself (memory_planner.pad_folding)
    folded: bool = False  # ... and the plan lets it: this op neither reads nor writes (Graph.with_folded_pads)
    # The TFLM kernel's persistent buffers (bytes each) where their sizes follow from the op's options
    # (NLPOOL_ATTENTION's arrays grow with its width); empty: tflm_model's table by kind.
    tflm_kernel_data: tuple[int, ...] = ()


@dataclass
class Graph:
    """Ops in execution order; `inputs`/`outputs` are the graph's (activation) tensors."""

    name: str
    tensors: dict[int, Tensor]
    ops: list[Op]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    source: str = ""
    extra: dict[str, object] = field(default_factory=dict)
    # Where a 4-D activation keeps its channels: -1 in TFLite's NHWC files, 1 in PyTorch's NCHW
    # recording (memory_planner.from_torch); per-channel sizes (TFLM's requantisation arrays) read it.
    channel_axis: int = -1

    @cached_property
    def producer(self) -> dict[int, int]:
        """Tensor index -> index of the op that writes it (scratch: the op that uses it)."""
        return {t: op.index for op in self.ops for t in (*op.outputs, *op.scratch)}

    @cached_property
    def consumers(self) -> dict[int, list[int]]:
        """Tensor index -> indices of the ops that read it, in execution order."""
        result: dict[int, list[int]] = {}
        for op in self.ops:
            for t in dict.fromkeys(op.inputs):
                result.setdefault(t, []).append(op.index)
        return result

    def activation_types(self) -> str:
        """The element types of the activations, e.g. 'int8' or 'float32, int8' (reports say what they planned)."""
        return ", ".join(sorted({self.tensors[i].dtype for i in self.activations})) or "no"

    @cached_property
    def activations(self) -> list[int]:
        """Indices of the tensors that need SRAM: non-constant tensors the graph touches."""
        used = set(self.inputs) | set(self.outputs)
        for op in self.ops:
            used.update(op.inputs)
            used.update(op.outputs)
            used.update(op.scratch)
        return sorted(t for t in used if not self.tensors[t].constant)

    @property
    def flash_bytes(self) -> int:
        """Bytes of constant tensors the ops read (weights, biases, tables): they stay in flash."""
        used = {t for op in self.ops for t in op.inputs}
        return sum(self.tensors[t].nbytes for t in used if self.tensors[t].constant)

    def _with_ops(self, ops: list[Op], tensors: dict[int, Tensor] | None = None) -> Graph:
        """A copy with other ops (and tensors): every other field carries over, cached lifetimes do not."""
        extra = {k: v for k, v in self.extra.items() if k != "lifetimes"}
        return replace(self, ops=ops, tensors=dict(self.tensors) if tensors is None else tensors, extra=extra)

    def with_folded_pads(self) -> Graph:
        """This graph with every foldable PAD done by its convolution: the convolution reads the PAD's
        input, and the PAD's output tensor is gone."""
        ops = list(self.ops)
        for op in self.ops:
            if op.folds_into < 0 or op.folded:
                continue
            conv = ops[op.folds_into]
            ops[op.folds_into] = replace(conv, inputs=(op.inputs[0], *conv.inputs[1:]))
            ops[op.index] = replace(op, inputs=(), outputs=(), folded=True)
        if ops == self.ops:
            return self
        return self._with_ops(ops)

    def with_inplace(self, index: int) -> Graph:
        """This graph with op `index` run by its in-place kernel: its output may take its first input's
        memory, and its scratch is the in-place kernel's (instead of any other kernel's)."""
        op = self.ops[index]
        if not op.inplace_scratch:
            raise ValueError(f"op {index} ({op.kind}) has no in-place kernel")
        tensors = dict(self.tensors)
        scratch = max(tensors) + 1
        tensors[scratch] = Tensor(scratch, f"{op.name}/inplace-scratch", (op.inplace_scratch,), "int8", 1)
        ops = list(self.ops)
        ops[index] = replace(op, scratch=(scratch,), inplace=True)
        return self._with_ops(ops, tensors)

    def validate(self) -> Graph:
        """Check that every op reads tensors that exist and were produced earlier (or are inputs)."""
        ready = set(self.inputs) | {t for t, tensor in self.tensors.items() if tensor.constant}
        for position, op in enumerate(self.ops):
            if op.index != position:
                raise ValueError(f"op {op.name} has index {op.index} at position {position}")
            for t in op.inputs:
                if t not in self.tensors:
                    raise ValueError(f"op {op.index} ({op.kind}) reads tensor {t}, which does not exist")
                if t not in ready:
                    raise ValueError(f"op {op.index} ({op.kind}) reads tensor {t} before any op writes it")
            ready.update(op.outputs)
        return self
