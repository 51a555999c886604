"""Editing a TFLite model's schema tree in graph passes (the fusion pass).

Files are read and written by nlpool.core.tflite; this adds what a rewriting pass needs on the
mutable schema tree: who produces and who consumes a tensor, per-tensor quantisation, and compaction
after ops are removed (dropping orphan tensors and operator codes, remapping every index including
signatures).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from nlpool.core.tflite import opcode_name, schema

INT8 = schema.TensorType.INT8


def tensor_name(tensor: schema.TensorT) -> str:
    return tensor.name.decode(errors="replace") if isinstance(tensor.name, bytes) else str(tensor.name)


def quant_params(tensor: schema.TensorT) -> tuple[float, int] | None:
    """(scale, zero point) of a per-tensor quantised tensor, else None."""
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        return None
    return float(q.scale[0]), int(q.zeroPoint[0])


class GraphView:
    """Producers and consumers of one subgraph's tensors (recompute after editing operators)."""

    def __init__(self, model: schema.ModelT, subgraph: int = 0) -> None:
        self.model = model
        self.graph = model.subgraphs[subgraph]
        self.producer: dict[int, int] = {}
        self.consumers: dict[int, list[int]] = defaultdict(list)
        for index, op in enumerate(self.graph.operators):
            for t in op.outputs:
                self.producer[int(t)] = index
            for t in op.inputs:
                if t >= 0:
                    self.consumers[int(t)].append(index)
        self.graph_outputs = {int(t) for t in self.graph.outputs}

    def name(self, op_index: int) -> str:
        return opcode_name(self.model, self.graph.operators[op_index].opcodeIndex)

    def tensor(self, index: int) -> schema.TensorT:
        return self.graph.tensors[index]

    def describe(self, tensor_index: int) -> str:
        return f"tensor {tensor_index} '{tensor_name(self.tensor(tensor_index))}'"


def _remap(values: list[int] | np.ndarray | None, mapping: dict[int, int]) -> list[int] | None:
    if values is None:
        return None
    return [mapping[int(v)] if v >= 0 else int(v) for v in values]


def compact(model: schema.ModelT) -> None:
    """Drop tensors no op, input or output refers to, and unused operator codes; remap all indices."""
    for sub_index, graph in enumerate(model.subgraphs):
        used = {int(t) for op in graph.operators for t in [*op.inputs, *op.outputs, *(op.intermediates or [])] if t >= 0}
        used |= {int(t) for t in [*graph.inputs, *graph.outputs]}
        used |= {i for i, t in enumerate(graph.tensors) if t.isVariable}
        mapping = {old: new for new, old in enumerate(sorted(used))}
        graph.tensors = [graph.tensors[old] for old in sorted(used)]
        for op in graph.operators:
            op.inputs, op.outputs = _remap(op.inputs, mapping), _remap(op.outputs, mapping)
            op.intermediates = _remap(op.intermediates, mapping)
        graph.inputs, graph.outputs = _remap(graph.inputs, mapping), _remap(graph.outputs, mapping)
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex == sub_index:
                for entry in [*(signature.inputs or []), *(signature.outputs or [])]:
                    entry.tensorIndex = mapping[int(entry.tensorIndex)]
    used_codes = sorted({op.opcodeIndex for graph in model.subgraphs for op in graph.operators})
    code_map = {old: new for new, old in enumerate(used_codes)}
    model.operatorCodes = [model.operatorCodes[old] for old in used_codes]
    for graph in model.subgraphs:
        for op in graph.operators:
            op.opcodeIndex = code_map[op.opcodeIndex]


def opcode_index(model: schema.ModelT, builtin: int, custom_code: str | None = None) -> int:
    """Index of an operator code, appended when the model does not have it yet."""
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) != builtin:
            continue
        if custom_code is None or opcode_name(model, index) == custom_code:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    code.version = 1
    if custom_code is not None:
        code.customCode = custom_code.encode()
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1
