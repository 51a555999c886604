"""TFLM's arena, used on the emulated core vs nlpool's prediction, for every .tflite in a folder.

For each model, Cortex-M core and TFLM tree (reference kernels, CMSIS-NN kernels): the TFLM project
nlpool generates (arena = prediction + margin, `firmware/tflm/project.py`), built against the tree
(objects from nlpool's cache) and run once under QEMU on seeded random input. One Markdown row each:
`arena_used_bytes()` as the firmware reports it, the prediction (`firmware.tflm.tflm_plan`, what
`nlpool export` declares the arena from), the error, and the arena the project declared. A project
whose AllocateTensors fails in that arena is a row saying so (the prediction was too low).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/tflm_arena.py DIR [--tree ref=PATH --tree cmsis-nn=PATH]
        [--targets cortex-m4,cortex-m7,cortex-m55]

The trees default to $NLPOOL_TFLM_REF_DIR and $NLPOOL_TFLM_DIR (as CI sets them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from firmware.boards import BOARDS
from firmware.tflm import build_for_target, find_tree, generate_tflm_project, io_spec, run_on_target, tflm_plan
from nlpool.core.errors import NlpoolError

TARGETS = ("cortex-m4", "cortex-m7", "cortex-m55")


def _trees(specs: list[str] | None) -> list[tuple[str, Path]]:
    if specs:
        return [(name, Path(path)) for name, path in (spec.split("=", 1) for spec in specs)]
    found = [(name, os.environ.get(var)) for name, var in (("ref", "NLPOOL_TFLM_REF_DIR"), ("cmsis-nn", "NLPOOL_TFLM_DIR"))]
    return [(name, Path(path)) for name, path in found if path]


def _random_input(project: Path, rng: np.random.Generator) -> np.ndarray:
    """One inference's input of the model's dtype: int8 uniform, float standard normal."""
    spec = io_spec(project)["inputs"][0]
    dtype = np.dtype(spec["dtype"])
    if dtype.kind == "f":
        return rng.standard_normal((1, *spec["shape"])).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=(1, *spec["shape"]), dtype=dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--tree", action="append", help="NAME=PATH of a TFLM tree (repeatable; default from the environment)")
    parser.add_argument("--targets", default=",".join(TARGETS))
    args = parser.parse_args()
    models = sorted(args.folder.glob("*.tflite"))
    trees = [(name, find_tree(path)) for name, path in _trees(args.tree)]
    targets = args.targets.split(",")
    if not models or not trees or any(t not in BOARDS for t in targets):
        sys.exit(f"need .tflite files in {args.folder}, a TFLM tree (--tree or $NLPOOL_TFLM_DIR) and targets among {', '.join(BOARDS)}")
    rng = np.random.default_rng(0)
    print("| model | core | kernels | arena used (B) | predicted (B) | error | declared arena (B) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="nlpool-tflm-arena-") as tmp:
        for model in models:
            for target in targets:
                for _name, tree in trees:
                    plan = tflm_plan(model, target, tree)
                    predicted = plan.tflm.total_bytes_target
                    project = generate_tflm_project(model, Path(tmp) / f"{model.stem}-{target}-{tree.kernels}", target, plan=plan)
                    row = f"| {model.name} | {target} | {tree.kernels} |"
                    try:
                        build = build_for_target(project.path, target, tree)
                        run = run_on_target(project.path, target, build.elf, _random_input(project.path, rng), tree=tree)
                    except NlpoolError as err:
                        print(f"{row} failed | {predicted:,} | | {project.arena_bytes:,} | <!-- {err} -->", flush=True)
                        continue
                    error = 100 * (predicted - run.arena_used_bytes) / run.arena_used_bytes
                    print(f"{row} {run.arena_used_bytes:,} | {predicted:,} | {error:+.2f} % | {project.arena_bytes:,} |", flush=True)


if __name__ == "__main__":
    main()
