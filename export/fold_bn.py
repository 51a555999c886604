"""Fold every BatchNorm into the convolution that feeds it, and prove the result unchanged.

Which convolution feeds which BatchNorm is observed, not guessed from module order: one forward pass
with hooks records, for every BatchNorm2d, whether its input tensor is exactly a Conv2d's output (and
keeps that convolution's input). Each fold is then checked on the very input the layer saw: the folded
convolution must equal BatchNorm(convolution) within 1e-5 of the layer's output range. A last
end-to-end comparison catches wiring the per-layer check cannot see (a convolution output that was
also used elsewhere).

Why per layer: in float32 the folded network reorders rounding in ~60 layers, which alone moves deep
outputs by ~3e-5; the float64 alternative is slow on CPU (depthwise convolutions take a per-group
path, ~15 s per image for the default model).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nlpool.core.errors import NlpoolError

FOLD_TOLERANCE = 1e-5  # per layer, relative to the layer's output range
END_TO_END_TOLERANCE = 1e-3  # whole model in float32, relative to the output range (rounding only)


def _conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str, torch.Tensor]]:
    """(conv name, bn name, the conv's input) for every BatchNorm2d whose input is a Conv2d's output."""
    # Holding the outputs keeps them alive, so no later tensor can reuse an id seen here.
    produced_by: dict[int, tuple[str, torch.Tensor, torch.Tensor]] = {}
    pairs: list[tuple[str, str, torch.Tensor]] = []
    names = {module: name for name, module in model.named_modules()}

    def conv_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        produced_by[id(output)] = (names[module], output, inputs[0].detach().clone())

    def bn_hook(module: nn.Module, inputs: tuple) -> None:
        producer = produced_by.get(id(inputs[0]))
        if producer is not None:
            pairs.append((producer[0], names[module], producer[2]))

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.BatchNorm2d):
            handles.append(module.register_forward_pre_hook(bn_hook))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return pairs


def _folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A copy of conv computing bn(conv(x)), folded in float64 and rounded once to the weights' dtype."""
    fused = copy.deepcopy(conv)
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(bn.running_mean, dtype=torch.float64)
    fused.weight = nn.Parameter((conv.weight.double() * scale.reshape(-1, 1, 1, 1)).to(conv.weight.dtype))
    fused.bias = nn.Parameter(((bias - bn.running_mean.double()) * scale + bn.bias.double()).to(conv.weight.dtype))
    return fused


def _relative_diff(reference: torch.Tensor, result: torch.Tensor) -> float:
    return float((reference - result).abs().max()) / max(float(reference.abs().max()), 1e-12)


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, int, float]:
    """A folded copy of `model` (eval mode), the number of folds, and the worst per-layer relative difference.

    Raises NlpoolError when a folded layer differs from BatchNorm(conv) by more than 1e-5 of its range,
    or the folded model's output moves by more than float32 rounding explains.
    """
    original = model.eval()
    folded = copy.deepcopy(original).eval()
    pairs = _conv_bn_pairs(folded, example)
    worst = 0.0
    with torch.no_grad():
        for conv_name, bn_name, conv_input in pairs:
            conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
            fused = _folded_conv(conv, bn)
            diff = _relative_diff(bn(conv(conv_input)), fused(conv_input))
            if diff > FOLD_TOLERANCE:
                raise NlpoolError(f"folding {bn_name} into {conv_name} changed that layer by {diff:.3g} of its range: please report it")
            worst = max(worst, diff)
            _set_module(folded, conv_name, fused)
            _set_module(folded, bn_name, nn.Identity())
        end_to_end = _relative_diff(original(example), folded(example))
    if end_to_end > END_TO_END_TOLERANCE:
        raise NlpoolError(f"folding BatchNorm changed the model's output by {end_to_end:.3g} of its range: please report this model")
    return folded, len(pairs), worst
