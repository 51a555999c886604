"""Per-op instruction profile of a firmware run on the emulated target (AOT or TFLM).

Both firmwares time every op with the same SysTick counter that times the whole inference (QEMU
`-icount shift=0`: one tick is a fixed number of instructions, `Board.ns_per_tick`), and print one
line per op. The profile says where the time goes: per op, and per kernel kind (the op name and
which kernel set ran it, `cmsis-nn` or `portable`). Instructions, never cycles: QEMU has no timing
model. The tick resolution is one tick (40 instructions on the MPS2 boards), so an op's count is
exact to within that. Where the run was also traced for the cycle estimate (firmware/timing), each
op carries its estimated cycles too: an estimate from a timing model, next to the measured count.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class OpProfile:
    """One op of the model: where it sits, what it is, which kernel ran it, what it cost."""

    position: int
    op: str
    kernel: str  # "cmsis-nn", "portable" (nlpool's C), "tflm-reference" or "tflm-cmsis-nn"
    instructions: int  # per inference
    name: str = ""  # readable (memory_planner.op_label: `CONV_2D #3 conv2d_1`), "" where the run did not say
    estimated_cycles: int | None = None  # per inference, from the core's timing model (None: not estimated)


@dataclass(frozen=True)
class KindProfile:
    """All ops of one kind (op name and kernel set) together."""

    op: str
    kernel: str
    count: int
    instructions: int
    share: float  # of the profiled total
    estimated_cycles: int | None = None


@dataclass(frozen=True)
class Profile:
    """The per-op instructions of one inference, in op order."""

    ops: tuple[OpProfile, ...]

    @property
    def total(self) -> int:
        return sum(o.instructions for o in self.ops)

    @property
    def estimated_cycles(self) -> int | None:
        return None if any(o.estimated_cycles is None for o in self.ops) else sum(o.estimated_cycles or 0 for o in self.ops)

    def with_cycles(self, cycles: tuple[int, ...]) -> Profile:
        """The same profile with each op's estimated cycles (one per op, in op order)."""
        if len(cycles) != len(self.ops):
            raise ValueError(f"{len(cycles)} estimated ops for a profile of {len(self.ops)}")
        return Profile(tuple(replace(o, estimated_cycles=c) for o, c in zip(self.ops, cycles, strict=True)))

    def by_kind(self) -> list[KindProfile]:
        """Op kinds, most expensive first."""
        groups: dict[tuple[str, str], list[OpProfile]] = defaultdict(list)
        for o in self.ops:
            groups[(o.op, o.kernel)].append(o)
        total = max(self.total, 1)
        estimated = self.estimated_cycles is not None
        kinds = [KindProfile(op, kernel, len(g), sum(o.instructions for o in g), sum(o.instructions for o in g) / total,
                             sum(o.estimated_cycles or 0 for o in g) if estimated else None)
                 for (op, kernel), g in groups.items()]
        return sorted(kinds, key=lambda k: -k.instructions)

    def to_json(self, clock_mhz: float | None = None) -> dict[str, object]:
        """report.json's `profile` entry: totals, per kind and per op (with estimated cycles, and
        milliseconds at `clock_mhz`, where the run was estimated)."""
        total = max(self.total, 1)

        def timing(cycles: int | None) -> dict[str, object]:
            if cycles is None:
                return {}
            return {"estimated_cycles": cycles, **({"estimated_ms": round(cycles / (clock_mhz * 1e3), 4)} if clock_mhz else {})}

        return {
            "unit": "instructions per inference (QEMU -icount, not cycles); estimated_cycles: the core's timing model",
            "profiled_instructions": self.total,
            **({"estimated_cycles": self.estimated_cycles, "clock_mhz": clock_mhz} if self.estimated_cycles is not None else {}),
            "by_kind": [{"op": k.op, "kernel": k.kernel, "count": k.count, "instructions": k.instructions,
                         "share": round(k.share, 4), **timing(k.estimated_cycles)} for k in self.by_kind()],
            "by_op": [{"position": o.position, "op": o.op, "name": o.name or f"{o.op} #{o.position}", "kernel": o.kernel,
                       "instructions": o.instructions, "share": round(o.instructions / total, 4), **timing(o.estimated_cycles)}
                      for o in self.ops],
        }

    def format_table(self, title: str, rows: int = 8, clock_mhz: float | None = None) -> str:
        """The export's printout: the `rows` most expensive op kinds and their share of the total."""
        return format_profile(self.to_json(clock_mhz), title, rows)


def format_profile(profile: dict[str, Any], title: str, rows: int = 8) -> str:
    """A profile's report.json entry (`Profile.to_json`) as printed lines: the `rows` costliest op kinds,
    with their estimated cycles and milliseconds where the entry has them."""
    estimated = "estimated_cycles" in profile
    head = f"  {title}: {profile['profiled_instructions']:,} instructions per inference in {len(profile['by_op'])} ops"
    if estimated:
        head += f" (estimated {profile['estimated_cycles']:,} cycles at {profile['clock_mhz']:g} MHz)"
        head += f"\n    {'op':<24} {'kernels':<14} {'ops':<4} {'instructions':>12}  {'share':>7}  {'est. cycles':>12}  {'est. ms':>9}"
    lines = [head]
    for k in profile["by_kind"][:rows]:
        line = f"    {k['op']:<24} {k['kernel']:<14} x{k['count']:<3} {k['instructions']:>12,}  {100 * k['share']:5.1f} %"
        if estimated:
            line += f"  {k['estimated_cycles']:>12,}  {k.get('estimated_ms', 0):>9.3f}"
        lines.append(line)
    return "\n".join(lines)
