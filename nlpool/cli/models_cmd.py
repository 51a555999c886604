"""`nlpool models` and `nlpool summary`: what can be built, and what it costs per layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..layers import POOL_KINDS
from ..models import PLACEMENTS, PRESETS, S1_CHOICES, backbone_names, get_backbone
from ..summary import format_table, records_as_json, summarize
from .model_options import model_options, resolve_model


@click.command("models")
def models_command() -> None:
    """List the named presets and every model option."""
    click.echo("presets:")
    for name, (_cfg, description) in PRESETS.items():
        click.echo(f"  {name:<30} {description}")
    click.echo("options:")
    click.echo(f"  --arch        {' | '.join(backbone_names())}")
    click.echo(f"  --pool        {' | '.join(POOL_KINDS)}")
    click.echo(f"  --s1          {' | '.join(map(str, S1_CHOICES))}")
    click.echo(f"  --placement   {' | '.join(PLACEMENTS)}")
    click.echo("  --width       any multiplier, e.g. 1.0 0.75 0.5 0.35 (channels rounded to multiples of 8)")
    click.echo("  --input-size  square side; must be a multiple of stem stride x s1")
    click.echo("  --num-classes K >= 2")
    for arch in backbone_names():
        click.echo(f"  --patch-sizes default for {arch}: {','.join(map(str, get_backbone(arch).default_patch_sizes))}")


@click.command("summary")
@model_options
@click.option("--json", "as_json", is_flag=True, help="Emit JSON records instead of a table.")
def summary_command(as_json: bool, preset: str | None, checkpoint: Path | None, **flags: Any) -> None:
    """Per-layer output shape, parameters, MACs and int8 activation bytes."""
    model, cfg, source = resolve_model(preset, checkpoint, **flags)
    records, totals = summarize(model, cfg)
    if as_json:
        click.echo(json.dumps(records_as_json(records, totals) | {"config": cfg.to_dict(), "weights": source}, indent=2))
        return
    click.echo(f"model: {cfg.arch} width={cfg.width} pool={cfg.pool} s1={cfg.s1} placement={cfg.placement} "
               f"input={cfg.input_size} classes={cfg.num_classes}; weights: {source}")
    click.echo(format_table(records, totals))
