"""Wall time of the whole `nlpool export` command (default model unless flags are given), and its fidelity.

    .venv/bin/python benchmarks/export_walltime.py [--repeat N] [-- extra nlpool export flags]

Runs the installed console script exactly as a user would (fresh process, TensorFlow import included),
prints the wall time of each run, the per-step times and fidelity table from report.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NLPOOL = Path(sys.executable).with_name("nlpool")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("flags", nargs="*", help="extra flags for nlpool export (after --)")
    args = parser.parse_args()
    times = []
    report = {}
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            command = [str(NLPOOL), "export", "--target", "cortex-m7", "--sram", "512k", "--out", str(out), *args.flags]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - start)
            if done.returncode != 0:
                sys.exit(f"export failed: {done.stderr.strip().splitlines()[-1]}")
            report = json.loads((out / "report.json").read_text())
        print(f"run {run + 1}: {times[-1]:.1f} s wall")
    print(f"wall time: median {statistics.median(times):.1f} s over {len(times)} run(s); model weights: {report['model']['weights']}")
    print("steps (s):", ", ".join(f"{name} {sec:.1f}" for name, sec in report["step_seconds"].items()))
    fidelity = report["fidelity"]
    print(f"fidelity vs PyTorch on {fidelity['samples']} inputs ({fidelity['data']}):")
    for name in ("onnx", "tflite_int8", "tflite_int8_fused"):
        m = fidelity[name]
        print(
            f"  {name:<18} max {m['max_abs_error']:.4g}  mean {m['mean_abs_error']:.4g}  cosine {m['cosine']:.5f}"
            f"  min cosine {m['min_cosine']:.5f}  top-1 {m['top1_agreement'] * 100:.1f}%"
            + (f"  accuracy {m['accuracy'] * 100:.1f}% (PyTorch {fidelity['pytorch']['accuracy'] * 100:.1f}%)" if "accuracy" in m else "")
        )


if __name__ == "__main__":
    main()
