"""The TFLM firmware of one fused model on every core and kernel set, against the AOT firmware.

For each Cortex-M target and each TFLM tree given (reference kernels, CMSIS-NN kernels): generate the
TFLM project, build it against the tree (objects from nlpool's cache), run it under QEMU on the same
inputs as the AOT firmware for that target, and print one Markdown row: arena used and predicted,
flash, stack high-water mark, instructions per inference (QEMU `-icount`, not cycles), and the
largest difference from the AOT firmware's outputs. The AOT rows come first. The AOT firmware runs
`model_int8_fused.tflite` (attention fused into NLPOOL_ATTENTION), TFLM the export's
`model_int8_fused_tflm.tflite` next to it (weighted pooling only) when there is one.

    .venv/bin/python benchmarks/tflm_targets.py out/model_int8_fused.tflite --tree ref=PATH --tree cmsis-nn=PATH [--inputs N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from firmware.aot import generate_project
from firmware.boards import BOARDS
from firmware.run import build_and_run
from firmware.tflm import build_for_target, find_tree, generate_tflm_project, run_on_target
from firmware.tflm.report import max_abs_diff
from memory_planner import plan_tflite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fused", type=Path)
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH of a TFLM tree (repeatable)")
    parser.add_argument("--inputs", type=int, default=4)
    parser.add_argument("--targets", default=",".join(BOARDS))
    args = parser.parse_args()
    trees = [find_tree(spec.split("=", 1)[1]) for spec in args.tree]
    tflm_model = args.fused.with_name(f"{args.fused.stem}_tflm.tflite")
    tflm_model = tflm_model if tflm_model.is_file() else args.fused
    tflm = plan_tflite(tflm_model).tflm
    rng = np.random.default_rng(0)
    print("| firmware | core | arena used (B) | predicted (B) | flash (B) | stack (B) | instructions / inference | max diff vs AOT |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        aot_dir = root / "aot"
        info = generate_project(args.fused, aot_dir, 2 << 20, "cortex-m7")
        inputs = rng.integers(-128, 128, size=(args.inputs, *info.inputs[0].shape), dtype=np.int8)
        for target in args.targets.split(","):
            aot = build_and_run(aot_dir, target, inputs)
            print(f"| AOT (nlpool) | {target} | {aot.arena_bytes:,} | {info.arena_lower_bound:,} | {aot.flash_bytes:,} | "
                  f"{aot.stack_high_water_bytes:,} | {aot.instructions_per_inference / 1e6:.1f} M | - |", flush=True)
            for tree in trees:
                project = generate_tflm_project(tflm_model, root / f"tflm-{target}-{tree.kernels}", target)
                build = build_for_target(project.path, target, tree)
                run = run_on_target(project.path, target, build.elf, inputs)
                diff = max_abs_diff(run.outputs, aot.outputs)
                print(f"| TFLM {run.kernels} | {target} | {run.arena_used_bytes:,} | {tflm.total_bytes_target:,} | "
                      f"{run.flash_bytes:,} | {run.stack_high_water_bytes:,} | {run.instructions_per_inference / 1e6:.1f} M | "
                      f"{diff} |", flush=True)


if __name__ == "__main__":
    main()
