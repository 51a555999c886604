"""Plan a PyTorch model at int8 sizes without TensorFlow: record its torch-function calls.

One 1-image forward pass on zeros runs under a `TorchFunctionMode` that records every torch function
a module calls (F.conv2d, F.linear, matmul, softmax, transpose, ...), in execution order, with the
tensors it reads and writes. That is the granularity of an ONNX / TFLite graph, so the attention
score tensors (heads x N x N) appear as the ordinary outputs of a matmul and a softmax. The record
is then shaped like the int8 TFLite graph the export produces:

- BatchNorm and ReLU/ReLU6 directly after a conv / linear / add are folded into it (as the
  converter does), dropout and `contiguous` are no-ops;
- calls whose inputs are all constant (e.g. slicing the positional tables) are folded to constants;
- a strided convolution whose PyTorch padding is not TFLite's SAME gets an explicit PAD op, as
  in the converted graph (measured: the plan then equals the .tflite's on MobileNetV2-0.35 64 px);
- the weighted pooling tail becomes the fused custom op the export deploys (NLPOOL_WEIGHTED_POOL),
  and each attention block (a module whose `fused_op` is NLPOOL_ATTENTION, with the token layout ops
  and the positional-table ADD around it) the streamed NLPOOL_ATTENTION with its O(N E) scratch:
  no heads x N x N score tensor, as the firmware runs it;
- a stride-1 depthwise convolution can run in place (`Op.inplace_scratch`), as in the firmware;
- every activation is int8 (1 byte per element); weights are int8 and biases int32 (flash).

It cannot know converter-specific extras (onnx2tf's NCHW<->NHWC transposes, the float DIV of the
unfused weighted pooling): plan the .tflite for those.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from nlpool.core.custom_ops import ATTENTION_OP_NAME, WEIGHTED_POOL_OP_NAME, attention_scratch_bytes
from nlpool.core.inplace import inplace_depthwise_scratch

from .graph import Graph, Op, Tensor
from .pad_folding import FOLDING_CONVOLUTIONS, VALID, folding_convolution, readers_of
from .tflm_model import attention_kernel_data

KINDS = {
    "linear": "FULLY_CONNECTED",
    "batch_norm": "BATCH_NORM",
    "relu": "RELU",
    "relu6": "RELU6",
    "hardtanh": "RELU6",
    "add": "ADD",
    "radd": "ADD",
    "sub": "SUB",
    "rsub": "SUB",
    "mul": "MUL",
    "rmul": "MUL",
    "div": "DIV",
    "truediv": "DIV",
    "rtruediv": "DIV",
    "sigmoid": "LOGISTIC",
    "exp": "EXP",
    "tanh": "TANH",
    "softmax": "SOFTMAX",
    "matmul": "BATCH_MATMUL",
    "bmm": "BATCH_MATMUL",
    "avg_pool2d": "AVERAGE_POOL_2D",
    "max_pool2d": "MAX_POOL_2D",
    "adaptive_avg_pool2d": "MEAN",
    "mean": "MEAN",
    "cat": "CONCATENATION",
    "flatten": "RESHAPE",
    "reshape": "RESHAPE",
    "view": "RESHAPE",
    "unsqueeze": "RESHAPE",
    "squeeze": "RESHAPE",
    "transpose": "TRANSPOSE",
    "permute": "TRANSPOSE",
    "getitem": "STRIDED_SLICE",
    "layer_norm": "LAYER_NORM",
    "instance_norm": "INSTANCE_NORM",
}
ALIASES = frozenset({"dropout", "contiguous", "clone", "detach"})
LAYOUT = frozenset({"TRANSPOSE", "RESHAPE"})  # token layout ops the attention fusion absorbs
FOLDABLE = frozenset({"BATCH_NORM", "RELU", "RELU6"})
FOLD_INTO = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"})


def _func_name(func: Any) -> str:
    name = getattr(func, "__name__", str(func)).strip("_")
    if name.startswith("i") and name[1:] in KINDS and name not in KINDS:  # __iadd__ -> add
        name = name[1:]
    return name  # relu_ -> relu (stripped above)


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _explicit_pad_shape(x: torch.Size, w: torch.Size, stride: Any, padding: Any, dilation: Any) -> tuple[int, ...] | None:
    """Shape of the PAD a TFLite graph needs before this conv, or None when SAME/VALID express it.

    TFLite convolutions pad only as SAME (the extra row/column after) or VALID. PyTorch's symmetric
    padding equals SAME only when SAME happens to split evenly (e.g. stride 1, or odd maps at
    stride 2); otherwise converters insert an explicit PAD whose output is a whole extra tensor.
    """
    if isinstance(padding, str):
        return None
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    if ph == pw == 0:
        return None
    for size, k, s, p, d in ((x[2], w[2], sh, ph, dh), (x[3], w[3], sw, pw, dw)):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        if (total // 2, total - total // 2) != (p, p) or out != (size + 2 * p - (k - 1) * d - 1) // s + 1:
            return (x[0], x[1], x[2] + 2 * ph, x[3] + 2 * pw)
    return None


def _inplace_depthwise_scratch(x: torch.Size, w: torch.Size, y: torch.Size, stride: Any, _padding: Any, dilation: Any) -> int:
    """The in-place depthwise kernel's scratch (nlpool.core.inplace) for NCHW shapes."""
    return inplace_depthwise_scratch((x[2], x[3]), (y[2], y[3]), (w[2], w[3]), _pair(stride), _pair(dilation), y[1] // x[1])


def _tensors(value: Any) -> list[torch.Tensor]:
    return [v for v in tree_flatten(value)[0] if isinstance(v, torch.Tensor)]


class _Recorder(TorchFunctionMode):
    """Records (kind, layer name, input ids, output ids) per torch call; ids are graph tensor indices."""

    def __init__(self, model: nn.Module, explicit_pad: bool) -> None:
        super().__init__()
        self.explicit_pad = explicit_pad
        self.index: dict[int, int] = {}  # id(torch tensor) -> graph tensor index
        self.keep: list[torch.Tensor] = []  # keeps recorded tensors alive so their ids stay unique
        self.meta: dict[int, dict[str, Any]] = {}  # graph tensor index -> shape / constant / itemsize / name
        self.calls: list[dict[str, Any]] = []
        self.scope: list[str] = []
        self.fused_scopes = {name for name, module in model.named_modules()
                             if getattr(module, "fused_op", None) == ATTENTION_OP_NAME}
        self.handles = []
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(lambda _m, _i, name=name: self._enter(name)))
            self.handles.append(module.register_forward_hook(lambda _m, _i, _o: self._leave()))

    def _enter(self, name: str) -> None:
        self.scope.append(name)

    def _leave(self) -> None:
        self.scope.pop()

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()

    def new_tensor(self, t: torch.Tensor, constant: bool, name: str) -> int:
        index = len(self.meta)
        self.meta[index] = {"shape": tuple(t.shape), "constant": constant, "itemsize": 1, "name": name}
        self.index[id(t)] = index
        self.keep.append(t)
        return index

    def lookup(self, t: torch.Tensor) -> int:
        if id(t) not in self.index:  # a parameter, buffer or tensor made outside the recorded calls
            return self.new_tensor(t, constant=True, name=f"{self.scope[-1] if self.scope else ''}.const")
        return self.index[id(t)]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = [self.lookup(t) for t in _tensors((args, kwargs))]
        out = func(*args, **kwargs)
        outputs = _tensors(out)
        if not outputs:
            return out
        name = _func_name(func)
        layer = self.scope[-1] if self.scope else "model"
        constant = all(self.meta[i]["constant"] for i in inputs)
        if name in ALIASES and inputs and len(outputs) == 1:
            self.index[id(outputs[0])] = inputs[0]
            self.keep.append(outputs[0])
            return out
        out_ids = [self.new_tensor(t, constant, layer) for t in outputs]
        if constant:
            return out
        kind = KINDS.get(name, name.upper())
        padding = None  # TFLite's padding of a convolution, where it matters (pad_folding)
        if name == "conv2d":
            groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
            kind = "DEPTHWISE_CONV_2D" if groups > 1 and groups == args[0].shape[1] else "CONV_2D"
            padded = _explicit_pad_shape(args[0].shape, args[1].shape, *(args[3:6] if len(args) > 5 else ((1, 1), (0, 0), (1, 1))))
            if padded is not None and self.explicit_pad:
                pad = len(self.meta)
                self.meta[pad] = {"shape": padded, "constant": False, "itemsize": 1, "name": f"{layer}.pad"}
                self.calls.append({"kind": "PAD", "name": layer, "inputs": [inputs[0]], "outputs": [pad]})
                inputs = [pad, *inputs[1:]]
                padding = VALID  # the PAD does all of it
        if name == "interpolate":
            mode = kwargs.get("mode", args[3] if len(args) > 3 else "nearest")
            kind = "RESIZE_BILINEAR" if mode == "bilinear" else "RESIZE_NEAREST_NEIGHBOR"
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(inputs) > 2:
            self.meta[inputs[2]]["itemsize"] = 4  # int32 bias
        call = {"kind": kind, "name": layer, "inputs": inputs, "outputs": out_ids, "padding": padding,
                "attention": next((s for s in self.scope if s in self.fused_scopes), None)}
        if kind == "DEPTHWISE_CONV_2D":
            call["inplace_scratch"] = _inplace_depthwise_scratch(args[0].shape, args[1].shape, outputs[0].shape,
                                                                 *(args[3:6] if len(args) > 5 else ((1, 1), (0, 0), (1, 1))))
        self.calls.append(call)
        return out


