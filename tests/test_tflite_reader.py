"""nlpool.core.tflite: the one reader every package uses, on good files and on corrupted ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nlpool.core.tflite import TfliteFileError, model_bytes, read_model

MODEL = Path(__file__).parent / "data" / "planner" / "chain_int8.tflite"


def test_typed_view_of_a_model():
    model = read_model(MODEL)
    assert model.op_names() == ["CONV_2D", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED"]
    conv = model.operators[0]
    weights = model.tensors[conv.inputs[1]]
    assert weights.constant and weights.dtype == "int8" and weights.data.shape == weights.shape
    assert weights.scales.size == weights.shape[0]  # per-channel along the output channels
    source = model.tensors[model.inputs[0]]
    assert not source.constant and source.per_tensor_quantization is not None and source.shape == (1, 32, 32, 3)


def test_written_model_reads_back_identically(tmp_path):
    model = read_model(MODEL)
    (tmp_path / "copy.tflite").write_bytes(model_bytes(model.raw))
    again = read_model(tmp_path / "copy.tflite")
    assert again.op_names() == model.op_names()
    for a, b in zip(model.tensors, again.tensors, strict=True):
        assert (a.name, a.shape, a.dtype) == (b.name, b.shape, b.dtype)
        assert np.array_equal(a.scales, b.scales) and (a.data is None) == (b.data is None)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), (b"", "not a TFLite model"), (b"\0" * 64, "not a TFLite model")],
)
def test_not_a_model(tmp_path, content, message):
    path = tmp_path / "m.tflite"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TfliteFileError, match=message):
        read_model(path)


def test_truncated_model(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(MODEL.read_bytes()[: MODEL.stat().st_size // 3])
    with pytest.raises(TfliteFileError, match=r"truncated or corrupt|is corrupt"):
        read_model(path)


def test_an_operator_reading_a_missing_tensor_is_named(tmp_path):
    model = read_model(MODEL).raw
    model.subgraphs[0].operators[2].inputs = [999]
    (tmp_path / "m.tflite").write_bytes(model_bytes(model))
    with pytest.raises(TfliteFileError, match="operator 2's input refers to index 999"):
        read_model(tmp_path / "m.tflite")


def test_a_nan_scale_is_named(tmp_path):
    model = read_model(MODEL).raw
    model.subgraphs[0].tensors[0].quantization.scale = [float("nan")]
    (tmp_path / "m.tflite").write_bytes(model_bytes(model))
    with pytest.raises(TfliteFileError, match="tensor 0 has a scale that is not a positive finite number"):
        read_model(tmp_path / "m.tflite")


def test_random_byte_corruption_gives_our_error_or_a_consistent_model(tmp_path):
    """Seeded mutations: the reader either refuses with TfliteFileError or returns a model whose every
    index is in range (so no consumer can walk off a table)."""
    data = bytearray(MODEL.read_bytes())
    rng = np.random.default_rng(0)
    path = tmp_path / "m.tflite"
    outcomes = {"refused": 0, "read": 0}
    for _ in range(300):
        mutated = bytearray(data)
        for position in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
            mutated[position] = int(rng.integers(0, 256))
        path.write_bytes(bytes(mutated))
        try:
            model = read_model(path)
        except TfliteFileError:
            outcomes["refused"] += 1
            continue
        outcomes["read"] += 1
        count = len(model.tensors)
        for op in model.operators:
            assert all(-1 <= i < count for i in op.inputs) and all(0 <= i < count for i in op.outputs)
        assert all(0 <= i < count for i in (*model.inputs, *model.outputs))
    assert outcomes["refused"] > 0 and outcomes["read"] > 0, outcomes
