"""The per-layer memory report against an SRAM budget: terminal table, Markdown, JSON, PNG chart.

"Live bytes" of a step are the int8 activation bytes resident while that op runs (its inputs, its
outputs and everything kept for later ops). The verdict uses the best plan's arena, which is at
least the largest live-bytes step (plus alignment and fragmentation).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from nlpool.core.errors import NlpoolError
from nlpool.core.units import format_size

from .memory_plan import LayerRecord, MemoryPlan
from .names import op_label


def layer_label(record: LayerRecord) -> str:
    """The row's readable name (`CONV_2D #3 conv2d_1`, names.py); memory.json keeps the full one."""
    return op_label(record.kind, record.step, record.name)


def verdict(plan: MemoryPlan, budget_bytes: int) -> dict[str, Any]:
    """Fits or not, headroom, and a one-line message naming the peak layer."""
    peak = plan.peak_layer
    headroom = budget_bytes - plan.peak_bytes
    fits = headroom >= 0
    where = f"peak at step {peak.step} ({layer_label(peak)}, {peak.live_bytes:,} live bytes)"
    if fits:
        message = f"fits: arena {plan.peak_bytes:,} B of {budget_bytes:,} B budget, {headroom:,} B headroom; {where}"
    else:
        message = (
            f"does not fit: arena {plan.peak_bytes:,} B is {-headroom:,} B ({format_size(-headroom)}) over the"
            f" {budget_bytes:,} B budget; {where}"
        )
    return {"fits": fits, "headroom_bytes": headroom, "message": message}


def as_json(plan: MemoryPlan, budget_bytes: int) -> dict[str, Any]:
    """The report as plain data; also the `memory` entry of export's report.json."""
    result = plan.summary() | {"budget_bytes": budget_bytes} | verdict(plan, budget_bytes)
    # TFLM on the target needs its planned part plus its 32-bit interpreter tail
    result["tflm_fits"] = plan.tflm.total_bytes_target <= budget_bytes
    result["layers"] = [
        {
            "step": r.step,
            "op": r.kind,
            "name": layer_label(r),
            "full_name": r.name,
            "output_shape": list(r.output_shape),
            "output_bytes": r.output_bytes,
            "live_bytes": r.live_bytes,
            "scratch_bytes": r.scratch_bytes,
            "budget_share": round(r.live_bytes / budget_bytes, 4),
            "peak": r.peak,
        }
        for r in plan.layers
    ]
    result["offsets"] = {str(t): o for t, o in sorted(plan.best.offsets.items())}
    result["in_place"] = [{"op": op, "input": a, "output": b} for op, a, b in plan.best.aliases]
    return result


def _totals(plan: MemoryPlan, budget_bytes: int) -> list[tuple[str, str]]:
    v = verdict(plan, budget_bytes)
    lb = plan.lower_bound
    return [
        ("peak arena (best plan)", f"{plan.peak_bytes:,} B ({format_size(plan.peak_bytes)}), {plan.best.strategy}"),
        ("lower bound", f"{lb:,} B; best plan / lower bound = {plan.peak_bytes / lb:.3f}" if lb else "0 B"),
        ("TFLM arena, planned part", f"{plan.tflm.head_bytes:,} B (TFLM's greedy planner as predicted)"),
        ("TFLM interpreter tail", f"{plan.tflm.tail_bytes_target:,} B on a 32-bit Cortex-M target "
                                  f"(~{plan.tflm.tail_bytes_host:,} B on a 64-bit host)"),
        ("TFLM arena on the target", f"{plan.tflm.total_bytes_target:,} B predicted (head + 32-bit tail)"),
        ("naive (no reuse)", f"{plan.naive:,} B"),
        ("flash (constants)", f"{plan.flash_bytes:,} B ({format_size(plan.flash_bytes)})"),
        ("budget", f"{budget_bytes:,} B ({format_size(budget_bytes)})"),
        ("headroom", f"{v['headroom_bytes']:,} B"),
        ("verdict", v["message"]),
    ]


