"""The firmware comparisons of the verification chain, as measurements for report.json.

Three comparisons on the same inputs: the board under QEMU against the same C built for the host
(bit-exactness expected), the board against the reference chain (TFLite reference kernels plus the
NumPy golden custom op, computed by the caller with export.host_run: bit-exactness expected), and
the board's dequantised outputs against PyTorch (top-1 agreement and cosine similarity). This module
measures; whether the numbers pass is decided by the caller from the bars the user set.

A project built on CMSIS-NN runs on the board with those kernels while the host build keeps
nlpool's portable ones, so "bit-exact vs host build" there compares the two kernel sets. The board
also runs the portable build on a few of the inputs (`PORTABLE_INPUTS`), for the speed-up CMSIS-NN
brings and a third bit-exactness check, measured in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firmware.common import ProjectInfo, format_profile
from firmware.run import HOST, FirmwareRun, build_and_run

PORTABLE_INPUTS = 10  # inputs the portable board build runs when the project is on CMSIS-NN


@dataclass(frozen=True)
class FirmwareMeasurement:
    """Both runs of one project and the `firmware` report entry measured from them.

    The host run is kept so later checks on the same inputs (the TFLM host build) compare against
    its outputs instead of building and running the host firmware again.
    """

    host: FirmwareRun
    board: FirmwareRun
    report: dict[str, Any]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over samples of the cosine similarity of the flattened outputs."""
    a2, b2 = a.reshape(a.shape[0], -1).astype(np.float64), b.reshape(b.shape[0], -1).astype(np.float64)
    den = np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1)
    return float(np.mean(np.sum(a2 * b2, axis=1) / np.maximum(den, 1e-30)))


def measure_firmware(project_dir: str | Path, target: str, inputs: np.ndarray, reference: np.ndarray,
                     pytorch: np.ndarray | None = None, timeout_s: float | None = None) -> FirmwareMeasurement:
    """Run `project_dir` on the host and on `target`, and compare the outputs.

    `inputs`: (n, *input_shape) int8 samples; `reference`: the reference chain's raw int8 outputs
    for them, (n, *output_shape); `pytorch`: PyTorch's float outputs (n, classes), or None to skip
    that comparison (its report fields are then None).
    """
    info = ProjectInfo.load(Path(project_dir))
    host = build_and_run(project_dir, HOST, inputs, timeout_s=timeout_s)
    board = build_and_run(project_dir, target, inputs, timeout_s=timeout_s)
    out, ref = board.outputs[0], np.asarray(reference).reshape(board.outputs[0].shape)
    report: dict[str, Any] = {
        "target": target,
        "inferences": board.inferences,
        "bitexact_vs_host": bool(np.array_equal(out, host.outputs[0])),
        "mismatches_vs_host": int(np.count_nonzero(out != host.outputs[0])),
        "bitexact_vs_reference": bool(np.array_equal(out, ref)),
        "mismatches_vs_reference": int(np.count_nonzero(out != ref)),
        "top1_agreement_vs_pytorch": None,
        "cosine_vs_pytorch": None,
        "arena_bytes": info.arena_bytes,
        "arena_lower_bound_bytes": info.arena_lower_bound,
        "sram_budget_bytes": info.sram_budget,
        "sram_used_bytes": board.sram_used_bytes,
        "stack_high_water_bytes": board.stack_high_water_bytes,
        "flash_bytes": board.flash_bytes,
        "instructions_per_inference": board.instructions_per_inference,
        "macs_per_inference": info.macs,
        "instructions_per_mac": (round(board.instructions_per_inference / info.macs, 2)
                                 if info.macs and board.instructions_per_inference else None),
        "kernels": board.kernels,
        "profile": board.profile.to_json() if board.profile is not None else None,
        "portable": None,
    }
    if board.kernels == "cmsis-nn":
        report["portable"] = _portable_report(project_dir, target, inputs[:PORTABLE_INPUTS], board, timeout_s)
    if pytorch is not None:
        spec = info.outputs[0]
        deq = (out.astype(np.float32) - spec.zero_point) * np.float32(spec.scale)
        torch_out = np.asarray(pytorch, np.float32).reshape(deq.shape)
        flat_fw, flat_pt = deq.reshape(len(deq), -1), torch_out.reshape(len(torch_out), -1)
        report["top1_agreement_vs_pytorch"] = float(np.mean(flat_fw.argmax(axis=1) == flat_pt.argmax(axis=1)))
        report["cosine_vs_pytorch"] = _cosine(deq, torch_out)
    return FirmwareMeasurement(host, board, report)


