"""The model flags every model-taking command shares, and turning them into a model.

Flags default to None so that "given on the command line" is distinguishable from "the preset's
value": given flags override the preset, and must agree with a checkpoint's stored config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from torch import nn

from nlpool.core.errors import NlpoolError

from ..checkpoint import SHIPPED_WEIGHTS, TrainingRecord, open_checkpoint
from ..models import DEFAULT_PRESET, ModelConfig, backbone_names, build_model, preset_config

RANDOM_WEIGHTS = "random initialisation"

MODEL_FLAGS = ("arch", "width", "pool", "s1", "placement", "input_size", "num_classes", "patch_sizes", "upsample")


def _parse_patch_sizes(_context: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        sizes = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers, e.g. 4,4,4,2,2,1,1") from None
    if any(s < 1 for s in sizes):
        raise click.BadParameter(f"patch sizes must be >= 1, got {value}")
    return sizes


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with the shared model flags (see `nlpool models`)."""
    options = [
        click.option("--model", "preset", default=None, help=f"Named preset (default: {DEFAULT_PRESET}); see `nlpool models`."),
        click.option(
            "--checkpoint",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Checkpoint written by `nlpool train` (holds weights and config).",
        ),
        click.option("--arch", default=None, help=" | ".join(backbone_names())),
        click.option("--width", type=float, default=None, help="Width multiplier (channels rounded to multiples of 8)."),
        click.option("--pool", default=None, help="nlp | lip | gaussian | rnnpool | strided | max | avg"),
        click.option("--s1", type=int, default=None, help="Stride of the first stage: 1 | 2 | 4."),
        click.option("--placement", default=None, help="inner | outer (where the pooling sits in a stage)."),
        click.option("--input-size", type=int, default=None, help="Square input side in pixels."),
        click.option("--num-classes", type=int, default=None, help="Number of output classes."),
        click.option("--patch-sizes", callback=_parse_patch_sizes, default=None, help="Per-stage nlp patch sizes, e.g. 4,4,4,2,2,1,1."),
        click.option("--upsample", default=None, help="nlp restoration upsampling: bilinear (default model) | nearest (authors' code)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def config_from_flags(preset: str | None, **flags: Any) -> ModelConfig:
    """The preset's config with every given flag applied, validated."""
    overrides = {name: flags[name] for name in MODEL_FLAGS if flags.get(name) is not None}
    return preset_config(preset or DEFAULT_PRESET).replace(**overrides).validated()


@dataclass(frozen=True)
class ResolvedModel:
    """The model the flags name (eval mode), its config, where its weights came from, and the training
    record of its checkpoint (None for random weights)."""

    model: nn.Module
    config: ModelConfig
    weights: str
    record: TrainingRecord | None


def resolve_model(preset: str | None, checkpoint: Path | None, **flags: Any) -> tuple[nn.Module, ModelConfig, str]:
    """Build the model the flags name; returns (model in eval mode, config, where its weights came from)."""
    resolved = resolve(preset, checkpoint, **flags)
    return resolved.model, resolved.config, resolved.weights


def resolve(preset: str | None, checkpoint: Path | None, **flags: Any) -> ResolvedModel:
    """The model the flags name, its checkpoint (if any) read once."""
    if checkpoint is not None:
        loaded = open_checkpoint(checkpoint)
        stored = loaded.config
        for name in MODEL_FLAGS:
            given = flags.get(name)
            if given is not None and given != stored.option(name):
                raise NlpoolError(
                    f"--{name.replace('_', '-')} {given} contradicts the checkpoint's {name}={stored.option(name)}:"
                    " drop the flag (the checkpoint defines the model) or pass a matching checkpoint"
                )
        if preset is not None:
            raise NlpoolError("--model and --checkpoint both name a model: pass only one of them")
        return ResolvedModel(loaded.model, loaded.config, str(checkpoint), loaded.record)
    cfg = config_from_flags(preset, **flags)
    if cfg == preset_config(DEFAULT_PRESET) and SHIPPED_WEIGHTS.is_file():
        shipped = open_checkpoint(SHIPPED_WEIGHTS)
        return ResolvedModel(shipped.model, cfg, "shipped weights (nlpool/weights/default.pt)", shipped.record)
    return ResolvedModel(build_model(cfg).eval(), cfg, RANDOM_WEIGHTS, None)
