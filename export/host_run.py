"""Run a (possibly fused) int8 TFLite model on the host.

The interpreter cannot load a model whose custom op it does not know, so the graph is cut at every
NLPOOL_WEIGHTED_POOL and NLPOOL_ATTENTION op: each run of builtin ops becomes its own small TFLite model (same tensors,
same buffers, that run's ops, its boundary tensors as inputs and outputs) executed by the LiteRT
interpreter, and each custom op is evaluated by the golden NumPy model between them. A model without
custom ops is a single segment, i.e. exactly the plain interpreter.

Two interpreters can run the builtin segments. `kernels="tflite"` (the default, for fidelity):
LiteRT's *reference* kernels (the default XNNPACK delegate computes int8 BATCH_MATMUL wrongly,
ai-edge-litert 2.1: several LSB off up to garbage on the attention's score matmul). `kernels="tflm"`:
upstream TFLM's interpreter and reference kernels (the `tflite-micro` wheel), the arithmetic of the
device that nlpool's firmware reproduces bit for bit; it differs from LiteRT's on a few ops
(docs/rounding.md) and has no int8 EXP, so it runs fused models only.

The custom ops follow the same choice: NLPOOL_ATTENTION stands for a block of builtin ops, whose
FULLY_CONNECTED steps round once in LiteRT and twice in TFLM. With `kernels="tflm"` its golden model
rounds as the op's options say (`fc_double_rounding`, 1 in every export: what the C kernel does);
with `kernels="tflite"` it rounds once, so a fused model's fidelity is the unfused graph's under
LiteRT, bit for bit, as for every other op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from nlpool.core.child_process import call_in_child
from nlpool.core.custom_ops import ATTENTION_OP_NAME, WEIGHTED_POOL_OP_NAME, AttentionParams, WeightedPoolParams
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import NUMPY_DTYPES, Operator, TfliteModel, load_model, model_bytes, schema

from .golden import attention, weighted_pool

CustomKernel = Callable[[dict[int, np.ndarray]], np.ndarray]

TFLM_ARENA_BYTES = 64 << 20  # the host TFLM interpreter's arena: far above any model nlpool exports
# TFLite's and TFLM's reference int8 SOFTMAX abort the process (TFLITE_CHECK on its output shift)
# when a row's exps sum to 512 or more, which rows of 512+ values can reach (docs/rounding.md).
SOFTMAX_SAFE_ROW = 511


def long_softmax_row(model: TfliteModel) -> int:
    """The longest int8 SOFTMAX row of `model` that the reference interpreters may abort on, 0 if none."""
    rows = [model.tensors[op.inputs[0]].shape[-1] for op in model.operators
            if op.name == "SOFTMAX" and model.tensors[op.inputs[0]].dtype == "int8"]
    return max((n for n in rows if n > SOFTMAX_SAFE_ROW), default=0)
Kernels = Literal["tflite", "tflm"]
# The int8 ops on which LiteRT's reference kernels round otherwise than TFLM's (docs/rounding.md):
# a model with any of them is compared with TFLM itself, not with the TFLite interpreter.
TFLITE_ROUNDS_OTHERWISE = frozenset({"FULLY_CONNECTED", "SOFTMAX", "LOGISTIC", "RELU6"})


def reference_kernels(model: TfliteModel) -> Kernels:
    """The host reference for a model's firmware: the TFLite interpreter where it computes what TFLM
    computes (no op of TFLITE_ROUNDS_OTHERWISE), else TFLM's own interpreter. LiteRT's default
    (optimised, XNNPACK) kernels are never one: they round every requantisation once (docs/rounding.md)."""
    return "tflm" if any(op.name in TFLITE_ROUNDS_OTHERWISE for op in model.operators) else "tflite"


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float values as an int8 tensor of `scale` and `zero_point` stores them (NumPy's rounding, half to
    even, then clamp): the one rule every host-side input quantisation uses, so the camera tables, the
    fidelity chain and the firmware inputs agree."""
    return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)


class _TflmSegment:
    """A builtin segment in TFLM's host interpreter, behind the LiteRT calls `run_quantized` makes."""

    def __init__(self, content: bytes, inputs: list[int], outputs: list[int]) -> None:
        from tflite_micro import runtime

        self._interpreter = runtime.Interpreter.from_bytes(content, arena_size=TFLM_ARENA_BYTES)
        self._inputs, self._outputs = inputs, outputs

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        self._interpreter.set_input(value, self._inputs.index(index))

    def invoke(self) -> None:
        self._interpreter.invoke()

    def get_tensor(self, index: int) -> np.ndarray:
        return self._interpreter.get_output(self._outputs.index(index)).copy()


@dataclass
class _Segment:
    interpreter: Interpreter | _TflmSegment | None = None  # builtin run
    kernel: CustomKernel | None = None  # custom op: reads the values computed so far, returns its output
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)


def _custom_kernel(model: TfliteModel, op: Operator, kernels: Kernels) -> CustomKernel:
    """The golden model of one custom op, with its options decoded once and constants bound."""
    if op.name == WEIGHTED_POOL_OP_NAME:
        pool = WeightedPoolParams.from_flexbuffer(op.custom_options)
        x, r = op.inputs[:2]
        return lambda values: weighted_pool(pool, values[x], values[r])
    params = AttentionParams.from_flexbuffer(op.custom_options)
    if kernels == "tflite":
        params = replace(params, fc_double_rounding=0)  # LiteRT's FULLY_CONNECTED rounds once
    tokens, *consts = op.inputs
    data = [model.tensors[t].data if t >= 0 else None for t in consts]
    shape = model.tensors[op.outputs[0]].shape  # N x E elements like the tokens, not always their shape
    return lambda values: attention(params, values[tokens], *data).reshape(shape)


