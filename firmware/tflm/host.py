"""Build a generated TFLM project on the host against real TFLM code and run it.

Upstream TFLM's C++ sources are in no package registry, so the host build uses the `xmos-ai-tools`
wheel (PyPI): headers of XMOS's TFLM fork (namespace `tflite_micro`) and an x86-64 shared library,
`xtflm_python.so`, that contains the fork's MicroInterpreter and reference kernels. The project's
own Makefile target `host` does the build, so a user can repeat exactly what nlpool checks.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlpool.core.errors import NlpoolError


@dataclass
class HostRun:
    """Outputs of the host TFLM build, one array per model output with a leading inference axis."""

    outputs: list[np.ndarray]
    arena_used_bytes: int
    arena_bytes: int
    stdout: str


def xmos_ai_tools_dir() -> Path:
    """The installed xmos_ai_tools package (headers and the fork's shared library)."""
    try:
        import xmos_ai_tools
    except ImportError as exc:
        raise NlpoolError("xmos-ai-tools is not installed: pip install xmos-ai-tools "
                          "(it provides the TFLM build used for the host check)") from exc
    return Path(xmos_ai_tools.__file__).resolve().parent


def gemmlowp_dir() -> Path:
    """gemmlowp's headers (the fork's headers include fixedpoint.h), as shipped in TensorFlow's wheel."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise NlpoolError("tensorflow is not installed: pip install tensorflow (its wheel provides gemmlowp's headers)")
    return Path(spec.submodule_search_locations[0]) / "include" / "external" / "gemmlowp"


def build_host(project_dir: str | Path) -> Path:
    """Runs `make host` in the project; returns the executable."""
    project_dir = Path(project_dir)
    cmd = ["make", "-s", "host", f"XMOS_AI_TOOLS={xmos_ai_tools_dir()}", f"GEMMLOWP_INCLUDE={gemmlowp_dir()}"]
    proc = subprocess.run(cmd, cwd=project_dir, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
        raise NlpoolError(f"host build of the TFLM project failed in {project_dir}: " + " | ".join(tail))
    return project_dir / "build" / "host" / "nlpool_tflm"


def io_spec(project_dir: str | Path) -> dict:
    """The model's input and output tensors as recorded in the project's io.json."""
    return json.loads((Path(project_dir) / "io.json").read_text())


def run_host(project_dir: str | Path, inputs: Sequence[np.ndarray], timeout: float = 600) -> HostRun:
    """Builds (if needed) and runs the host executable on `inputs`.

    `inputs` has one array per model input, each shaped like that input or with an extra leading
    axis of inferences; every output comes back with a leading inference axis.
    """
    project_dir = Path(project_dir).resolve()
    exe = build_host(project_dir)
    spec = io_spec(project_dir)
    batches = _stack_inputs(inputs, spec["inputs"])
    count = batches[0].shape[0]
    with tempfile.TemporaryDirectory(prefix="nlpool-tflm-") as tmp:
        tmp_path = Path(tmp)
        with open(tmp_path / "input.bin", "wb") as f:
            for i in range(count):
                for batch in batches:
                    f.write(np.ascontiguousarray(batch[i]).tobytes())
        proc = subprocess.run([str(exe)], cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ})
        if proc.returncode != 0:
            raise NlpoolError(f"the TFLM host build failed to run the model (exit {proc.returncode}): "
                              + " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-6:]))
        raw = (tmp_path / "output.bin").read_bytes()
    outputs = _split_outputs(raw, spec["outputs"], count)
    stats = _stats(proc.stdout)
    return HostRun(outputs, stats.get("arena_used", 0), stats.get("arena", 0), proc.stdout)


def verify_on_host(project_dir: str | Path, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs as computed by the project's TFLM host build (see `run_host`)."""
    return run_host(project_dir, inputs).outputs


def _stack_inputs(inputs: Sequence[np.ndarray], specs: list[dict]) -> list[np.ndarray]:
    if len(inputs) != len(specs):
        raise NlpoolError(f"the model has {len(specs)} inputs, got {len(inputs)} arrays")
    batches = []
    for array, spec in zip(inputs, specs, strict=True):
        array = np.asarray(array)
        shape = tuple(spec["shape"])
        if array.shape == shape:
            array = array[None]
        if array.shape[1:] != shape or array.dtype != np.dtype(spec["dtype"]):
            raise NlpoolError(f"input {spec['name']!r} must be {spec['dtype']} {shape} (optionally with a "
                              f"leading inference axis), got {array.dtype} {array.shape}")
        batches.append(array)
    if len({b.shape[0] for b in batches}) != 1:
        raise NlpoolError("every input must have the same number of inferences")
    return batches


def _split_outputs(raw: bytes, specs: list[dict], count: int) -> list[np.ndarray]:
    sizes = [int(np.prod(s["shape"])) * np.dtype(s["dtype"]).itemsize for s in specs]
    per_inference = sum(sizes)
    if len(raw) != per_inference * count:
        raise NlpoolError(f"output.bin has {len(raw)} bytes, expected {per_inference * count}")
    outputs: list[list[np.ndarray]] = [[] for _ in specs]
    offset = 0
    for _ in range(count):
        for k, (spec, size) in enumerate(zip(specs, sizes, strict=True)):
            chunk = np.frombuffer(raw[offset:offset + size], dtype=spec["dtype"]).reshape(spec["shape"])
            outputs[k].append(chunk)
            offset += size
    return [np.stack(o) for o in outputs]


def _stats(stdout: str) -> dict[str, int]:
    for line in stdout.splitlines():
        if line.startswith("NLPOOL_STATS"):
            return {k: int(v) for k, v in (item.split("=") for item in line.split()[1:])}
    return {}
