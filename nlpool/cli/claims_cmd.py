"""`nlpool claims`: the paper's "up to 22x less memory (11x width, 2x s1)" checked by the planner."""

from __future__ import annotations

import json

import click

from nlpool.core.units import parse_size


@click.command("claims")
@click.option("--sram", default="512k", show_default=True, help="SRAM budget the '*' (fits) marks refer to.")
@click.option("--json", "as_json", is_flag=True, help="Print the grid and the conclusions as JSON.")
def claims_command(sram: str, as_json: bool) -> None:
    """Peak memory of MobileNetV2 (widths 1.0/0.35, s1 1/2/4, 224-96 px, strided/nlp) under three accountings."""
    from memory_planner.claims import claims_report, format_claims

    report = claims_report(parse_size(sram), progress=not as_json)
    click.echo(json.dumps(report, indent=2) if as_json else format_claims(report))
