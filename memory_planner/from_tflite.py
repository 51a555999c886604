"""Read a .tflite flatbuffer into the planning IR.

Uses TensorFlow Lite's generated flatbuffer schema as shipped in `ai_edge_litert` (the same
`schema_py_generated` module TensorFlow's `flatbuffer_utils` uses): importing `tensorflow` itself
costs seconds, and `nlpool plan model.tflite` should answer at once. Tensor indices are the TFLite
tensor indices of subgraph 0, so plan offsets can address tensors in firmware directly.
"""

from __future__ import annotations

from pathlib import Path

from ai_edge_litert import schema_py_generated as schema

from nlpool.core.errors import NlpoolError

from .graph import Graph, Op, Tensor

_TYPE_NAMES = {getattr(schema.TensorType, n): n for n in dir(schema.TensorType) if not n.startswith("_")}
_OP_NAMES = {getattr(schema.BuiltinOperator, n): n for n in dir(schema.BuiltinOperator) if not n.startswith("_")}
_ITEMSIZE = {
    "BOOL": 1, "INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2, "FLOAT16": 2, "BFLOAT16": 2,
    "INT32": 4, "UINT32": 4, "FLOAT32": 4, "INT64": 8, "UINT64": 8, "FLOAT64": 8, "COMPLEX64": 8, "COMPLEX128": 16,
}  # fmt: skip


def _op_name(model: schema.ModelT, opcode_index: int) -> str:
    code = model.operatorCodes[opcode_index]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        return f"CUSTOM:{custom}"
    return _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def _decode(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


def load_model(path: Path) -> tuple[schema.ModelT, int]:
    """Parse the whole flatbuffer (so truncation shows here, not later); returns (model, file size)."""
    path = Path(path)
    if not path.is_file():
        raise NlpoolError(f"{path} does not exist: pass the path of a .tflite file")
    data = path.read_bytes()
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise NlpoolError(f"{path} is not a TFLite model (no 'TFL3' identifier): pass a .tflite file written by a TFLite converter")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    except Exception as err:  # the generated reader raises whatever slicing a short buffer raises
        raise NlpoolError(f"{path} is truncated or corrupt ({type(err).__name__}: {err}): re-export the model") from None
    if not model.subgraphs or not model.subgraphs[0].operators:
        raise NlpoolError(f"{path} has no operators to plan: re-export the model")
    return model, len(data)


def graph_from_tflite(path: Path) -> Graph:
    """The main subgraph of a .tflite file as a planning graph."""
    model, file_bytes = load_model(path)
    sub = model.subgraphs[0]
    buffers = model.buffers or []
    tensors = {}
    try:
        for index, t in enumerate(sub.tensors or []):
            type_name = _TYPE_NAMES.get(t.type, f"TYPE_{t.type}")
            if type_name not in _ITEMSIZE:
                raise NlpoolError(f"{path}: tensor {index} has type {type_name}, which has no fixed size: cannot plan this model")
            buffer = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None
            constant = buffer is not None and ((buffer.data is not None and len(buffer.data) > 0) or (buffer.offset or 0) > 1)
            shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
            if any(d < 0 for d in shape):
                raise NlpoolError(f"{path}: tensor {index} has a dynamic shape {shape}: re-export with a fixed input shape")
            tensors[index] = Tensor(index, _decode(t.name), shape, type_name.lower(), _ITEMSIZE[type_name], constant)
        ops = []
        for position, op in enumerate(sub.operators or []):
            inputs = tuple(int(i) for i in (op.inputs if op.inputs is not None else ()) if i >= 0)
            outputs = tuple(int(i) for i in (op.outputs if op.outputs is not None else ()) if i >= 0)
            name = _decode(tensors[outputs[0]].name) if outputs else f"op{position}"
            ops.append(Op(position, _op_name(model, op.opcodeIndex), name, inputs, outputs))
        graph = Graph(
            name=Path(path).stem,
            tensors=tensors,
            ops=ops,
            inputs=tuple(int(i) for i in sub.inputs),
            outputs=tuple(int(i) for i in sub.outputs),
            source=str(path),
            extra={"file_bytes": file_bytes, "subgraphs": len(model.subgraphs)},
        )
        return graph.validate()
    except (IndexError, KeyError, TypeError, ValueError) as err:
        raise NlpoolError(f"{path} is inconsistent ({err}): re-export the model") from None
