"""`nlpool export MODEL.tflite`: models nlpool did not make, through the same steps to two verified firmwares.

MLPerf Tiny's reference models (read in place from ../shared) on the emulated Cortex-M4 with both TFLM
trees: the AOT firmware (CMSIS-NN with the CMSIS-NN tree, portable with the reference tree) and the
TFLM firmware bit-exact with TFLM's host interpreter, and TFLM's arena predicted within 2 %. Models a
user brings that the converter wrote with float edges or with an op the AOT runtime lacks, and damaged
files, each get what a user needs: a run, or one line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import IC_MODEL, VWW_MODEL, mlperf_model, run_cli

from nlpool.core.tflite import read_model, schema, write_model

TREES = {"cmsis-nn": os.environ.get("NLPOOL_TFLM_DIR"), "reference": os.environ.get("NLPOOL_TFLM_REF_DIR")}
CMSIS_NN_DIR = os.environ.get("NLPOOL_CMSIS_NN_DIR")
needs_trees = pytest.mark.skipif(not (all(TREES.values()) and CMSIS_NN_DIR),
                                 reason="needs both TFLM trees and the CMSIS-NN tree (.ci/run sets them)")
INPUTS = 10


@pytest.fixture
def no_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the trees a test names on the command line: without the flag, portable kernels and no TFLM run."""
    for variable in ("NLPOOL_TFLM_DIR", "NLPOOL_CMSIS_NN_DIR"):
        monkeypatch.delenv(variable, raising=False)


def _export(model: Path, out: Path, *flags: str) -> tuple[int, dict, str]:
    """`nlpool export MODEL.tflite` on Cortex-M4; the trees are the flags' (tests clear the environment's)."""
    code, _stdout, stderr = run_cli(["export", str(model), "--target", "cortex-m4", "--sram", "256k", "--out", str(out),
                                     "--firmware-inputs", str(INPUTS), *flags])
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
    return code, report, stderr


@needs_trees
@pytest.mark.parametrize("kernels", ["cmsis-nn", "reference"])
@pytest.mark.parametrize("name", ["ic", "vww"])
def test_mlperf_tiny_models_run_bit_exact_on_both_firmwares(name: str, kernels: str, tmp_path: Path, no_trees: None) -> None:
    model = mlperf_model({"ic": IC_MODEL, "vww": VWW_MODEL}[name])
    aot_tree = ["--cmsis-nn-dir", CMSIS_NN_DIR] if kernels == "cmsis-nn" else []
    code, report, stderr = _export(model, tmp_path / "out", "--tflm-dir", TREES[kernels], *aot_tree)
    assert code == 0, stderr
    assert "planned and run at batch 1" in stderr  # the converter's -1 batch, said once
    assert report["model"]["free_batch"] and report["inputs"]["count"] == INPUTS
    assert "fidelity" not in report and "onnx" not in report  # nothing that needs PyTorch is invented
    firmware, tflm = report["firmware"], report["tflm"]
    assert firmware["passed"] and firmware["bitexact_vs_host"] and firmware["bitexact_vs_reference"]
    assert firmware["kernels"] == ("cmsis-nn" if kernels == "cmsis-nn" else "portable")
    assert firmware["top1_agreement_vs_pytorch"] is None and firmware["pytorch_bars"].startswith("not applicable")
    assert tflm["target_verified"] and tflm["kernels"] == kernels and tflm["max_abs_diff_vs_aot"] == 0
    assert abs(tflm["arena_prediction_error"]) <= 0.02, tflm  # TFLM's arena predicted within 2 %
    for section in (firmware, tflm):  # the Cortex-M4 issues one instruction at a time: cycles >= instructions
        assert section["estimated_cycles_per_inference"] >= section["instructions_per_inference"], section
        assert section["clock_mhz"] == 120.0 and "NUCLEO-L4R5ZI" in section["clock_board"]


@needs_trees
def test_mlperf_ic_on_cortex_m33_aot_and_tflm_bit_exact_with_the_reference_and_estimated(tmp_path: Path, no_trees: None) -> None:
    """The Cortex-M33 (Armv8-M, DSP: CMSIS-NN's DSP paths) runs both firmwares bit-exact with the host
    reference, each estimated per op in cycles and milliseconds at the clock the user names."""
    out = tmp_path / "out"
    code, _stdout, stderr = run_cli(["export", str(mlperf_model(IC_MODEL)), "--target", "cortex-m33", "--sram", "256k",
                                     "--out", str(out), "--firmware-inputs", "2", "--clock", "160",
                                     "--tflm-dir", TREES["cmsis-nn"], "--cmsis-nn-dir", CMSIS_NN_DIR])
    assert code == 0, stderr
    report = json.loads((out / "report.json").read_text())
    firmware, tflm = report["firmware"], report["tflm"]
    assert firmware["bitexact_vs_reference"] and firmware["kernels"] == "cmsis-nn"
    assert tflm["target_verified"] and tflm["kernels"] == "cmsis-nn" and tflm["max_abs_diff_vs_aot"] == 0
    for section in (firmware, tflm):
        assert section["estimated_cycles_per_inference"] >= section["instructions_per_inference"], section
        assert section["clock_mhz"] == 160.0 and section["clock_board"] == "--clock"
        assert section["estimated_ms_per_inference"] == pytest.approx(section["estimated_cycles_per_inference"] / 160e3, rel=1e-3)
        ops = section["profile"]["by_op"]
        assert all(op["estimated_cycles"] >= op["instructions"] * 0.95 for op in ops)  # SysTick counts ops to one tick
    assert "estimated time per inference" in stderr and "ms at 160 MHz, --clock" in stderr
    assert (tmp_path / "out" / "memory.md").is_file() and (tmp_path / "out" / "firmware_tflm" / "Makefile").is_file()