def _fold(calls: list[dict[str, Any]], meta: dict[int, dict[str, Any]], outputs: set[int]) -> list[dict[str, Any]]:
    """Fold BN / ReLU / ReLU6 into the conv, linear or add before them, as the int8 converter does."""
    readers: dict[int, int] = {}
    for call in calls:
        for t in set(call["inputs"]):
            readers[t] = readers.get(t, 0) + 1
    producer: dict[int, dict[str, Any]] = {}
    kept = []
    for call in calls:
        activations = [t for t in call["inputs"] if not meta[t]["constant"]]
        source = producer.get(activations[0]) if len(activations) == 1 else None
        if (
            call["kind"] in FOLDABLE
            and source is not None
            and source["base"] in FOLD_INTO
            and readers.get(activations[0]) == 1
            and activations[0] not in outputs
        ):
            if call["kind"] == "BATCH_NORM" and len(source["inputs"]) < 3:
                channels = meta[call["outputs"][0]]["shape"][1]
                bias = len(meta)
                meta[bias] = {"shape": (channels,), "constant": True, "itemsize": 4, "name": f"{source['name']}.bias"}
                source["inputs"].append(bias)
            source["outputs"] = call["outputs"]
            producer[call["outputs"][0]] = source
            continue
        call["base"] = call["kind"]
        for t in call["outputs"]:
            producer[t] = call
        kept.append(call)
    return kept


