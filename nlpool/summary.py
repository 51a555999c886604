"""Per-layer summary of a model: output shape, parameters, MACs and int8 activation bytes.

A "layer" here is a unit of `model.features` (stem, each block, each pooling layer, head) plus the
global pool and classifier: the granularity at which an embedded engineer reasons about memory.
MACs count convolutions, linear layers and the two attention matmuls (q k^T and weights v), which
`torch` hooks on modules alone would miss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .layers import MultiHeadSelfAttention, SelfAttentivePool
from .models import ModelConfig


@dataclass
class LayerRecord:
    name: str
    kind: str
    output_shape: tuple[int, int, int, int] | tuple[int, int]
    params: int
    macs: int
    activation_bytes: int


def _module_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, MultiHeadSelfAttention):
        batch, tokens, dim = inputs[0].shape
        return 2 * batch * tokens * tokens * dim  # q k^T and weights @ v, over all heads
    return 0


def _kind(unit: nn.Module) -> str:
    if isinstance(unit, SelfAttentivePool):
        return f"SelfAttentivePool(s={unit.stride},p={unit.patch_size},E={unit.embed_dim})"
    return type(unit).__name__


@torch.no_grad()
def summarize(model: nn.Module, cfg: ModelConfig) -> tuple[list[LayerRecord], dict[str, int]]:
    """Run one 1-image forward pass and record every unit; returns (records, totals)."""
    units: list[tuple[str, nn.Module]] = list(model.features.named_children())
    units += [("global_pool", model.global_pool), ("classifier", model.classifier)]
    counters = {name: 0 for name, _ in units}
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for name, unit in units:
        for module in unit.modules():
            handles.append(
                module.register_forward_hook(lambda m, i, o, name=name: counters.__setitem__(name, counters[name] + _module_macs(m, i, o)))
            )
        handles.append(unit.register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o)))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 3, cfg.input_size, cfg.input_size))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    records = [
        LayerRecord(
            name=name,
            kind=_kind(unit),
            output_shape=tuple(outputs[name].shape),
            params=sum(p.numel() for p in unit.parameters()),
            macs=counters[name],
            activation_bytes=outputs[name].numel(),
        )
        for name, unit in units
    ]
    totals = {
        "params": sum(p.numel() for p in model.parameters()),
        "macs": sum(r.macs for r in records),
        "activation_bytes": sum(r.activation_bytes for r in records),
        "max_activation_bytes": max(r.activation_bytes for r in records),
    }
    return records, totals


def records_as_json(records: list[LayerRecord], totals: dict[str, int]) -> dict[str, object]:
    return {"layers": [asdict(r) | {"output_shape": list(r.output_shape)} for r in records], "totals": totals}


def format_table(records: list[LayerRecord], totals: dict[str, int]) -> str:
    header = f"{'layer':<16} {'kind':<38} {'output (N,C,H,W)':<20} {'params':>10} {'MACs':>13} {'act. bytes':>11}"
    lines = [header, "-" * len(header)]
    for r in records:
        shape = "x".join(str(d) for d in r.output_shape)
        lines.append(f"{r.name:<16} {r.kind:<38} {shape:<20} {r.params:>10,} {r.macs:>13,} {r.activation_bytes:>11,}")
    lines.append("-" * len(header))
    lines.append(f"{'total':<16} {'':<38} {'':<20} {totals['params']:>10,} {totals['macs']:>13,} {totals['activation_bytes']:>11,}")
    lines.append(f"largest single activation: {totals['max_activation_bytes']:,} bytes (int8)")
    return "\n".join(lines)
