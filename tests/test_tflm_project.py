"""The generated TFLM project, built on the host against XMOS's TFLM fork (xmos-ai-tools) and run.

The reference is nlpool's AOT firmware built for the host: both runtimes call the same weighted-pooling
C function, so any difference comes from TFLM's builtin kernels. Each project is compiled once per
module (a TFLM build takes ~10-20 s).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("xmos_ai_tools")

from export.fusion import fuse_file  # noqa: E402
from export.host_run import HostModel  # noqa: E402
from firmware.aot.generate import generate_project  # noqa: E402
from firmware.run import build_and_run  # noqa: E402
from firmware.tflm import generate_tflm_project, run_host  # noqa: E402
from firmware.tflm.host import xmos_ai_tools_dir  # noqa: E402
from firmware.tflm.ops import RESOLVER_METHODS  # noqa: E402
from firmware.tflm.report import host_report  # noqa: E402
from nlpool.core.custom_ops import WEIGHTED_POOL_OP_NAME, WeightedPoolParams  # noqa: E402
from nlpool.core.errors import NlpoolError  # noqa: E402
from nlpool.core.tflite import read_model, write_model  # noqa: E402

SIDE, CHANNELS, CLASSES = 16, 8, 10


def build_small_model(path: Path) -> None:
    """conv3x3+ReLU -> self-attentive weighted pooling (r = conv1x1) -> global mean -> dense, int8."""
    rng = np.random.default_rng(3)
    w1 = tf.constant(rng.normal(0, 0.4, (3, 3, 4, CHANNELS)), tf.float32)
    w2 = tf.constant(rng.normal(0, 0.5, (1, 1, CHANNELS, CHANNELS)), tf.float32)
    w3 = tf.constant(rng.normal(0, 0.3, (CHANNELS, CLASSES)), tf.float32)
    b3 = tf.constant(rng.normal(0, 0.1, CLASSES), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec((1, SIDE, SIDE, 4), tf.float32)])
    def fn(x):
        a = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))
        pi = tf.exp(tf.sigmoid(tf.nn.conv2d(a, w2, 1, "VALID")))
        pooled = tf.nn.avg_pool2d(pi * a, 2, 2, "VALID") / tf.nn.avg_pool2d(pi, 2, 2, "VALID")
        features = tf.reshape(tf.reduce_mean(pooled, axis=[1, 2], keepdims=True), (1, CHANNELS))
        return tf.matmul(features, w3) + b3

    def representative():
        for _ in range(32):
            yield [rng.normal(0, 1, (1, SIDE, SIDE, 4)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path.with_suffix(".plain.tflite").write_bytes(converter.convert())
    fuse_file(path.with_suffix(".plain.tflite"), path)


def int8_inputs(fused: Path, count: int, seed: int = 0) -> np.ndarray:
    """N(0, 1) images quantised with the model's input scale (the calibration distribution)."""
    model = HostModel(fused)
    floats = np.random.default_rng(seed).normal(0, 1, (count, *model.input_shape)).astype(np.float32)
    return np.stack([model.quantize_input(x) for x in floats])


def aot_outputs(fused: Path, root: Path, inputs: np.ndarray) -> list[np.ndarray]:
    generate_project(fused, root / "aot", 4 << 20)
    return build_and_run(root / "aot", "host", [inputs]).outputs


def resolver_calls(project_dir: Path) -> tuple[list[str], int, list[str]]:
    """(Add* methods called, kNumOps, custom op names) as written in the generated main.cc."""
    main = (project_dir / "main.cc").read_text()
    calls = re.findall(r"resolver\.(Add\w+)\(\)", main)
    customs = re.findall(r"AddCustom\(nlpool::kWeightedPoolOpName", main)
    count = int(re.search(r"constexpr int kNumOps = (\d+);", main).group(1))
    return calls, count, [WEIGHTED_POOL_OP_NAME] * len(customs)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("tflm_small")
    fused = root / "small_fused.tflite"
    build_small_model(fused)
    project = generate_tflm_project(fused, root / "tflm", "cortex-m7", arena_bytes=16 << 10)
    inputs = int8_inputs(fused, 6)
    return {"root": root, "fused": fused, "project": project, "inputs": inputs,
            "run": run_host(project.path, [inputs]), "aot": aot_outputs(fused, root, inputs)}


