"""`nlpool claims`: the paper's "up to 22x less memory (11x width, 2x s1)" checked by the planner.

The planner owns the accountings and the grid; this command supplies the networks (it is the layer
that may import both the model library and the planner).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from .params import size_param

if TYPE_CHECKING:
    from memory_planner import ClaimConfig, Graph

# The paper's ImageNet setting: the classifier size does not change the activation peak much, but
# the reference point (MobileNetV2-1.0 at 224 px) is the 1000-class network.
CLAIMS_CLASSES = 1000


def mobilenetv2_graph(config: ClaimConfig, deployed: bool = False) -> Graph:
    """The planning graph of MobileNetV2 at one grid point (NlpoolError when it is not a valid model):
    every op of the network, or (`deployed`) as nlpool's firmware runs it."""
    from memory_planner import graph_from_torch
    from nlpool.models import ModelConfig, build_model

    cfg = ModelConfig(arch="mobilenetv2", width=config.width, pool=config.pool, s1=config.s1,
                      input_size=config.size, num_classes=CLAIMS_CLASSES).validated()
    name = f"{config.width}x-{config.pool}-s1={config.s1}-{config.size}"
    if deployed:
        return graph_from_torch(build_model(cfg), config.size, name=name)
    return graph_from_torch(build_model(cfg), config.size, name=name, explicit_pad=False, fuse_attention=False)


@click.command("claims")
@click.option("--sram", default="512k", show_default=True, callback=size_param, help="SRAM budget the '*' (fits) marks refer to.")
@click.option("--json", "as_json", is_flag=True, help="Print the grid and the conclusions as JSON.")
def claims_command(sram: int, as_json: bool) -> None:
    """Peak memory of MobileNetV2 (widths 1.0/0.35, s1 1/2/4, 224-96 px, strided/nlp) under three accountings."""
    from memory_planner import claims_report, format_claims

    report = claims_report(sram, mobilenetv2_graph, progress=not as_json)
    click.echo(json.dumps(report, indent=2) if as_json else format_claims(report))
