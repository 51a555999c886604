"""Cortex-M boards the AOT firmware runs on (QEMU machines, memory maps, compiler flags).

Numbers come from notes/environment.md and QEMU 7.2's board sources (memory maps), each checked by
a program that writes the last word of the SRAM region and reads it back. `ns_per_tick` converts
SysTick ticks into guest instructions: with `-icount shift=0` each instruction advances virtual time
by 1 ns, and SysTick counts the CPU clock (25 MHz on MPS2, 20 MHz on the MPS2 AN505's SSE-200,
32 MHz on MPS3, 16 MHz on the micro:bit's nRF51), calibrated with a loop of known length
(tests/test_firmware_qemu.py).

The Cortex-M33 board (AN505) boots in the Secure state: code runs from the secure alias of its
4 MiB code SSRAM (0x10000000) and data lives in the secure alias of SSRAM2/3 (4 MiB at 0x38000000;
6 MiB faults). The micro:bit (Cortex-M0 in QEMU; the build targets the Cortex-M0+, the same Armv6-M
instruction set) has 256 KiB of flash and 16 KiB of RAM, so its heap and stack are smaller.
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
    # The core's optional extensions CMSIS-NN picks its paths from: "mve", "dsp" or "" (plain C).
    simd: str = "dsp"
    # Heap and stack reservations when the board cannot afford the project's defaults (None: the defaults).
    heap_bytes: int | None = None
    stack_bytes: int | None = None


# The one list of targets (`nlpool export --target` offers these, in this order).
BOARDS: dict[str, Board] = {
    "cortex-m4": Board("cortex-m4", "mps2-an386",
                       "-mthumb -mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard",
                       0x00000000, 4 << 20, None, 0, 0x20000000, 4 << 20, 40.0),
    "cortex-m7": Board("cortex-m7", "mps2-an500",
                       "-mthumb -mcpu=cortex-m7 -mfpu=fpv5-d16 -mfloat-abi=hard",
                       0x00000000, 4 << 20, None, 0, 0x20000000, 4 << 20, 40.0),
    "cortex-m55": Board("cortex-m55", "mps3-an547", "-mthumb -mcpu=cortex-m55 -mfloat-abi=hard",
                        0x10000000, 512 << 10, 0x11000000, 2 << 20, 0x31000000, 4 << 20, 31.25, simd="mve"),
    "cortex-m33": Board("cortex-m33", "mps2-an505",
                        "-mthumb -mcpu=cortex-m33 -mfpu=fpv5-sp-d16 -mfloat-abi=hard",
                        0x10000000, 4 << 20, None, 0, 0x38000000, 4 << 20, 50.0),
    "cortex-m3": Board("cortex-m3", "mps2-an385", "-mthumb -mcpu=cortex-m3 -mfloat-abi=soft",
                       0x00000000, 4 << 20, None, 0, 0x20000000, 4 << 20, 40.0, simd=""),
    "cortex-m0plus": Board("cortex-m0plus", "microbit", "-mthumb -mcpu=cortex-m0plus -mfloat-abi=soft",
                           0x00000000, 256 << 10, None, 0, 0x20000000, 16 << 10, 62.5, simd="",
                           heap_bytes=4 << 10, stack_bytes=2 << 10),
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
    """The board's linker script with the SRAM budget ASSERT filled in (the board's own heap and stack
    reservations, where it has them, replace `stack_bytes` and `heap_bytes`)."""
    stack_bytes = board.stack_bytes or stack_bytes
    heap_bytes = board.heap_bytes or heap_bytes
    advice = (f", all the SRAM {board.machine} has: the model does not fit this board, export a smaller model"
              if sram_budget >= board.sram_length else ": raise --sram or export a smaller model")
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
        budget_h=human_bytes(sram_budget), advice=advice)


def human_bytes(n: int) -> str:
    """512 KiB style, exact when possible (used in messages the user reads)."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"
