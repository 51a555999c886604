"""A .tflite file as the planning IR.

The file is read and validated by nlpool.core.tflite (the one reader); this keeps what planning
needs: sizes, constness and the op order. Tensor indices are the TFLite tensor indices of subgraph 0,
so plan offsets can address tensors in firmware directly. Custom ops are named `CUSTOM:<code>`; a
custom op whose kernel needs scratch memory (NLPOOL_ATTENTION) gets one scratch tensor of that size,
numbered after the file's tensors, so the plan places it in the arena (`MemoryPlan.scratch_slots`).
Kernels whose scratch depends on the runtime rather than on the model (CMSIS-NN's convolution
buffers) are given by the caller as `kernel_scratch` (op position -> bytes) and planned the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from nlpool.core.custom_ops import ATTENTION_OP_NAME, AttentionParams, CustomOptionsError, scratch_bytes
from nlpool.core.errors import NlpoolError
from nlpool.core.inplace import inplace_depthwise_scratch
from nlpool.core.tflite import Operator, TfliteModel

from .graph import Graph, Op, Tensor
from .pad_folding import foldable_pads
from .tflm_model import attention_kernel_data, builtin_kernel_data


def graph_from_model(model: TfliteModel, kernel_scratch: Mapping[int, int] | None = None,
                     tflm_kernel_data: Mapping[int, tuple[int, ...]] | None = None) -> Graph:
    """The main subgraph of an already read model as a planning graph; `kernel_scratch` adds the
    runtime's scratch memory per op position (bytes), live during that op only; `tflm_kernel_data`
    (op position -> persistent buffer sizes) is what TFLM's kernels keep per op where it depends on the
    model or kernel set (`tflm_model.builtin_kernel_data`, reference kernels when not given)."""
    kernel_scratch = dict(kernel_scratch or {})
    builtin_data = dict(builtin_kernel_data(model) if tflm_kernel_data is None else tflm_kernel_data)
    unknown = sorted(set(kernel_scratch) - {op.position for op in model.operators})
    if unknown:
        raise NlpoolError(f"kernel scratch given for op {unknown[0]}, which {model.path.name} does not have: "
                          "compute the scratch sizes for this model")
    path = model.path
    if not model.operators:
        raise NlpoolError(f"{path} has no operators to plan: re-export the model")
    tensors = {}
    for t in model.tensors:
        if not t.itemsize:
            raise NlpoolError(f"{path}: tensor {t.index} has type {t.dtype.upper()}, which has no fixed size: cannot plan this model")
        if t.dynamic:
            raise NlpoolError(f"{path}: tensor {t.index} '{t.name}' has a dynamic shape {t.shape_signature}: "
                              "only a free (-1) batch is run at batch 1: re-export with fixed sizes for the other dimensions")
        quant_channels = len(t.scales) if len(t.scales) and len(t.zero_points) else 0
        tensors[t.index] = Tensor(t.index, t.name, t.shape, t.dtype, t.itemsize, t.constant, quant_channels)
    folds = foldable_pads(model)
    ops = []
    for op in model.operators:
        inputs = tuple(i for i in op.inputs if i >= 0)
        name = model.tensors[op.outputs[0]].name if op.outputs else f"op{op.position}"
        kind = f"CUSTOM:{op.name}" if op.is_custom else op.name
        scratch: tuple[int, ...] = ()
        size = kernel_scratch.get(op.position, 0)
        tflm_kernel_data = builtin_data.get(op.position, ())
        if op.is_custom:
            try:
                own_scratch, tflm_kernel_data = _custom_op_memory(op)
            except CustomOptionsError as err:
                raise NlpoolError(f"{path}: op {op.position}: {err}") from None
            size += own_scratch
        if size:
            index = len(tensors)
            tensors[index] = Tensor(index, f"{name}/scratch", (size,), "int8", 1)
            scratch = (index,)
        ops.append(Op(op.position, kind, name, inputs, op.outputs, scratch, _inplace_scratch(model, op),
                      folds_into=folds.get(op.position, -1), tflm_kernel_data=tflm_kernel_data))
    graph = Graph(
        name=path.stem,
        tensors=tensors,
        ops=ops,
        inputs=model.inputs,
        outputs=model.outputs,
        source=path.name,  # the file as it is named wherever it ends up (an export builds in a folder that is gone after)
        extra={"file_bytes": model.file_bytes, "subgraphs": model.subgraph_count},
    )
    try:
        return graph.validate()
    except ValueError as err:
        raise NlpoolError(f"{path} is inconsistent ({err}): re-export the model") from None


def _custom_op_memory(op: Operator) -> tuple[int, tuple[int, ...]]:
    """A custom op's scratch bytes, and its TFLM kernel's persistent buffers where they follow from its
    options (NLPOOL_ATTENTION), from one decode of the options; CustomOptionsError when they are bad."""
    if op.name != ATTENTION_OP_NAME:
        return scratch_bytes(op.name, op.custom_options), ()
    params = AttentionParams.from_flexbuffer(op.custom_options)
    steps = sum(len(params.steps(branch)) for branch in "qkv")
    return params.scratch_bytes(), attention_kernel_data(params.width, bool(params.pos_step), steps)


def _inplace_scratch(model: TfliteModel, op: Operator) -> int:
    """Scratch bytes of the op's in-place kernel, 0 when it has none (nlpool.core.inplace)."""
    if op.name != "DEPTHWISE_CONV_2D" or len(op.outputs) != 1:
        return 0
    inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if len(inp.shape) != 4 or len(out.shape) != 4 or inp.constant or not inp.dtype == out.dtype == "int8":
        return 0
    o = op.options
    _, fh, fw, _ = model.tensors[op.inputs[1]].shape
    return inplace_depthwise_scratch(inp.shape[1:3], out.shape[1:3], (fh, fw), (o.strideH, o.strideW),
                                     (o.dilationHFactor, o.dilationWFactor), out.shape[3] // inp.shape[3])
