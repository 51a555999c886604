"""The firmware comparisons of the verification chain, as measurements for report.json.

Three comparisons on the same inputs: the board under QEMU against the same C built for the host
(bit-exactness expected), the board against the reference chain (TFLite reference kernels plus the
NumPy golden custom op, computed by the caller with export.host_run: bit-exactness expected), and
the board's dequantised outputs against PyTorch (top-1 agreement and cosine similarity). This module
measures; whether the numbers pass is decided by the caller from the bars the user set.

A project built on CMSIS-NN runs on the board with those kernels while the host build keeps
nlpool's portable ones, so "bit-exact vs host build" there compares the two kernel sets. The board
also runs the portable build on a few of the inputs (`PORTABLE_INPUTS`), for the speed-up CMSIS-NN
brings and a third bit-exactness check, measured in the same run. The board run is also estimated in
cycles and milliseconds (firmware/timing: the instructions QEMU ran, costed with the core's timing model).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firmware.common import ProjectInfo
from firmware.run import HOST, FirmwareRun, build_and_run
from firmware.timing import timing_json, timing_rows

PORTABLE_INPUTS = 10  # inputs the portable board build runs when the project is on CMSIS-NN


@dataclass(frozen=True)
class PortableComparison:
    """The same project on the same board with nlpool's portable kernels: its cost and its agreement."""

    inferences: int
    bitexact_vs_cmsis_nn: bool
    instructions_per_inference: int | None
    flash_bytes: int | None
    stack_high_water_bytes: int | None
    cmsis_nn_instructions: int | None  # the CMSIS-NN build's, on the same board and inputs

    @property
    def cmsis_nn_speedup(self) -> float | None:
        """Portable instructions over CMSIS-NN's (None when either count is missing)."""
        if not self.instructions_per_inference or not self.cmsis_nn_instructions:
            return None
        return round(self.instructions_per_inference / self.cmsis_nn_instructions, 3)

    def to_json(self) -> dict[str, Any]:
        """report.json's `firmware.portable` entry."""
        return {"inferences": self.inferences, "bitexact_vs_cmsis_nn": self.bitexact_vs_cmsis_nn,
                "instructions_per_inference": self.instructions_per_inference, "cmsis_nn_speedup": self.cmsis_nn_speedup,
                "flash_bytes": self.flash_bytes, "stack_high_water_bytes": self.stack_high_water_bytes}


