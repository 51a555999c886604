"""Cortex-M boards the AOT firmware runs on (QEMU machines, memory maps, compiler flags).

Numbers come from notes/environment.md (QEMU 7.2 memory maps). `ns_per_tick` converts SysTick
ticks into guest instructions: with `-icount shift=0` each instruction advances virtual time by
1 ns, and SysTick counts the CPU clock (25 MHz on MPS2, 32 MHz on MPS3).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BOARD_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Board:
    """One target: how to compile for it, where its memories are, how to run it in QEMU."""

    target: str
    machine: str
    cpu_flags: str
    code_origin: int
    code_length: int
    const_origin: int | None
    const_length: int
    sram_origin: int
    sram_length: int
    ns_per_tick: float


# The one list of targets (`nlpool export --target` offers these, in this order).
BOARDS: dict[str, Board] = {
    "cortex-m4": Board("cortex-m4", "mps2-an386",
                       "-mthumb -mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard",
                       0x00000000, 4 << 20, None, 0, 0x20000000, 4 << 20, 40.0),
    "cortex-m7": Board("cortex-m7", "mps2-an500",
                       "-mthumb -mcpu=cortex-m7 -mfpu=fpv5-d16 -mfloat-abi=hard",
                       0x00000000, 4 << 20, None, 0, 0x20000000, 4 << 20, 40.0),
    "cortex-m55": Board("cortex-m55", "mps3-an547", "-mthumb -mcpu=cortex-m55 -mfloat-abi=hard",
                        0x10000000, 512 << 10, 0x11000000, 2 << 20, 0x31000000, 4 << 20, 31.25),
}


def check_sram_budget(target: str, sram_budget: int) -> str | None:
    """Why `sram_budget` cannot be met on `target` (a budget above the board's physical SRAM), or None.

    Checked before an export starts: the budget is only enforced at link time, minutes later.
    """
    board = BOARDS[target]
    if sram_budget > board.sram_length:
        return (f"--sram {human_bytes(sram_budget)} is more than the {human_bytes(board.sram_length)} of SRAM {target}"
                f" ({board.machine}) has: pass --sram {human_bytes(board.sram_length)} or less")
    return None


def linker_script(board: Board, sram_budget: int, stack_bytes: int, heap_bytes: int) -> str:
    """The board's linker script with the SRAM budget ASSERT filled in."""
    template = (BOARD_DIR / "link_template.ld").read_text()
    if board.const_origin is None:
        const_region = ""
        const_alias = 'REGION_ALIAS("CONST", CODE);'
    else:
        const_region = (f"CONST (rx) : ORIGIN = {board.const_origin:#010x}, "
                        f"LENGTH = {board.const_length:#x}")
        const_alias = ""
    return template.format(
        code_origin=f"{board.code_origin:#010x}", code_length=f"{board.code_length:#x}",
        const_region=const_region, const_alias=const_alias,
        sram_origin=f"{board.sram_origin:#010x}", sram_length=f"{board.sram_length:#x}",
        stack_bytes=stack_bytes, heap_bytes=heap_bytes, budget=sram_budget,
        budget_h=human_bytes(sram_budget))


def human_bytes(n: int) -> str:
    """512 KiB style, exact when possible (used in messages the user reads)."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"
