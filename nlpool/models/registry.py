"""The backbone registry: each backbone module registers itself; everything else reads this table.

In the spirit of timm's `register_model`, a backbone is one module: its class, decorated with
`@register_backbone(name, ...)`, carries the geometry that configs are validated against (stem stride,
stage strides, default patch sizes). Config validation, `build_model`, `nlpool models` and the CLI's
`--arch` help all read the table, so adding a backbone touches no other file beyond importing the
new module in `nlpool/models/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from torch import nn

from nlpool.core.errors import NlpoolError

if TYPE_CHECKING:
    from .config import ModelConfig

ModuleClass = TypeVar("ModuleClass", bound=type[nn.Module])


@dataclass(frozen=True)
class Backbone:
    """One registered architecture: how to build it and the stage geometry its configs must respect.

    Attributes:
        name: the value of `ModelConfig.arch` and `--arch`.
        cls: the network, built as `cls(cfg)` from a validated config.
        stem_stride: down-sampling before stage 1; the input side must be a multiple of
            stem_stride x s1 so that the first pooling windows tile the map exactly.
        later_stage_strides: the strides of stages 2, 3, ...; stage 1's stride is the config's `s1`.
        default_patch_sizes: the authors' "reduced" patch-size schedule, one entry per stage.
    """

    name: str
    cls: Callable[[ModelConfig], nn.Module]
    stem_stride: int
    later_stage_strides: tuple[int, ...]
    default_patch_sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        stages = len(self.later_stage_strides) + 1
        if len(self.default_patch_sizes) != stages:
            raise ValueError(f"backbone {self.name!r} has {stages} stages but {len(self.default_patch_sizes)} default patch sizes")


_BACKBONES: dict[str, Backbone] = {}


def register_backbone(
    name: str, *, stem_stride: int, later_stage_strides: tuple[int, ...], default_patch_sizes: tuple[int, ...]
) -> Callable[[ModuleClass], ModuleClass]:
    """Class decorator adding a backbone to the registry under `name` (a name is registered once)."""

    def register(cls: ModuleClass) -> ModuleClass:
        if name in _BACKBONES:
            raise ValueError(f"backbone {name!r} is already registered by {_BACKBONES[name].cls.__qualname__}")
        _BACKBONES[name] = Backbone(name, cls, stem_stride, tuple(later_stage_strides), tuple(default_patch_sizes))
        return cls

    return register


def unregister_backbone(name: str) -> None:
    """Remove a backbone, so that code registering a throwaway architecture (tests) can clean up."""
    del _BACKBONES[name]


def backbone_names() -> tuple[str, ...]:
    """Every registered architecture name, sorted so listings do not depend on import order."""
    return tuple(sorted(_BACKBONES))


def get_backbone(name: str) -> Backbone:
    """The registered backbone `name`, or NlpoolError naming the valid `--arch` values."""
    if name not in _BACKBONES:
        raise NlpoolError(f"unknown architecture {name!r}: use --arch {'|'.join(backbone_names())}")
    return _BACKBONES[name]


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the (randomly initialised) network a config describes."""
    cfg = cfg.validated()
    return get_backbone(cfg.arch).cls(cfg)
