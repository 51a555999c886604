"""Estimated cycles and milliseconds of a firmware run: what QEMU executed (per instruction, per op,
from the counting plugin) costed with the core's timing model (`cores.py`, from Arm's TRMs).

QEMU counts instructions; a core spends cycles. The estimate costs every executed instruction with
the cycles its core's pipeline takes for it (loads, multiplies, taken branches, load/store multiples)
in the context of the instruction before it, so memory and branch costs come on top of the count. On
the single-issue cores (M0+, M3, M4, M33) no instruction costs less than a cycle, so the estimate is
never below the instruction count; on the dual-issue M7 it can be.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.timing.cores import CORES, CoreTiming
from firmware.timing.instructions import Instruction, disassemble
from firmware.timing.trace import BlockTrace, symbol_address, trace_blocks
from nlpool.core.errors import NlpoolError

_UNKNOWN = Instruction(0, 0, "", "alu")  # an address objdump did not list (never seen in practice): 1 cycle


@dataclass(frozen=True)
class CycleEstimate:
    """One inference's estimated cycles, overall and per op, and the clock the milliseconds assume."""

    target: str
    clock_mhz: float
    clock_board: str  # "" when the user gave --clock
    cycles_per_instruction: float  # over the ops of the traced inference
    op_instructions: tuple[int, ...]  # per op, counted by the plugin (one inference)
    op_cycles: tuple[int, ...]  # per op, estimated

    def cycles_for(self, instructions: int) -> int:
        """Estimated cycles of `instructions` run at the traced ops' average cycles per instruction."""
        return round(instructions * self.cycles_per_instruction)

    def milliseconds(self, cycles: int) -> float:
        return cycles / (self.clock_mhz * 1e3)

    def describe_clock(self) -> str:
        return f"{self.clock_mhz:g} MHz" + (f", {self.clock_board}" if self.clock_board else ", --clock")


def core_timing(target: str) -> CoreTiming:
    if target not in CORES:
        raise NlpoolError(f"no timing model for {target}: use one of {', '.join(CORES)}")
    return CORES[target]


def _taken_fractions(code: dict[int, Instruction], trace: BlockTrace) -> dict[int, float]:
    """Per branch address, the share of its executions that branched. Unconditional ones always do; a
    conditional one as often as the instruction after it did not run (exact for loop back-edges)."""
    counts = trace.instruction_counts()
    taken = {}
    for address, runs in counts.items():
        ins = code.get(address)
        if ins is None or not ins.writes_pc:
            continue
        if not ins.conditional_branch:
            taken[address] = 1.0
        else:
            taken[address] = min(max(runs - counts.get(ins.next_address, 0), 0) / runs, 1.0) if runs else 0.0
    return taken


def block_cycles(timing: CoreTiming, code: dict[int, Instruction], trace: BlockTrace) -> dict[int, float]:
    """Estimated cycles of one execution of each translated block."""
    taken = _taken_fractions(code, trace)
    costs = {}
    for block, addresses in trace.blocks.items():
        total, previous = 0.0, None
        for address in addresses:
            ins = code.get(address, _UNKNOWN)
            total += timing.cost(ins, previous)
            if ins.writes_pc:
                total += timing.taken_penalty(ins) * taken.get(address, 0.0)
            previous = ins
        costs[block] = total
    return costs


def estimate_elf(elf: Path, target: str, payload: bytes, ops: int, begin_symbol: str, end_symbol: str,
                 clock_mhz: float | None = None) -> CycleEstimate:
    """Run `elf` once more under the counting plugin on `payload` (one inference's input) and estimate
    each op's cycles; ops are delimited by the functions `begin_symbol` and `end_symbol`, called around
    each of the `ops` ops of every inference in order."""
    timing = core_timing(target)
    begin, end = symbol_address(elf, begin_symbol), symbol_address(elf, end_symbol)
    if begin is None or end is None:
        raise NlpoolError(f"{elf} has no {begin_symbol} / {end_symbol}: rebuild the firmware with its profiler")
    trace = trace_blocks(elf, target, payload, begin, end)
    segments = trace.op_segments()
    if not segments or len(segments) % ops:
        raise NlpoolError(f"the firmware ran {len(segments)} op segments under the counting plugin, not a multiple of its {ops} ops")
    per_block = block_cycles(timing, disassemble(elf), trace)
    inferences = len(segments) // ops
    instructions, cycles = [0] * ops, [0.0] * ops
    for index, counts in enumerate(segments):
        op = index % ops
        instructions[op] += sum(len(trace.blocks[b]) * n for b, n in counts.items())
        cycles[op] += sum(per_block[b] * n for b, n in counts.items())
    total_instructions = sum(instructions)
    return CycleEstimate(target, clock_mhz if clock_mhz is not None else timing.clock_mhz,
                         "" if clock_mhz is not None else timing.clock_board,
                         sum(cycles) / total_instructions if total_instructions else 1.0,
                         tuple(round(n / inferences) for n in instructions), tuple(round(c / inferences) for c in cycles))


def timing_json(timing: CycleEstimate | None, cycles: int | None) -> dict[str, Any]:
    """report.json's estimate fields (`firmware` and `tflm` alike); empty when the run was not estimated."""
    if timing is None or cycles is None:
        return {}
    return {"estimated_cycles_per_inference": cycles, "cycles_per_instruction": round(timing.cycles_per_instruction, 4),
            "clock_mhz": timing.clock_mhz, "clock_board": timing.clock_board or "--clock",
            "estimated_ms_per_inference": round(timing.milliseconds(cycles), 3),
            "timing_model": f"{timing.target}: Arm TRM cycle table, zero-wait-state memory (docs/firmware.md, Cycle estimate)"}


def timing_rows(timing: CycleEstimate | None, cycles: int | None) -> list[tuple[str, str]]:
    """The printed rows of the estimate (empty when the run was not estimated)."""
    if timing is None or cycles is None:
        return []
    return [("estimated cycles per inference", f"{cycles:,} ({timing.cycles_per_instruction:.3f} per instruction, timing model)"),
            ("estimated time per inference", f"{timing.milliseconds(cycles):.2f} ms at {timing.describe_clock()}")]
