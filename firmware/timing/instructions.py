"""The firmware's instructions as the timing models see them: read once from the ELF with
arm-none-eabi-objdump and sorted into the classes Arm's Technical Reference Manuals time alike.

Only what the models need is kept: the mnemonic without its width suffix (`.n`/`.w`) and IT
condition, the class, how many registers a load/store-multiple moves, whether the instruction
branches (always, or only when its condition holds), the register it writes and the registers its
address is formed from (for the address-generation stall of the Cortex-M3/M4 pipeline).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nlpool.core.errors import NlpoolError

CONDITIONS = frozenset(["eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le"])
_LINE = re.compile(r"^\s*([0-9a-f]+):\s+([a-z][\w.]*)\s*(.*)$")
_REGISTER = re.compile(r"\b(r\d{1,2}|sp|lr|pc|ip|fp|sl|sb)\b")
_REGISTER_RANGE = re.compile(r"\b[rsdq](\d+)-[rsdq](\d+)\b")
_VECTOR_REGISTER = re.compile(r"\bq[0-7]\b")
_ALIASES = {"ip": "r12", "fp": "r11", "sl": "r10", "sb": "r9"}

# Integer multiplies by how the TRMs time them (single-cycle on M4/M33/M7, not on M3).
_LONG_MULTIPLY = frozenset({"smull", "umull", "smlal", "umlal", "umaal", "smlald", "smlsld", "smlalbb", "smlalbt",
                            "smlaltb", "smlaltt", "smlaldx", "smlsldx"})
_DIVIDE = frozenset({"sdiv", "udiv"})


@dataclass(frozen=True)
class Instruction:
    """One disassembled instruction, classified."""

    address: int
    next_address: int  # the instruction after it in memory (where a not-taken branch goes)
    mnemonic: str  # without width suffix and IT condition, e.g. "ldr", "smlad", "bl", "b"
    kind: str  # alu, mul, mla, mul_long, div, load, store, load_double, store_double, multiple, branch,
    # table_branch, it, fp, fp_mac, fp_div, fp_load, fp_store, fp_multiple, mve_load, mve_store, mve
    registers_moved: int = 0  # load/store multiple, push, pop: how many registers
    conditional_branch: bool = False  # taken only when its condition holds
    writes_pc: bool = False  # branches, pop {.., pc}, ldr pc
    destination: str = ""  # the first register written (ALU results, loads)
    address_registers: tuple[str, ...] = ()  # base and offset registers of a load or store


def _registers(text: str) -> list[str]:
    return [_ALIASES.get(r, r) for r in _REGISTER.findall(text)]


def _register_count(operands: str) -> int:
    """Registers in a {list}: ranges such as {r4-r7} or {d8-d15} count each register."""
    inside = operands[operands.find("{") + 1:operands.find("}")] if "{" in operands else operands
    count = 0
    for item in inside.split(","):
        match = _REGISTER_RANGE.search(item)
        count += int(match.group(2)) - int(match.group(1)) + 1 if match else (1 if item.strip() else 0)
    return count


def classify(address: int, next_address: int, mnemonic: str, operands: str, in_it_block: bool = False) -> Instruction:
    """The timing class of one objdump line (`mnemonic` as objdump prints it, e.g. `ldr.w`, `bne.n`, `addeq`).

    Inside an IT block objdump appends the condition to the mnemonic (`addeq`, `ldreq`, `bxne`): it is
    stripped there and only there, since outside one `movs`, `lsls` or `mls` merely look conditional."""
    base = mnemonic.split(".")[0]
    stem = base[:-2] if in_it_block and base[-2:] in CONDITIONS else base
    writes = _registers(operands.split(",")[0]) if operands else []
    destination = writes[0] if writes else ""
    address_regs = tuple(_registers(operands[operands.find("["):operands.find("]") + 1])) if "[" in operands else ()
    plain = dict(address=address, next_address=next_address, mnemonic=stem, destination=destination)
    vector = bool(_VECTOR_REGISTER.search(operands))
    if stem in {"b", "bl", "blx", "bx"}:
        return Instruction(**plain, kind="branch", writes_pc=True, conditional_branch=in_it_block)
    if stem.startswith("b") and stem[1:] in CONDITIONS:
        return Instruction(**plain, kind="branch", writes_pc=True, conditional_branch=True)
    if stem.startswith("bx") and stem[2:] in CONDITIONS:
        return Instruction(**plain, kind="branch", writes_pc=True, conditional_branch=True)
    if stem in {"cbz", "cbnz"}:
        return Instruction(**plain, kind="branch", writes_pc=True, conditional_branch=True)
    if stem in {"tbb", "tbh"}:
        return Instruction(**plain, kind="table_branch", writes_pc=True)
    if stem.startswith("it") and set(stem[2:]) <= {"t", "e"}:
        return Instruction(**plain, kind="it")
    if stem in {"push", "pop"} or stem.startswith(("ldm", "stm")):
        moved = _register_count(operands)
        pc = stem in {"pop"} or stem.startswith("ldm")
        return Instruction(**plain, kind="multiple", registers_moved=moved, writes_pc=pc and "pc" in _registers(operands))
    if stem.startswith("v"):
        if stem.startswith(("vldr", "vld2", "vld4", "vldrb", "vldrh", "vldrw", "vldrd")):
            return Instruction(**plain, kind="mve_load" if vector else "fp_load", address_registers=address_regs)
        if stem.startswith(("vstr", "vst2", "vst4")):
            return Instruction(**plain, kind="mve_store" if vector else "fp_store", address_registers=address_regs)
        if stem.startswith(("vldm", "vstm", "vpush", "vpop")):
            return Instruction(**plain, kind="fp_multiple", registers_moved=_register_count(operands))
        if vector:
            return Instruction(**plain, kind="mve")
        if stem in {"vdiv", "vsqrt"}:
            return Instruction(**plain, kind="fp_div")
        if stem in {"vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"}:
            return Instruction(**plain, kind="fp_mac")
        return Instruction(**plain, kind="fp")
    if stem in {"ldrd", "ldaexd", "ldrexd"}:
        return Instruction(**plain, kind="load_double", address_registers=address_regs)
    if stem in {"strd", "strexd"}:
        return Instruction(**plain, kind="store_double", address_registers=address_regs)
    if stem.startswith("ldr") or stem.startswith("lda"):
        pc = destination == "pc"
        return Instruction(**plain, kind="branch" if pc else "load", writes_pc=pc, address_registers=address_regs)
    if stem.startswith("str") or stem.startswith("stl"):
        return Instruction(**plain, kind="store", address_registers=address_regs)
    if stem in _DIVIDE:
        return Instruction(**plain, kind="div")
    if stem in _LONG_MULTIPLY:
        return Instruction(**plain, kind="mul_long")
    if stem in {"mla", "mls"}:
        return Instruction(**plain, kind="mla")
    if stem in {"mul", "muls"} or stem.startswith(("smul", "smla", "smlsd", "smuad", "smusd", "smmul", "smmla", "smmls")):
        return Instruction(**plain, kind="mul")
    if destination == "pc" and stem in {"mov", "add"}:
        return Instruction(**plain, kind="branch", writes_pc=True)
    return Instruction(**plain, kind="alu")


def disassemble(elf: Path) -> dict[int, Instruction]:
    """Every instruction of the ELF's code, by address (literal pools come out as `.word` and are skipped)."""
    if shutil.which("arm-none-eabi-objdump") is None:
        raise NlpoolError("'arm-none-eabi-objdump' is not on PATH, needed for the cycle estimate: install it with: "
                          "sudo apt-get install -y --no-install-recommends binutils-arm-none-eabi")
    text = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(elf)],
                          capture_output=True, text=True, check=True).stdout
    lines = [m.groups() for m in map(_LINE.match, text.splitlines()) if m]
    addresses = [int(a, 16) for a, _, _ in lines]
    result = {}
    it_left = 0  # instructions still inside the current IT block
    for i, (_, mnemonic, operands) in enumerate(lines):
        if mnemonic.startswith("."):
            it_left = 0
            continue
        following = addresses[i + 1] if i + 1 < len(addresses) else addresses[i] + 2
        instruction = classify(addresses[i], following, mnemonic, operands.split(";")[0].split("@")[0].strip(), it_left > 0)
        it_left = 1 + len(instruction.mnemonic) - 2 if instruction.kind == "it" else max(it_left - 1, 0)
        result[addresses[i]] = instruction
    return result
