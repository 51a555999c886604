"""Per-layer reports name each op so a user recognises it: `KIND #index layer`, the Keras layer from a
converter's fused tensor name, the PyTorch module path where the name carries it. memory.json keeps
the full tensor name beside it; the AOT firmware's per-op profile uses the same names.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import IC_MODEL, VWW_MODEL, mlperf_model

from memory_planner import as_json, op_label, plan_model, plan_tflite
from memory_planner.names import layer_name

KERAS_FUSED = ("model/activation_2/Relu;model/batch_normalization_2/FusedBatchNormV3;model/conv2d_1/BiasAdd/ReadVariableOp/resource;"
               "model/conv2d_1/BiasAdd;model/depthwise_conv2d_1/depthwise;model/conv2d_1/Conv2D1")


@pytest.mark.parametrize(("kind", "index", "tensor", "label"), [
    ("CONV_2D", 3, KERAS_FUSED, "CONV_2D #3 conv2d_1"),  # the layer named most, not the depthwise weights it shares a name with
    ("ADD", 3, "model/activation_2/Relu;model/add/add", "ADD #3 add"),  # a tie goes to the last (the op itself)
    ("FULLY_CONNECTED", 29, "model/dense/MatMul;model/dense/BiasAdd", "FULLY_CONNECTED #29 dense"),
    ("CONV_2D", 0, "functional_3_1/conv2d_14_1/Relu6;functional_3_1/conv2d_14_1/convolution", "CONV_2D #0 conv2d_14_1"),
    ("CONV_2D", 5, "/features/features.3/conv/conv.0/Conv;Const_12", "CONV_2D #5 features.3.conv.0"),  # ONNX scopes: the module path
    ("CONV_2D", 1, "model_30/tf.nn.relu6/Relu6;model_30/tf.math.add/Add;model_30/tf.nn.convolution/convolution;Const_160",
     "CONV_2D #1 tf.nn.convolution"),  # onnx2tf's names: no module path, the op's own TensorFlow call
    ("SOFTMAX", 30, "Identity_int8", "SOFTMAX #30 Identity_int8"),
    ("CUSTOM:NLPOOL_WEIGHTED_POOL", 2, "tfl.quantize", "NLPOOL_WEIGHTED_POOL #2 tfl.quantize"),
])
def test_op_label(kind: str, index: int, tensor: str, label: str) -> None:
    assert op_label(kind, index, tensor) == label


def test_a_name_without_tf_scopes_is_kept() -> None:
    assert layer_name("features.stage1_block0.conv.1") == "features.stage1_block0.conv.1"


@pytest.mark.parametrize("model", [VWW_MODEL, IC_MODEL])
def test_memory_json_rows_of_a_converted_model_are_short_and_keep_the_full_name(model: Path) -> None:
    report = as_json(plan_tflite(mlperf_model(model)), 512 * 1024)
    names = [row["name"] for row in report["layers"]]
    assert len(set(names)) == len(names) and max(map(len, names)) <= 48, names
    assert max(len(row["full_name"]) for row in report["layers"]) > 100  # what the rows showed before
    assert names[0] == "CONV_2D #0 conv2d" and report["peak_layer"] in names
    for row in report["layers"]:
        assert row["name"].startswith(f"{row['op']} #{row['step']} ")


def test_memory_json_rows_of_a_pytorch_model_are_module_paths() -> None:
    from nlpool.models import ModelConfig, build_model

    cfg = ModelConfig(width=0.1, input_size=32, s1=1, num_classes=4)
    rows = as_json(plan_model(build_model(cfg), cfg), 512 * 1024)["layers"]
    assert rows[2]["name"] == "DEPTHWISE_CONV_2D #2 features.stage1_block0.conv.0.0"
    assert all(row["name"].endswith(row["full_name"]) for row in rows)


def test_the_aot_profile_rows_carry_the_same_names(tmp_path: Path) -> None:
    """project.json lists each op's label; the per-op profile built from a run shows it."""
    from firmware.aot import generate_project
    from firmware.common import OpProfile, Profile, ProjectInfo

    path = mlperf_model(IC_MODEL)
    generate_project(path, tmp_path / "project", 512 * 1024, "cortex-m4")
    info = ProjectInfo.load(tmp_path / "project")
    labels = [row["name"] for row in as_json(plan_tflite(path), 512 * 1024)["layers"]]
    assert info.op_names == labels
    profile = Profile(tuple(OpProfile(i, op, "portable", 100, info.op_names[i]) for i, op in enumerate(info.ops)))
    assert [row["name"] for row in profile.to_json()["by_op"]] == labels
