"""The one reader and writer of .tflite files: a validated, typed view of a model's main subgraph.

Every package that looks into a .tflite file (the fusion pass and host runner in export/, the memory
planner, both firmware generators) reads it here, so a file is checked once, the same way, before
anything walks it: a corrupted file (bad identifier, truncated tables, an index that points at no
tensor, buffer or operator code, data that does not fill its shape, a NaN scale) is a one-line
`TfliteFileError` naming the file and the problem, never an IndexError deep inside a generator.

Parsing uses the TFLite flatbuffer schema's generated Python classes as `ai_edge_litert` ships them
(importing TensorFlow would cost seconds on every `nlpool plan`). Writers edit the schema's object
tree (`TfliteModel.raw`) and hand it to `write_model`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from .checks import input_file
from .errors import NlpoolError
from .op_shapes import output_shape_problem

FILE_IDENTIFIER = b"TFL3"

BUILTIN_NAMES: dict[int, str] = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES: dict[int, str] = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
# Element types with a fixed size, as NumPy dtypes (strings, resources and sub-byte types have none).
NUMPY_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(dtype)
    for name, dtype in {
        "bool": np.bool_, "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
        "float16": np.float16, "int32": np.int32, "uint32": np.uint32, "float32": np.float32,
        "int64": np.int64, "uint64": np.uint64, "float64": np.float64, "complex64": np.complex64,
        "complex128": np.complex128,
    }.items()
}  # fmt: skip
ITEMSIZES: dict[str, int] = {**{name: dtype.itemsize for name, dtype in NUMPY_DTYPES.items()}, "bfloat16": 2}


class TfliteFileError(NlpoolError):
    """A .tflite file that cannot be read: missing, not TFLite, truncated or inconsistent."""


@dataclass(frozen=True)
class Tensor:
    """One tensor of the main subgraph; `data` holds a constant's values (weights, shapes, axes).

    Quantisation is per tensor when `scales` has one entry, per channel along `quantized_dimension`
    otherwise; an unquantised tensor has empty `scales` and `zero_points`.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    scales: np.ndarray
    zero_points: np.ndarray
    quantized_dimension: int
    data: np.ndarray | None
    is_variable: bool = False

    @property
    def constant(self) -> bool:
        """Constants live in flash; every other tensor needs RAM while it is live."""
        return self.data is not None

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        """Bytes per element (0 for types without a fixed size, such as strings)."""
        return ITEMSIZES.get(self.dtype, 0)

    @property
    def nbytes(self) -> int:
        """Size in bytes of the dense tensor."""
        return self.size * self.itemsize

    @property
    def scale(self) -> float:
        """Per-tensor scale (the first one of a per-channel tensor; 0.0 when unquantised)."""
        return float(self.scales[0]) if self.scales.size else 0.0

    @property
    def zero_point(self) -> int:
        """Per-tensor zero point (0 when unquantised)."""
        return int(self.zero_points[0]) if self.zero_points.size else 0

    @property
    def per_tensor_quantization(self) -> tuple[float, int] | None:
        """(scale, zero point) of a per-tensor quantised tensor, else None."""
        return (self.scale, self.zero_point) if self.scales.size == 1 else None

    @property
    def free_batch(self) -> bool:
        """True for the Keras converter's open batch: -1 as the first signature dimension of a tensor whose
        shape has batch 1. TFLM (and nlpool) run such a model at batch 1, its shape as written."""
        return len(self.shape_signature) == len(self.shape) > 0 and self.shape_signature[0] < 0 and self.shape[0] == 1

    @property
    def dynamic(self) -> bool:
        """True when the model leaves a dimension open that batch 1 does not close (-1 in the shape signature
        anywhere but a free batch): its size is known only at run time, so it cannot be planned."""
        open_dims = self.shape_signature[1:] if self.free_batch else self.shape_signature
        return any(d < 0 for d in open_dims)


