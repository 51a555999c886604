"""The planner's prediction of NLPOOL_ATTENTION's persistent bytes in TFLM is the kernel's own layout.

The TFLM kernel's persistent memory is defined once, in firmware/tflm/templates/nlpool_attention_op_data.h
(OpData and the arrays buffer's Layout); memory_planner.tflm_model.attention_kernel_data predicts it
with named constants. This test compiles the planner's numbers as static_asserts against that header
with the Cortex-M compiler and every board's flags (the 32-bit ABI the arena is predicted for), so a
field added to OpData or an array added to the layout fails here, not as a wrong arena on a device.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from firmware.boards import BOARDS
from memory_planner.tflm_model import (
    ATTENTION_EXP_TABLE_WORDS,
    ATTENTION_WORDS_PER_COLUMN,
    TARGET_ATTENTION_OP_DATA_BYTES,
    attention_kernel_data,
)
from nlpool.core.custom_ops import MAX_STEPS, STEP_FIELDS

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "firmware" / "tflm" / "templates"
KERNELS = ROOT / "firmware" / "kernels"
CXX = "arm-none-eabi-g++"

pytestmark = pytest.mark.skipif(shutil.which(CXX) is None, reason=f"{CXX} is needed")

# (width, positional table, q + k + v steps): the corners and the default model's block (E 56, 4 steps).
CASES = [(1, False, 0), (1, True, 3 * MAX_STEPS), (56, True, 4), (56, False, 4), (64, True, 0), (255, True, 7)]


def probe(cases: list[tuple[int, bool, int]], skew_bytes: int = 0) -> str:
    """A translation unit that compiles only if the planner's numbers (each off by `skew_bytes`) are the header's."""
    lines = ['#include "nlpool_attention_op_data.h"',
             f'static_assert(nlpool::kExpTableSize == {ATTENTION_EXP_TABLE_WORDS}, "exp table words");',
             f'static_assert(nlpool::kWordsPerColumn == {ATTENTION_WORDS_PER_COLUMN}, "words per column");',
             f'static_assert(NLPOOL_STEP_FIELDS == {STEP_FIELDS}, "step fields");']
    for width, pos, steps in cases:
        data, arrays = attention_kernel_data(width, pos, steps)
        lines.append(f'static_assert(sizeof(nlpool::OpData) == {data + skew_bytes}, "sizeof(OpData)");')
        lines.append(f'static_assert(nlpool::Layout({width}, {int(pos)}, {steps}).bytes == {arrays + skew_bytes}, '
                     f'"arrays of width {width}, pos {int(pos)}, {steps} steps");')
    return "\n".join(lines) + "\n"


def compile_probe(tmp_path: Path, text: str, cpu_flags: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "probe.cc"
    source.write_text(text)
    return subprocess.run([CXX, "-std=c++17", *cpu_flags.split(), "-fsyntax-only", f"-I{TEMPLATES}", f"-I{KERNELS}", str(source)],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("target", sorted({board.cpu_flags: name for name, board in BOARDS.items()}.values()))
def test_the_planners_attention_kernel_data_is_the_kernels_layout_on_the_target(tmp_path: Path, target: str) -> None:
    assert {attention_kernel_data(*case)[0] for case in CASES} == {TARGET_ATTENTION_OP_DATA_BYTES}
    result = compile_probe(tmp_path, probe(CASES), BOARDS[target].cpu_flags)
    assert result.returncode == 0, result.stderr


def test_a_planner_number_off_by_one_word_fails_to_compile(tmp_path: Path) -> None:
    """The probe can fail: the planner's numbers one word off are refused, both of them."""
    result = compile_probe(tmp_path, probe(CASES[:1], skew_bytes=4), BOARDS["cortex-m7"].cpu_flags)
    assert result.returncode != 0 and "sizeof(OpData)" in result.stderr and "arrays of width" in result.stderr