WEIGHTED_POOL = f"CUSTOM:{WEIGHTED_POOL_OP_NAME}"


def _fuse_weighted_pools(calls: list[dict[str, Any]], outputs: set[int]) -> list[dict[str, Any]]:
    """Replace LOGISTIC -> EXP -> MUL -> AVERAGE_POOL_2D x2 -> DIV by the fused custom op (x, r) -> y.

    That is what the export deploys (docs/custom_op.md; TFLM has no int8 EXP): the pi and pi*x
    maps never exist. Fused only when the intermediates have no other reader.
    """
    by_output = {t: k for k, call in enumerate(calls) for t in call["outputs"]}
    readers: dict[int, int] = {}
    for call in calls:
        for t in set(call["inputs"]):
            readers[t] = readers.get(t, 0) + 1

    def source(t: int, kind: str) -> int | None:
        k = by_output.get(t)
        return k if k is not None and calls[k]["kind"] == kind else None

    drop: set[int] = set()
    for k, call in enumerate(calls):
        if call["kind"] != "DIV" or len(call["inputs"]) != 2:
            continue
        num, den = (source(t, "AVERAGE_POOL_2D") for t in call["inputs"])
        if num is None or den is None:
            continue
        mul = source(calls[num]["inputs"][0], "MUL")
        pi = calls[den]["inputs"][0]
        exp = source(pi, "EXP")
        if mul is None or exp is None or pi not in calls[mul]["inputs"] or len(calls[mul]["inputs"]) != 2:
            continue
        logistic = source(calls[exp]["inputs"][0], "LOGISTIC")
        if logistic is None:
            continue
        x = next(t for t in calls[mul]["inputs"] if t != pi)
        chain = (logistic, exp, mul, num, den)
        inner = [calls[j]["outputs"][0] for j in chain]
        expected = {inner[0]: 1, inner[1]: 2, inner[2]: 1, inner[3]: 1, inner[4]: 1}
        if any(readers.get(t) != n or t in outputs for t, n in expected.items()):
            continue
        r = calls[logistic]["inputs"][0]
        calls[k] = {"kind": WEIGHTED_POOL, "name": call["name"], "inputs": [x, r], "outputs": call["outputs"], "base": WEIGHTED_POOL}
        drop.update(chain)
    return [call for j, call in enumerate(calls) if j not in drop]


