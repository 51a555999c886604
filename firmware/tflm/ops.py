"""Which operators a .tflite model uses, and the TFLM op-resolver call that registers each one.

A `MicroMutableOpResolver` sized and filled with exactly the model's ops keeps the firmware small
(only those kernels are linked) and makes a missing kernel fail at build time, not on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

from nlpool.core.custom_ops import ATTENTION_OP_NAME, WEIGHTED_POOL_OP_NAME
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import TfliteModel


@dataclass(frozen=True)
class CustomKernel:
    """One of nlpool's custom ops as a TFLM kernel: `templates/<stem>_op.cc` and `<stem>_op.h.in`
    (the TFLM registration) around the shared C kernel `firmware/kernels/<stem>.c` / `.h`, the
    function nlpool's AOT firmware calls too. A project copies these files only for the custom ops
    its model uses, so a model without one compiles none of them; every kernel also includes
    `templates/nlpool_tflm_options.h` (`CUSTOM_OPS_HEADER`)."""

    stem: str  # e.g. "nlpool_attention"
    register: str  # registration function in namespace nlpool
    name_constant: str  # the op-name constant its header declares (filled from nlpool.core.custom_ops)
    readme: str  # what the generated README says its files do
    kernel_headers: tuple[str, ...] = ()  # further headers of firmware/kernels/ the C kernel includes
    op_headers: tuple[str, ...] = ()  # further headers of templates/ the TFLM kernel includes

    @property
    def variable(self) -> str:
        """The registration's local variable in main.cc's RegisterOps."""
        return self.stem.removeprefix("nlpool_")

    @property
    def op_source(self) -> str:
        return f"{self.stem}_op.cc"

    @property
    def op_header(self) -> str:
        return f"{self.stem}_op.h"

    @property
    def kernel_files(self) -> tuple[str, ...]:
        """What the project copies from firmware/kernels/ into its kernels/."""
        return (f"{self.stem}.c", f"{self.stem}.h", *self.kernel_headers)


# The custom ops the TFLM project has a kernel for, by custom code.
TFLM_CUSTOM_KERNELS: dict[str, CustomKernel] = {
    WEIGHTED_POOL_OP_NAME: CustomKernel(
        "nlpool_weighted_pool", "Register_NLPOOL_WEIGHTED_POOL", "kWeightedPoolOpName",
        "init parses the FlexBuffer options; prepare checks types, shapes, zero points, output multiplier and "
        "exp table against the tensors and fails with a `MicroPrintf` message naming the mismatch; eval calls "
        "`nlpool_weighted_pool()` in `kernels/`"),
    ATTENTION_OP_NAME: CustomKernel(
        "nlpool_attention", "Register_NLPOOL_ATTENTION", "kAttentionOpName",
        "init parses the FlexBuffer options into persistent memory (one fixed `OpData` and one buffer of the "
        "per-column arrays); prepare checks them and the tensors (types, sizes, zero points, constant weights, "
        "positional table) and fails with a `MicroPrintf` message naming the problem, tabulates the softmax's "
        "fixed-point exp with gemmlowp and requests the streamed scratch (2 N E + N + 2 E bytes) from TFLM's "
        "arena; eval calls `nlpool_attention()` in `kernels/`",
        ("nlpool_fixedpoint.h",), ("nlpool_attention_op_data.h",)),
}

# The header every custom-op kernel includes (FlexBuffer options, per-tensor quantisation): a project
# copies it whenever its model has any custom op.
CUSTOM_OPS_HEADER = "nlpool_tflm_options.h"

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
        """The C++ resolver statements for the builtins (the custom ops are registered separately)."""
        return [f"{RESOLVER_METHODS[name]}()" for name in self.builtins]

    @property
    def custom_kernels(self) -> list[CustomKernel]:
        """The TFLM kernels of the model's custom ops, in order of first use."""
        return [TFLM_CUSTOM_KERNELS[name] for name in self.customs]


def model_ops(model: TfliteModel) -> ModelOps:
    """The operators the model's ops actually use (unused operator codes are ignored), in order of first use."""
    builtins: list[str] = []
    customs: list[str] = []
    for op in model.operators:
        if op.name in builtins or op.name in customs:
            continue
        if op.is_custom:
            if op.name not in TFLM_CUSTOM_KERNELS:
                raise NlpoolError(f"{model.path}: custom op {op.name!r} has no TFLM kernel in nlpool: "
                                  f"only {', '.join(TFLM_CUSTOM_KERNELS)} are supported; export the model with nlpool export")
            customs.append(op.name)
        elif op.name in RESOLVER_METHODS:
            builtins.append(op.name)
        else:
            raise NlpoolError(f"{model.path}: op {op.name} has no TFLM resolver entry in nlpool's table: "
                              f"add it to firmware/tflm/ops.py RESOLVER_METHODS if TFLM has a kernel for it")
    return ModelOps(tuple(builtins), tuple(customs))


def model_io(model: TfliteModel) -> dict[str, list[dict]]:
    """Name, shape, dtype and quantisation of the model's inputs and outputs (documents input.bin)."""

    def describe(index: int) -> dict:
        t = model.tensors[index]
        return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype,
                "scale": [float(s) for s in t.scales], "zero_point": [int(z) for z in t.zero_points]}

    return {"inputs": [describe(i) for i in model.inputs], "outputs": [describe(i) for i in model.outputs]}


def per_channel_fully_connected(model: TfliteModel) -> int:
    """How many FULLY_CONNECTED ops have per-channel weights (where XMOS's fork rounds differently)."""
    return sum(1 for op in model.operators if op.name == "FULLY_CONNECTED" and model.tensors[op.inputs[1]].scales.size > 1)
