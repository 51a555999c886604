"""The fusion pass on small int8 models built here with the TFLite converter (same pattern as onnx2tf)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from export.fusion import FusionError, fuse_file  # noqa: E402
from export.graph_edit import GraphView, compact, quant_params  # noqa: E402
from export.host_run import HostModel  # noqa: E402
from nlpool.core.custom_ops import WEIGHTED_POOL_OP_NAME, WeightedPoolParams  # noqa: E402
from nlpool.core.tflite import read_model, schema, write_model  # noqa: E402

CHANNELS = 4
POOLING_OPS = {"LOGISTIC", "EXP", "DIV", "AVERAGE_POOL_2D", "MUL", "QUANTIZE", "DEQUANTIZE"}


def build(pools: int, seed: int = 0, pi_as_output: bool = False, nowin: bool = False):
    """(int8 TFLite bytes, float tf.function): `pools` weighted poolings, each r = conv1x1(x)."""
    rng = np.random.default_rng(seed)
    side = 4 * 2**pools
    weights = [(rng.normal(0, 0.5, (1, 1, CHANNELS, CHANNELS)), rng.normal(0, 0.3, CHANNELS)) for _ in range(pools)]
    weights = [(tf.constant(w, tf.float32), tf.constant(b, tf.float32)) for w, b in weights]

    @tf.function(input_signature=[tf.TensorSpec((1, side, side, CHANNELS), tf.float32)])
    def fn(x):
        extra = []
        for w, b in weights:
            pi = tf.exp(tf.sigmoid(tf.nn.conv2d(x, w, 1, "VALID") + b))
            num = tf.nn.avg_pool2d(pi * x, 2, 2, "VALID")
            x = num if nowin else num / tf.nn.avg_pool2d(pi, 2, 2, "VALID")
            extra += [pi] if pi_as_output else []
        return [x, *extra] if extra else x

    def representative():
        for _ in range(32):
            yield [rng.normal(0, 1, (1, side, side, CHANNELS)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert(), fn


def strip_div_island(src: Path, dst: Path) -> None:
    """Make every DIV int8 in place: drop the DEQUANTIZEs before it and the QUANTIZE after it."""
    model = read_model(src).raw
    view = GraphView(model)
    ops = model.subgraphs[0].operators
    drop = set()
    for index in range(len(ops)):
        if view.name(index) != "DIV":
            continue
        dequants = [view.producer[int(t)] for t in ops[index].inputs]
        (quant,) = view.consumers[int(ops[index].outputs[0])]
        assert [view.name(i) for i in dequants] == ["DEQUANTIZE"] * 2 and view.name(quant) == "QUANTIZE"
        ops[index].inputs = [int(ops[i].inputs[0]) for i in dequants]
        ops[index].outputs = [int(ops[quant].outputs[0])]
        drop |= {*dequants, quant}
    model.subgraphs[0].operators = [op for i, op in enumerate(ops) if i not in drop]
    compact(model)
    write_model(model, dst)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, object]]:
    root = tmp_path_factory.mktemp("fusion")
    specs = {
        "one": {"pools": 1},
        "three": {"pools": 3, "seed": 1},
        "pi_out": {"pools": 1, "pi_as_output": True},
        "nowin": {"pools": 1, "nowin": True},
    }
    built = {}
    for name, spec in specs.items():
        blob, fn = build(**spec)
        (root / f"{name}.tflite").write_bytes(blob)
        built[name] = (root / f"{name}.tflite", fn)
    strip_div_island(root / "three.tflite", root / "three_int8_div.tflite")
    built["three_int8_div"] = (root / "three_int8_div.tflite", built["three"][1])
    return built


def _inputs(model: HostModel, count: int = 16) -> np.ndarray:
    return np.random.default_rng(7).normal(0, 1, (count, *model.input_shape[1:])).astype(np.float32)


def _float(fn, inputs: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(fn(x[None])) for x in inputs])


def test_one_pool_becomes_one_custom_op_with_the_tensors_quantisation(models, tmp_path):
    src, fn = models["one"]
    dst = tmp_path / "fused.tflite"
    matches = fuse_file(src, dst)
    assert len(matches) == 1
    fused = read_model(dst).raw
    assert read_model(dst).op_names() == ["CONV_2D", WEIGHTED_POOL_OP_NAME]
    graph = fused.subgraphs[0]
    op = graph.operators[1]
    x, r, y = (graph.tensors[int(t)] for t in (*op.inputs, *op.outputs))
    assert int(op.inputs[0]) == int(graph.inputs[0]) and int(op.outputs[0]) == int(graph.outputs[0])
    params = WeightedPoolParams.from_flexbuffer(op.customOptions)
    assert params == WeightedPoolParams.from_quantization((2, 2), (2, 2), quant_params(x), quant_params(r), quant_params(y))

    unfused, fused_run = HostModel(src), HostModel(dst)
    inputs = _inputs(unfused)
    expected = _float(fn, inputs)
    fused_err = np.abs(fused_run.predict(inputs) - expected)
    unfused_err = np.abs(unfused.predict(inputs) - expected)
    out_scale = fused_run.output_qp[0]
    assert fused_err.max() <= 3 * out_scale  # input rounding + r's conv + one output rounding
    assert fused_err.mean() <= unfused_err.mean()


def test_several_pools_all_fuse_and_no_pooling_op_is_left(models, tmp_path):
    src, fn = models["three"]
    dst = tmp_path / "fused.tflite"
    assert len(fuse_file(src, dst)) == 3
    names = read_model(dst).op_names()
    assert names == ["CONV_2D", WEIGHTED_POOL_OP_NAME] * 3
    assert not POOLING_OPS & set(names)
    fused = HostModel(dst)
    inputs = _inputs(fused)
    expected = _float(fn, inputs)
    assert np.abs(fused.predict(inputs) - expected).mean() <= np.abs(HostModel(src).predict(inputs) - expected).mean()


def test_int8_div_without_float_island_fuses_to_the_same_model(models, tmp_path):
    island, _ = models["three"]
    plain, _ = models["three_int8_div"]
    assert "DEQUANTIZE" not in read_model(plain).op_names() and "DIV" in read_model(plain).op_names()
    fuse_file(island, tmp_path / "a.tflite")
    fuse_file(plain, tmp_path / "b.tflite")
    a, b = HostModel(tmp_path / "a.tflite"), HostModel(tmp_path / "b.tflite")
    assert read_model(tmp_path / "b.tflite").op_names() == ["CONV_2D", WEIGHTED_POOL_OP_NAME] * 3
    inputs = _inputs(a)
    np.testing.assert_array_equal(a.predict(inputs), b.predict(inputs))


def test_refuses_when_an_intermediate_tensor_is_used_outside(models, tmp_path):
    src, _ = models["pi_out"]
    dst = tmp_path / "fused.tflite"
    with pytest.raises(FusionError, match="also used by the graph outputs"):
        fuse_file(src, dst)
    assert not dst.exists()


def test_refuses_a_partial_pattern(models, tmp_path):
    src, _ = models["nowin"]  # pi * x pooled, but no denominator
    dst = tmp_path / "fused.tflite"
    with pytest.raises(FusionError, match="only partly matches: pi = EXP output should feed one AVERAGE_POOL_2D and one MUL"):
        fuse_file(src, dst)
    assert not dst.exists()


def test_refuses_pools_with_different_windows(models, tmp_path):
    src, _ = models["one"]
    model = read_model(src).raw
    view = GraphView(model)
    first_pool = next(i for i in range(len(view.graph.operators)) if view.name(i) == "AVERAGE_POOL_2D")
    options = view.graph.operators[first_pool].builtinOptions
    # a 3-wide window with SAME padding keeps the output shape (the reader checks shapes), so only the windows differ
    options.filterWidth, options.padding = 3, schema.Padding.SAME
    write_model(model, tmp_path / "broken.tflite")
    with pytest.raises(FusionError, match="different windows"):
        fuse_file(tmp_path / "broken.tflite", tmp_path / "fused.tflite")
    assert not (tmp_path / "fused.tflite").exists()
