"""AOT firmware vs TFLM on Cortex-M7: arena, flash and instructions per inference, measured and tabulated.

For each model the export runs as `nlpool export --target cortex-m7 --sram 512k` runs it (the same
flow, with the PyTorch-agreement bars off): fold, ONNX, onnx2tf int8, fusion, fidelity, memory plan, AOT
firmware built and run under QEMU (`-icount`: instructions, not cycles), and, with NLPOOL_TFLM_DIR
set, the TFLM project built against that upstream TFLM tree and run on the target (its real arena).
On the same fused .tflite, the `tflite_micro` wheel (upstream TFLM's 64-bit host interpreter) gives
TFLM's host arena when it can run the model (it has no `NLPOOL_WEIGHTED_POOL` kernel). Prints one
Markdown table.

    .venv/bin/python benchmarks/firmware_table.py [--firmware-inputs N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from memory_planner import measure_tflm, plan_tflite
from nlpool.checkpoint import SHIPPED_WEIGHTS, open_checkpoint
from nlpool.core.custom_ops import WEIGHTED_POOL_OP_NAME
from nlpool.flow.export_flow import ExportOptions, ModelToExport, export_model
from nlpool.models import DEFAULT_PRESET, build_model, preset_config

TARGET = "cortex-m7"
SRAM_BYTES = 512 * 1024
SEED = 0
CALIB_SAMPLES = 200  # as `nlpool export` by default

# label -> model flags (as on the command line); the default preset loads the shipped weights.
MODELS: dict[str, dict[str, Any]] = {
    "default (MobileNetV2-0.35x, nlp, s1=2, 96 px, shipped weights)": {},
    "MobileNetV2-0.35x, strided, s1=1, 96 px (random weights)": {"pool": "strided", "s1": 1},
    "ResNet18-0.25x, nlp, s1=1, 32 px (random weights)": {"arch": "resnet18", "width": 0.25, "s1": 1, "input_size": 32},
}


def export(flags: dict[str, Any], out_dir: Path, firmware_inputs: int) -> dict[str, Any]:
    """Run the export for one model into `out_dir`; returns report.json's dict plus the failures' messages.

    A failed check (a TFLM host build that differs or fails, say) becomes a table entry instead of
    ending the benchmark: the flow records it and writes the rest.
    """
    torch.manual_seed(SEED)  # random-weight models: instruction counts depend a little on the data
    cfg = preset_config(DEFAULT_PRESET).replace(**flags).validated()
    trained = cfg == preset_config(DEFAULT_PRESET)  # the default preset exports its shipped weights
    model, weights = (open_checkpoint(SHIPPED_WEIGHTS).model, "shipped weights") if trained else (build_model(cfg).eval(), "random")
    options = ExportOptions(target=TARGET, sram_bytes=SRAM_BYTES, out_dir=out_dir, calib_samples=CALIB_SAMPLES,
                            firmware_inputs=firmware_inputs, min_top1=0.0, min_cosine=-1.0)
    outcome = export_model(ModelToExport.from_config(model, cfg, weights, trained=trained), options)
    return {**outcome.report, "failures": [failure.message for failure in outcome.failures]}


def measure(label: str, flags: dict[str, Any], out_dir: Path, firmware_inputs: int) -> dict[str, Any]:
    """One table row's numbers: the export's report plus the tflite_micro wheel's arena."""
    report = export(flags, out_dir, firmware_inputs)
    fused = out_dir / "model_int8_fused.tflite"
    ops = report["tflite_int8_fused"]["ops"]
    predicted = plan_tflite(fused).tflm
    wheel = None if WEIGHTED_POOL_OP_NAME in ops else measure_tflm(fused)
    return {"label": label, "ops": sum(ops.values()), "firmware": report["firmware"], "tflm": report.get("tflm", {}),
            "wheel": wheel, "predicted": predicted, "failures": report["failures"]}


def _b(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def format_row(r: dict[str, Any]) -> str:
    fw = r["firmware"]
    arena, lower = fw["arena_bytes"], fw["arena_lower_bound_bytes"]
    pred = r["predicted"]
    target_used = r["tflm"].get("target_arena_used_bytes")
    target = _b(target_used) if target_used else "not run (see below)"
    if r["wheel"] is not None:
        wheel = f"{r['wheel']['total']:,} (head {r['wheel']['head']:,} + tail {r['wheel']['tail']:,})"
        ratio = f"{arena / r['wheel']['total']:.3f} (wheel)"
    else:
        wheel = "n/a (custom op)"
        ratio = f"{arena / target_used:.3f} (target)" if target_used else "n/a"
    instructions = fw["instructions_per_inference"]
    return (
        f"| {r['label']} | {r['ops']} | {fw['macs_per_inference'] / 1e6:.2f} M | {arena:,} | {lower:,} | {arena / lower:.3f}"
        f" | {wheel} | {target} | {pred.total_bytes_target:,} (head {pred.head_bytes:,} + 32-bit tail {pred.tail_bytes_target:,})"
        f" | {ratio} | {_b(fw['flash_bytes'])} | {instructions / 1e6:.2f} M | {instructions / fw['macs_per_inference']:.2f} |"
    )


HEADER = (
    "| model | ops | MACs | AOT arena (B) | planner lower bound (B) | AOT / lower bound"
    " | TFLM arena, real: tflite_micro wheel, 64-bit host (B) | TFLM arena, real: upstream TFLM on the target (QEMU, B)"
    " | TFLM arena on the target, predicted by the planner (B) | AOT / TFLM real | flash (B)"
    " | instructions / inference (cortex-m7, QEMU -icount)"
    " | instructions / MAC |\n" + "| --- " * 13 + "|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--firmware-inputs", type=int, default=20, help="inputs run on QEMU per model (default 20)")
    parser.add_argument("--keep", type=Path, help="keep each export in DIR/<n> instead of a temporary folder")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="nlpool-fwtable-") as tmp:
        root = args.keep or Path(tmp)
        for number, (label, flags) in enumerate(MODELS.items()):
            print(f"== {label}", file=sys.stderr)
            rows.append(measure(label, flags, root / str(number), args.firmware_inputs))
    print(HEADER)
    for r in rows:
        print(format_row(r))
    for r in rows:
        fw = r["firmware"]
        print(f"\n{r['label']}: AOT firmware on {fw['inferences']} inputs, bit-exact vs host build {fw['bitexact_vs_host']},"
              f" vs reference {fw['bitexact_vs_reference']}; SRAM used {fw['sram_used_bytes']:,} B"
              + (f"; TFLM ({r['tflm']['kernels']}) on the target: max |diff| vs AOT {r['tflm']['max_abs_diff_vs_aot']}"
                 if r["tflm"].get("target_verified") else f"; TFLM on the target: {r['tflm'].get('run', r['tflm'].get('error'))}")
              + "".join(f"; FAILED: {message}" for message in r["failures"]))


if __name__ == "__main__":
    main()