def test_pytorch_only_flags_beside_a_tflite_are_refused_in_one_line(tmp_path: Path) -> None:
    model = mlperf_model(IC_MODEL)
    for flags in (["--min-top1", "0.5"], ["--arch", "resnet18"], ["--input-format", "rgb888"]):
        code, _, err = run_cli(["export", str(model), "--target", "cortex-m4", "--sram", "256k", "--out", str(tmp_path / "o"), *flags])
        assert code == 1 and len(err.strip().splitlines()) == 1 and "apply only to PyTorch models" in err, (flags, err)
        assert not (tmp_path / "o").exists()


def _tampered(tmp_path: Path, name: str, edit: object) -> Path:
    tree = read_model(mlperf_model(IC_MODEL)).raw
    edit(tree)  # type: ignore[operator]
    path = tmp_path / f"{name}.tflite"
    write_model(tree, path)
    return path


def _drop_first_weight_buffer(tree: schema.ModelT) -> None:
    conv = tree.subgraphs[0].operators[0]
    tree.buffers[tree.subgraphs[0].tensors[conv.inputs[1]].buffer].data = None


def _open_height(tree: schema.ModelT) -> None:
    graph = tree.subgraphs[0]
    graph.tensors[graph.inputs[0]].shapeSignature = [1, -1, 32, 3]


def test_damaged_models_fail_in_one_line_before_any_work(tmp_path: Path, no_trees: None) -> None:
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(mlperf_model(IC_MODEL).read_bytes()[:5000])
    cases = {
        truncated: "truncated.tflite",
        _tampered(tmp_path, "missing_buffer", _drop_first_weight_buffer): "missing_buffer.tflite",
        _tampered(tmp_path, "open_height", _open_height): "dynamic shape",
    }
    for path, expected in cases.items():
        out = tmp_path / f"out-{path.stem}"
        code, _, err = run_cli(["export", str(path), "--target", "cortex-m4", "--sram", "256k", "--out", str(out), "--no-run"])
        assert code == 1 and len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err, (path, err)
        assert not out.exists()


def _keras_model(tmp_path: Path, name: str, activation: str, float_edges: bool) -> Path:
    """A small Keras CNN converted the way most users convert (full-integer int8, float edges by default)."""
    tf = pytest.importorskip("tensorflow")
    inputs = tf.keras.Input((16, 16, 3), batch_size=None)
    x = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", activation=activation)(inputs)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(4, activation="softmax")(x)
    model = tf.keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)] for _ in range(16))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_edges:
        converter.inference_input_type = converter.inference_output_type = tf.int8
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(converter.convert())
    return path


def test_a_float_edged_keras_model_runs_on_the_aot_firmware(tmp_path: Path, no_trees: None) -> None:
    model = _keras_model(tmp_path, "float_edges", "relu", float_edges=True)
    ops = read_model(model).op_names()
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE"  # the converter's default float edges
    code, report, stderr = _export(model, tmp_path / "out")
    assert code == 0, stderr
    assert report["firmware"]["bitexact_vs_host"] and report["firmware"]["bitexact_vs_reference"], report["firmware"]
    assert report["model"]["inputs"][0]["dtype"] == "float32" and report["model"]["outputs"][0]["dtype"] == "float32"


@needs_trees
@pytest.mark.parametrize("kernels", ["reference", "cmsis-nn"])
def test_an_op_the_aot_runtime_lacks_is_one_line_and_tflm_still_runs(tmp_path: Path, no_trees: None, kernels: str) -> None:
    """With CMSIS-NN too: its buffer sizes, which TFLM's arena plan needs, are probed for the ops the AOT runtime covers."""
    model = _keras_model(tmp_path, "tanh", "tanh", float_edges=False)
    assert "TANH" in read_model(model).op_names()
    aot_tree = ["--cmsis-nn-dir", CMSIS_NN_DIR] if kernels == "cmsis-nn" else []
    code, report, stderr = _export(model, tmp_path / "out", "--tflm-dir", TREES[kernels], *aot_tree)
    assert code == 1 and "TANH" in report["firmware"]["error"] and report["firmware"]["generated"] is False
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "TANH" in errors[0]
    tflm = report["tflm"]
    assert tflm["target_verified"] and tflm["max_abs_diff_vs_reference"] == 0 and "tflite-micro" in tflm["reference"]
