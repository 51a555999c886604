"""The AOT and TFLM firmwares of one fused model on every core and kernel set.

For each Cortex-M target: the AOT firmware without a CMSIS-NN tree (nlpool's generated kernels where
they need no scratch, its portable kernels elsewhere) and, given a CMSIS-NN tree (`--cmsis-nn`,
default $NLPOOL_CMSIS_NN_DIR), with it (generated kernels, CMSIS-NN, portable); then for each TFLM tree given (reference
kernels, CMSIS-NN kernels) the TFLM project built against it (objects from nlpool's cache). All run
under QEMU on the same inputs; one Markdown row each: arena used and predicted, flash, stack
high-water mark, instructions per inference and per MAC (QEMU `-icount`, not cycles), and the
largest difference from the first AOT firmware's outputs. Both runtimes run
`model_int8_fused.tflite` (both custom ops, TFLM through nlpool's kernels); given the export's unfused
`model_int8.tflite` beside it, TFLM also runs that model with only the weighted poolings fused
("stock attention": each attention block as TFLM's own ~27 builtin ops), what a TFLM user without
nlpool's attention kernel gets.

    .venv/bin/python benchmarks/tflm_targets.py out/model_int8_fused.tflite --tree ref=PATH --tree cmsis-nn=PATH \
        [--cmsis-nn PATH] [--inputs N] [--no-stock]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from export import fuse_file
from firmware.aot import find_cmsis_nn, generate_project
from firmware.boards import BOARDS
from firmware.run import build_and_run
from firmware.tflm import build_for_target, find_tree, generate_tflm_project, max_abs_diff, run_on_target, tflm_plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fused", type=Path)
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH of a TFLM tree (repeatable)")
    parser.add_argument("--inputs", type=int, default=4)
    parser.add_argument("--targets", default=",".join(BOARDS))
    parser.add_argument("--cmsis-nn", type=Path, default=None, help="CMSIS-NN tree for the AOT firmware")
    parser.add_argument("--no-stock", action="store_true", help="skip TFLM with its own attention ops")
    args = parser.parse_args()
    trees = [find_tree(spec.split("=", 1)[1]) for spec in args.tree]
    cmsis_nn = find_cmsis_nn(args.cmsis_nn)
    unfused = args.fused.with_name("model_int8.tflite")
    rng = np.random.default_rng(0)
    print("| firmware | core | arena used (B) | predicted (B) | flash (B) | stack (B) | instructions / inference "
          "| per MAC | max diff vs AOT without CMSIS-NN |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        projects = {"AOT, no CMSIS-NN tree": generate_project(args.fused, root / "aot", 2 << 20, "cortex-m7")}
        if cmsis_nn is not None:
            projects["AOT + CMSIS-NN"] = generate_project(args.fused, root / "aot-cmsis-nn", 2 << 20, "cortex-m7", cmsis_nn=cmsis_nn)
        tflm_models = {"nlpool ops": args.fused}
        if unfused.is_file() and not args.no_stock:
            tflm_models["stock attention"] = root / "model_int8_pools_fused.tflite"
            fuse_file(unfused, tflm_models["stock attention"])
        macs = projects["AOT, no CMSIS-NN tree"].macs
        inputs = rng.integers(-128, 128, size=(args.inputs, *projects["AOT, no CMSIS-NN tree"].inputs[0].shape), dtype=np.int8)
        for target in args.targets.split(","):
            first = None
            for label, info in projects.items():
                aot = build_and_run(info.path, target, inputs)
                first = first or aot
                print(f"| {label} | {target} | {aot.arena_bytes:,} | {info.arena_lower_bound:,} (lower bound) | "
                      f"{aot.flash_bytes:,} | {aot.stack_high_water_bytes:,} | {aot.instructions_per_inference / 1e6:.1f} M | "
                      f"{aot.instructions_per_inference / macs:.2f} | {max_abs_diff(aot.outputs, first.outputs)} |", flush=True)
            for (name, model), tree in ((m, t) for m in tflm_models.items() for t in trees):
                plan = tflm_plan(model, target, tree)
                project = generate_tflm_project(model, root / f"tflm-{target}-{tree.kernels}-{name.replace(' ', '-')}", target,
                                                plan=plan)
                build = build_for_target(project.path, target, tree)
                run = run_on_target(project.path, target, build.elf, inputs)
                diff = max_abs_diff(run.outputs, first.outputs)
                print(f"| TFLM {run.kernels}, {name} | {target} | {run.arena_used_bytes:,} | {plan.tflm.total_bytes_target:,} | "
                      f"{run.flash_bytes:,} | {run.stack_high_water_bytes:,} | {run.instructions_per_inference / 1e6:.1f} M | "
                      f"{run.instructions_per_inference / macs:.2f} | {diff} |", flush=True)


if __name__ == "__main__":
    main()
