"""Arm's CMSIS-NN as the AOT firmware's kernel set on Cortex-M, from the user's CMSIS-NN tree.

The tree comes from `--cmsis-nn-dir` or `NLPOOL_CMSIS_NN_DIR`: a CMSIS-NN checkout (Include/ and
Source/), or a TFLM tree or tflite-micro checkout that carries one. nlpool never ships CMSIS-NN: the
generated project's Makefile compiles the tree's sources for the target and links only what the
model's wrappers call.

CMSIS-NN's convolution, depthwise, fully-connected and average-pool kernels want a scratch buffer
whose size depends on the core (DSP on Cortex-M4/M7/M33, MVE on Cortex-M55, plain C on the
Cortex-M3/M0+, which lack the DSP extension). `probe_scratch` asks CMSIS-NN itself: it compiles the
model's wrappers' `nl_cmsis_<op>_scratch` functions with the tree's `*_get_buffer_size*` sources
into a small host program and runs it (the generic `*_get_buffer_size`, compiled on the host without
DSP or MVE, gives the plain-C size). The project serves every core, so each op gets the largest
of the three sizes, planned in the arena by memory_planner;
a prediction for one core (TFLM's arena with its CMSIS-NN kernels, built for that core) takes that
core's size (`BufferSizes.on`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from firmware.boards import BOARDS
from nlpool.core.checks import input_folder
from nlpool.core.errors import NlpoolError

CMSIS_NN_DIR_ENV = "NLPOOL_CMSIS_NN_DIR"
CMSIS_NN_HINT = ("get Arm's CMSIS-NN (git clone https://github.com/ARM-software/CMSIS-NN, or the third_party/cmsis_nn "
                 "folder of a TFLM tree made with OPTIMIZED_KERNEL_DIR=cmsis_nn) and pass --cmsis-nn-dir <tree> or set "
                 f"{CMSIS_NN_DIR_ENV} (docs/firmware.md, CMSIS-NN kernels)")
# Where a CMSIS-NN tree sits inside the trees that carry one: a create_tflm_tree.py tree, a tflite-micro checkout.
_NESTED = ("third_party/cmsis_nn", "tensorflow/lite/micro/tools/make/downloads/cmsis_nn")
_PROBE_COMPILER = "gcc"
# The cores whose CMSIS-NN build takes the MVE (Helium) paths, and those without the DSP extension
# (CMSIS-NN's plain C paths); the others take the DSP paths. From the board table (Board.simd).
MVE_TARGETS = frozenset(target for target, board in BOARDS.items() if board.simd == "mve")
PLAIN_TARGETS = frozenset(target for target, board in BOARDS.items() if not board.simd)


class BufferSizes(NamedTuple):
    """CMSIS-NN's scratch bytes for one op on DSP cores (Cortex-M4/M7/M33), MVE cores (Cortex-M55)
    and cores without DSP (Cortex-M3/M0+: CMSIS-NN's plain C)."""

    dsp: int
    mve: int
    plain: int = 0

    def on(self, target: str | None = None) -> int:
        """The size a build for `target` asks for; None (a project that serves every core): the largest."""
        if target is None:
            return max(self.dsp, self.mve, self.plain)
        if target in MVE_TARGETS:
            return self.mve
        return self.plain if target in PLAIN_TARGETS else self.dsp


@dataclass(frozen=True)
class CmsisNn:
    """A CMSIS-NN source tree: `root` holds Include/arm_nnfunctions.h and Source/."""

    root: Path

    @property
    def include(self) -> Path:
        return self.root / "Include"

    def buffer_size_sources(self) -> list[Path]:
        """The int8 `*_get_buffer_size*` sources: plain C arithmetic, compiled on the host by the probe."""
        return sorted(self.root.glob("Source/*/*get_buffer_sizes_s8.c"))


def find_cmsis_nn(path: str | Path | None = None) -> CmsisNn | None:
    """The tree at `path`, else at $NLPOOL_CMSIS_NN_DIR, else None; NlpoolError if it holds no CMSIS-NN."""
    given = path if path is not None else os.environ.get(CMSIS_NN_DIR_ENV) or None
    if given is None:
        return None
    where = "--cmsis-nn-dir" if path is not None else CMSIS_NN_DIR_ENV
    root = input_folder(where, given, CMSIS_NN_HINT)
    for candidate in (root, *(root / nested for nested in _NESTED)):
        if (candidate / "Include" / "arm_nnfunctions.h").is_file() and (candidate / "Source").is_dir():
            return CmsisNn(candidate.resolve())
    raise NlpoolError(f"{where} {root} holds no CMSIS-NN tree (no Include/arm_nnfunctions.h with Source/ beside it, "
                      f"nor under {' or '.join(_NESTED)}): {CMSIS_NN_HINT}")


def probe_scratch(tree: CmsisNn, project: Path, probe_c: str, wrappers: list[str]) -> dict[int, BufferSizes]:
    """Run the scratch probe: `probe_c` prints `<op position> <dsp bytes> <mve bytes> <plain-C bytes>` per op.

    `project` is a folder with the generated kernels header and the wrappers' headers under
    kernels/; `wrappers` are the wrapper sources there, compiled with NL_CMSIS_SCRATCH_PROBE (only
    their size functions). Returns op position -> its DSP, MVE and plain-C sizes.
    """
    if shutil.which(_PROBE_COMPILER) is None:
        raise NlpoolError(f"'{_PROBE_COMPILER}' is not on PATH, needed to ask CMSIS-NN for its buffer sizes: "
                          "install it with: sudo apt-get install -y gcc")
    sources = tree.buffer_size_sources()
    if not sources:
        raise NlpoolError(f"the CMSIS-NN tree {tree.root} has no Source/*/*get_buffer_sizes_s8.c: {CMSIS_NN_HINT}")
    with tempfile.TemporaryDirectory(prefix="nlpool-cmsis-probe-") as tmp:
        exe = Path(tmp) / "probe"
        (Path(tmp) / "probe.c").write_text(probe_c)
        cmd = [_PROBE_COMPILER, "-std=c99", "-O0", "-w", "-DNL_CMSIS_SCRATCH_PROBE",
               f"-I{project}", f"-I{project / 'kernels'}", f"-I{project / 'kernels' / 'cmsis_nn'}", f"-I{tree.include}",
               str(Path(tmp) / "probe.c"), *(str(project / "kernels" / w) for w in wrappers), *map(str, sources),
               "-o", str(exe)]
        built = subprocess.run(cmd, capture_output=True, text=True)
        if built.returncode != 0:
            first = next((ln for ln in built.stderr.splitlines() if "error" in ln), built.stderr.strip()[-200:])
            raise NlpoolError(f"cannot build the CMSIS-NN buffer-size probe against {tree.root} ({first.strip()}): "
                              "check that the tree is a complete CMSIS-NN checkout")
        ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    sizes = {}
    for line in ran.stdout.splitlines():
        position, dsp, mve, plain = (int(v) for v in line.split())
        if min(dsp, mve, plain) < 0:
            raise NlpoolError(f"CMSIS-NN in {tree.root} reports no valid buffer size for op {position}: "
                              "the op's parameters are outside what this CMSIS-NN version supports")
        sizes[position] = BufferSizes(dsp, mve, plain)
    return sizes
