"""`nlpool plan`: per-layer peak-activation report and an SRAM verdict, before any firmware exists.

Exit codes: 0 = the best plan's arena fits the budget; 3 (`EXIT_OVER_BUDGET`) = it does not (the
report is still printed and any requested file still written); 1 = bad input; 2 = bad usage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from nlpool.core.checks import output_path
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import read_model

from .model_options import MODEL_FLAGS, model_options, resolve_model
from .params import size_param

EXIT_OVER_BUDGET = 3


@click.command("plan")
@click.argument("tflite", required=False, type=click.Path(dir_okay=False, path_type=Path))
@model_options
@click.option("--sram", required=True, callback=size_param, help="SRAM budget for activations, e.g. 512k, 2MiB, 131072.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the live-bytes chart to FILE.png.")
@click.pass_context
def plan_command(
    click_context: click.Context,
    tflite: Path | None,
    sram: int,
    as_json: bool,
    plot: Path | None,
    preset: str | None,
    checkpoint: Path | None,
    **flags: Any,
) -> None:
    """Plan the activation memory of MODEL.tflite, or of a model given by flags / --checkpoint.

    Exits 0 when the arena fits --sram and 3 when it does not (the report is still shown).
    """
    from memory_planner import as_json as report_json
    from memory_planner import format_text, plan_model, plan_tflite, plot_png, verdict

    budget = sram
    if plot is not None:  # before planning: a bad --plot must not cost the plan, nor fail after it
        plot = output_path("--plot", plot, suffix=".png", parent_must_exist=True)
    if tflite is not None:
        given = [f"--{n.replace('_', '-')}" for n in MODEL_FLAGS if flags.get(n) is not None]
        if given or preset is not None or checkpoint is not None:
            named = given + (["--model"] if preset else []) + (["--checkpoint"] if checkpoint else [])
            raise NlpoolError(f"{tflite} and {' '.join(named)} both name a model: pass either a .tflite file or model flags")
        model_file = read_model(tflite)
        note = model_file.free_batch_note()
        if note:
            click.echo(note, err=True)
        plan = plan_tflite(model_file)
    else:
        model, cfg, _source = resolve_model(preset, checkpoint, **flags)
        plan = plan_model(model, cfg)
    types = plan.graph.activation_types()
    if tflite is not None and types != "int8":
        click.echo(f"warning: {tflite} has {types} activations: planned at their real sizes, but the firmware generators"
                   " need a full-integer int8 model (export it with int8 quantisation)", err=True)
    if plot is not None:
        tmp = plot.with_name(f".{plot.name}.tmp.png")
        plot_png(plan, budget, tmp)
        tmp.replace(plot)
    result = verdict(plan, budget)
    if as_json:
        click.echo(json.dumps(report_json(plan, budget), indent=2))
    else:
        click.echo(format_text(plan, budget))
    if not result["fits"]:
        click.echo(f"over budget: {result['message']}", err=True)
        click_context.exit(EXIT_OVER_BUDGET)
