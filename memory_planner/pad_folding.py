"""Which PAD ops a convolution can do itself: the padding folded into the kernel.

A PAD (or PADV2) whose only reader is a VALID CONV_2D / DEPTHWISE_CONV_2D and whose padding value is
the zero point needs no tensor of its own: the convolution reads the unpadded input with that much
leading padding, and a padded position contributes (zero point + input offset) = 0 to every sum,
exactly what reading the padded tensor gives. The planner plans the model that way, and the AOT
generator generates it that way, from this one rule.
"""

from __future__ import annotations

from nlpool.core.tflite import Operator, TfliteModel

PAD_OPS = ("PAD", "PADV2")
FOLDING_CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")
VALID = 1  # TFLite's Padding enum: SAME 0, VALID 1


def _pads(model: TfliteModel, op: Operator) -> list[tuple[int, int]] | None:
    paddings = model.tensors[op.inputs[1]]
    if paddings.data is None or paddings.data.size != 8:
        return None
    return [(int(a), int(b)) for a, b in paddings.data.reshape(4, 2)]


def foldable_pads(model: TfliteModel) -> dict[int, int]:
    """PAD op position -> position of the convolution that can do its padding (leading pads only
    matter: the convolution's window never reaches past the trailing ones it does not read)."""
    readers: dict[int, list[tuple[int, int]]] = {}
    for op in model.operators:
        for slot, t in enumerate(op.inputs):
            readers.setdefault(t, []).append((op.position, slot))
    folds = {}
    for op in model.operators:
        if op.name not in PAD_OPS or len(op.outputs) != 1:
            continue
        inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
        pads = _pads(model, op)
        uses = readers.get(op.outputs[0], [])
        if (pads is None or len(inp.shape) != 4 or inp.dtype != "int8" or out.dtype != "int8" or op.outputs[0] in model.outputs
                or pads[0] != (0, 0) or pads[3] != (0, 0) or len(uses) != 1 or uses[0][1] != 0
                or (inp.scale, inp.zero_point) != (out.scale, out.zero_point)):
            continue
        if op.name == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            value = model.tensors[op.inputs[2]].data
            if value is None or int(value.reshape(-1)[0]) != out.zero_point:
                continue
        conv = model.operators[uses[0][0]]
        if conv.name in FOLDING_CONVOLUTIONS and conv.options.padding == VALID:
            folds[op.position] = conv.position
    return folds