@dataclass(frozen=True)
class Operator:
    """One operator: builtin name (e.g. 'CONV_2D') or custom code, tensor indices, parsed options.

    Input indices keep TFLite's -1 for an omitted optional input (e.g. no bias).
    """

    position: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Any
    custom_options: bytes
    is_custom: bool
    version: int


@dataclass(frozen=True)
class TfliteModel:
    """A validated model: typed tensors and operators of subgraph 0, plus the schema tree to edit."""

    path: Path
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    file_bytes: int
    subgraph_count: int
    raw: schema.ModelT

    @property
    def free_batch(self) -> bool:
        """True when the model was converted with an open (-1) batch; it is planned and run at batch 1."""
        return any(t.free_batch for t in self.tensors)

    def free_batch_note(self) -> str | None:
        """The one line that tells the user a -1 batch is run at batch 1, or None when there is none."""
        if not self.free_batch:
            return None
        return f"note: {self.path.name} leaves its batch open (-1 in shape_signature): planned and run at batch 1, as TFLM runs it"

    def op_names(self) -> list[str]:
        """Operator names in execution order (custom ops by their custom code)."""
        return [op.name for op in self.operators]


def opcode_name(model: schema.ModelT, opcode_index: int) -> str:
    """Builtin name (e.g. 'CONV_2D') or the custom code of a CUSTOM op, from the schema tree."""
    code = model.operatorCodes[opcode_index]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        return _text(code.customCode)
    return BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")


