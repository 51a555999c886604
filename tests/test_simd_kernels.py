"""The DSP (Cortex-M4/M7) and MVE (Cortex-M55) paths of the kernels that have them
(NLPOOL_ATTENTION, NLPOOL_WEIGHTED_POOL, RESIZE_BILINEAR) against their portable C, bit for bit.

tests/kernel_harness/simd_cases.c draws 120 random cases of each op (shapes, zero points,
multipliers, shifts, steps, tables, odd head sizes and channel counts that leave SIMD tails) from
one seeded stream and prints a hash of every output. The host build runs the portable path; the
same file built for a board runs that core's SIMD path under QEMU; the logs must be identical.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from firmware.aot.ops import attention, resize, weighted_pool
from firmware.aot.ops.c_text import kernel_header
from firmware.boards import BOARD_DIR, BOARDS, linker_script
from firmware.run import run_executable

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "firmware" / "kernels"
PLATFORM = ROOT / "firmware" / "platform"
HARNESS = Path(__file__).resolve().parent / "kernel_harness" / "simd_cases.c"
SOURCES = [KERNELS / "nlpool_attention.c", KERNELS / "nlpool_weighted_pool.c", KERNELS / "resize_bilinear.c"]
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]


@pytest.fixture(scope="module")
def include_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated nlpool_kernels.h these three kernels need (the AOT generator's own text)."""
    d = tmp_path_factory.mktemp("simd_include")
    (d / "nlpool_kernels.h").write_text(kernel_header([attention.KERNEL, weighted_pool.KERNEL, resize.BILINEAR]))
    return d


@pytest.fixture(scope="module")
def portable_log(include_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    exe = tmp_path_factory.mktemp("simd_host") / "simd_cases"
    subprocess.run(["gcc", *CFLAGS, f"-I{include_dir}", f"-I{KERNELS}", "-o", str(exe), str(HARNESS), *map(str, SOURCES)],
                   check=True)
    log, _ = run_executable(exe, "host", b"", 60, "the portable cases")
    assert log.strip().endswith("done 120")
    return log


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="arm-none-eabi-gcc and qemu-system-arm are needed")
@pytest.mark.parametrize(("target", "macro"), [("cortex-m4", "__ARM_FEATURE_DSP"), ("cortex-m7", "__ARM_FEATURE_DSP"),
                                            ("cortex-m55", "__ARM_FEATURE_MVE")])
def test_simd_path_is_bit_exact_with_portable(include_dir: Path, portable_log: str, tmp_path: Path,
                                              target: str, macro: str) -> None:
    board = BOARDS[target]
    flags = board.cpu_flags.split()
    defined = subprocess.run(["arm-none-eabi-gcc", *flags, "-dM", "-E", "-x", "c", "/dev/null"],
                             check=True, capture_output=True, text=True).stdout
    assert f"#define {macro} " in defined  # the path under test is the one this core compiles
    (tmp_path / "link.ld").write_text(linker_script(board, board.sram_length, 16 * 1024, 8 * 1024))
    elf = tmp_path / "simd_cases.elf"
    subprocess.run(["arm-none-eabi-gcc", *flags, *CFLAGS, "-DNL_BOARD", f"-I{include_dir}", f"-I{KERNELS}", f"-I{PLATFORM}",
                    "-ffunction-sections", "-fdata-sections", "-nostartfiles", "--specs=nano.specs", "--specs=rdimon.specs",
                    "-T", str(tmp_path / "link.ld"), "-Wl,--gc-sections", "-o", str(elf), str(HARNESS), *map(str, SOURCES),
                    str(PLATFORM / "cortex_m.c"), str(BOARD_DIR / "startup.S")], check=True)
    log, _ = run_executable(elf, target, b"", 60, "the SIMD cases")
    lines, expected = log.strip().splitlines(), portable_log.strip().splitlines()
    assert len(lines) == len(expected) == 3 * 120 + 1
    mismatched = [(a, b) for a, b in zip(lines, expected, strict=True) if a != b]
    assert not mismatched, mismatched[:5]
