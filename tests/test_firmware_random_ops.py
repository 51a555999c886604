"""Hundreds of random single-op int8 models on the emulated Cortex-M targets, bit for bit against
upstream TFLM's reference kernels (the `tflite-micro` wheel) and against the host build.

Batched so that CI stays fast: each batch puts many independent ops (tests/random_ops.py: every
supported kind, random shapes, strides, padding, activations and weights, each op its own inputs
and output) into one tf.function, converted once with random calibration ranges per input (scales
and zero points vary), generated into one AOT project, built once per target and run under QEMU on
random int8 samples. A failure names the batch, the op's index and kind and its parameters; the
draw is seeded, so `draw_batch(np.random.default_rng(SEED + batch), ...)` rebuilds it.

The kernel set is a parameter: "portable" (the generator's own C kernels) and "cmsis-nn" (the
CMSIS-NN kernel set, from $NLPOOL_CMSIS_NN_DIR; skipped where it is not available).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("tflite_micro")

import tensorflow as tf
from random_ops import GENERATORS, OpInstance, batch_function, draw_batch, draw_ranges

from firmware.aot import generate_project
from firmware.run import HOST, build_and_run, check_tools
from firmware.testing import convert, random_inputs, tflm_reference
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import read_model

SEED = 20261126
BATCHES = 12
OPS_PER_BATCH = 44
MIN_OP_INSTANCES = 500
SAMPLES = 16
SRAM_BUDGET = 2 << 20
TARGETS = ("host", "cortex-m4", "cortex-m7", "cortex-m55")
KERNEL_SETS = ("portable", "cmsis-nn")


@dataclass
class Batch:
    """One converted batch: its ops, model, inputs, TFLM's outputs and which op wrote each output."""

    index: int
    ops: list[OpInstance]
    path: Path
    inputs: list[np.ndarray]
    expected: list[np.ndarray]
    producers: list[str]
    quant: list[str]  # per op: "scale/zero_point" of its inputs, then of its output
    convert_s: float


def _draw(index: int) -> list[OpInstance]:
    return draw_batch(np.random.default_rng(SEED + index), OPS_PER_BATCH)


def _label(batch: int, j: int, op: OpInstance, quant: str = "") -> str:
    return f"batch {batch} op {j} {op.describe()}" + (f" quant {quant}" if quant else "")


_BATCHES: dict[int, Batch] = {}
_PROJECTS: dict[tuple[int, str], tuple[Path, list[np.ndarray]]] = {}


def _batch(index: int, root: Path) -> Batch:
    if index in _BATCHES:
        return _BATCHES[index]
    rng = np.random.default_rng(SEED + index)
    ops = draw_batch(rng, OPS_PER_BATCH)
    fn, shapes = batch_function(ops)
    path = root / f"batch{index}.tflite"
    start = time.perf_counter()
    path.write_bytes(convert(fn, shapes, rng, ranges=draw_ranges(rng, ops)))
    convert_s = time.perf_counter() - start
    model = read_model(path)
    assert len(model.inputs) == len(shapes) and len(model.outputs) == len(ops), (
        f"batch {index}: converted model has {len(model.inputs)} inputs / {len(model.outputs)} outputs, "
        f"drawn {len(shapes)} / {len(ops)}")
    for i, (t, shape) in enumerate(zip(model.inputs, shapes, strict=True)):
        assert model.tensors[t].shape == shape, f"batch {index}: input {i} is {model.tensors[t].shape}, drawn {shape}"
    # outputs in op order: each has the shape TensorFlow gives that op (the draws' shapes all differ)
    for j, (op, t) in enumerate(zip(ops, model.outputs, strict=True)):
        specs = [tf.TensorSpec(s, tf.float32) for s in op.shapes]  # traced, not run: eager TF broadcasts only to 5-D
        want = tuple(tf.function(op.fn).get_concrete_function(*specs).structured_outputs.shape)
        assert model.tensors[t].shape == want, f"{_label(index, j, op)}: output {j} is {model.tensors[t].shape}, TF says {want}"
    writer = {o: op.name for op in model.operators for o in op.outputs}
    producers = [writer.get(t, "<input>") for t in model.outputs]
    for j, (op, name) in enumerate(zip(ops, producers, strict=True)):
        assert name in op.kinds, f"{_label(index, j, op)}: its output is written by {name}, not {op.kinds}"
    # each op's quantisation, for failure messages: the input(s) in order, then the output
    at, quant = 0, []
    for op, out in zip(ops, model.outputs, strict=True):
        ts = [*model.inputs[at:at + len(op.shapes)], out]
        at += len(op.shapes)
        quant.append(" ".join(f"{model.tensors[t].scale:.4g}/{model.tensors[t].zero_point}" for t in ts))
    inputs = random_inputs(path, rng, SAMPLES)
    batch = Batch(index, ops, path, inputs, tflm_reference(path, inputs), producers, quant, convert_s)
    _BATCHES[index] = batch
    return batch


def _cmsis_nn_tree() -> Any:
    try:
        from firmware.aot.cmsis_nn import find_cmsis_nn
    except ImportError as exc:
        pytest.skip(f"this AOT generator has no CMSIS-NN kernel set (firmware.aot.cmsis_nn: {exc})")
    tree = find_cmsis_nn(None)
    if tree is None:
        pytest.skip("CMSIS-NN kernels not found: set NLPOOL_CMSIS_NN_DIR to the cmsis_nn source tree")
    return tree