def test_small_model_is_bit_exact_with_the_aot_firmware(small):
    run = small["run"]
    assert run.outputs[0].shape == (6, 1, CLASSES) and run.outputs[0].dtype == np.int8
    np.testing.assert_array_equal(run.outputs[0], small["aot"][0])
    assert 0 < run.arena_used_bytes <= run.arena_bytes == small["project"].arena_bytes
    assert len({row.tobytes() for row in run.outputs[0]}) > 1, "inputs should give different outputs"
    report = host_report(small["project"], run, small["aot"])
    assert report["host_verified"] and report["max_abs_diff_vs_aot"] == 0
    # TFLite's converter writes per-channel dense weights: the host build swaps the fork's kernel.
    assert report["host_shims"] == ["FULLY_CONNECTED"]


def test_resolver_holds_exactly_the_models_ops(small):
    calls, count, customs = resolver_calls(small["project"].path)
    used = set(read_model(small["fused"]).op_names())
    builtins = used - {WEIGHTED_POOL_OP_NAME}
    assert {RESOLVER_METHODS[name] for name in builtins} == set(calls) and len(calls) == len(builtins)
    assert customs == [WEIGHTED_POOL_OP_NAME] and count == len(used) == len(small["project"].ops)
    assert set(small["project"].ops) == used


def test_resolver_methods_exist_in_the_tflm_header():
    header = (xmos_ai_tools_dir() / "runtime/include/tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    found = dict(re.findall(r"TfLiteStatus (Add\w+)\([^;{]*?\)\s*\{\s*return AddBuiltin\(\s*BuiltinOperator_(\w+)", header, re.S))
    for op, method in RESOLVER_METHODS.items():
        assert found.get(method) == op, f"{method} does not register {op} in TFLM's resolver"


def _tamper(fused: Path, out: Path, **changes: object) -> None:
    model = read_model(fused).raw
    graph = model.subgraphs[0]
    (op,) = [o for o in graph.operators if model.operatorCodes[o.opcodeIndex].customCode in (WEIGHTED_POOL_OP_NAME,
                                                                                          WEIGHTED_POOL_OP_NAME.encode())]
    params = WeightedPoolParams.from_flexbuffer(op.customOptions)
    op.customOptions = list(dataclasses.replace(params, **{k: v(params) for k, v in changes.items()}).to_flexbuffer())
    write_model(model, out)


@pytest.mark.parametrize(("changes", "message"), [
    ({"x_zero_point": lambda p: p.x_zero_point + 3}, "zero points disagree with the options"),
    ({"table": lambda p: (*p.table[:10], p.table[10] + 40, *p.table[11:])}, "table[10]"),
])
def test_prepare_rejects_options_that_disagree_with_the_tensors(small, tmp_path, changes, message):
    bad = tmp_path / "bad.tflite"
    _tamper(small["fused"], bad, **changes)
    project = generate_tflm_project(bad, tmp_path / "tflm", "cortex-m7", arena_bytes=16 << 10)
    with pytest.raises(NlpoolError, match=re.escape(message)) as err:
        run_host(project.path, [small["inputs"][:1]])
    assert "failed to prepare" in str(err.value) and "AllocateTensors failed" in str(err.value)


def test_an_unfused_model_with_exp_is_refused(small, tmp_path):
    with pytest.raises(NlpoolError, match="still has EXP"):
        generate_tflm_project(small["fused"].with_suffix(".plain.tflite"), tmp_path / "p", "cortex-m7", arena_bytes=1 << 14)


def test_a_builtins_only_model_runs_without_the_custom_op(tmp_path):
    """A model with no weighted pooling (e.g. --pool strided) gets a resolver of exactly its builtins."""
    model = Path(__file__).parent / "data" / "planner" / "residual_int8.tflite"
    project = generate_tflm_project(model, tmp_path / "tflm", "cortex-m7", arena_bytes=64 << 10)
    calls, count, customs = resolver_calls(project.path)
    assert customs == [] and count == len(calls) == len(set(read_model(model).op_names()))
    assert "nlpool_tflm_options.h" not in project.files
    inputs = int8_inputs(model, 3)
    np.testing.assert_array_equal(run_host(project.path, [inputs]).outputs[0], aot_outputs(model, tmp_path, inputs)[0])


def test_the_tflm_kernel_reads_exactly_the_options_the_contract_defines():
    """The C++ kernel spells the option keys once more (it must parse them); tie them to the contract."""
    source = (Path(__file__).resolve().parent.parent / "firmware" / "tflm" / "templates" / "nlpool_weighted_pool_op.cc").read_text()
    read = set(re.findall(r'ReadInt\(map, "(\w+)"', source)) | set(re.findall(r'map\["(\w+)"\]', source))
    assert read == {field.name for field in dataclasses.fields(WeightedPoolParams)}
