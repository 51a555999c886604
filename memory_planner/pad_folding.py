"""Which PAD ops a convolution can do itself: the padding folded into the kernel.

A PAD (or PADV2) whose only reader is a VALID CONV_2D / DEPTHWISE_CONV_2D and whose padding value is
the zero point needs no tensor of its own: the convolution reads the unpadded input with that much
leading padding, and a padded position contributes (zero point + input offset) = 0 to every sum,
exactly what reading the padded tensor gives. The planner plans the model that way, and the AOT
generator generates it that way, from this one rule.

The rule has two halves. What the PAD writes (`pads_with_zero_point`: only the spatial dimensions,
int8 in and out with one quantisation, padded with the zero point) needs the tensors of a .tflite.
Where its output goes (`folding_convolution`: read once, as the data input of a VALID convolution,
and not a model output) is graph structure, and is shared with the PyTorch trace
(memory_planner.from_torch), whose PADs are by construction the converter's zero-point PADs.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Sequence

from nlpool.core.tflite import Operator, TfliteModel

PAD_OPS = ("PAD", "PADV2")
FOLDING_CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")
VALID = 1  # TFLite's Padding enum: SAME 0, VALID 1

Readers = dict[int, list[tuple[int, int]]]  # tensor -> (op position, input slot) of each op reading it


def readers_of(op_inputs: Iterable[Sequence[int]]) -> Readers:
    """Tensor -> every (op position, input slot) that reads it, from each op's inputs in order."""
    readers: Readers = {}
    for position, inputs in enumerate(op_inputs):
        for slot, t in enumerate(inputs):
            readers.setdefault(t, []).append((position, slot))
    return readers


def folding_convolution(pad_output: int, readers: Readers, model_outputs: Container[int],
                        is_valid_convolution: Callable[[int], bool]) -> int | None:
    """Position of the convolution that can do a zero-point PAD's padding, or None.

    Its output must be read exactly once, as the data input (slot 0) of a VALID convolution, and must
    not be a model output: any other reader would need the padded tensor itself.
    """
    uses = readers.get(pad_output, [])
    if pad_output in model_outputs or len(uses) != 1:
        return None
    position, slot = uses[0]
    return position if slot == 0 and is_valid_convolution(position) else None


def _pads(model: TfliteModel, op: Operator) -> list[tuple[int, int]] | None:
    paddings = model.tensors[op.inputs[1]]
    if paddings.data is None or paddings.data.size != 8:
        return None
    return [(int(a), int(b)) for a, b in paddings.data.reshape(4, 2)]


def pads_with_zero_point(model: TfliteModel, op: Operator) -> bool:
    """Whether a PAD / PADV2 op pads only height and width, int8 in and out with one quantisation, with
    the zero point (leading pads only matter: the convolution's window never reaches past the trailing
    ones it does not read)."""
    if op.name not in PAD_OPS or len(op.outputs) != 1:
        return False
    inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    pads = _pads(model, op)
    if (pads is None or len(inp.shape) != 4 or inp.dtype != "int8" or out.dtype != "int8"
            or pads[0] != (0, 0) or pads[3] != (0, 0) or (inp.scale, inp.zero_point) != (out.scale, out.zero_point)):
        return False
    if op.name == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = model.tensors[op.inputs[2]].data
        return value is not None and int(value.reshape(-1)[0]) == out.zero_point
    return True


def foldable_pads(model: TfliteModel) -> dict[int, int]:
    """PAD op position -> position of the convolution that can do its padding."""
    readers = readers_of(op.inputs for op in model.operators)

    def is_valid_convolution(position: int) -> bool:
        conv = model.operators[position]
        return conv.name in FOLDING_CONVOLUTIONS and conv.options.padding == VALID

    folds = {}
    for op in model.operators:
        if pads_with_zero_point(model, op):
            conv = folding_convolution(op.outputs[0], readers, model.outputs, is_valid_convolution)
            if conv is not None:
                folds[op.position] = conv
    return folds