def format_text(plan: MemoryPlan, budget_bytes: int) -> str:
    """A terminal table, one row per op step, and the totals."""
    header = f"{'step':>4}  {'op':<44} {'output':<18} {'live bytes':>12} {'budget':>7}"
    title = f"memory plan of {plan.graph.name} ({plan.graph.activation_types()} activations, {plan.best.alignment}-byte aligned)"
    lines = [title, header, "-" * len(header)]
    for r in plan.layers:
        shape = "x".join(map(str, r.output_shape))
        mark = "  <- peak" if r.peak else ""
        name = layer_label(r)
        name = name if len(name) <= 44 else name[:41] + "..."
        lines.append(f"{r.step:>4}  {name:<44} {shape:<18} {r.live_bytes:>12,} {r.live_bytes / budget_bytes:>6.1%}{mark}")
    lines.append("-" * len(header))
    lines += [f"{label + ':':<26} {value}" for label, value in _totals(plan, budget_bytes)]
    return "\n".join(lines)


def format_markdown(plan: MemoryPlan, budget_bytes: int) -> str:
    lines = [
        f"# Memory report: {plan.graph.name}",
        "",
        f"{plan.graph.activation_types()} activations; live bytes = activation bytes resident while the op runs."
        " Offsets are 16-byte aligned.",
        "",
        "| quantity | value |",
        "|---|---|",
        *[f"| {label} | {value} |" for label, value in _totals(plan, budget_bytes)],
        "",
        "| step | op | layer | output | kernel scratch | live bytes | budget share |",
        "|---:|---|---|---|---:|---:|---:|",
    ]
    for r in plan.layers:
        shape = "x".join(map(str, r.output_shape))
        bold = "**" if r.peak else ""
        lines.append(
            f"| {r.step} | {bold}{r.kind}{bold} | `{layer_label(r)}` | {shape} | {r.scratch_bytes:,} | {bold}{r.live_bytes:,}{bold}"
            f"{' (peak)' if r.peak else ''} | {r.live_bytes / budget_bytes:.1%} |"
        )
    return "\n".join(lines) + "\n"


def plot_png(plan: MemoryPlan, budget_bytes: int, path: Path) -> None:
    """Live bytes per op step, the best plan's arena, the budget line and the peak labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    steps = [r.step for r in plan.layers]
    live = [r.live_bytes / 1024 for r in plan.layers]
    peak = plan.peak_layer
    fig, ax = plt.subplots(figsize=(max(8, min(14, len(steps) / 15)), 4.5))
    ax.bar(steps, live, width=1.0, color="#4878a8", label="live activation bytes")
    ax.axhline(budget_bytes / 1024, color="#c03030", linestyle="--", label=f"budget {format_size(budget_bytes)}")
    ax.axhline(plan.peak_bytes / 1024, color="#303030", linestyle=":", label=f"best arena {format_size(plan.peak_bytes)}")
    ax.annotate(
        f"peak: {layer_label(peak)[:48]}\n{format_size(peak.live_bytes)}",
        xy=(peak.step, peak.live_bytes / 1024),
        xytext=(15 if peak.step < 0.6 * len(steps) else -15, 12),
        textcoords="offset points",
        ha="left" if peak.step < 0.6 * len(steps) else "right",
        va="bottom",
        arrowprops={"arrowstyle": "->"},
        fontsize=8,
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("op step (execution order)")
    ax.set_ylabel("KiB")
    ax.set_title(f"{plan.graph.name}: {plan.graph.activation_types()} activations live per step")
    ax.set_ylim(0, max(max(live, default=0), budget_bytes / 1024, plan.peak_bytes / 1024) * 1.25)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as err:  # the caller checked the path up front; this is the disk filling or a folder going away
        raise NlpoolError(f"cannot write the plot {path} ({err.strerror}): pass a path in a writable folder") from None
    finally:
        plt.close(fig)


def write_reports(plan: MemoryPlan, budget_bytes: int, out_dir: str | Path) -> dict[str, Any]:
    """Write memory.md, memory.json and memory.png into `out_dir` (all or nothing); return the JSON dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = as_json(plan, budget_bytes)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".memory-") as tmp:
        staging = Path(tmp)
        (staging / "memory.md").write_text(format_markdown(plan, budget_bytes))
        (staging / "memory.json").write_text(json.dumps(data, indent=2) + "\n")
        plot_png(plan, budget_bytes, staging / "memory.png")
        for name in ("memory.md", "memory.json", "memory.png"):
            os.replace(staging / name, out_dir / name)
    return data
