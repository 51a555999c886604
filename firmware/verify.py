"""The firmware comparisons of the verification chain, as one report dict for report.json.

Three comparisons on the same inputs: the board under QEMU against the same C built for
the host (must be bit-exact), the board against the reference chain (TFLite reference kernels plus
the NumPy golden custom op, computed by the caller with export.host_run: must be bit-exact), and the
board's dequantised outputs against PyTorch (top-1 agreement and cosine similarity).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from firmware.aot.generate import ProjectInfo
from firmware.run import HOST, build_and_run

MIN_TOP1_AGREEMENT = 0.99
MIN_COSINE = 0.99


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over samples of the cosine similarity of the flattened outputs."""
    a2, b2 = a.reshape(a.shape[0], -1).astype(np.float64), b.reshape(b.shape[0], -1).astype(np.float64)
    den = np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1)
    return float(np.mean(np.sum(a2 * b2, axis=1) / np.maximum(den, 1e-30)))


def firmware_report(project_dir: str | Path, target: str, inputs: np.ndarray, reference: np.ndarray,
                    pytorch: np.ndarray | None = None, timeout_s: float | None = None) -> dict[str, Any]:
    """Run `project_dir` on the host and on `target`, compare, and return the `firmware` report.

    `inputs`: (n, *input_shape) int8 samples; `reference`: the reference chain's raw int8 outputs
    for them, (n, *output_shape); `pytorch`: PyTorch's float outputs (n, classes), or None to skip
    that comparison. `passed` is False when any comparison fails (the CLI then exits non-zero).
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
    }
    passed = report["bitexact_vs_host"] and report["bitexact_vs_reference"]
    if pytorch is not None:
        spec = info.outputs[0]
        deq = (out.astype(np.float32) - spec.zero_point) * np.float32(spec.scale)
        torch_out = np.asarray(pytorch, np.float32).reshape(deq.shape)
        flat_fw, flat_pt = deq.reshape(len(deq), -1), torch_out.reshape(len(torch_out), -1)
        top1 = float(np.mean(flat_fw.argmax(axis=1) == flat_pt.argmax(axis=1)))
        cosine = _cosine(deq, torch_out)
        report["top1_agreement_vs_pytorch"] = top1
        report["cosine_vs_pytorch"] = cosine
        passed = passed and top1 >= MIN_TOP1_AGREEMENT and cosine >= MIN_COSINE
    report["passed"] = bool(passed)
    return report


def format_firmware_table(report: dict[str, Any]) -> str:
    """The report as the few lines `nlpool export` prints (instructions, never cycles)."""

    def num(key: str, unit: str = "") -> str:
        value = report.get(key)
        return "n/a" if value is None else f"{value:,}{unit}"

    def ratio(key: str, fmt: str) -> str:
        value = report.get(key)
        return "n/a" if value is None else format(value, fmt)

    verdict = "PASS" if report.get("passed") else "FAIL"
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
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join([f"firmware on {report['target']} under QEMU: {verdict}"] + [f"  {k:<{width}}  {v}" for k, v in rows])