ATTENTION = f"CUSTOM:{ATTENTION_OP_NAME}"
# The per-column steps onnx2tf writes for nlpool's MultiHeadSelfAttention, which the fused op keeps:
# each projection's bias ADD and the query's scaling MUL (read from the default model's fused ops).
ATTENTION_STEPS = 4


def _pad_folds(calls: list[dict[str, Any]], outputs: set[int]) -> dict[int, int]:
    """PAD position -> the convolution that does its padding, by memory_planner.pad_folding's rule. Every
    PAD recorded here is the converter's zero-point PAD of the spatial dimensions (the rule's other
    half holds by construction), and the convolution it was made for is VALID."""
    readers = readers_of(call["inputs"] for call in calls)

    def is_valid_convolution(position: int) -> bool:
        return calls[position]["kind"] in FOLDING_CONVOLUTIONS and calls[position].get("padding") == VALID

    folds = {}
    for position, call in enumerate(calls):
        conv = folding_convolution(call["outputs"][0], readers, outputs, is_valid_convolution) if call["kind"] == "PAD" else None
        if conv is not None:
            folds[position] = conv
    return folds


def _fuse_attention(calls: list[dict[str, Any]], meta: dict[int, dict[str, Any]], outputs: set[int]) -> list[dict[str, Any]]:
    """Replace each attention block by one NLPOOL_ATTENTION op, as the export's fusion does: the calls
    of the block, the token layout (flatten, transpose, reshape) and the positional-table ADD before
    it and the layout after it, from the last tensor in the grid's element order to the first."""
    readers: dict[int, set[int]] = {}
    for j, call in enumerate(calls):
        for t in call["inputs"]:
            readers.setdefault(t, set()).add(j)

    def activations(j: int) -> list[int]:
        return [t for t in calls[j]["inputs"] if not meta[t]["constant"]]

    def absorbable_before(j: int, group: set[int]) -> bool:
        kind = calls[j]["kind"]
        out = calls[j]["outputs"]
        return (len(out) == 1 and out[0] not in outputs and readers.get(out[0], set()) <= group
                and (kind in LAYOUT or (kind == "ADD" and len(activations(j)) == 1)))

    drop: set[int] = set()
    replaced: dict[int, dict[str, Any]] = {}
    k = 0
    while k < len(calls):
        scope = calls[k].get("attention")
        if scope is None:
            k += 1
            continue
        end = k
        while end + 1 < len(calls) and calls[end + 1].get("attention") == scope:
            end += 1
        group = set(range(k, end + 1))
        _, n, e = meta[activations(k)[0]]["shape"]
        first = k
        while first - 1 >= 0 and first - 1 not in drop and absorbable_before(first - 1, group):
            first -= 1
            group.add(first)
        result = calls[end]["outputs"][0]
        while (end + 1 < len(calls) and calls[end + 1]["kind"] in LAYOUT and calls[end + 1]["inputs"][:1] == [result]
               and readers.get(result) == {end + 1} and result not in outputs):
            end += 1
            group.add(end)
            result = calls[end]["outputs"][0]
        scratch = len(meta)
        meta[scratch] = {"shape": (attention_scratch_bytes(n, e),), "constant": False, "itemsize": 1, "name": f"{scope}/scratch"}
        positional = any(calls[j]["kind"] == "ADD" for j in range(first, k))  # the absorbed positional-table ADD
        replaced[end] = {"kind": ATTENTION, "name": scope, "inputs": activations(first)[:1], "outputs": [result],
                         "base": ATTENTION, "scratch": [scratch],
                         "tflm_kernel_data": attention_kernel_data(e, positional, ATTENTION_STEPS)}
        drop.update(group - {end})
        k = end + 1
    return [replaced.get(j, call) for j, call in enumerate(calls) if j not in drop]


