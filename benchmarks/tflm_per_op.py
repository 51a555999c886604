"""Per-op comparison of the TFLM host build with nlpool's AOT firmware on one fused model.

Every operator output is made a model output (same arithmetic, only the arena plan changes), both
runtimes are built for the host and run on the same inputs, and the largest difference of every
op's output is printed. This is how a difference at the model output is traced to one kernel.

    python benchmarks/tflm_per_op.py nlpool-out/model_int8_fused.tflite [--inferences 2] [--fork-kernels]

`--fork-kernels` leaves out the host shims, so XMOS's own FULLY_CONNECTED runs (BATCH_MATMUL has no
fork kernel and keeps its shim).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from export.host_run import HostModel
from firmware.aot import generate_project
from firmware.run import build_and_run
from firmware.tflm import generate_tflm_project, run_host
from nlpool.core.tflite import read_model, write_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fused", type=Path)
    parser.add_argument("--inferences", type=int, default=2)
    parser.add_argument("--fork-kernels", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nlpool-tflm-per-op-") as tmp:
        root = Path(tmp)
        typed = read_model(args.fused)
        model, names = typed.raw, typed.op_names()
        graph = model.subgraphs[0]
        graph.outputs = [int(op.outputs[0]) for op in graph.operators]
        every = root / "every_output.tflite"
        write_model(model, every)
        host = HostModel(args.fused)
        floats = np.random.default_rng(0).normal(0, 1, (args.inferences, *host.input_shape)).astype(np.float32)
        inputs = np.stack([host.quantize_input(x) for x in floats])
        generate_project(every, root / "aot", 4 << 20)
        aot = build_and_run(root / "aot", "host", [inputs]).outputs
        project = generate_tflm_project(every, root / "tflm", "cortex-m7", arena_bytes=8 << 20)
        shims = project.host_shims
        if args.fork_kernels:
            (project.path / "host_shims" / "fully_connected.cc").unlink(missing_ok=True)
            shims = [s for s in shims if s != "FULLY_CONNECTED"]
        tflm = run_host(project.path, [inputs]).outputs
        print(f"{'op':>4} {'kind':<24} {'shape':<22} {'max |diff|':>10} {'differing':>10}")
        worst = 0
        for index, (name, a, t) in enumerate(zip(names, aot, tflm, strict=True)):
            diff = np.abs(a.astype(np.int64) - t.astype(np.int64))
            worst = max(worst, int(diff.max()))
            print(f"{index:>4} {name:<24} {a.shape[1:]!s:<22} {int(diff.max()):>10} {float((diff > 0).mean()):>10.4f}")
        print(f"ops {len(names)}, inferences {args.inferences}, largest difference {worst} LSB, host shims {shims}")


if __name__ == "__main__":
    main()
