"""Channel pruning of the largest activation maps, with sparse-learning regrowth (paper section 4.2).

Peak memory of a small CNN is set by its first, largest maps, so the paper prunes channels only in the
first stage (the layers before the first pooling layer), 2x by default. Here a *prunable group* is the
hidden channels of one block: written by producer convs/BNs (output channel c), read by one consumer
conv (input channel c). The residual stream between blocks is never pruned (every block of a stage
would have to agree), nor are the pooling layers' own channels.

Training keeps a channel mask per group and zeroes the masked input slices of the consumer after every
optimiser step. The producers keep computing the masked channels, so the consumer's gradient (and its
momentum) for those slices stays informative: that is what sparse learning regrows from. Every
`regrow_every` steps a cosine-decaying fraction of each group's active channels with the smallest
squared Frobenius norm (of their consumer weight slices) is dropped and the same number of channels
with the largest normalised momentum is regrown, at zero weight. Pruned and regrown counts are equal
per group, so the ratio holds at every step and no separate fine-tuning stage is needed.

After training, `remove_pruned_channels` builds the physically smaller network (its `ModelConfig`
records the kept counts in `pruned_channels`, so export, the memory planner and the firmware see the
smaller convolutions and maps) and copies the kept slices; its outputs equal the masked model's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nlpool.core.errors import NlpoolError

from .models import ModelConfig, build_model
from .models.mobilenetv2 import InvertedResidual
from .models.resnet import BasicBlock

_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x?\s*$", re.IGNORECASE)


def parse_ratio(text: str | float) -> float:
    """'2x' / '2' / 2.0 -> 2.0: keep 1/ratio of the channels of every pruned group."""
    match = _RATIO.match(str(text))
    if not match or float(match.group(1)) < 1:
        raise NlpoolError(f"pruning ratio {text!r} is not a number >= 1 with an optional x: use e.g. --prune 2x")
    return float(match.group(1))


def parse_stages(text: str | tuple[int, ...]) -> tuple[int, ...]:
    """'1' / '1,2' -> (1,) / (1, 2)."""
    try:
        stages = tuple(sorted({int(s) for s in text.split(",")})) if isinstance(text, str) else tuple(text)
    except ValueError:
        raise NlpoolError(f"pruning stages {text!r} are not comma-separated integers: use e.g. --prune-stages 1 or 1,2") from None
    if not stages or min(stages) < 1:
        raise NlpoolError(f"pruning stages {text!r} must be 1-based stage numbers: use e.g. --prune-stages 1")
    return stages


def channel_importance(weight: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius norm of each input-channel slice weight[:, c] of a conv weight (O, C, kh, kw) -> (C,)."""
    return weight.detach().pow(2).sum(dim=(0, *range(2, weight.dim())))


@dataclass
class ChannelGroup:
    """The hidden channels of one unit: output channels of `producers` (dim 0), input channels of `consumer` (dim 1)."""

    unit: str
    producers: list[nn.Module]
    consumer: nn.Conv2d
    keep: int
    mask: torch.Tensor = field(repr=False)  # bool (C,): True = channel kept

    @property
    def channels(self) -> int:
        return self.mask.numel()


def _is_downsampling(name: str, unit: nn.Module) -> bool:
    if name.endswith("_pool"):
        return True
    convs = [m for m in unit.modules() if isinstance(m, nn.Conv2d)]
    return isinstance(unit, InvertedResidual | BasicBlock) and any(c.stride[0] > 1 for c in convs)


def unit_stages(model: nn.Module) -> list[tuple[str, nn.Module, int]]:
    """Each unit of `model.features` with its pruning stage: stage k ends at the k-th down-sampling unit.

    The down-sampling unit is a pooling layer, or in a strided network the block whose conv is strided
    (its expanded map still has the large resolution, so it belongs to the stage it ends).
    """
    stage, out = 1, []
    for name, unit in model.features.named_children():
        out.append((name, unit, stage))
        if _is_downsampling(name, unit):
            stage += 1
    return out


