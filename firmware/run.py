"""Build a generated AOT project and run it: on the host, or on a Cortex-M board under QEMU.

Inputs and outputs travel as raw files (input.bin / output.bin, semihosting on the target); the
firmware prints one NLPOOL_STATS line. Every failure a user can hit (missing toolchain, SRAM
budget exceeded at link time, fault, hang) raises NlpoolError with a one-line message.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware.boards import BOARDS
from firmware.common import OpProfile, Profile, ProjectInfo
from firmware.timing import CycleEstimate, estimate_elf
from nlpool.core.errors import NlpoolError

HOST = "host"
FAULT_EXIT_STATUS = 70
_STATS = re.compile(r"NLPOOL_STATS inferences=(\d+) ticks_hi=(\d+) ticks_lo=(\d+) stack_high_water=(\d+)")
_PROFILE = re.compile(r"NLPOOL_PROFILE op=(\d+) kernel=(\S+) ticks_hi=(\d+) ticks_lo=(\d+)")
_KERNELS = re.compile(r"NLPOOL_KERNELS (\S+)")
_FLASH_OVERFLOW = re.compile(r"region `(?:CODE|CONST)' overflowed by (\d+) bytes")
MAKE_JOBS = max(1, min(os.cpu_count() or 1, 2))  # CMSIS-NN's sources compile in parallel
_FLASH_SECTIONS = (".vectors", ".text", ".rodata", ".ARM.extab", ".ARM.exidx", ".data")
_INSTALL_HINT = ("install it with: sudo apt-get install -y --no-install-recommends gcc-arm-none-eabi "
                 "libnewlib-arm-none-eabi qemu-system-arm")


class FirmwareRunError(NlpoolError):
    """The firmware built but did not complete: fault exception, hang (timeout) or bad output."""


@dataclass
class FirmwareRun:
    """Outputs and measurements of one run of a project on one target (or the host)."""

    target: str
    outputs: list[np.ndarray]  # one array per model output, shape (inferences, *output_shape)
    inferences: int
    arena_bytes: int
    sram_used_bytes: int | None  # linker: data + bss (arena) + heap + stack; None on the host
    stack_high_water_bytes: int | None
    flash_bytes: int | None
    instructions_per_inference: int | None  # QEMU -icount shift=0 + SysTick; never "cycles"
    log: str
    kernels: str = "portable"  # the kernel set the build used: "cmsis-nn" or "portable"
    profile: Profile | None = None  # per-op instructions on the target (None on the host)
    timing: CycleEstimate | None = None  # estimated cycles (build_and_run's `estimate`), None when not asked


def check_tools(target: str) -> None:
    """Raise NlpoolError naming the missing tool and how to install it."""
    needed = ["make", "gcc"] if target == HOST else ["make", "arm-none-eabi-gcc", "qemu-system-arm"]
    for tool in needed:
        if shutil.which(tool) is None:
            hint = _INSTALL_HINT if tool != "gcc" else "install it with: sudo apt-get install -y gcc make"
            raise NlpoolError(f"'{tool}' is not on PATH, needed to build/run firmware for {target}: {hint}")


def build(project_dir: str | Path, target: str, portable: bool = False) -> Path:
    """`make host` or `make TARGET=<target> target`; returns the executable or ELF path.

    A target build uses the project's CMSIS-NN tree when it has one and its generated kernels on DSP
    cores, unless `portable` (then nlpool's portable kernels only: `CMSIS_NN_DIR= GENERATED=0`)."""
    project_dir = Path(project_dir)
    if target != HOST and target not in BOARDS:
        raise NlpoolError(f"unknown target '{target}': use one of host, {', '.join(BOARDS)}")
    check_tools(target)
    goal = ["host"] if target == HOST else [f"TARGET={target}", "target", *(["CMSIS_NN_DIR=", "GENERATED=0"] if portable else [])]
    proc = subprocess.run(["make", "-s", f"-j{MAKE_JOBS}", "-C", str(project_dir), *goal], capture_output=True, text=True)
    if proc.returncode != 0:
        text = proc.stderr + proc.stdout
        budget = re.search(r"nlpool: SRAM use .*", text)
        if budget:
            raise NlpoolError(f"{target} firmware does not link: {budget.group(0).strip()}")
        flash = _FLASH_OVERFLOW.search(text)
        if flash:
            board = BOARDS[target]
            raise NlpoolError(f"{target} firmware does not link: code and weights overflow the flash of {board.machine} "
                              f"by {flash.group(1)} bytes: export a smaller model")
        lines = [ln for ln in text.splitlines() if "error" in ln.lower()] or text.splitlines()[-1:]
        raise NlpoolError(f"building the {target} firmware in {project_dir} failed: "
                          f"{lines[0].strip() if lines else 'see make output'}")
    if target == HOST:
        return project_dir / "build" / "host" / "nlpool_model"
    return project_dir / "build" / target / "firmware.elf"


def _input_bytes(info: ProjectInfo, inputs: np.ndarray | list[np.ndarray]) -> tuple[bytes, int]:
    arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    if len(arrays) != len(info.inputs):
        raise NlpoolError(f"the model has {len(info.inputs)} input(s), got {len(arrays)} array(s): "
                          "pass one array per model input")
    n = None
    per_sample = []
    for arr, spec in zip(arrays, info.inputs, strict=True):
        if arr.dtype != np.dtype(spec.dtype):
            raise NlpoolError(f"input '{spec.name}' must be {spec.dtype}, got {arr.dtype}: "
                              "quantise the inputs with the model's input scale and zero point")
        count = arr.size * arr.itemsize // spec.nbytes
        if count * spec.nbytes != arr.size * arr.itemsize or (n is not None and count != n):
            raise NlpoolError(f"input '{spec.name}' has {arr.size} elements, not a whole number of "
                              f"samples of shape {spec.shape}: pass shape (n, *{spec.shape})")
        n = count
        per_sample.append(np.ascontiguousarray(arr).reshape(count, -1).view(np.uint8))
    assert n is not None
    return np.concatenate(per_sample, axis=1).tobytes(), n


def _split_outputs(info: ProjectInfo, raw: bytes, n: int, target: str) -> list[np.ndarray]:
    sample = sum(s.nbytes for s in info.outputs)
    if len(raw) != n * sample:
        raise FirmwareRunError(f"{target} firmware wrote {len(raw)} output bytes, expected {n * sample} "
                               f"({n} inferences): the run stopped early")
    rows = np.frombuffer(raw, np.uint8).reshape(n, sample)
    outs, col = [], 0
    for s in info.outputs:
        block = np.ascontiguousarray(rows[:, col:col + s.nbytes])
        outs.append(block.view(np.dtype(s.dtype)).reshape(n, *s.shape))
        col += s.nbytes
    return outs


def run_executable(exe: Path, target: str, payload: bytes, timeout_s: float, what: str) -> tuple[str, bytes]:
    """Run a host executable or a Cortex-M ELF (under QEMU, `-icount shift=0`) on `payload` as input.bin.

    Returns the console log and output.bin's bytes; a fault exception, a non-zero exit or a hang
    beyond `timeout_s` raises FirmwareRunError (`what` names the work in the timeout message).
    """
    with tempfile.TemporaryDirectory(prefix=f"nlpool-run-{target}-") as tmp:
        work = Path(tmp)
        (work / "input.bin").write_bytes(payload)
        if target == HOST:
            cmd = [str(exe.resolve())]
        else:
            cmd = ["qemu-system-arm", "-M", BOARDS[target].machine, "-nographic", "-monitor", "none",
                   "-semihosting-config", "enable=on,target=native", "-icount", "shift=0",
                   "-kernel", str(exe.resolve())]
        try:
            proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise FirmwareRunError(f"{target} firmware did not finish within {timeout_s:g} s (hang, or "
                                   f"{what} are too slow): raise the timeout or find the hang") from exc
        log = proc.stdout + proc.stderr
        if proc.returncode == FAULT_EXIT_STATUS or "NLPOOL_FAULT" in log:
            raise FirmwareRunError(f"{target} firmware crashed with a fault exception (HardFault or "
                                   f"bus/usage fault) during the run: {log.strip().splitlines()[-1]}")
        if proc.returncode != 0:
            last = log.strip().splitlines()[-1] if log.strip() else "no output"
            raise FirmwareRunError(f"{target} firmware exited with status {proc.returncode}: {last}")
        output = work / "output.bin"
        return log, output.read_bytes() if output.exists() else b""


def elf_sizes(elf: Path) -> tuple[int, int]:
    """(flash bytes, SRAM bytes used) from the linked ELF's sections and __sram_used symbol."""
    sizes = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True,
                           check=True).stdout
    flash = 0
    for line in sizes.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in _FLASH_SECTIONS:
            flash += int(parts[1])
    syms = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^([0-9a-fA-F]+) \w __sram_used$", syms, re.MULTILINE)
    if match is None:
        raise FirmwareRunError(f"{elf} has no __sram_used symbol: regenerate the project")
    return flash, int(match.group(1), 16)