class HostModel:
    """A TFLite model (builtins plus nlpool's custom ops) executable on the host, batch of 1 per call."""

    def __init__(self, path: str | Path | TfliteModel, kernels: Kernels = "tflite") -> None:
        model = load_model(path)
        row = long_softmax_row(model)
        if row:
            raise NlpoolError(f"{model.path.name} has an int8 SOFTMAX over rows of {row} values, on which the reference "
                              "interpreters abort the process: run the model with its attention fused (NLPOOL_ATTENTION)")
        self.kernels = kernels
        graph = model.raw.subgraphs[0]
        self.input_index, self.output_index = model.inputs[0], model.outputs[0]
        input_tensor = model.tensors[self.input_index]
        self.input_qp = input_tensor.per_tensor_quantization
        self.output_qp = model.tensors[self.output_index].per_tensor_quantization
        self.input_shape = input_tensor.shape
        self.input_dtype = NUMPY_DTYPES[input_tensor.dtype]
        self.custom_ops = 0
        runs: list[list[int] | int] = []
        for index, op in enumerate(model.operators):
            if op.name in (WEIGHTED_POOL_OP_NAME, ATTENTION_OP_NAME):
                runs.append(index)
            elif runs and isinstance(runs[-1], list):
                runs[-1].append(index)
            else:
                runs.append([index])
        read_after = self._reads_after(graph)
        self.segments = []
        for run in runs:
            if isinstance(run, int):
                op = model.operators[run]
                self.custom_ops += 1
                self.segments.append(_Segment(kernel=_custom_kernel(model, op, kernels), inputs=list(op.inputs), outputs=[op.outputs[0]]))
            else:
                self.segments.append(self._builtin_segment(model, graph, run, read_after, kernels))

    @staticmethod
    def _reads_after(graph: schema.SubGraphT) -> list[set[int]]:
        """reads_after[i]: tensors read by ops i.. or returned by the graph."""
        sets: list[set[int]] = [set() for _ in range(len(graph.operators) + 1)]
        sets[-1] = {int(t) for t in graph.outputs}
        for index in range(len(graph.operators) - 1, -1, -1):
            sets[index] = sets[index + 1] | {int(t) for t in graph.operators[index].inputs if t >= 0}
        return sets

    @staticmethod
    def _builtin_segment(model: TfliteModel, graph: schema.SubGraphT, run: list[int], read_after: list[set[int]],
                         kernels: Kernels) -> _Segment:
        produced = {int(t) for i in run for t in graph.operators[i].outputs}
        inputs = []
        for i in run:
            for t in (int(t) for t in graph.operators[i].inputs if t >= 0):
                if t not in produced and t not in inputs and not model.tensors[t].constant:
                    inputs.append(t)
        outputs = sorted(t for t in produced if t in read_after[run[-1] + 1])
        sub = schema.SubGraphT()
        sub.tensors, sub.operators, sub.inputs, sub.outputs = graph.tensors, [graph.operators[i] for i in run], inputs, outputs
        part = schema.ModelT()
        raw = model.raw
        part.version, part.operatorCodes, part.buffers, part.subgraphs = raw.version, raw.operatorCodes, raw.buffers, [sub]
        part.description = b"nlpool host segment"
        if kernels == "tflm":
            return _Segment(interpreter=_TflmSegment(model_bytes(part), inputs, outputs), inputs=inputs, outputs=outputs)
        interpreter = Interpreter(
            model_content=model_bytes(part),
            experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        )
        interpreter.allocate_tensors()
        return _Segment(interpreter=interpreter, inputs=inputs, outputs=outputs)

    def run_quantized(self, x: np.ndarray) -> np.ndarray:
        """Raw output tensor for one raw input tensor (int8 NHWC for the models this project writes)."""
        values: dict[int, np.ndarray] = {self.input_index: x.reshape(self.input_shape).astype(self.input_dtype)}
        for seg in self.segments:
            if seg.kernel is not None:
                values[seg.outputs[0]] = seg.kernel(values)
                continue
            for t in seg.inputs:
                seg.interpreter.set_tensor(t, values[t])
            seg.interpreter.invoke()
            for t in seg.outputs:
                values[t] = seg.interpreter.get_tensor(t)
        return values[self.output_index]

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        if self.input_qp is None:
            return x.astype(self.input_dtype)
        return quantize(x, *self.input_qp)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        if self.output_qp is None:
            return y.astype(np.float32)
        scale, zero = self.output_qp
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)

    def predict(self, inputs_nhwc: np.ndarray) -> np.ndarray:
        """Float outputs for a batch of float NHWC inputs: quantise, run each sample, dequantise."""
        return np.concatenate([self.dequantize_output(self.run_quantized(self.quantize_input(x[None]))) for x in inputs_nhwc])



def host_outputs(model: TfliteModel, kernels: Kernels, inputs: np.ndarray) -> np.ndarray:
    """`HostModel(model, kernels)`'s outputs for each input (what `host_outputs_isolated` runs in a child)."""
    host = HostModel(model, kernels=kernels)
    return np.stack([host.run_quantized(x) for x in inputs])


def host_outputs_isolated(model: TfliteModel, kernels: Kernels, inputs: np.ndarray) -> np.ndarray:
    """`host_outputs` computed in a child process.

    Why: both interpreters are native code that can end the process on a model someone else made (a
    failed TFLITE_CHECK aborts; TFLM's x86 build crashed on a Keras MobileNetV2). In a child, that death
    becomes one NlpoolError naming the interpreter instead of an export that vanishes without a line."""
    name = "TFLM's interpreter (tflite-micro, x86)" if kernels == "tflm" else "the TFLite interpreter (LiteRT)"
    return call_in_child("export.host_run:host_outputs", (model, kernels, inputs), f"{name} on {model.path.name}")
