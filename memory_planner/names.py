"""Short, readable op names for per-layer reports (memory.md/json/png rows, the firmware's per-op
profile), from the names a converter gives the ops' output tensors.

The TFLite converter names a fused op's output after every TensorFlow op it swallowed, joined by
';' (`model/activation_2/Relu;model/batch_normalization_2/FusedBatchNormV3;...;model/conv2d_1/Conv2D1`,
300 characters for one convolution). Each piece is `scope/layer/op`: the layer named most often is
the Keras layer the op came from (`conv2d_1`). A PyTorch export keeps its module path where the
tensor name carries it (ONNX's `/features/features.3/conv/conv.0/Conv` scopes): `features.3.conv.0`.
A report shows `KIND #index layer`; memory.json keeps the full name beside it.
"""

from __future__ import annotations

import re
from collections import Counter

_CONSTANT = re.compile(r"^(Const|tfl\.pseudo_q?const)(_\d+)?\d*$")


def module_path(piece: str) -> str:
    """The PyTorch module path an ONNX-scoped name carries ('' if none): nested scopes repeat their
    parent (`features/features.3/conv/conv.0/Conv`), each extending the path by one attribute."""
    parts = [p for p in piece.split("/") if p][:-1]  # the last part is the op itself
    first = next((i for i in range(len(parts) - 1) if parts[i + 1].startswith(parts[i] + ".")), -1)
    if first < 0:
        return ""
    path: list[str] = []
    for part in parts[first:]:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path)


def _layer(piece: str) -> str:
    """The layer of one `scope/layer/op` piece (the first part when there is no model scope)."""
    parts = [p for p in piece.split("/") if p]
    if not parts:
        return ""
    return parts[1] if len(parts) >= 3 else parts[0]


def layer_name(tensor_name: str) -> str:
    """The layer an op's output tensor name says it came from: the module path when there is one,
    else the layer named most often among the fused pieces (ties: the last named), constants left out."""
    pieces = [p for p in tensor_name.split(";") if p and not _CONSTANT.match(p)]
    for piece in pieces:
        path = module_path(piece)
        if path:
            return path
    layers = [layer for layer in (_layer(p) for p in pieces) if layer]
    if not layers:
        return tensor_name[-40:]
    counts = Counter(layers)
    best = max(counts.values())
    return next(layer for layer in reversed(layers) if counts[layer] == best)


def op_label(kind: str, index: int, tensor_name: str) -> str:
    """`CONV_2D #3 conv2d_1`: what the op is, where it runs, which layer it is."""
    return f"{kind.removeprefix('CUSTOM:')} #{index} {layer_name(tensor_name)}".rstrip()