def _project(batch: Batch, kernels: str, root: Path) -> tuple[Path, list[np.ndarray]]:
    """The batch's AOT project for this kernel set and the host build's outputs (compared in the host case)."""
    key = (batch.index, kernels)
    if key not in _PROJECTS:
        out = root / f"batch{batch.index}-{kernels}"
        extra = {} if kernels == "portable" else {"cmsis_nn": _cmsis_nn_tree()}
        generate_project(batch.path, out, SRAM_BUDGET, **extra)
        _PROJECTS[key] = (out, build_and_run(out, HOST, batch.inputs).outputs)
    return _PROJECTS[key]


def _compare(batch: Batch, got: list[np.ndarray], what: str, want: list[np.ndarray], against: str) -> None:
    failures = []
    for j, (op, g, e) in enumerate(zip(batch.ops, got, want, strict=True)):
        label = _label(batch.index, j, op, batch.quant[j])
        if g.shape != e.shape or g.dtype != e.dtype:
            failures.append(f"{label}: {g.dtype}{list(g.shape)} vs {e.dtype}{list(e.shape)}")
            continue
        bad = np.flatnonzero(g != e)
        if bad.size:
            diff = np.abs(g.astype(np.int32) - e.astype(np.int32)).reshape(-1)
            first = int(bad[0])
            failures.append(f"{label}: {bad.size} of {e.size} differ, max {int(diff.max())} LSB, "
                            f"first at flat index {first} ({int(g.reshape(-1)[first])} vs {int(e.reshape(-1)[first])})")
    assert not failures, f"{what} differs from {against} on {len(failures)} op(s):\n" + "\n".join(failures)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("random_ops")


def test_batches_cover_every_kind_with_at_least_500_ops() -> None:
    """The fuzz cannot silently shrink: count the op instances, each kind's share, the parameters drawn."""
    ops = [op for b in range(BATCHES) for op in _draw(b)]
    kinds = Counter(op.kind for op in ops)
    assert len(ops) >= MIN_OP_INSTANCES, f"{len(ops)} op instances, at least {MIN_OP_INSTANCES} wanted"
    expected = {k for k in GENERATORS if k != "RESIZE"} | {"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"}
    assert set(kinds) == expected, f"kinds drawn: {sorted(kinds)}"
    assert min(kinds.values()) >= 10, f"a kind drawn fewer than 10 times: {dict(kinds)}"
    seen: dict[tuple[str, str], set[str]] = {}
    for op in ops:
        for name, value in op.params.items():
            seen.setdefault((op.kind, name), set()).add(str(value))
    for (kind, name), values in REQUIRED_PARAMS.items():
        missing = values - seen.get((kind, name), set())
        assert not missing, f"no {kind} drawn with {name} in {sorted(missing)}"


# Parameter values the draws must include (each at least once over all batches).
REQUIRED_PARAMS: dict[tuple[str, str], set[str]] = {
    ("CONV_2D", "k"): {"(1, 1)", "(3, 3)", "(5, 5)"},
    ("CONV_2D", "stride"): {"(1, 1)", "(2, 2)"},
    ("CONV_2D", "dilation"): {"(1, 1)", "(2, 2)"},
    ("CONV_2D", "padding"): {"SAME", "VALID"},
    ("CONV_2D", "act"): {"none", "relu", "relu6"},
    ("DEPTHWISE_CONV_2D", "mult"): {"1", "2"},
    ("DEPTHWISE_CONV_2D", "stride"): {"(1, 1)", "(2, 2)"},
    ("DEPTHWISE_CONV_2D", "dilation"): {"(1, 1)", "(2, 2)"},
    ("DEPTHWISE_CONV_2D", "padding"): {"SAME", "VALID"},
    ("FULLY_CONNECTED", "act"): {"none", "relu", "relu6"},
    ("ADD", "broadcast"): {"same", "lhs", "rhs", "both", "scalar"},
    ("MUL", "broadcast"): {"same", "lhs", "rhs", "both", "scalar"},
    ("AVERAGE_POOL_2D", "padding"): {"SAME", "VALID"},
    ("MAX_POOL_2D", "padding"): {"SAME", "VALID"},
    ("BATCH_MATMUL", "adj_y"): {"False", "True"},
    ("RESIZE_BILINEAR", "mode"): {"half_pixel", "align_corners", "asymmetric"},
    ("RESIZE_NEAREST_NEIGHBOR", "mode"): {"half_pixel", "align_corners", "asymmetric"},
}


@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("batch", range(BATCHES))
def test_random_ops_bitexact_on_target(root: Path, batch: int, target: str, kernels: str) -> None:
    try:
        check_tools(target)
    except NlpoolError as exc:
        pytest.skip(str(exc))
    b = _batch(batch, root)
    project, host = _project(b, kernels, root)
    if target == HOST:
        _compare(b, host, f"host build ({kernels})", b.expected, "TFLM")
        return
    got = build_and_run(project, target, b.inputs).outputs
    _compare(b, got, f"{target} firmware ({kernels})", b.expected, "TFLM")
    _compare(b, got, f"{target} firmware ({kernels})", host, "the host build")
