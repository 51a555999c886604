"""Stand-ins for the two MLPerf Tiny models not given here (KWS and AD), built with Keras and converted to int8.

The suite's keyword-spotting model is a depthwise-separable CNN (DS-CNN) on a 49x10 MFCC input, and
its anomaly-detection model a fully connected auto-encoder on 640 log-mel values; their layer shapes
are public (the suite's training scripts), their trained weights are not here. These proxies have
the same layers and shapes with seeded random weights and batch-norm statistics, converted the way
the suite's models were (Keras -> TFLite converter, full int8 with int8 input and output, free batch),
so the instruction counts of `benchmarks/mlperf_tiny.py` on them measure the same operations. What
they cannot show is what trained weights allow (constant output channels that nlpool's generated
kernels skip): every channel is computed, so their counts are an upper bound for that reason.

    .venv/bin/python benchmarks/mlperf_proxies.py OUT_DIR
    .venv/bin/python benchmarks/mlperf_tiny.py OUT_DIR --tflm-ref TREE --tflm-cmsis-nn TREE --targets cortex-m4
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


def kws_ds_cnn(layers: Any) -> Any:
    """DS-CNN: a 10x4 stride-2 convolution to 64 channels, four depthwise 3x3 + pointwise 64 blocks,
    average pooling over the 25x5 map and a 12-way classifier."""
    x = inputs = layers.Input((49, 10, 1))
    x = _bn_relu(layers, layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same")(x))
    for _ in range(4):
        x = _bn_relu(layers, layers.DepthwiseConv2D(3, padding="same")(x))
        x = _bn_relu(layers, layers.Conv2D(64, 1)(x))
    x = layers.Flatten()(layers.AveragePooling2D((25, 5))(x))
    return inputs, layers.Dense(12, activation="softmax")(x)


def ad_autoencoder(layers: Any) -> Any:
    """Auto-encoder: 640 -> 4 x 128 -> 8 -> 4 x 128 -> 640, batch norm and ReLU after every hidden layer."""
    x = inputs = layers.Input((640,))
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = _bn_relu(layers, layers.Dense(units)(x))
    return inputs, layers.Dense(640)(x)


PROXIES: dict[str, Callable[[Any], Any]] = {"kws_ds_cnn_proxy": kws_ds_cnn, "ad_autoencoder_proxy": ad_autoencoder}


def _bn_relu(layers: Any, x: Any) -> Any:
    return layers.ReLU()(layers.BatchNormalization()(x))


def build(name: str, seed: int = 0) -> bytes:
    """The proxy's int8 .tflite: random weights, batch-norm statistics drawn so the fold is not the identity."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    tf.keras.utils.set_random_seed(seed)
    inputs, outputs = PROXIES[name](tf.keras.layers)
    model = tf.keras.Model(inputs, outputs)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n), rng.uniform(0.5, 2, n)])
    shape = tuple(model.input_shape[1:])

    def representative() -> Iterator[list[np.ndarray]]:
        for _ in range(50):
            yield [rng.normal(0, 1, (1, *shape)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write <name>.tflite into (created; existing proxies are replaced)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in PROXIES:
        path = args.out / f"{name}.tflite"
        partial = path.with_suffix(".tflite.partial")
        partial.write_bytes(build(name, args.seed))
        partial.replace(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
