"""Models as the Keras converter writes them, through the AOT generator: float input and output
around an int8 body (QUANTIZE / DEQUANTIZE, the converter's default), a free batch (-1) in every
shape signature, and the ops of Keras' MobileNetV1/V2/V3 and ResNet blocks (ZeroPadding2D -> PAD,
GlobalAveragePooling2D -> MEAN without keep_dims, Concatenate, Multiply, sigmoid, hard_swish, and
Reshape -> SHAPE / STRIDED_SLICE / PACK / RESHAPE, whose shape arithmetic the generator computes).

Each model is built here (a few layers, seconds to convert) and compared bit for bit with upstream
TFLM's interpreter (the `tflite-micro` wheel) on the host build and on QEMU Cortex-M4.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import aot_kernel_args

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

import tensorflow as tf

from firmware.aot import generate_project
from firmware.run import HOST, build_and_run
from firmware.testing import random_inputs, tflm_reference
from nlpool.core.tflite import read_model

layers = tf.keras.layers


def _mobilenet_blocks() -> tf.keras.Model:
    """V1/V2 stem and blocks: stride-2 convolution with ZeroPadding2D, depthwise, inverted residual."""
    x = inputs = tf.keras.Input((16, 16, 3))
    x = layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = layers.Conv2D(8, 3, strides=2, padding="valid", activation="relu6")(x)
    y = layers.Conv2D(16, 1, activation="relu6")(x)
    y = layers.ZeroPadding2D(((1, 1), (1, 1)))(y)
    y = layers.DepthwiseConv2D(3, padding="valid", activation="relu6")(y)
    y = layers.Conv2D(8, 1)(y)
    x = layers.Add()([x, y])
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Reshape((1, 1, 8))(x)
    x = layers.Conv2D(5, 1)(x)
    x = layers.Reshape((5,))(x)
    return tf.keras.Model(inputs, layers.Softmax()(x))


def _mobilenet_v3_blocks() -> tf.keras.Model:
    """V3: hard_swish, squeeze-and-excite (MEAN keep_dims, sigmoid gate, Multiply), Concatenate."""
    x = inputs = tf.keras.Input((12, 12, 4))
    x = layers.Conv2D(8, 3, padding="same", activation="hard_swish")(x)
    gate = layers.GlobalAveragePooling2D(keepdims=True)(x)
    gate = layers.Conv2D(4, 1, activation="relu")(gate)
    gate = layers.Conv2D(8, 1, activation="sigmoid")(gate)
    x = layers.Multiply()([x, gate])
    x = layers.Concatenate()([x, layers.MaxPooling2D(2, strides=1, padding="same")(x)])
    x = layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, layers.Dense(3)(x))


def _resnet_block() -> tf.keras.Model:
    """ResNet: ZeroPadding2D + 7x7/2 stem, max pool, two convolutions and the shortcut ADD."""
    x = inputs = tf.keras.Input((20, 20, 3))
    x = layers.ZeroPadding2D(3)(x)
    x = layers.Conv2D(8, 7, strides=2, activation="relu")(x)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.MaxPooling2D(3, strides=2)(x)
    y = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = layers.Conv2D(8, 3, padding="same")(y)
    x = layers.Activation("relu")(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, layers.Dense(4, activation="softmax")(x))


MODELS: dict[str, tuple[Callable[[], tf.keras.Model], set[str]]] = {
    "mobilenet": (_mobilenet_blocks, {"QUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "SHAPE", "STRIDED_SLICE",
                                      "PACK", "RESHAPE", "SOFTMAX", "DEQUANTIZE"}),
    "mobilenet_v3": (_mobilenet_v3_blocks, {"QUANTIZE", "CONV_2D", "HARD_SWISH", "MEAN", "LOGISTIC", "MUL", "CONCATENATION", "MAX_POOL_2D",
                                            "FULLY_CONNECTED", "DEQUANTIZE"}),
    "resnet": (_resnet_block, {"QUANTIZE", "PAD", "CONV_2D", "MAX_POOL_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX", "DEQUANTIZE"}),
}


def _convert(model: tf.keras.Model, rng: np.random.Generator) -> bytes:
    """The converter's defaults for an int8 model: float input and output, int8 inside."""
    for weights in model.weights:  # trained-looking weights: away from the initialisers' symmetric ranges
        weights.assign(rng.normal(0.1, 0.5, size=weights.shape).astype(np.float32))

    def representative():
        for _ in range(16):
            yield [rng.uniform(-1.0, 1.0, size=(1, *model.input_shape[1:])).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[np.ndarray], list[np.ndarray]]]:
    """Each model converted, its inputs and TFLM's outputs (cached for the module)."""
    root = tmp_path_factory.mktemp("keras")
    result = {}
    for index, (name, (make, _)) in enumerate(sorted(MODELS.items())):
        rng = np.random.default_rng(700 + index)
        path = root / f"{name}.tflite"
        path.write_bytes(_convert(make(), rng))
        inputs = [x.clip(-1.0, 1.0) for x in random_inputs(path, rng, 8)]
        result[name] = (path, inputs, tflm_reference(path, inputs))
    return result


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_converter_writes_these_ops_with_a_free_batch(built: dict, name: str) -> None:
    model = read_model(built[name][0])
    assert {op.name for op in model.operators} == MODELS[name][1]
    assert model.free_batch and model.tensors[model.inputs[0]].dtype == "float32"


@pytest.mark.parametrize(("target", "kernels"), [(HOST, "portable"), ("cortex-m4", "portable"), ("cortex-m4", "cmsis-nn")])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_model_bitexact_with_tflm(built: dict, tmp_path: Path, name: str, target: str, kernels: str) -> None:
    extra = aot_kernel_args(target, kernels)
    path, inputs, expected = built[name]
    info = generate_project(path, tmp_path / "project", 512 * 1024, "cortex-m4", **extra)
    if "SHAPE" in MODELS[name][1]:  # shape arithmetic costs the firmware nothing
        assert {op for op, kernel in zip(info.ops, info.op_kernels, strict=True) if kernel == "folded"} >= {"SHAPE", "PACK"}
    run = build_and_run(tmp_path / "project", target, inputs)
    assert run.kernels == kernels
    got = run.outputs
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype == np.float32 and g.shape == e.shape
        assert np.array_equal(g, e), f"{name} on {target}: {int(np.count_nonzero(g != e))} of {e.size} outputs differ from TFLM"
