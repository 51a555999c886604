"""Per-op instruction profile of a firmware run on the emulated target (AOT or TFLM).

Both firmwares time every op with the same SysTick counter that times the whole inference (QEMU
`-icount shift=0`: one tick is a fixed number of instructions, `Board.ns_per_tick`), and print one
line per op. The profile says where the time goes: per op, and per kernel kind (the op name and
which kernel set ran it, `cmsis-nn` or `portable`). Instructions, never cycles: QEMU has no timing
model. The tick resolution is one tick (40 instructions on the MPS2 boards), so an op's count is
exact to within that.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OpProfile:
    """One op of the model: where it sits, what it is, which kernel ran it, what it cost."""

    position: int
    op: str
    kernel: str  # "cmsis-nn", "portable" (nlpool's C), "tflm-reference" or "tflm-cmsis-nn"
    instructions: int  # per inference
    name: str = ""  # readable (memory_planner.op_label: `CONV_2D #3 conv2d_1`), "" where the run did not say


@dataclass(frozen=True)
class KindProfile:
    """All ops of one kind (op name and kernel set) together."""

    op: str
    kernel: str
    count: int
    instructions: int
    share: float  # of the profiled total


@dataclass(frozen=True)
class Profile:
    """The per-op instructions of one inference, in op order."""

    ops: tuple[OpProfile, ...]

    @property
    def total(self) -> int:
        return sum(o.instructions for o in self.ops)

    def by_kind(self) -> list[KindProfile]:
        """Op kinds, most expensive first."""
        groups: dict[tuple[str, str], list[OpProfile]] = defaultdict(list)
        for o in self.ops:
            groups[(o.op, o.kernel)].append(o)
        total = max(self.total, 1)
        kinds = [KindProfile(op, kernel, len(g), sum(o.instructions for o in g), sum(o.instructions for o in g) / total)
                 for (op, kernel), g in groups.items()]
        return sorted(kinds, key=lambda k: -k.instructions)

    def to_json(self) -> dict[str, object]:
        """report.json's `profile` entry: totals, per kind and per op."""
        total = max(self.total, 1)
        return {
            "unit": "instructions per inference (QEMU -icount, not cycles)",
            "profiled_instructions": self.total,
            "by_kind": [{"op": k.op, "kernel": k.kernel, "count": k.count, "instructions": k.instructions,
                         "share": round(k.share, 4)} for k in self.by_kind()],
            "by_op": [{"position": o.position, "op": o.op, "name": o.name or f"{o.op} #{o.position}", "kernel": o.kernel,
                       "instructions": o.instructions, "share": round(o.instructions / total, 4)} for o in self.ops],
        }

    def format_table(self, title: str, rows: int = 8) -> str:
        """The export's printout: the `rows` most expensive op kinds and their share of the total."""
        return format_profile(self.to_json(), title, rows)


def format_profile(profile: dict[str, Any], title: str, rows: int = 8) -> str:
    """A profile's report.json entry (`Profile.to_json`) as printed lines: the `rows` costliest op kinds."""
    lines = [f"  {title}: {profile['profiled_instructions']:,} instructions per inference in {len(profile['by_op'])} ops"]
    for k in profile["by_kind"][:rows]:
        lines.append(f"    {k['op']:<24} {k['kernel']:<14} x{k['count']:<3} {k['instructions']:>12,}  {100 * k['share']:5.1f} %")
    return "\n".join(lines)
