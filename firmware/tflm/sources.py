"""Which upstream TFLM source files a model needs, so the project compiles those and nothing else.

A whole TFLM library is ~200 C++ files (7-8 minutes on two cores); a model uses the interpreter core
and the kernels its op resolver registers, a quarter of that. The lists name files by their path in
TFLM's source layout, which is the same in a tflite-micro checkout and in a flat tree made by TFLM's
`create_tflm_tree.py` (checked against TFLM commit 90b983c2, the version nlpool's CI builds). The
generated Makefile picks each kernel's `kernels/cmsis_nn/` version when the tree has CMSIS-NN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

# The interpreter, allocator, memory planner, flatbuffer parsing, the kernel helpers every kernel links
# against, and `MicroProfiler` (main.cc profiles one inference per op with it). Left out on purpose: test
# helpers, the recording allocator and `micro_time.cc`: a tree made for project generation compiles it
# as a stub whose clock is always 0, so the project defines `tflite::GetCurrentTimeTicks()` and
# `ticks_per_second()` itself, from the platform's SysTick counter (main.cc).
CORE_SOURCES: tuple[str, ...] = (
    "tensorflow/compiler/mlir/lite/core/api/error_reporter.cc",
    "tensorflow/compiler/mlir/lite/schema/schema_utils.cc",
    "tensorflow/lite/core/api/flatbuffer_conversions.cc",
    "tensorflow/lite/core/api/tensor_utils.cc",
    "tensorflow/lite/core/c/common.cc",
    "tensorflow/lite/kernels/kernel_util.cc",
    "tensorflow/lite/kernels/internal/common.cc",
    "tensorflow/lite/kernels/internal/portable_tensor_utils.cc",
    "tensorflow/lite/kernels/internal/quantization_util.cc",
    "tensorflow/lite/kernels/internal/runtime_shape.cc",
    "tensorflow/lite/kernels/internal/tensor_ctypes.cc",
    "tensorflow/lite/micro/arena_allocator/non_persistent_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/arena_allocator/persistent_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/cortex_m_generic/debug_log.cc",
    "tensorflow/lite/micro/flatbuffer_utils.cc",
    "tensorflow/lite/micro/memory_helpers.cc",
    "tensorflow/lite/micro/memory_planner/greedy_memory_planner.cc",
    "tensorflow/lite/micro/memory_planner/linear_memory_planner.cc",
    "tensorflow/lite/micro/memory_planner/non_persistent_buffer_planner_shim.cc",
    "tensorflow/lite/micro/micro_allocation_info.cc",
    "tensorflow/lite/micro/micro_allocator.cc",
    "tensorflow/lite/micro/micro_context.cc",
    "tensorflow/lite/micro/micro_interpreter.cc",
    "tensorflow/lite/micro/micro_interpreter_context.cc",
    "tensorflow/lite/micro/micro_interpreter_graph.cc",
    "tensorflow/lite/micro/micro_log.cc",
    "tensorflow/lite/micro/micro_op_resolver.cc",
    "tensorflow/lite/micro/micro_profiler.cc",
    "tensorflow/lite/micro/micro_resource_variable.cc",
    "tensorflow/lite/micro/micro_utils.cc",
    "tensorflow/lite/micro/tflite_bridge/flatbuffer_conversions_bridge.cc",
    "tensorflow/lite/micro/tflite_bridge/micro_error_reporter.cc",
    "tensorflow/lite/micro/kernels/kernel_util.cc",
)

KERNEL_DIR = "tensorflow/lite/micro/kernels"

# Builtin op -> the files (stems in kernels/) its registration and Eval live in. A stem that also
# exists in kernels/cmsis_nn/ is taken from there in a CMSIS-NN build (the `_common` files never are).
# Ops not listed use their lower-case name (e.g. GATHER -> gather.cc).
KERNEL_STEMS: dict[str, tuple[str, ...]] = {
    "ADD": ("add", "add_common"),
    "ABS": ("elementwise",), "COS": ("elementwise",), "LOG": ("elementwise",), "RSQRT": ("elementwise",),
    "SQRT": ("elementwise",), "SQUARE": ("elementwise",),
    "ARG_MAX": ("arg_min_max",), "ARG_MIN": ("arg_min_max",),
    "AVERAGE_POOL_2D": ("pooling", "pooling_common"), "MAX_POOL_2D": ("pooling", "pooling_common"),
    "BATCH_MATMUL": ("batch_matmul", "batch_matmul_common"),
    "CONV_2D": ("conv", "conv_common"),
    "DEPTHWISE_CONV_2D": ("depthwise_conv", "depthwise_conv_common"),
    "DEQUANTIZE": ("dequantize", "dequantize_common"),
    "EQUAL": ("comparisons",),
    "FULLY_CONNECTED": ("fully_connected", "fully_connected_common"),
    "HARD_SWISH": ("hard_swish", "hard_swish_common"),
    "L2_NORMALIZATION": ("l2norm",),
    "LEAKY_RELU": ("leaky_relu", "leaky_relu_common"),
    "LOGISTIC": ("logistic", "logistic_common"),
    "MAXIMUM": ("maximum_minimum",), "MINIMUM": ("maximum_minimum",),
    "MEAN": ("reduce", "reduce_common"), "REDUCE_MAX": ("reduce", "reduce_common"), "SUM": ("reduce", "reduce_common"),
    "MIRROR_PAD": ("mirror_pad",),
    "MUL": ("mul", "mul_common"),
    "PAD": ("pad", "pad_common"), "PADV2": ("pad", "pad_common"),
    "PRELU": ("prelu", "prelu_common"),
    "QUANTIZE": ("quantize", "quantize_common"),
    "RELU": ("activations", "activations_common"), "RELU6": ("activations", "activations_common"),
    "RESHAPE": ("reshape", "reshape_common"),
    "SOFTMAX": ("softmax", "softmax_common"),
    "SPLIT_V": ("split_v",),
    "STRIDED_SLICE": ("strided_slice", "strided_slice_common"),
    "SUB": ("sub", "sub_common"),
    "TRANSPOSE": ("transpose", "transpose_common"),
    "TRANSPOSE_CONV": ("transpose_conv",),
}

# CMSIS-NN source folders (third_party/cmsis_nn/Source/) the CMSIS-NN version of each op calls into;
# NNSupportFunctions is always built. Ops without a CMSIS-NN kernel need none. The depthwise wrapper
# transposes some filters on MVE cores (arm_transpose_s8): a Cortex-M55 build of a model without a
# TRANSPOSE op (e.g. with its attention fused) failed to link without TransposeFunctions.
CMSIS_NN_SOURCE_DIRS: dict[str, tuple[str, ...]] = {
    "ADD": ("BasicMathFunctions",), "MUL": ("BasicMathFunctions",),
    "MAXIMUM": ("BasicMathFunctions",), "MINIMUM": ("BasicMathFunctions",),
    "AVERAGE_POOL_2D": ("PoolingFunctions",), "MAX_POOL_2D": ("PoolingFunctions",),
    "BATCH_MATMUL": ("FullyConnectedFunctions",), "FULLY_CONNECTED": ("FullyConnectedFunctions",),
    "CONV_2D": ("ConvolutionFunctions",), "DEPTHWISE_CONV_2D": ("ConvolutionFunctions", "TransposeFunctions"),
    "TRANSPOSE_CONV": ("ConvolutionFunctions",),
    "PAD": ("PadFunctions",), "PADV2": ("PadFunctions",),
    "SOFTMAX": ("SoftmaxFunctions",),
    "TRANSPOSE": ("TransposeFunctions",),
}
CMSIS_NN_ALWAYS = "NNSupportFunctions"


def kernel_stems(builtins: Iterable[str]) -> list[str]:
    """The kernels/ file stems the model's builtin ops need, plus the shared kernel_util, sorted."""
    stems = {stem for op in builtins for stem in KERNEL_STEMS.get(op, (op.lower(),))}
    return sorted(stems)


def cmsis_nn_dirs(builtins: Iterable[str]) -> list[str]:
    """The CMSIS-NN Source/ folders the model's ops call into (NNSupportFunctions always), sorted."""
    dirs = {CMSIS_NN_ALWAYS} | {d for op in builtins for d in CMSIS_NN_SOURCE_DIRS.get(op, ())}
    return sorted(dirs)


def kernel_set(op: str, tree_kernels: str, has_file: Callable[[str], bool], custom: bool = False) -> str:
    """Which kernels run `op` in a build with `tree_kernels`: "tflm-cmsis-nn" where the Makefile takes the
    op's kernel from kernels/cmsis_nn/ (`has_file(path)` says whether the tree has that file), else
    "tflm-reference"; a custom op (nlpool's own C behind a TFLM registration) is "portable"."""
    if custom:
        return "portable"
    stem = KERNEL_STEMS.get(op, (op.lower(),))[0]
    if tree_kernels == "cmsis-nn" and has_file(f"{KERNEL_DIR}/cmsis_nn/{stem}.cc"):
        return "tflm-cmsis-nn"
    return "tflm-reference"