def _text(value: object) -> str:
    """Names are bytes in the schema tree; undecodable bytes and control characters (a newline would split
    a one-line error, or a generated C comment) are replaced, never fatal."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else ("" if value is None else str(value))
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def _ints(values: object) -> tuple[int, ...]:
    return tuple(int(v) for v in (values if values is not None else ()))


@dataclass(frozen=True)
class OpContract:
    """What an operator of one kind must look like before any consumer walks it: how many inputs and
    outputs, the rank of those with a fixed rank, the builtin options' class (None: any or none),
    and which options must be positive (strides, filter sizes, dilations)."""

    inputs: tuple[int, int]
    options: str | None = None
    ranks: tuple[tuple[int, int], ...] = ()  # (input position, rank); position -1 is the output
    positive: tuple[str, ...] = ()


_WINDOW = ("strideH", "strideW")
_DILATED = (*_WINDOW, "dilationHFactor", "dilationWFactor")
# The builtins nlpool's generators and planner walk (docs/firmware.md lists them); other ops are left
# to the consumer that knows them (the AOT generator refuses them as unsupported).
OP_CONTRACTS: dict[str, OpContract] = {
    "CONV_2D": OpContract((2, 3), "Conv2DOptionsT", ((0, 4), (1, 4), (2, 1), (-1, 4)), _DILATED),
    "DEPTHWISE_CONV_2D": OpContract((2, 3), "DepthwiseConv2DOptionsT", ((0, 4), (1, 4), (2, 1), (-1, 4)), _DILATED),
    "FULLY_CONNECTED": OpContract((2, 3), "FullyConnectedOptionsT", ((1, 2), (2, 1))),
    "AVERAGE_POOL_2D": OpContract((1, 1), "Pool2DOptionsT", ((0, 4), (-1, 4)), (*_WINDOW, "filterHeight", "filterWidth")),
    "MAX_POOL_2D": OpContract((1, 1), "Pool2DOptionsT", ((0, 4), (-1, 4)), (*_WINDOW, "filterHeight", "filterWidth")),
    "MEAN": OpContract((2, 2), "ReducerOptionsT", ((1, 1),)),
    "ADD": OpContract((2, 2), "AddOptionsT"),
    "MUL": OpContract((2, 2), "MulOptionsT"),
    "SOFTMAX": OpContract((1, 1), "SoftmaxOptionsT"),
    "CONCATENATION": OpContract((1, 1 << 16), "ConcatenationOptionsT"),
    "RESHAPE": OpContract((1, 2)),
    "PAD": OpContract((2, 2), None, ((1, 2),)),
    "PADV2": OpContract((2, 3), None, ((1, 2),)),
    "BATCH_MATMUL": OpContract((2, 2), "BatchMatMulOptionsT"),
    "RESIZE_BILINEAR": OpContract((2, 2), "ResizeBilinearOptionsT", ((0, 4), (1, 1), (-1, 4))),
    "RESIZE_NEAREST_NEIGHBOR": OpContract((2, 2), "ResizeNearestNeighborOptionsT", ((0, 4), (1, 1), (-1, 4))),
    "SQUEEZE": OpContract((1, 1), "SqueezeOptionsT"),
    "STRIDED_SLICE": OpContract((4, 4), "StridedSliceOptionsT", ((1, 1), (2, 1), (3, 1))),
    "TRANSPOSE": OpContract((2, 2), None, ((1, 1),)),
    "EXPAND_DIMS": OpContract((2, 2)),
    "GATHER": OpContract((2, 2), "GatherOptionsT"),
    "LOGISTIC": OpContract((1, 1)),
    "RELU": OpContract((1, 1)),
    "RELU6": OpContract((1, 1)),
    "QUANTIZE": OpContract((1, 1)),
    "DEQUANTIZE": OpContract((1, 1)),
    "EXP": OpContract((1, 1)),
}


def _check_operator(check: _Checker, op: Operator, tensors: tuple[Tensor, ...]) -> None:
    """An operator against its contract (arity, ranks, options), and custom options against theirs."""
    what = f"operator {op.position} ({op.name})"
    if any(tensors[i].constant for i in op.outputs):
        raise check.fail(f"{what} writes a constant tensor")
    if op.is_custom:
        from .custom_ops import CUSTOM_ARITY, CUSTOM_OPS, CustomOptionsError, check_operands

        if op.name in CUSTOM_OPS:
            arity = CUSTOM_ARITY[op.name]
            absent = [name for name, i in zip(arity.inputs, op.inputs, strict=False) if i == -1 and name not in arity.optional]
            if len(op.inputs) != len(arity.inputs) or len(op.outputs) != 1 or absent:
                raise check.fail(f"{what} has {len(op.inputs)} inputs and {len(op.outputs)} outputs, expected {len(arity.inputs)} and 1"
                                 f"{' with ' + ', '.join(absent) if absent else ''}")
            try:
                params = CUSTOM_OPS[op.name].from_flexbuffer(op.custom_options)
                check_operands(params, tuple(tensors[i] if i >= 0 else None for i in op.inputs), tensors[op.outputs[0]])
            except CustomOptionsError as err:
                raise check.fail(f"{what}: {err}") from None
        return
    contract = OP_CONTRACTS.get(op.name)
    if contract is None:
        return
    low, high = contract.inputs
    required = len([i for i in op.inputs[:low] if i >= 0])
    if not low <= len(op.inputs) <= high or required < low or len(op.outputs) != 1:
        raise check.fail(f"{what} has {len(op.inputs)} inputs and {len(op.outputs)} outputs, expected {low}"
                         f"{'' if low == high else f' to {high}'} and 1")
    for position, rank in contract.ranks:
        index = op.outputs[0] if position == -1 else (op.inputs[position] if position < len(op.inputs) else -1)
        if index >= 0 and len(tensors[index].shape) != rank:
            where = "output" if position == -1 else f"input {position}"
            raise check.fail(f"{what}'s {where} has rank {len(tensors[index].shape)}, expected {rank}")
    if contract.options is not None and type(op.options).__name__ != contract.options:
        raise check.fail(f"{what} has {type(op.options).__name__ if op.options is not None else 'no'} options, expected {contract.options}")
    for name in contract.positive:
        if int(getattr(op.options, name)) < 1:
            raise check.fail(f"{what} has {name} {getattr(op.options, name)}, which must be at least 1")
    if op.name == "BATCH_MATMUL" and any(len(tensors[i].shape) < 2 for i in op.inputs):
        raise check.fail(f"{what} multiplies a tensor of rank below 2")
    activation = getattr(op.options, "fusedActivationFunction", 0)
    if activation not in _ACTIVATIONS:
        raise check.fail(f"{what} has fused activation {activation}, which TFLite does not define")
    _check_weights(check, what, op, tensors)


_ACTIVATIONS = set(vars(schema.ActivationFunctionType).values()) - {None}


def _check_weights(check: _Checker, what: str, op: Operator, tensors: tuple[Tensor, ...]) -> None:
    """Convolutions and dense layers: filter, bias and output channels must agree (kernels index by them)."""
    if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return
    source, filt, out = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
    channels = filt.shape[3] if op.name == "DEPTHWISE_CONV_2D" else filt.shape[0]
    if not out.shape or out.shape[-1] != channels:
        raise check.fail(f"{what}'s output {out.shape} does not have the {channels} channels of its filter {filt.shape}")
    if len(op.inputs) > 2 and op.inputs[2] >= 0 and tensors[op.inputs[2]].size != channels:
        raise check.fail(f"{what}'s bias has {tensors[op.inputs[2]].size} values for {channels} output channels")
    depth = filt.shape[3] if op.name == "CONV_2D" else (filt.shape[1] if op.name == "FULLY_CONNECTED" else 1)
    if not source.shape or depth < 1 or source.shape[-1] % depth:
        raise check.fail(f"{what}'s input {source.shape} does not match its filter {filt.shape}")


def _parse(path: Path) -> tuple[schema.ModelT, bytes]:
    input_file("model", path, "pass the path of a .tflite file", error=TfliteFileError)
    data = path.read_bytes()
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise TfliteFileError(f"{path} is not a TFLite model (no 'TFL3' identifier): pass a .tflite file written by a TFLite converter")
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as err:  # the generated reader raises whatever slicing a short buffer raises
        raise TfliteFileError(f"{path} is truncated or corrupt ({type(err).__name__}: {err}): re-export the model") from None
    return model, data


class _Checker:
    """Collects the first inconsistency of a file as one message."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, problem: str) -> TfliteFileError:
        return TfliteFileError(f"{self.path} is corrupt: {problem}: re-export the model")

    def index(self, value: int, count: int, what: str, optional: bool = False) -> int:
        if optional and value == -1:
            return value
        if not 0 <= value < count:
            raise self.fail(f"{what} refers to index {value}, but there are {count}")
        return value


