"""Test support for the firmware: tiny int8 TFLite models built in the test, and the two
interpreters they are compared against: upstream TFLM's reference kernels (`tflm_reference`, the
arithmetic the kernels must reproduce bit for bit, as on the device) and the TFLite interpreter's
reference kernels (`reference`, which rounds some ops differently: docs/rounding.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlpool.core.tflite import read_model

N_SAMPLES = 16
TFLM_ARENA_BYTES = 4 << 20  # generous: the test models are tiny


def convert(fn: Callable, shapes: Sequence[tuple[int, ...]], rng: np.random.Generator,
            float_io: bool = False, ranges: Sequence[tuple[float, float]] | None = None, per_tensor_dense: bool = False) -> bytes:
    """Full-integer int8 conversion of a tf.function; random calibration ranges per input so that
    scales and zero points differ from case to case (or the given (low, high) per input).
    `per_tensor_dense`: FULLY_CONNECTED weights with one scale (the converter's default is one per output)."""
    import tensorflow as tf

    specs = [tf.TensorSpec(s, tf.float32) for s in shapes]
    func = tf.function(fn, input_signature=specs)
    if ranges is None:
        ranges = [(rng.uniform(-4.0, 0.0), rng.uniform(0.5, 4.0)) for _ in shapes]

    def representative():
        for _ in range(24):
            yield [rng.uniform(lo, hi, size=s).astype(np.float32) for s, (lo, hi) in zip(shapes, ranges, strict=True)]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([func.get_concrete_function()], func)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv._experimental_disable_per_channel_quantization_for_dense_layers = per_tensor_dense
    if not float_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def interpreter(path: Path) -> Any:
    """The interpreter whose int8 semantics the kernels reproduce: TFLite's reference kernels, as
    export.host_run uses them (the default XNNPACK and optimised kernels round differently)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    return it


def reference(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run every sample through the interpreter; one (n, *shape) array per model output."""
    it = interpreter(path)
    ins, outs = it.get_input_details(), it.get_output_details()
    results: list[list[np.ndarray]] = [[] for _ in outs]
    for k in range(inputs[0].shape[0]):
        for d, arr in zip(ins, inputs, strict=True):
            it.set_tensor(d["index"], arr[k])
        it.invoke()
        for j, d in enumerate(outs):
            results[j].append(it.get_tensor(d["index"]).copy())
    return [np.stack(r) for r in results]


def tflm_reference(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Every sample through upstream TFLM's interpreter and reference kernels (the `tflite-micro`
    wheel, x86-64); one (n, *shape) array per model output."""
    from tflite_micro import runtime

    outputs = len(read_model(path).outputs)
    it = runtime.Interpreter.from_file(str(path), arena_size=TFLM_ARENA_BYTES)
    results: list[list[np.ndarray]] = [[] for _ in range(outputs)]
    for k in range(inputs[0].shape[0]):
        for i, arr in enumerate(inputs):
            it.set_input(arr[k], i)
        it.invoke()
        for j in range(outputs):
            results[j].append(it.get_output(j).copy())
    return [np.stack(r) for r in results]


def random_inputs(path: Path, rng: np.random.Generator, n: int = N_SAMPLES) -> list[np.ndarray]:
    """Samples over the whole int8 range (saturation included), or floats for float-input models."""
    out = []
    for d in interpreter(path).get_input_details():
        shape = (n, *d["shape"])
        if d["dtype"] == np.int8:
            out.append(rng.integers(-128, 128, size=shape, dtype=np.int8))
        else:
            out.append(rng.uniform(-4, 4, size=shape).astype(d["dtype"]))
    return out
