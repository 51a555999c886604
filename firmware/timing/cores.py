"""Timing models of the Cortex-M cores: cycles per executed instruction, from Arm's Technical Reference
Manuals (TRMs), and the clock of a typical board per core (the default of `--clock`).

Assumptions common to every core (each moves the estimate away from a real board in a known direction):
- Zero-wait-state memory: code and constants (weights) are fetched as fast as from TCM or an
  always-hitting flash cache/accelerator, data from single-cycle SRAM, no bus contention. Real boards
  running from flash add wait states on cache misses (NUCLEO-L4R5ZI: 5 at 120 MHz behind the ART
  accelerator; EK-RA6M4: flash cache at 200 MHz), so the estimate is a lower bound there.
- No interrupts, no unaligned accesses (CMSIS-NN's word loads of int8 data are aligned).
- Branches: a taken branch costs 1 + P cycles with P = 2 (the TRMs give P = 1..3 by target alignment
  and width) on the Cortex-M3/M4/M33; 2 on the Cortex-M0+. Whether a conditional branch was taken is
  not recorded by the execution counts: it is taken as often as the instruction after it did not run
  (exact for loop back-edges, a lower bound where the next instruction is also a branch target).

Per core:
- Cortex-M4 (TRM r0p1, "Processor instructions" and "Load/store timings"): 1 cycle for data processing,
  MUL/MLA, the 32x32->64 multiplies and every DSP multiply (SMLAD, SMLABB, ...); MLS 2; SDIV/UDIV 2..12
  (7 assumed); LDR 2, but 1 right after another single load (the TRM's pipelining of neighbouring
  loads); STR 1 (write buffer); LDRD/STRD 3; LDM/STM/PUSH/POP 1 + N; POP/LDM with PC and LDR PC add
  P (LDR PC 5, the TRM's minimum); TBB/TBH 6; +1 when a load or store forms its address from the register
  the instruction just before it computed (no forwarding to the address generator); FPU: VLDR/VSTR 2,
  VLDM/VSTM/VPUSH/VPOP 1 + N, VMLA/VFMA 3, VDIV/VSQRT 14, others 1.
- Cortex-M3 (TRM r2p0): as the M4, but MLA/MLS 2, SMULL/UMULL 4 (3..5), SMLAL/UMLAL 5 (4..7); no FPU
  and no DSP instructions (soft float and plain C).
- Cortex-M33: Arm publishes no cycle table for it; its three-stage pipeline issues like the M4's, so
  the M4 table is used. The M33 dual-issues some pairs of 16-bit instructions, which is not modelled:
  the estimate errs high by what that saves.
- Cortex-M0+ (TRM r0p1): 1 cycle, LDR/STR 2, LDM/STM/PUSH/POP 1 + N, POP with PC 3 + N, taken branch
  2, BL 3, BX/BLX 2; MULS 1 (the single-cycle multiplier option).
- Cortex-M7 (dual issue; Arm publishes no cycle table): two instructions issue together unless both
  access memory, both multiply, either is a branch, a load/store multiple, divide or FP divide, or the
  second reads the first's result; a lone instruction takes 1 cycle, a pair 1 for both; taken branches
  are assumed predicted (no penalty), LDM/STM move 2 registers per cycle. Below the instruction count
  by design: the instructions bound nothing there.
- Cortex-M55: scalar code as the M4; an MVE (Helium) instruction takes 2 cycles (two beats of a
  128-bit vector on its 64-bit datapath), 1 when it follows an MVE instruction of the other kind
  (memory after arithmetic or back), which the M55 overlaps.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware.timing.instructions import Instruction

BRANCH_REFILL = 2  # P of the Cortex-M3/M4/M33 TRMs (1..3)


@dataclass(frozen=True)
class CoreTiming:
    """One core's timing model and the typical board clock `--clock` defaults to."""

    target: str
    clock_mhz: float
    clock_board: str  # the board whose clock is the default, named in the output
    model: str  # "m3", "m4", "m0plus", "m7", "m55": which cost rules apply
    single_issue: bool  # True: never fewer cycles than instructions

    def cost(self, instruction: Instruction, previous: Instruction | None) -> float:
        """Cycles of `instruction` when `previous` ran just before it (None: a branch led to it), its
        branch not taken. A taken branch adds `taken_penalty`."""
        if self.model == "m0plus":
            return _cost_m0plus(instruction)
        if self.model == "m7":
            return _cost_m7(instruction, previous)
        if self.model == "m55" and instruction.kind.startswith("mve"):
            overlaps = previous is not None and previous.kind.startswith("mve") and \
                (previous.kind == "mve") != (instruction.kind == "mve")
            return 1.0 if overlaps else 2.0
        return _cost_m4(instruction, previous, m3=self.model == "m3")

    def taken_penalty(self, instruction: Instruction) -> float:
        """Cycles a taken branch adds to its not-taken cost (pipeline refill)."""
        if self.model == "m7":
            return 0.0
        if self.model == "m0plus":
            return 1.0 if instruction.mnemonic != "bl" else 2.0
        return float(BRANCH_REFILL)