def _unit_group(unit: nn.Module, previous: tuple[str, nn.Module] | None) -> tuple[list[nn.Module], nn.Conv2d] | None:
    """(producers, consumer) of a unit's hidden channels, or None when they cannot be pruned alone."""
    if isinstance(unit, BasicBlock):
        return [unit.conv1, unit.bn1], unit.conv2
    if not isinstance(unit, InvertedResidual):
        return None
    layers = list(unit.conv)
    if len(layers) == 4:  # expand (conv, BN, ReLU6), depthwise (conv, BN, ReLU6), project conv, BN
        (expand_conv, expand_bn, _), (dw_conv, dw_bn, _), project = layers[0], layers[1], layers[2]
        return [expand_conv, expand_bn, dw_conv, dw_bn], project
    # expansion 1: the hidden channels are the block's input; prunable only when the stem writes them
    # directly (no pooling in between) and no residual adds them to the output.
    if previous is None or previous[0] != "stem" or unit.use_residual:
        return None
    stem_conv, stem_bn = previous[1][0], previous[1][1]
    (dw_conv, dw_bn, _), project = layers[0], layers[1]
    return [stem_conv, stem_bn, dw_conv, dw_bn], project


def find_groups(model: nn.Module, stages: tuple[int, ...]) -> list[tuple[str, list[nn.Module], nn.Conv2d]]:
    """The prunable groups of the units in `stages` (1-based), in network order."""
    units = unit_stages(model)
    last = units[-1][2]
    bad = [s for s in stages if s > last]
    if bad:
        raise NlpoolError(f"pruning stages {bad} do not exist: this model has stages 1..{last}; use --prune-stages within them")
    groups = []
    previous = None
    for name, unit, stage in units:
        found = _unit_group(unit, previous)
        if stage in stages and found is not None:
            groups.append((name, *found))
        previous = (name, unit)
    if not groups:
        raise NlpoolError(
            f"stage(s) {list(stages)} of this model have no prunable channels (e.g. outer placement puts a pooling layer"
            " right after the stem): use --placement inner or other --prune-stages"
        )
    return groups


def _momentum(optimizer: torch.optim.Optimizer | None, param: torch.Tensor) -> torch.Tensor:
    """The optimiser's running average of the gradient (SGD momentum or Adam's first moment), else the gradient."""
    state = optimizer.state.get(param, {}) if optimizer is not None else {}
    for key in ("momentum_buffer", "exp_avg"):
        if state.get(key) is not None:
            return state[key]
    return param.grad if param.grad is not None else torch.zeros_like(param)