@dataclass(frozen=True)
class FirmwareMeasurement:
    """Both runs of one project, the project they ran, and the comparisons measured from them.

    The host run is kept so later checks on the same inputs (the TFLM host build) compare against
    its outputs instead of building and running the host firmware again. `to_json` is the one place
    these become report.json's `firmware` fields.
    """

    host: FirmwareRun
    board: FirmwareRun
    info: ProjectInfo
    mismatches_vs_host: int
    mismatches_vs_reference: int
    top1_agreement_vs_pytorch: float | None  # None when no PyTorch outputs were given
    cosine_vs_pytorch: float | None
    portable: PortableComparison | None  # only for a project on CMSIS-NN

    @property
    def bitexact_vs_host(self) -> bool:
        return self.mismatches_vs_host == 0

    @property
    def bitexact_vs_reference(self) -> bool:
        return self.mismatches_vs_reference == 0

    @property
    def op_kernels(self) -> list[str] | None:
        """Per op, the kernel that ran on the board (generated, cmsis-nn, portable, folded), as the profiled
        build said; None when the board printed no profile."""
        return None if self.board.profile is None else [op.kernel for op in self.board.profile.ops]

    def kernel_mix(self) -> str:
        """The kernels that ran, counted (`generated x9, cmsis-nn x5, portable x2`), or the build's set."""
        kernels = self.op_kernels
        if not kernels:
            return self.board.kernels
        counts = Counter(k for k in kernels if k != "folded")
        return ", ".join(f"{kernel} x{count}" for kernel, count in counts.most_common())

    @property
    def estimated_cycles(self) -> int | None:
        """Estimated cycles per inference: the measured instructions at the traced ops' cycles per instruction."""
        board = self.board
        if board.timing is None or board.instructions_per_inference is None:
            return None
        return board.timing.cycles_for(board.instructions_per_inference)

    @property
    def instructions_per_mac(self) -> float | None:
        instructions = self.board.instructions_per_inference
        return round(instructions / self.info.macs, 2) if self.info.macs and instructions else None

    def to_json(self) -> dict[str, Any]:
        """report.json's `firmware` fields that measuring makes (the caller adds its verdict)."""
        board = self.board
        return {
            "target": board.target,
            "inferences": board.inferences,
            "bitexact_vs_host": self.bitexact_vs_host,
            "mismatches_vs_host": self.mismatches_vs_host,
            "bitexact_vs_reference": self.bitexact_vs_reference,
            "mismatches_vs_reference": self.mismatches_vs_reference,
            "top1_agreement_vs_pytorch": self.top1_agreement_vs_pytorch,
            "cosine_vs_pytorch": self.cosine_vs_pytorch,
            "arena_bytes": self.info.arena_bytes,
            "arena_lower_bound_bytes": self.info.arena_lower_bound,
            "sram_budget_bytes": self.info.sram_budget,
            "sram_used_bytes": board.sram_used_bytes,
            "stack_high_water_bytes": board.stack_high_water_bytes,
            "flash_bytes": board.flash_bytes,
            "instructions_per_inference": board.instructions_per_inference,
            "macs_per_inference": self.info.macs,
            "instructions_per_mac": self.instructions_per_mac,
            **timing_json(board.timing, self.estimated_cycles),
            "kernels": board.kernels,
            "op_kernels": self.op_kernels,
            "profile": board.profile.to_json(board.timing.clock_mhz if board.timing else None) if board.profile is not None else None,
            "portable": None if self.portable is None else self.portable.to_json(),
        }


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over samples of the cosine similarity of the flattened outputs."""
    a2, b2 = a.reshape(a.shape[0], -1).astype(np.float64), b.reshape(b.shape[0], -1).astype(np.float64)
    den = np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1)
    return float(np.mean(np.sum(a2 * b2, axis=1) / np.maximum(den, 1e-30)))


def measure_firmware(project_dir: str | Path, target: str, inputs: np.ndarray, reference: np.ndarray,
                     pytorch: np.ndarray | None = None, timeout_s: float | None = None,
                     clock_mhz: float | None = None) -> FirmwareMeasurement:
    """Run `project_dir` on the host and on `target`, and compare the outputs.

    `inputs`: (n, *input_shape) samples; `reference`: the reference chain's raw outputs for them,
    (n, *output_shape); `pytorch`: PyTorch's float outputs (n, classes), or None to skip that
    comparison (its fields are then None). The board run is estimated in cycles, its milliseconds at
    `clock_mhz` (None: the core's typical board clock).
    """
    info = ProjectInfo.load(Path(project_dir))
    host = build_and_run(project_dir, HOST, inputs, timeout_s=timeout_s)
    board = build_and_run(project_dir, target, inputs, timeout_s=timeout_s, estimate=True, clock_mhz=clock_mhz)
    out, ref = board.outputs[0], np.asarray(reference).reshape(board.outputs[0].shape)
    portable = None
    if board.kernels == "cmsis-nn":
        portable = _portable_comparison(project_dir, target, inputs[:PORTABLE_INPUTS], board, timeout_s)
    top1 = cosine = None
    if pytorch is not None:
        spec = info.outputs[0]
        deq = out.astype(np.float32) if spec.dtype == "float32" else (out.astype(np.float32) - spec.zero_point) * np.float32(spec.scale)
        torch_out = np.asarray(pytorch, np.float32).reshape(deq.shape)
        flat_fw, flat_pt = deq.reshape(len(deq), -1), torch_out.reshape(len(torch_out), -1)
        top1 = float(np.mean(flat_fw.argmax(axis=1) == flat_pt.argmax(axis=1)))
        cosine = _cosine(deq, torch_out)
    return FirmwareMeasurement(host, board, info, int(np.count_nonzero(out != host.outputs[0])), int(np.count_nonzero(out != ref)),
                               top1, cosine, portable)


def _portable_comparison(project_dir: str | Path, target: str, inputs: np.ndarray, board: FirmwareRun,
                         timeout_s: float | None) -> PortableComparison:
    """The same project on the same board with nlpool's portable kernels: cost and agreement."""
    portable = build_and_run(project_dir, target, inputs, timeout_s=timeout_s, portable=True)
    same = portable.outputs[0]
    return PortableComparison(len(same), bool(np.array_equal(same, board.outputs[0][: len(same)])),
                              portable.instructions_per_inference, portable.flash_bytes, portable.stack_high_water_bytes,
                              board.instructions_per_inference)


def format_firmware_table(measurement: FirmwareMeasurement, passed: bool) -> str:
    """The measurement as the few lines `nlpool export` prints (measured instructions; cycles only as the
    timing model's estimate, named so), headed by the verdict the caller reached."""

    def num(value: int | None, unit: str = "") -> str:
        return "n/a" if value is None else f"{value:,}{unit}"

    def ratio(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    m, board, info = measurement, measurement.board, measurement.info
    verdict = "PASS" if passed else "FAIL"
    rows = [
        ("target", board.target),
        ("inferences", num(board.inferences)),
        ("bit-exact vs host build", f"{m.bitexact_vs_host} ({m.mismatches_vs_host} differ)"),
        ("bit-exact vs reference", f"{m.bitexact_vs_reference} ({m.mismatches_vs_reference} differ)"),
        ("top-1 agreement vs PyTorch", ratio(m.top1_agreement_vs_pytorch, ".1%")),
        ("cosine vs PyTorch", ratio(m.cosine_vs_pytorch, ".4f")),
        ("arena (planner lower bound)", f"{num(info.arena_bytes, ' B')} ({num(info.arena_lower_bound, ' B')})"),
        ("SRAM used / budget", f"{num(board.sram_used_bytes, ' B')} / {num(info.sram_budget, ' B')}"),
        ("stack high-water mark", num(board.stack_high_water_bytes, " B")),
        ("flash", num(board.flash_bytes, " B")),
        ("instructions per inference", num(board.instructions_per_inference)),
        ("instructions per MAC", ratio(m.instructions_per_mac, ".2f")),
        *timing_rows(board.timing, m.estimated_cycles),
        ("kernels that ran", f"{m.kernel_mix()} (build: {board.kernels})"),
    ]
    portable = m.portable
    if portable is not None:
        rows.append(("portable kernels (same board)",
                     f"{num(portable.instructions_per_inference)} instructions per inference, "
                     f"{portable.cmsis_nn_speedup}x this build's; bit-exact {portable.bitexact_vs_cmsis_nn} "
                     f"on {portable.inferences} inputs"))
    width = max(len(k) for k, _ in rows)
    lines = [f"firmware on {board.target} under QEMU: {verdict}"] + [f"  {k:<{width}}  {v}" for k, v in rows]
    if board.profile is not None:
        lines.append(board.profile.format_table("where the instructions go", clock_mhz=board.timing.clock_mhz if board.timing else None))
    return "\n".join(lines)
