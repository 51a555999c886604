"""Which operators a .tflite model uses, and the TFLM op-resolver call that registers each one.

A `MicroMutableOpResolver` sized and filled with exactly the model's ops keeps the firmware small
(only those kernels are linked) and makes a missing kernel fail at build time, not on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tensorflow.lite.python import schema_py_generated as schema_fb
from tensorflow.lite.tools import flatbuffer_utils

from nlpool.core.errors import NlpoolError

CUSTOM_OP_NAME = "NLPOOL_WEIGHTED_POOL"

# BuiltinOperator name -> MicroMutableOpResolver method (the same name in upstream TFLM and in
# XMOS's fork; tests check every entry against the installed fork's header).
RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin", "AVERAGE_POOL_2D": "AddAveragePool2D", "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd", "CAST": "AddCast", "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D", "COS": "AddCos",
    "DEPTH_TO_SPACE": "AddDepthToSpace", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv", "ELU": "AddElu", "EQUAL": "AddEqual",
    "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "HARD_SWISH": "AddHardSwish", "L2_NORMALIZATION": "AddL2Normalization",
    "LEAKY_RELU": "AddLeakyRelu", "LOG": "AddLog", "LOGISTIC": "AddLogistic",
    "MAX_POOL_2D": "AddMaxPool2D", "MAXIMUM": "AddMaximum", "MEAN": "AddMean",
    "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize", "REDUCE_MAX": "AddReduceMax", "RELU": "AddRelu", "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "RSQRT": "AddRsqrt", "SHAPE": "AddShape",
    "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv", "UNPACK": "AddUnpack",
}

_BUILTIN_NAMES = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}


@dataclass(frozen=True)
class ModelOps:
    """The distinct operators of a model, in order of first use."""

    builtins: tuple[str, ...]
    customs: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        """Every op the resolver holds: builtins by schema name, then custom ops by custom code."""
        return [*self.builtins, *self.customs]

    def resolver_calls(self) -> list[str]:
        """The C++ resolver statements for the builtins (the custom op is registered separately)."""
        return [f"{RESOLVER_METHODS[name]}()" for name in self.builtins]


def model_ops(tflite_path: str | Path) -> ModelOps:
    """Reads the operator codes actually used by the model's operators (unused codes are ignored)."""
    model = flatbuffer_utils.read_model(str(tflite_path))
    used: list[int] = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if op.opcodeIndex not in used:
                used.append(op.opcodeIndex)
    builtins: list[str] = []
    customs: list[str] = []
    for index in used:
        code = model.operatorCodes[index]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema_fb.BuiltinOperator.CUSTOM:
            name = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
            if name != CUSTOM_OP_NAME:
                raise NlpoolError(f"{tflite_path}: custom op {name!r} has no TFLM kernel in nlpool: "
                                  f"only {CUSTOM_OP_NAME} is supported; export the model with nlpool export")
            customs.append(name)
            continue
        name = _BUILTIN_NAMES.get(builtin, str(builtin))
        if name not in RESOLVER_METHODS:
            raise NlpoolError(f"{tflite_path}: op {name} has no TFLM resolver entry in nlpool's table: "
                              f"add it to firmware/tflm/ops.py RESOLVER_METHODS if TFLM has a kernel for it")
        builtins.append(name)
    return ModelOps(tuple(builtins), tuple(customs))


_TYPE_NAMES = {v: k.lower() for k, v in vars(schema_fb.TensorType).items() if not k.startswith("_")}


def model_io(tflite_path: str | Path) -> dict[str, list[dict]]:
    """Name, shape, dtype and quantisation of the model's inputs and outputs (documents input.bin)."""
    model = flatbuffer_utils.read_model(str(tflite_path))
    graph = model.subgraphs[0]

    def describe(index: int) -> dict:
        t = graph.tensors[index]
        q = t.quantization
        scale = [float(s) for s in q.scale] if q is not None and q.scale is not None else []
        zero = [int(z) for z in q.zeroPoint] if q is not None and q.zeroPoint is not None else []
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        return {"name": name, "shape": [int(d) for d in t.shape], "dtype": _TYPE_NAMES[t.type],
                "scale": scale, "zero_point": zero}

    return {"inputs": [describe(i) for i in graph.inputs], "outputs": [describe(i) for i in graph.outputs]}


def per_channel_fully_connected(tflite_path: str | Path) -> int:
    """How many FULLY_CONNECTED ops have per-channel weights (where XMOS's fork rounds differently)."""
    model = flatbuffer_utils.read_model(str(tflite_path))
    count = 0
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) != schema_fb.BuiltinOperator.FULLY_CONNECTED:
                continue
            q = graph.tensors[op.inputs[1]].quantization
            if q is not None and q.scale is not None and len(q.scale) > 1:
                count += 1
    return count