class ChannelPruner:
    """Masks, prunes and regrows the hidden channels of the chosen stages during training.

    Call `step(optimizer)` after every `optimizer.step()`. `total_steps` sets the cosine decay of the
    regrowth fraction (to zero at the end of training).
    """

    def __init__(
        self,
        model: nn.Module,
        ratio: float = 2.0,
        stages: tuple[int, ...] = (1,),
        total_steps: int = 1000,
        regrow_every: int = 100,
        regrow_fraction: float = 0.3,
    ) -> None:
        if ratio < 1:
            raise NlpoolError(f"pruning ratio must be >= 1, got {ratio}: use e.g. --prune 2x")
        self.model, self.ratio, self.stages = model, ratio, tuple(stages)
        self.total_steps, self.regrow_every, self.regrow_fraction = max(1, total_steps), max(1, regrow_every), regrow_fraction
        self.steps = 0
        self.groups: list[ChannelGroup] = []
        for unit, producers, consumer in find_groups(model, self.stages):
            channels = consumer.in_channels
            keep = max(1, round(channels / ratio))
            mask = torch.zeros(channels, dtype=torch.bool)
            mask[torch.argsort(channel_importance(consumer.weight), descending=True, stable=True)[:keep]] = True
            self.groups.append(ChannelGroup(unit, producers, consumer, keep, mask))
        self.apply_masks()

    @classmethod
    def for_training(cls, model: nn.Module, ratio: float, stages: tuple[int, ...], epochs: int, steps_per_epoch: int) -> ChannelPruner:
        """The training loop's pruner: regrowth every epoch, or 10 times per run when a run has fewer epochs."""
        total = epochs * steps_per_epoch
        return cls(model, ratio, stages, total_steps=total, regrow_every=max(1, min(steps_per_epoch, total // 10)))

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero the consumer's input slices of every masked channel."""
        for group in self.groups:
            group.consumer.weight[:, ~group.mask.to(group.consumer.weight.device)] = 0

    def current_fraction(self) -> float:
        """Fraction of a group's kept channels swapped at the next regrowth (cosine decay to 0)."""
        return self.regrow_fraction * 0.5 * (1 + math.cos(math.pi * min(1.0, self.steps / self.total_steps)))

    def step(self, optimizer: torch.optim.Optimizer | None) -> None:
        """After an optimiser step: re-apply the masks; every `regrow_every` steps, prune and regrow."""
        self.steps += 1
        if self.steps % self.regrow_every == 0:
            self.prune_and_regrow(optimizer, self.current_fraction())
        self.apply_masks()

    @torch.no_grad()
    def prune_and_regrow(self, optimizer: torch.optim.Optimizer | None, fraction: float) -> dict[str, int]:
        """Swap round(fraction * keep) channels per group; returns how many were swapped per unit."""
        swapped = {}
        for group in self.groups:
            count = min(round(fraction * group.keep), group.channels - group.keep)
            if count < 1:
                continue
            weight = group.consumer.weight
            importance = channel_importance(weight).cpu()
            importance[~group.mask] = math.inf
            dropped = torch.argsort(importance, stable=True)[:count]
            momentum = channel_importance(_momentum(optimizer, weight)).cpu()
            momentum = momentum / momentum.sum().clamp_min(1e-30)  # normalised within the layer
            momentum[group.mask] = -math.inf  # candidates: channels inactive before this step
            grown = torch.argsort(momentum, descending=True, stable=True)[:count]
            group.mask[dropped] = False
            group.mask[grown] = True
            weight[:, grown.to(weight.device)] = 0  # regrown slices start from zero, as in sparse momentum
            swapped[group.unit] = count
        self.apply_masks()
        return swapped

    def kept_channels(self) -> dict[str, int]:
        return {group.unit: int(group.mask.sum()) for group in self.groups}

    def pruned_config(self, cfg: ModelConfig) -> ModelConfig:
        """`cfg` with the kept counts of this pruner's groups recorded in `pruned_channels`."""
        kept = dict(cfg.pruned_channels) | self.kept_channels()
        order = [name for name, _ in self.model.features.named_children()]
        return cfg.replace(pruned_channels=tuple(sorted(kept.items(), key=lambda item: order.index(item[0])))).validated()

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and numbers (loadable with weights_only=True), to resume a pruned run."""
        masks = {group.unit: group.mask.clone() for group in self.groups}
        return {"ratio": self.ratio, "stages": list(self.stages), "steps": self.steps, "masks": masks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        masks = state["masks"]
        if set(masks) != {g.unit for g in self.groups}:
            raise NlpoolError(
                f"pruning state names units {sorted(masks)}, this model prunes {[g.unit for g in self.groups]}:"
                " resume with the same --prune options"
            )
        for group in self.groups:
            group.mask = masks[group.unit].to(torch.bool).clone()
        self.steps = int(state["steps"])
        self.apply_masks()


def _slices(model: nn.Module, groups: list[ChannelGroup]) -> dict[str, tuple[int, torch.Tensor]]:
    """state_dict key -> (dim, kept indices) for every tensor the removal shrinks."""
    names = {id(module): name for name, module in model.named_modules()}
    slices: dict[str, tuple[int, torch.Tensor]] = {}
    for group in groups:
        index = torch.nonzero(group.mask).flatten()
        for module in group.producers:
            prefix = names[id(module)]
            for key in ("weight", "bias", "running_mean", "running_var"):
                if getattr(module, key, None) is not None:
                    slices[f"{prefix}.{key}"] = (0, index)
        slices[f"{names[id(group.consumer)]}.weight"] = (1, index)
    return slices


@torch.no_grad()
def remove_pruned_channels(pruner: ChannelPruner, cfg: ModelConfig) -> tuple[nn.Module, ModelConfig]:
    """The physically smaller network with the kept channels' weights, and its config (eval mode)."""
    pruner.apply_masks()
    new_cfg = pruner.pruned_config(cfg)
    new_model = build_model(new_cfg)
    slices = _slices(pruner.model, pruner.groups)
    state = {key: value.index_select(*slices[key]) if key in slices else value for key, value in pruner.model.state_dict().items()}
    new_model.load_state_dict(state)
    return new_model.eval(), new_cfg


@torch.no_grad()
def removal_error(masked: nn.Module, pruned: nn.Module, inputs: torch.Tensor) -> float:
    """Max |difference| of the logits of the masked and the physically pruned model (both in eval mode)."""
    was_training = masked.training
    masked.eval()
    try:
        return float((masked(inputs) - pruned.eval()(inputs)).abs().max())
    finally:
        masked.train(was_training)


def finish_pruning(pruner: ChannelPruner, cfg: ModelConfig, inputs: torch.Tensor, tolerance: float = 1e-4) -> tuple[nn.Module, ModelConfig]:
    """Physically remove the pruned channels and check on `inputs` that the logits did not change."""
    pruned, pruned_cfg = remove_pruned_channels(pruner, cfg)
    error = removal_error(pruner.model, pruned, inputs)
    if not error <= tolerance:
        raise RuntimeError(f"removing the pruned channels changed the logits by {error:.3g} (> {tolerance}): a bug in nlpool.prune")
    return pruned, pruned_cfg
