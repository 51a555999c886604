"""Build the small int8 .tflite models the memory-planner tests check against real TFLM.

Why: the planner's TFLM prediction must be compared with the `tflite-micro` host interpreter on
models TFLM can run (no int8 EXP kernel, so no unfused self-attentive pooling). Converting with
TensorFlow takes seconds per model, so the files are built once here and committed under
tests/data/planner/; rerun this script to rebuild them:

    .venv/bin/python benchmarks/make_planner_models.py
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "planner"
layers = tf.keras.layers


def chain() -> tf.keras.Model:
    """A plain chain: every activation dies as soon as the next layer has consumed it."""
    x = inp = layers.Input((32, 32, 3), batch_size=1)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(24, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inp, layers.Dense(10)(x))


def residual() -> tf.keras.Model:
    """Residual blocks: the skip input stays live across the block body."""
    x = inp = layers.Input((24, 24, 4), batch_size=1)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    for _ in range(2):
        y = layers.Conv2D(32, 1, activation="relu")(x)
        y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(y)
        y = layers.Conv2D(16, 1)(y)
        x = layers.Add()([x, y])
    x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    return tf.keras.Model(inp, layers.Dense(5)(x))


def branches() -> tf.keras.Model:
    """An early branch that outlives its siblings until a late concatenation."""
    inp = layers.Input((20, 20, 6), batch_size=1)
    early = layers.Conv2D(12, 3, padding="same", activation="relu")(inp)
    a = layers.Conv2D(24, 3, padding="same", activation="relu")(early)
    a = layers.Conv2D(8, 1, activation="relu")(a)
    b = layers.Conv2D(40, 1, activation="relu")(early)
    b = layers.Conv2D(8, 3, padding="same", activation="relu")(b)
    x = layers.Concatenate()([early, a, b])
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inp, layers.Dense(4)(x))


def mobile() -> tf.keras.Model:
    """A MobileNetV2-like stack with strided depthwise down-sampling (the 'strided' pooling kind)."""
    x = inp = layers.Input((48, 48, 3), batch_size=1)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu6")(x)
    for cout, stride in ((16, 1), (24, 2), (24, 1), (32, 2)):
        y = layers.Conv2D(x.shape[-1] * 4, 1, activation="relu6")(x)
        y = layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6")(y)
        y = layers.Conv2D(cout, 1)(y)
        x = layers.Add()([x, y]) if stride == 1 and cout == x.shape[-1] else y
    x = layers.Conv2D(64, 1, activation="relu6")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inp, layers.Dense(10)(x))


def attention() -> tf.keras.Model:
    """Patch tokens and self-attention: the (heads x N x N) score tensor is the largest activation."""
    inp = layers.Input((16, 16, 8), batch_size=1)
    x = layers.Conv2D(16, 2, strides=2, activation="relu")(inp)  # 8x8 grid of 16-wide tokens
    tokens = layers.Reshape((64, 16))(x)
    q = layers.Dense(16)(tokens)
    k = layers.Dense(16)(tokens)
    v = layers.Dense(16)(tokens)
    scores = layers.Lambda(lambda t: tf.matmul(t[0], t[1], transpose_b=True))([q, k])
    weights = layers.Softmax()(scores)
    mixed = layers.Lambda(lambda t: tf.matmul(t[0], t[1]))([weights, v])
    out = layers.Dense(16)(mixed)
    x = layers.Reshape((8, 8, 16))(out)
    x = layers.Conv2D(8, 1)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inp, layers.Dense(3)(x))


MODELS: dict[str, Callable[[], tf.keras.Model]] = {
    "chain": chain,
    "residual": residual,
    "branches": branches,
    "mobile": mobile,
    "attention": attention,
}


def to_int8(model: tf.keras.Model) -> bytes:
    shape = (1, *model.input_shape[1:])
    rng = np.random.default_rng(0)

    def calibration():
        for _ in range(8):
            yield [rng.standard_normal(shape).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(0)
    for name, make in MODELS.items():
        data = to_int8(make())
        (OUT / f"{name}_int8.tflite").write_bytes(data)
        print(f"{name}: {len(data):,} bytes")


if __name__ == "__main__":
    main()