def _portable_report(project_dir: str | Path, target: str, inputs: np.ndarray, board: FirmwareRun,
                     timeout_s: float | None) -> dict[str, Any]:
    """The same project on the same board with nlpool's portable kernels: cost and agreement."""
    portable = build_and_run(project_dir, target, inputs, timeout_s=timeout_s, portable=True)
    same = portable.outputs[0]
    n = len(same)
    instructions = portable.instructions_per_inference
    return {
        "inferences": n,
        "bitexact_vs_cmsis_nn": bool(np.array_equal(same, board.outputs[0][:n])),
        "instructions_per_inference": instructions,
        "cmsis_nn_speedup": (round(instructions / board.instructions_per_inference, 3)
                             if instructions and board.instructions_per_inference else None),
        "flash_bytes": portable.flash_bytes,
        "stack_high_water_bytes": portable.stack_high_water_bytes,
    }


def format_firmware_table(report: dict[str, Any], passed: bool) -> str:
    """The report as the few lines `nlpool export` prints (instructions, never cycles), headed by the
    verdict the caller reached."""

    def num(key: str, unit: str = "") -> str:
        value = report.get(key)
        return "n/a" if value is None else f"{value:,}{unit}"

    def ratio(key: str, fmt: str) -> str:
        value = report.get(key)
        return "n/a" if value is None else format(value, fmt)

    verdict = "PASS" if passed else "FAIL"
    rows = [
        ("target", str(report["target"])),
        ("inferences", num("inferences")),
        ("bit-exact vs host build", f"{report['bitexact_vs_host']} ({report['mismatches_vs_host']} differ)"),
        ("bit-exact vs reference", f"{report['bitexact_vs_reference']} ({report['mismatches_vs_reference']} differ)"),
        ("top-1 agreement vs PyTorch", ratio("top1_agreement_vs_pytorch", ".1%")),
        ("cosine vs PyTorch", ratio("cosine_vs_pytorch", ".4f")),
        ("arena (planner lower bound)", f"{num('arena_bytes', ' B')} ({num('arena_lower_bound_bytes', ' B')})"),
        ("SRAM used / budget", f"{num('sram_used_bytes', ' B')} / {num('sram_budget_bytes', ' B')}"),
        ("stack high-water mark", num("stack_high_water_bytes", " B")),
        ("flash", num("flash_bytes", " B")),
        ("instructions per inference", num("instructions_per_inference")),
        ("instructions per MAC", ratio("instructions_per_mac", ".2f")),
        ("kernels", str(report.get("kernels", "portable"))),
    ]
    portable = report.get("portable")
    if portable:
        rows.append(("portable kernels (same board)",
                     f"{portable['instructions_per_inference']:,} instructions per inference, "
                     f"{portable['cmsis_nn_speedup']}x CMSIS-NN's; bit-exact {portable['bitexact_vs_cmsis_nn']} "
                     f"on {portable['inferences']} inputs"))
    width = max(len(k) for k, _ in rows)
    lines = [f"firmware on {report['target']} under QEMU: {verdict}"] + [f"  {k:<{width}}  {v}" for k, v in rows]
    if report.get("profile"):
        lines.append(format_profile(report["profile"], "where the instructions go"))
    return "\n".join(lines)