def _tensor(check: _Checker, index: int, t: schema.TensorT, buffers: list[schema.BufferT], file_data: bytes) -> Tensor:
    what = f"tensor {index}"
    if t.type not in _TYPE_NAMES:
        raise check.fail(f"{what} has unknown element type {t.type}")
    dtype = _TYPE_NAMES[t.type]
    shape = _ints(t.shape)
    signature = _ints(t.shapeSignature) or shape
    if any(d < 0 for d in shape):
        raise check.fail(f"{what} has a negative dimension in its shape {shape}")
    q = t.quantization
    scales = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float64)
    zero_points = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], np.int64)
    dimension = int(q.quantizedDimension) if q is not None else 0
    if scales.size:
        if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
            raise check.fail(f"{what} has a scale that is not a positive finite number")
        if zero_points.size not in (1, scales.size):
            raise check.fail(f"{what} has {scales.size} scales but {zero_points.size} zero points")
        if scales.size > 1 and not (0 <= dimension < len(shape) and shape[dimension] == scales.size):
            raise check.fail(f"{what} has {scales.size} per-channel scales that do not match dimension {dimension} of {shape}")
    check.index(int(t.buffer), len(buffers), f"{what}'s buffer")
    data = _buffer_data(check, what, buffers[t.buffer], file_data)
    values = None
    if data:
        if dtype not in NUMPY_DTYPES:
            raise check.fail(f"{what} holds constant data of type {dtype}, which has no fixed element size")
        expected = math.prod(shape) * NUMPY_DTYPES[dtype].itemsize
        if len(data) != expected:
            raise check.fail(f"{what} {shape} of {dtype} needs {expected} bytes of data but its buffer has {len(data)}")
        values = np.frombuffer(data, NUMPY_DTYPES[dtype]).reshape(shape)
    return Tensor(index, _text(t.name), shape, signature, dtype, scales, zero_points, dimension, values, bool(t.isVariable))


