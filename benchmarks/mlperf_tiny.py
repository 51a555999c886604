"""MLPerf Tiny models (or any folder of int8 .tflite files) through `nlpool export MODEL.tflite` on every core.

For each model and Cortex-M target, two exports on the same seeded inputs: one with the CMSIS-NN trees
(AOT firmware on CMSIS-NN, which also runs its portable build on the same board, and TFLM with
CMSIS-NN kernels) and one with the reference TFLM tree (AOT portable, TFLM reference kernels). One
Markdown row per firmware (for the AOT firmware, the kernels its ops ran: nlpool's generated
per-layer kernels on DSP cores, CMSIS-NN, portable C): arena used and predicted (TFLM) or planned
(AOT), flash, stack high-water mark, instructions per inference (QEMU `-icount`: instructions, never
cycles), the estimated cycles and milliseconds at the core's typical board clock (firmware/timing's
model: an estimate, not a measurement) and the largest difference from the host reference. The published figures in
../shared/data/mlperf_tiny/README.md are measured cycles on real boards: on a Cortex-M4, cycles >=
instructions, so an instruction count above a published M4 cycle count proves that runtime faster.

    .venv/bin/python benchmarks/mlperf_tiny.py ../shared/data/mlperf_tiny --tflm-ref TREE --tflm-cmsis-nn TREE \
        [--targets cortex-m4,cortex-m7,cortex-m55,cortex-m33,cortex-m3] [--inputs 10]
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from firmware.boards import BOARDS
from nlpool.core.units import parse_size
from nlpool.flow.export_flow import ExportOptions
from nlpool.flow.tflite_flow import export_tflite


def _row(model: str, target: str, firmware: str, arena: int | None, predicted: int | None, flash: int | None, stack: int | None,
         instructions: int | None, agreement: str, section: dict[str, Any] | None = None) -> str:
    def num(value: int | None) -> str:
        return "-" if value is None else f"{value:,}"

    cycles = (section or {}).get("estimated_cycles_per_inference")
    ms = f"{section['estimated_ms_per_inference']:,.1f} @ {section['clock_mhz']:g} MHz" if section and cycles else "-"
    cells = [model, target, firmware, num(arena), num(predicted), num(flash), num(stack), num(instructions), num(cycles), ms, agreement]
    return "| " + " | ".join(cells) + " |"


def _export(model: Path, target: str, sram: int, inputs: int, out: Path, cmsis_nn: Path | None, tflm: Path) -> dict[str, Any]:
    options = ExportOptions(target, sram, out, firmware_inputs=inputs, cmsis_nn_dir=cmsis_nn, tflm_dir=tflm)
    outcome = export_tflite(model, options, echo=lambda _line: None)
    return outcome.report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--tflm-ref", type=Path, required=True, help="TFLM tree with reference kernels")
    parser.add_argument("--tflm-cmsis-nn", type=Path, required=True,
                        help="TFLM tree with CMSIS-NN kernels (its CMSIS-NN serves the AOT firmware)")
    # Every board the MLPerf models fit (the micro:bit's 16 KiB of RAM holds none of them).
    parser.add_argument("--targets", default=",".join(t for t, board in BOARDS.items() if board.sram_length >= 1 << 20))
    parser.add_argument("--inputs", type=int, default=10)
    parser.add_argument("--sram", default="1m")
    args = parser.parse_args()
    models = sorted(args.folder.glob("*.tflite"))
    cmsis_nn = args.tflm_cmsis_nn / "third_party" / "cmsis_nn"
    print("| model | core | firmware | arena (B) | TFLM predicted (B) | flash (B) | stack (B) | instructions / inference "
          "| est. cycles / inference | est. ms | outputs |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            for target in args.targets.split(","):
                sram = min(parse_size(args.sram), BOARDS[target].sram_length)
                fast = _export(model, target, sram, args.inputs, Path(tmp) / "fast", cmsis_nn, args.tflm_cmsis_nn)
                ref = _export(model, target, sram, args.inputs, Path(tmp) / "ref", None, args.tflm_ref)
                name = model.stem
                for report, label in ((ref, "no CMSIS-NN tree"), (fast, "CMSIS-NN tree")):
                    f = report["firmware"]
                    if "instructions_per_inference" not in f:
                        print(_row(name, target, f"AOT ({label}): {f.get('error') or f.get('run')}", None, None, None, None, None, "-"))
                        continue
                    agreement = ("bit-exact vs reference" if f["bitexact_vs_reference"]
                                 else f"{f['mismatches_vs_reference']} elements differ from the reference")
                    ran = Counter(k for k in f["op_kernels"] or [] if k != "folded")
                    kernels = ", ".join(f"{kernel} x{count}" for kernel, count in ran.most_common())
                    print(_row(name, target, f"AOT ({label}): {kernels}", f["arena_bytes"], None, f["flash_bytes"],
                               f["stack_high_water_bytes"], f["instructions_per_inference"], agreement, f))
                for report in (ref, fast):
                    t = report["tflm"]
                    if not t.get("target_verified"):
                        print(_row(name, target, f"TFLM: {t.get('run') or t.get('error')}", None, None, None, None, None, "-"))
                        continue
                    against = "AOT" if "max_abs_diff_vs_aot" in t else "reference"
                    diff = t.get("max_abs_diff_vs_aot", t.get("max_abs_diff_vs_reference"))
                    agreement = f"bit-exact vs {against}" if diff == 0 else f"max diff {diff} vs {against}"
                    print(_row(name, target, f"TFLM {t['kernels']}", t["target_arena_used_bytes"], t["predicted_arena_bytes"],
                               t["flash_bytes"], t["stack_high_water_bytes"], t["instructions_per_inference"], agreement, t))


if __name__ == "__main__":
    main()
