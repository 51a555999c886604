"""Fold every BatchNorm into the convolution that feeds it, and prove the result unchanged.

Which convolution feeds which BatchNorm is observed, not guessed from module order: one forward pass
with hooks records, for every BatchNorm2d, whether its input tensor is exactly a Conv2d's output. The
folded model is then compared with the original (a BatchNorm whose convolution output is also used
elsewhere would make the fold wrong, and the comparison would catch it).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nlpool.errors import NlpoolError

FOLD_TOLERANCE = 1e-5


def _conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv name, bn name) for every BatchNorm2d whose input is a Conv2d's output."""
    # Holding the outputs keeps them alive, so no later tensor can reuse an id seen here.
    produced_by: dict[int, tuple[str, torch.Tensor]] = {}
    pairs: list[tuple[str, str]] = []
    names = {module: name for name, module in model.named_modules()}

    def conv_hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        produced_by[id(output)] = (names[module], output)

    def bn_hook(module: nn.Module, inputs: tuple) -> None:
        producer = produced_by.get(id(inputs[0]))
        if producer is not None:
            pairs.append((producer[0], names[module]))

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


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    new_bias = (bias - bn.running_mean) * scale + bn.bias
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, int, float]:
    """A folded copy of `model` (eval mode), the number of folds, and the max abs output difference.

    Raises NlpoolError if the folded model differs from the original by more than 1e-5.
    """
    original = model.eval()
    folded = copy.deepcopy(original).eval()
    pairs = _conv_bn_pairs(folded, example)
    with torch.no_grad():
        for conv_name, bn_name in pairs:
            _fold_into(folded.get_submodule(conv_name), folded.get_submodule(bn_name))
            _set_module(folded, bn_name, nn.Identity())
        reference, result = original(example), folded(example)
    diff = float((reference - result).abs().max())
    scale = max(1.0, float(reference.abs().max()))
    if diff > FOLD_TOLERANCE * scale:
        raise NlpoolError(f"folding BatchNorm changed the model's output by {diff:.3g} (> {FOLD_TOLERANCE}): please report this model")
    return folded, len(pairs), diff
