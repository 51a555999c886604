"""Real exported models through the TFLM project's host check (no TFLM tree needed): the default model and
a ResNet18 with self-attentive pooling, exported by export/ (onnx2tf, fusion), run under XMOS's TFLM fork
on the host and compared with nlpool's AOT firmware on the host. Slow (two onnx2tf conversions): each
model is exported once. The upstream TFLM build on the target is tested in test_export_end_to_end.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_export_data

pytest.importorskip("tensorflow")
pytest.importorskip("xmos_ai_tools")

from export.host_run import HostModel
from export.pipeline import FusedResult, convert_to_int8, export_to_onnx, fold_batchnorms, fuse_custom_ops
from firmware.aot.generate import generate_project
from firmware.run import build_and_run
from firmware.tflm import generate_tflm_project, run_host
from firmware.tflm.report import host_report
from memory_planner import plan_tflite
from nlpool.cli.model_options import resolve_model
from nlpool.core.tflite import read_model

MODELS = {
    "default": {"preset": "default"},
    # Small ResNet18 (a quarter of the channels, 32 px) keeps onnx2tf's conversion to about a minute.
    "resnet18": {"preset": "resnet18_nlp", "width": 0.25, "input_size": 32},
}
INFERENCES = 4


def export_fused(root: Path, preset: str, **flags: object) -> FusedResult:
    """export/'s own steps up to the fused models (no fidelity run), as `nlpool export` runs them."""
    model, cfg, _ = resolve_model(preset, None, **flags)
    work = root / "export"
    work.mkdir()
    data = synthetic_export_data(cfg.input_size, calib_samples=8)
    onnx = export_to_onnx(fold_batchnorms(model, data), data, work)
    return fuse_custom_ops(convert_to_int8(onnx, data, work, root / "scratch"), work)


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request, tmp_path_factory: pytest.TempPathFactory) -> dict:
    spec = dict(MODELS[request.param])
    root = tmp_path_factory.mktemp(f"tflm_{request.param}")
    fused = export_fused(root, spec.pop("preset"), **spec)
    host = HostModel(fused.path)
    floats = np.random.default_rng(0).normal(0, 1, (INFERENCES, *host.input_shape)).astype(np.float32)
    inputs = np.stack([host.quantize_input(x) for x in floats])
    # TFLM and the AOT firmware run the same fused model (NLPOOL_WEIGHTED_POOL and NLPOOL_ATTENTION).
    # The host build is 64-bit: its tail is up to 1.8x the planner's host estimate (docs/tflm.md), so it
    # gets twice that; the arena on the target is checked where the firmware runs there (export tests).
    project = generate_tflm_project(fused.path, root / "tflm", "cortex-m7",
                                    arena_bytes=2 * plan_tflite(fused.path).tflm.total_bytes_host)
    generate_project(fused.path, root / "aot", 4 << 20)
    return {"fused": fused.path, "project": project, "run": run_host(project.path, [inputs]),
            "aot": build_and_run(root / "aot", "host", [inputs]).outputs}


def test_tflm_host_build_is_bit_exact_with_the_aot_firmware(exported):
    report = host_report(exported["project"], exported["run"], exported["aot"])
    assert report["max_abs_diff_vs_aot"] == 0 and report["host_verified"]
    assert len({row.tobytes() for row in exported["run"].outputs[0]}) > 1, "inputs should give different outputs"


def test_the_64_bit_host_build_needs_more_than_the_32_bit_target(exported):
    """AllocateTensors succeeded inside the declared arena (the run above would have failed otherwise), and
    the 64-bit interpreter used more than the planner predicts for a 32-bit target."""
    run, project = exported["run"], exported["project"]
    assert run.arena_bytes == project.arena_bytes
    assert plan_tflite(exported["fused"]).tflm.total_bytes_target < run.arena_used_bytes <= project.arena_bytes


def test_resolver_holds_exactly_the_exported_ops(exported):
    used = read_model(exported["fused"]).op_names()
    assert sorted(exported["project"].ops) == sorted(set(used))
    main = (exported["project"].path / "main.cc").read_text()
    assert f"constexpr int kNumOps = {len(set(used))};" in main