def _cost_m4(ins: Instruction, previous: Instruction | None, m3: bool) -> float:
    kind = ins.kind
    agu_stall = 1.0 if (previous is not None and ins.address_registers and previous.kind in {"alu", "mul", "mla"}
                        and previous.destination in ins.address_registers) else 0.0
    if kind == "load":
        pipelined = previous is not None and previous.kind == "load" and previous.destination not in ins.address_registers
        return (1.0 if pipelined else 2.0) + agu_stall
    if kind == "store":
        return 1.0 + agu_stall
    if kind in {"load_double", "store_double"}:
        return 3.0 + agu_stall
    if kind == "multiple":
        return 1.0 + ins.registers_moved
    if kind == "branch":
        return 3.0 if ins.mnemonic.startswith("ldr") else 1.0  # LDR PC: 5 with the refill, as the TRM's "at least 5"
    if kind == "table_branch":
        return 3.0  # + refill: 6 in all, as the TRM says
    if kind == "mla":
        return 2.0 if m3 or ins.mnemonic == "mls" else 1.0
    if kind == "mul_long":
        return (5.0 if "la" in ins.mnemonic else 4.0) if m3 else 1.0
    if kind == "div":
        return 7.0
    if kind in {"fp_load", "fp_store"}:
        return 2.0 + agu_stall
    if kind == "fp_multiple":
        return 1.0 + ins.registers_moved
    if kind == "fp_mac":
        return 3.0
    if kind == "fp_div":
        return 14.0
    return 1.0


def _cost_m0plus(ins: Instruction) -> float:
    if ins.kind in {"load", "store", "load_double", "store_double"}:
        return 2.0
    if ins.kind == "multiple":
        return 1.0 + ins.registers_moved + (1.0 if ins.writes_pc else 0.0)  # POP {.., pc}: 3 + N with the refill
    if ins.kind == "branch":
        return 1.0  # + refill: 2 (B, BX), 3 (BL)
    return 1.0


_M7_MEMORY = frozenset({"load", "store", "load_double", "store_double", "fp_load", "fp_store"})
_M7_MULTIPLY = frozenset({"mul", "mla", "mul_long", "fp_mac"})
_M7_ALONE = frozenset({"multiple", "fp_multiple", "div", "fp_div", "branch", "table_branch", "it"})


def _cost_m7(ins: Instruction, previous: Instruction | None) -> float:
    if ins.kind in {"multiple", "fp_multiple"}:
        return 1.0 + (ins.registers_moved + 1) // 2
    if ins.kind == "div":
        return 7.0
    if ins.kind == "fp_div":
        return 14.0
    if previous is None or ins.kind in _M7_ALONE or previous.kind in _M7_ALONE:
        return 1.0
    both = {ins.kind, previous.kind}
    if (both <= _M7_MEMORY) or (both <= _M7_MULTIPLY):
        return 1.0
    depends = previous.destination and (previous.destination in ins.address_registers)
    return 1.0 if depends else 0.5  # pairs with the instruction before it: the pair takes one cycle


# Typical clocks (the boards MLPerf Tiny results and vendors' tables are measured on).
CORES: dict[str, CoreTiming] = {
    "cortex-m4": CoreTiming("cortex-m4", 120.0, "NUCLEO-L4R5ZI (STM32L4R5)", "m4", True),
    "cortex-m7": CoreTiming("cortex-m7", 216.0, "DISCO-F746NG (STM32F746)", "m7", False),
    "cortex-m55": CoreTiming("cortex-m55", 400.0, "Alif Ensemble E7 high-performance core", "m55", False),
    "cortex-m33": CoreTiming("cortex-m33", 160.0, "NUCLEO-U575ZI-Q (STM32U575)", "m4", True),
    "cortex-m3": CoreTiming("cortex-m3", 72.0, "NUCLEO-F103RB (STM32F103)", "m3", True),
    "cortex-m0plus": CoreTiming("cortex-m0plus", 48.0, "NUCLEO-L053R8 (STM32L053)", "m0plus", True),
}
