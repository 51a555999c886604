"""Run a (possibly fused) int8 TFLite model on the host.

The interpreter cannot load a model whose custom op it does not know, so the graph is cut at every
NLPOOL_WEIGHTED_POOL op: each run of builtin ops becomes its own small TFLite model (same tensors,
same buffers, that run's ops, its boundary tensors as inputs and outputs) executed by the LiteRT
interpreter, and each custom op is evaluated by the golden NumPy model between them. A model without
custom ops is a single segment, i.e. exactly the plain interpreter.

The interpreter runs TFLite's *reference* kernels: they are the integer semantics TFLM and the
firmware's kernels reproduce, and the default XNNPACK delegate computes int8 BATCH_MATMUL wrongly
(ai-edge-litert 2.1: several LSB off up to garbage on the attention's score matmul).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from .custom_op import OP_NAME, WeightedPoolParams
from .golden import weighted_pool
from .tflite_graph import opcode_name, quant_params, read_model

_NUMPY_TYPES = {schema.TensorType.INT8: np.int8, schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT32: np.int32}


@dataclass
class _Segment:
    interpreter: Interpreter | None = None  # builtin run
    params: WeightedPoolParams | None = None  # custom op
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)


def _is_constant(model: schema.ModelT, tensor: schema.TensorT) -> bool:
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    return data is not None and len(data) > 0


class HostModel:
    """A TFLite model (builtins plus NLPOOL_WEIGHTED_POOL) executable on the host, batch of 1 per call."""

    def __init__(self, path: str | Path) -> None:
        model = read_model(path)
        graph = model.subgraphs[0]
        self.input_index, self.output_index = int(graph.inputs[0]), int(graph.outputs[0])
        self.input_qp = quant_params(graph.tensors[self.input_index])
        self.output_qp = quant_params(graph.tensors[self.output_index])
        self.input_shape = tuple(int(d) for d in graph.tensors[self.input_index].shape)
        self.input_dtype = _NUMPY_TYPES[graph.tensors[self.input_index].type]
        self.custom_ops = 0
        runs: list[list[int] | int] = []
        for index, op in enumerate(graph.operators):
            if opcode_name(model, op.opcodeIndex) == OP_NAME:
                runs.append(index)
            elif runs and isinstance(runs[-1], list):
                runs[-1].append(index)
            else:
                runs.append([index])
        read_after = self._reads_after(graph)
        self.segments = []
        for run in runs:
            if isinstance(run, int):
                op = graph.operators[run]
                self.custom_ops += 1
                params = WeightedPoolParams.from_flexbuffer(op.customOptions)
                self.segments.append(_Segment(params=params, inputs=[int(t) for t in op.inputs], outputs=[int(op.outputs[0])]))
            else:
                self.segments.append(self._builtin_segment(model, graph, run, read_after))

    @staticmethod
    def _reads_after(graph: schema.SubGraphT) -> list[set[int]]:
        """reads_after[i]: tensors read by ops i.. or returned by the graph."""
        sets: list[set[int]] = [set() for _ in range(len(graph.operators) + 1)]
        sets[-1] = {int(t) for t in graph.outputs}
        for index in range(len(graph.operators) - 1, -1, -1):
            sets[index] = sets[index + 1] | {int(t) for t in graph.operators[index].inputs if t >= 0}
        return sets

    @staticmethod
    def _builtin_segment(model: schema.ModelT, graph: schema.SubGraphT, run: list[int], read_after: list[set[int]]) -> _Segment:
        produced = {int(t) for i in run for t in graph.operators[i].outputs}
        inputs = []
        for i in run:
            for t in (int(t) for t in graph.operators[i].inputs if t >= 0):
                if t not in produced and t not in inputs and not _is_constant(model, graph.tensors[t]):
                    inputs.append(t)
        outputs = sorted(t for t in produced if t in read_after[run[-1] + 1])
        sub = schema.SubGraphT()
        sub.tensors, sub.operators, sub.inputs, sub.outputs = graph.tensors, [graph.operators[i] for i in run], inputs, outputs
        part = schema.ModelT()
        part.version, part.operatorCodes, part.buffers, part.subgraphs = model.version, model.operatorCodes, model.buffers, [sub]
        part.description = b"nlpool host segment"
        interpreter = Interpreter(
            model_content=bytes(flatbuffer_utils.convert_object_to_bytearray(part)),
            experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        )
        interpreter.allocate_tensors()
        return _Segment(interpreter=interpreter, inputs=inputs, outputs=outputs)

    def run_quantized(self, x: np.ndarray) -> np.ndarray:
        """Raw output tensor for one raw input tensor (int8 NHWC for the models this project writes)."""
        values: dict[int, np.ndarray] = {self.input_index: x.reshape(self.input_shape).astype(self.input_dtype)}
        for seg in self.segments:
            if seg.params is not None:
                values[seg.outputs[0]] = weighted_pool(seg.params, values[seg.inputs[0]], values[seg.inputs[1]])
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
        scale, zero = self.input_qp
        return np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        if self.output_qp is None:
            return y.astype(np.float32)
        scale, zero = self.output_qp
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)

    def predict(self, inputs_nhwc: np.ndarray) -> np.ndarray:
        """Float outputs for a batch of float NHWC inputs: quantise, run each sample, dequantise."""
        return np.concatenate([self.dequantize_output(self.run_quantized(self.quantize_input(x[None]))) for x in inputs_nhwc])
