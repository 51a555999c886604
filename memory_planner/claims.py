"""Check the paper's "up to 22x reduction in memory consumption, 11x from MobileNetV2-0.35x and 2x
from s1 = 2" under three stated accountings, since the paper states none.

Accountings (all int8, 1 byte per activation element, batch 1):
- "io": peak over ops of the bytes one op reads and writes (its activation inputs + outputs);
  tensors kept alive for later ops (residual inputs) are not counted.
- "arena": the best arena plan's size: every tensor live at the same time, placed without overlap.
- "sum": the sum of all activation tensors, as if nothing were ever freed.

"io" and "arena" are also given without the attention score tensors (heads x N x N: the outputs of
the q k^T matmul and its softmax), the paper's apparent accounting, labelled "no attn".
- "deployed": the arena of the graph nlpool's firmware runs (memory_planner.build_plan of the
  deployed graph): each attention block one streamed NLPOOL_ATTENTION op with O(N E) scratch, the
  weighted pooling fused, the peak depthwise convolution in place, explicit PADs included.
Ratios are to MobileNetV2-1.0 at 224 px, s1 = 1, strided (the paper's reference point).
Convolution padding is taken as done inside the kernel (no PAD tensors): the explicit PADs a TFLite
conversion adds before even-sized strided convolutions are a converter artefact, not the method's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from nlpool.core.errors import NlpoolError

from .graph import Graph
from .memory_plan import build_plan
from .plans import best_plan, naive_bytes

WIDTHS = (1.0, 0.35)
S1S = (1, 2, 4)
SIZES = (224, 160, 128, 96)
POOLS = ("strided", "nlp")
ACCOUNTINGS = ("io", "arena", "sum", "io_noattn", "arena_noattn", "deployed")
ACCOUNTING_WORDS = {
    "io": "per-layer input+output: peak over ops of the bytes one op reads plus writes",
    "arena": "planned arena: best non-overlapping placement of all tensors live at the same time",
    "sum": "sum of all activations: every activation tensor counted once, nothing freed",
    "io_noattn": "per-layer input+output without the attention score tensors (heads x N x N)",
    "arena_noattn": "planned arena without the attention score tensors",
    "deployed": "planned arena of the graph the firmware runs: streamed attention op, fused pooling, in-place depthwise",
}
REFERENCE = (1.0, "strided", 1, 224)
PAPER = {"total": 22.0, "width": 11.0, "s1": 2.0}


@dataclass(frozen=True)
class ClaimConfig:
    """One point of the grid: MobileNetV2 at a width, pooling kind, first stride s1 and input size."""

    width: float
    pool: str
    s1: int
    size: int


# Builds the planning graph of one grid point, as the method defines it (deployed False: every op of
# the network, attention unfused) or as nlpool's firmware runs it (deployed True); raises NlpoolError
# when the configuration is invalid (e.g. a map too small for s1). The caller supplies it, so this
# package never builds networks itself.
GraphBuilder = Callable[[ClaimConfig, bool], Graph]


@dataclass(frozen=True)
class ClaimRow:
    width: float
    pool: str
    s1: int
    size: int
    values: dict[str, int] | None  # None when the configuration is invalid
    reason: str = ""

    @property
    def key(self) -> tuple[float, str, int, int]:
        return (self.width, self.pool, self.s1, self.size)


def attention_score_tensors(graph: Graph) -> set[int]:
    """Outputs of the matmul and softmax inside attention layers whose last two dims are N x N."""
    found = set()
    for op in graph.ops:
        if op.kind in ("BATCH_MATMUL", "SOFTMAX") and ".attn" in f".{op.name}":
            for t in op.outputs:
                shape = graph.tensors[t].shape
                if len(shape) >= 2 and shape[-1] == shape[-2] and shape[-1] > 1:
                    found.add(t)
    return found


def without(graph: Graph, drop: set[int]) -> Graph:
    """The same graph with the `drop` tensors taking no memory."""
    tensors = {i: replace(t, shape=(0,)) if i in drop else t for i, t in graph.tensors.items()}
    return replace(graph, tensors=tensors, extra={})


def io_peak(graph: Graph) -> int:
    """Max over ops of the activation bytes the op reads plus writes."""
    peak = 0
    for op in graph.ops:
        touched = {t for t in (*op.inputs, *op.outputs) if not graph.tensors[t].constant}
        peak = max(peak, sum(graph.tensors[t].nbytes for t in touched))
    return peak


def measure(graph: Graph, deployed: Graph) -> dict[str, int]:
    """Every accounting of one network (bytes): `graph` as the method defines it, `deployed` as the firmware runs it."""
    light = without(graph, attention_score_tensors(graph))
    return {
        "io": io_peak(graph),
        "arena": best_plan(graph).arena_bytes,
        "sum": naive_bytes(graph, alignment=1),
        "io_noattn": io_peak(light),
        "arena_noattn": best_plan(light).arena_bytes,
        "deployed": build_plan(deployed).best.arena_bytes,
    }


def claim_rows(graph_for: GraphBuilder, progress: bool = True) -> list[ClaimRow]:
    """Plan every configuration of the grid (invalid ones get a reason instead of values)."""
    from tqdm import tqdm

    grid = [ClaimConfig(w, p, s, n) for w in WIDTHS for p in POOLS for s in S1S for n in SIZES]
    rows = []
    for config in tqdm(grid, desc="planning", disable=not progress, leave=False):
        try:
            graph, deployed = graph_for(config, False), graph_for(config, True)
        except NlpoolError as err:
            rows.append(ClaimRow(config.width, config.pool, config.s1, config.size, None, str(err).split(":")[0]))
            continue
        rows.append(ClaimRow(config.width, config.pool, config.s1, config.size, measure(graph, deployed)))
    return rows


def _ratio(rows: dict, acct: str, num: tuple, den: tuple) -> float | None:
    a, b = rows.get(num), rows.get(den)
    if a is None or b is None or a.values is None or b.values is None or not b.values[acct]:
        return None
    return a.values[acct] / b.values[acct]


def conclusions(rows: list[ClaimRow]) -> dict[str, Any]:
    """The factors the paper names, under every accounting, and where 22x is reached."""
    by_key = {r.key: r for r in rows}
    ref = REFERENCE
    result: dict[str, Any] = {"factors": {}, "reaches_22x": {}}
    for acct in ACCOUNTINGS:
        result["factors"][acct] = {
            "width_1.0_to_0.35_at_224_s1=1_strided": _ratio(by_key, acct, ref, (0.35, "strided", 1, 224)),
            "s1_1_to_2_at_0.35x_224_nlp": _ratio(by_key, acct, (0.35, "nlp", 1, 224), (0.35, "nlp", 2, 224)),
            "s1_1_to_2_at_0.35x_224_strided": _ratio(by_key, acct, (0.35, "strided", 1, 224), (0.35, "strided", 2, 224)),
            "total_0.35x_nlp_s1=2_at_224": _ratio(by_key, acct, ref, (0.35, "nlp", 2, 224)),
            "width+resolution_1.0@224_to_0.35@96_s1=1_strided": _ratio(by_key, acct, ref, (0.35, "strided", 1, 96)),
            "s1_1_to_2_at_0.35x_96_strided": _ratio(by_key, acct, (0.35, "strided", 1, 96), (0.35, "strided", 2, 96)),
            "s1_1_to_2_at_0.35x_96_nlp": _ratio(by_key, acct, (0.35, "nlp", 1, 96), (0.35, "nlp", 2, 96)),
            "total_0.35x_nlp_s1=2_at_96": _ratio(by_key, acct, ref, (0.35, "nlp", 2, 96)),
        }
        result["reaches_22x"][acct] = [
            f"{r.width}x {r.pool} s1={r.s1} {r.size}px ({ratio:.1f}x)"
            for r in rows
            if r.width == 0.35 and (ratio := _ratio(by_key, acct, ref, r.key)) is not None and ratio >= PAPER["total"]
        ]
    return result


def claims_report(sram_bytes: int, graph_for: GraphBuilder, progress: bool = True) -> dict[str, Any]:
    """The grid under every accounting, the paper's factors, and which configurations fit `sram_bytes`."""
    rows = claim_rows(graph_for, progress=progress)
    by_key = {r.key: r for r in rows}
    table = []
    for r in rows:
        entry: dict[str, Any] = {"width": r.width, "pool": r.pool, "s1": r.s1, "input_size": r.size}
        if r.values is None:
            entry["n/a"] = r.reason
        else:
            entry["bytes"] = r.values
            entry["ratio_to_reference"] = {a: _ratio(by_key, a, REFERENCE, r.key) for a in ACCOUNTINGS}
            entry["fits_sram"] = r.values["deployed"] <= sram_bytes  # what the firmware's arena needs
        table.append(entry)
    return {
        "sram_bytes": sram_bytes,
        "reference": "MobileNetV2-1.0, 224 px, s1=1, strided",
        "accountings": ACCOUNTING_WORDS,
        "paper": "up to 22x = 11x (MobileNetV2-0.35x) x 2x (s1=2)",
        "configurations": table,
        "conclusions": conclusions(rows),
    }


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def format_claims(report: dict[str, Any]) -> str:
    """Terminal text: the accountings in words, the grid with ratios, the factors and the verdict."""
    lines = ["Accountings (int8, batch 1):"]
    lines += [f"  {name:<13} {words}" for name, words in report["accountings"].items()]
    lines.append(f"Ratios are {report['reference']} divided by the row; '*' = the deployed arena fits {report['sram_bytes']:,} B SRAM.")
    header = f"{'width':>5} {'pool':<8} {'s1':>2} {'size':>4} " + " ".join(f"{a:>21}" for a in ACCOUNTINGS) + "  fits"
    lines += [header, "-" * len(header)]
    for e in report["configurations"]:
        prefix = f"{e['width']:>5} {e['pool']:<8} {e['s1']:>2} {e['input_size']:>4} "
        if "n/a" in e:
            lines.append(prefix + f"n/a ({e['n/a']})")
            continue
        cells = [f"{e['bytes'][a]:>11,} {_fmt_ratio(e['ratio_to_reference'][a]):>9}" for a in ACCOUNTINGS]
        lines.append(prefix + " ".join(cells) + ("     *" if e["fits_sram"] else ""))
    lines.append("")
    lines.append("Factors (paper: width 11x, s1 2x, total 22x):")
    names = list(next(iter(report["conclusions"]["factors"].values())))
    lines.append(f"  {'':<50} " + " ".join(f"{a:>12}" for a in ACCOUNTINGS))
    for name in names:
        values = [_fmt_ratio(report["conclusions"]["factors"][a][name]) for a in ACCOUNTINGS]
        lines.append(f"  {name:<50} " + " ".join(f"{v:>12}" for v in values))
    lines.append("Configurations of 0.35x reaching >= 22x vs the reference:")
    for acct, hits in report["conclusions"]["reaches_22x"].items():
        lines.append(f"  {acct:<13} " + ("; ".join(hits) if hits else "none"))
    return "\n".join(lines)