@torch.no_grad()
def graph_from_torch(
    model: nn.Module,
    input_size: int,
    name: str = "model",
    in_channels: int = 3,
    explicit_pad: bool = True,
    fuse_weighted_pool: bool = True,
    fuse_attention: bool = True,
) -> Graph:
    """Trace one forward pass of `model` on a (1, C, S, S) zero image into an int8 planning graph.

    `explicit_pad` adds the PAD ops a TFLite graph needs where PyTorch's padding is not SAME/VALID
    (what the export produces); without it padding is assumed done inside the convolution kernel.
    `fuse_weighted_pool` plans self-attentive pooling's tail as the fused custom op the export
    deploys; without it as the unfused LOGISTIC/EXP/MUL/AVERAGE_POOL_2D/DIV chain. `fuse_attention`
    plans each attention block as the streamed NLPOOL_ATTENTION op the export deploys; without it as
    its projections, score matmuls and softmax (heads x N x N scores).

    Runs on one CPU thread: the pass is tiny (batch 1) and thread start-up and contention on a
    shared machine cost more than the arithmetic.
    """
    was_training = model.training
    threads = torch.get_num_threads()
    model.eval()
    torch.set_num_threads(1)
    recorder = _Recorder(model, explicit_pad)
    image = torch.zeros(1, in_channels, input_size, input_size)
    try:
        image_id = recorder.new_tensor(image, constant=False, name="input")
        with recorder:
            result = model(image)
    finally:
        recorder.close()
        model.train(was_training)
        torch.set_num_threads(threads)
    output_ids = tuple(recorder.lookup(t) for t in _tensors(result))
    calls = _fold(recorder.calls, recorder.meta, set(output_ids))
    if fuse_weighted_pool:
        calls = _fuse_weighted_pools(calls, set(output_ids))
    if fuse_attention:
        calls = _fuse_attention(calls, recorder.meta, set(output_ids))
    used = {image_id, *output_ids}
    for call in calls:
        used.update(call["inputs"])
        used.update(call["outputs"])
        used.update(call.get("scratch", ()))
    tensors = {
        i: Tensor(i, m["name"], m["shape"], "int32" if m["itemsize"] == 4 else "int8", m["itemsize"], m["constant"])
        for i, m in recorder.meta.items()
        if i in used
    }
    folds = _pad_folds(calls, set(output_ids))
    ops = [Op(position, c["kind"], c["name"] or "model", tuple(c["inputs"]), tuple(c["outputs"]), tuple(c.get("scratch", ())),
              c.get("inplace_scratch", 0), folds_into=folds.get(position, -1), tflm_kernel_data=c.get("tflm_kernel_data", ()))
           for position, c in enumerate(calls)]
    return Graph(name=name, tensors=tensors, ops=ops, inputs=(image_id,), outputs=output_ids, source="pytorch",
                 channel_axis=1).validate()
