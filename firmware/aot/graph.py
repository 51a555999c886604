"""Read a .tflite flatbuffer into plain Python objects the emitters can use.

TensorFlow's generated schema classes are used for parsing (no third-party parser copied here);
everything the generator needs is copied out into small dataclasses so the rest of the code does
not depend on the schema's object API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_TYPE_NAMES = {0: "float32", 2: "int32", 3: "uint8", 4: "int64", 9: "int8", 7: "int16", 6: "bool"}
_DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "int64": np.int64,
           "int8": np.int8, "int16": np.int16, "bool": np.bool_}


@dataclass
class Tensor:
    """One tensor of the subgraph; `data` is set for constants (weights, shapes, axes)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: np.ndarray
    zero_points: np.ndarray
    quantized_dimension: int
    data: np.ndarray | None

    @property
    def scale(self) -> float:
        """Per-tensor scale (the first one for per-channel tensors)."""
        return float(self.scales[0]) if self.scales.size else 0.0

    @property
    def zero_point(self) -> int:
        """Per-tensor zero point."""
        return int(self.zero_points[0]) if self.zero_points.size else 0

    @property
    def nbytes(self) -> int:
        """Size in bytes of the dense tensor."""
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(_DTYPES[self.dtype]).itemsize

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class Operator:
    """One operator: its builtin name (or custom code), tensor indices and parsed options."""

    position: int
    name: str
    inputs: list[int]
    outputs: list[int]
    options: Any
    custom_options: bytes = b""


@dataclass
class Graph:
    """The single subgraph of a model, in execution order."""

    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    notes: list[str] = field(default_factory=list)


def _builtin_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def load_graph(path: Path) -> Graph:
    """Parse `path`; only single-subgraph models are supported (what the exporter writes)."""
    from tensorflow.lite.python import schema_py_generated as schema

    buf = Path(path).read_bytes()
    model = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    names = _builtin_names()
    sub = model.subgraphs[0]
    tensors: list[Tensor] = []
    for i, t in enumerate(sub.tensors):
        dtype = _TYPE_NAMES.get(t.type, f"type{t.type}")
        q = t.quantization
        scales = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float64)
        zps = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], np.int64)
        qdim = int(q.quantizedDimension) if q is not None else 0
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        data = None
        raw = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        if raw is not None and len(raw) and dtype in _DTYPES:
            data = np.frombuffer(bytes(np.asarray(raw, np.uint8)), _DTYPES[dtype]).reshape(shape)
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        tensors.append(Tensor(i, name, shape, dtype, scales, zps, qdim, data))
    ops: list[Operator] = []
    for pos, op in enumerate(sub.operators):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = names.get(builtin, f"BUILTIN_{builtin}")
        custom = b""
        if name == "CUSTOM":
            raw_code = code.customCode
            name = raw_code.decode() if isinstance(raw_code, bytes) else str(raw_code)
            custom = bytes(np.asarray(op.customOptions, np.uint8)) if op.customOptions is not None else b""
        ins = [int(x) for x in (op.inputs if op.inputs is not None else [])]
        outs = [int(x) for x in (op.outputs if op.outputs is not None else [])]
        ops.append(Operator(pos, name, ins, outs, op.builtinOptions, custom))
    return Graph(tensors, ops, [int(x) for x in sub.inputs], [int(x) for x in sub.outputs])