def _buffer_data(check: _Checker, what: str, buffer: schema.BufferT, file_data: bytes) -> bytes:
    """A buffer's bytes, inline or (for models over 2 GB) at an offset into the file."""
    if buffer.data is not None and len(buffer.data):
        return bytes(np.asarray(buffer.data, np.uint8))
    offset, size = int(buffer.offset or 0), int(buffer.size or 0)
    if offset > 1:
        if offset + size > len(file_data):
            raise check.fail(f"{what}'s buffer lies past the end of the file")
        return file_data[offset : offset + size]
    return b""


def read_model(path: str | Path) -> TfliteModel:
    """Parse and validate `path`; raises TfliteFileError with one line naming the file and the problem."""
    path = Path(path)
    model, file_data = _parse(path)
    check = _Checker(path)
    if not model.subgraphs:
        raise check.fail("it has no subgraph")
    sub = model.subgraphs[0]
    buffers = model.buffers or []
    codes = model.operatorCodes or []
    try:
        tensors = tuple(_tensor(check, i, t, buffers, file_data) for i, t in enumerate(sub.tensors or []))
        operators = []
        for position, op in enumerate(sub.operators or []):
            what = f"operator {position}"
            check.index(int(op.opcodeIndex), len(codes), f"{what}'s operator code")
            inputs = tuple(check.index(i, len(tensors), f"{what}'s input", optional=True) for i in _ints(op.inputs))
            outputs = tuple(check.index(i, len(tensors), f"{what}'s output") for i in _ints(op.outputs))
            name = opcode_name(model, op.opcodeIndex)
            code = codes[op.opcodeIndex]
            custom = max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.CUSTOM
            options = bytes(np.asarray(op.customOptions, np.uint8)) if op.customOptions is not None else b""
            operators.append(Operator(position, name, inputs, outputs, op.builtinOptions, options, custom, int(code.version)))
        for op in operators:
            _check_operator(check, op, tensors)
            problem = output_shape_problem(op, tensors)
            if problem:
                raise check.fail(f"operator {op.position} ({op.name}): {problem}")
        inputs = tuple(check.index(i, len(tensors), "the subgraph's input") for i in _ints(sub.inputs))
        outputs = tuple(check.index(i, len(tensors), "the subgraph's output") for i in _ints(sub.outputs))
        written = {i for op in operators for i in op.outputs}
        for i in (*inputs, *outputs):
            if tensors[i].constant:
                raise check.fail(f"the subgraph's input or output {i} is a constant tensor")
        unwritten = [i for i in outputs if i not in written and i not in inputs]
        if unwritten:
            raise check.fail(f"the subgraph's output {unwritten[0]} is written by no operator")
    except (TypeError, ValueError, AttributeError, UnicodeError) as err:  # malformed tables the schema reader let through
        raise check.fail(f"{type(err).__name__}: {err}") from None
    return TfliteModel(path, tensors, tuple(operators), inputs, outputs, len(file_data), len(model.subgraphs), model)


def load_model(source: str | Path | TfliteModel) -> TfliteModel:
    """`source` itself when it is a model already read, else the file read and validated: lets a caller
    that holds the parsed model hand it on instead of every step parsing the file again."""
    return source if isinstance(source, TfliteModel) else read_model(source)


def model_bytes(model: schema.ModelT) -> bytes:
    """Serialise a schema tree with the TFLite file identifier."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def write_model(model: schema.ModelT, path: str | Path) -> None:
    """Write a schema tree to `path` (callers write into a folder that is moved into place whole)."""
    Path(path).write_bytes(model_bytes(model))