def default_timeout_s(info: ProjectInfo, inferences: int) -> float:
    """A timeout that only a hang exceeds: 60 s plus 50 instructions per MAC at a pessimistic
    100 M emulated instructions per second (measured: about 13 per MAC at over 150 M/s)."""
    return 60.0 + inferences * max(info.macs, 100_000) * 50 / 100e6


def _profile(info: ProjectInfo, log: str, instructions_per_tick: float, inferences: int) -> Profile | None:
    """The per-op instructions and kernels the target build printed (NLPOOL_PROFILE lines: model.c says
    which kernel each op ran, as its build selected it), None if it printed none."""
    lines = {int(m.group(1)): (m.group(2), (int(m.group(3)) << 32) + int(m.group(4))) for m in _PROFILE.finditer(log)}
    if not lines:
        return None
    if sorted(lines) != list(range(len(info.ops))):
        raise FirmwareRunError(f"the firmware profiled {len(lines)} ops, the model has {len(info.ops)}: regenerate the project")
    return Profile(tuple(OpProfile(i, info.ops[i], lines[i][0], round(lines[i][1] * instructions_per_tick / max(inferences, 1)),
                                   info.op_names[i] if info.op_names else "")
                         for i in range(len(info.ops))))


def build_and_run(project_dir: str | Path, target: str, inputs: np.ndarray | list[np.ndarray],
                  timeout_s: float | None = None, portable: bool = False, estimate: bool = False,
                  clock_mhz: float | None = None) -> FirmwareRun:
    """Build `project_dir` for `target` ("host" or a Cortex-M target) and run every sample.

    `inputs` is one array of shape (n, *input_shape) per model input, in the model's dtype. On a
    board the run happens under QEMU with `-icount shift=0`, so instruction counts are exact and
    deterministic; a fault exception or a hang beyond `timeout_s` (default: `default_timeout_s`)
    raises FirmwareRunError. `portable` builds the target without the project's CMSIS-NN tree.
    `estimate` (a board only) runs the first input once more under the counting plugin for the cycle
    estimate (firmware/timing), its milliseconds at `clock_mhz` (None: the core's typical board clock).
    """
    project_dir = Path(project_dir)
    info = ProjectInfo.load(project_dir)
    payload, n = _input_bytes(info, inputs)
    if timeout_s is None:
        timeout_s = default_timeout_s(info, n)
    exe = build(project_dir, target, portable)
    log, raw = run_executable(exe, target, payload, timeout_s, f"{n} inferences")
    stats = _STATS.search(log)
    if stats is None:
        raise FirmwareRunError(f"{target} firmware printed no NLPOOL_STATS line: {log.strip()[-200:]}")
    outputs = _split_outputs(info, raw, n, target)
    done = int(stats.group(1))
    kernels = _KERNELS.search(log)
    kernel_set = kernels.group(1) if kernels else "portable"
    if target == HOST:
        return FirmwareRun(target, outputs, done, info.arena_bytes, None, None, None, None, log, kernel_set)
    ticks = (int(stats.group(2)) << 32) + int(stats.group(3))
    flash, sram = elf_sizes(exe)
    per_tick = BOARDS[target].ns_per_tick
    instructions = round(ticks * per_tick / max(done, 1))
    profile = _profile(info, log, per_tick, done)
    timing = None
    if estimate:
        timing = estimate_elf(exe, target, payload[:len(payload) // n], len(info.ops), "nl_op_begin", "nl_op_end", clock_mhz)
        profile = profile.with_cycles(timing.op_cycles) if profile is not None else None
    return FirmwareRun(target, outputs, done, info.arena_bytes, sram, int(stats.group(4)), flash,
                       instructions, log, kernel_set, profile, timing)
