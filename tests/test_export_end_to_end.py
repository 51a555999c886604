"""`nlpool export` end to end: the default model and a small ResNet18 with nlp pooling.

onnx2tf takes about a minute per model, so each export runs once per module and the tests read its
folder. The default export is exactly what a user runs (`nlpool export` with no model flags: the
shipped weights). The fidelity bars (fused vs PyTorch top-1 >= 99 %, cosine >= 0.99) are properties
of a *trained* model: with random weights the attention is uniform over up to 144 tokens, its int8
softmax keeps 1-2 levels per entry and the next BatchNorm amplifies that noise. So the ResNet18 (no
trained weights exist for it) is checked for what holds for any weights: a complete, fully fused
export whose fused model is no worse than the unfused int8 one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import run_cli, settle_batchnorm

from nlpool.checkpoint import save_checkpoint
from nlpool.cli.model_options import SHIPPED_WEIGHTS
from nlpool.core.tflite import read_model
from nlpool.models import ModelConfig, build_model

FILES = {
    "model.onnx", "model_int8.tflite", "model_int8_fused.tflite", "report.json",
    "memory.md", "memory.json", "memory.png", "firmware_aot", "firmware_tflm", "nlpool_manifest.json",
}
POOL_OPS = {"LOGISTIC", "EXP", "DIV", "AVERAGE_POOL_2D", "DEQUANTIZE", "QUANTIZE"}


@contextlib.contextmanager
def _counting_plans_and_builds() -> Iterator[Counter]:
    """Counts, during the block, memory plans (wherever they are made), firmware builds per target,
    parses of the fused model file and runs of the CMSIS-NN buffer-size probe."""
    import export.pipeline
    import firmware.aot.generate
    import firmware.run
    import firmware.tflm.project
    import firmware.tflm.target
    import memory_planner.memory_plan
    import nlpool.core.tflite
    import nlpool.flow.deploy
    from memory_planner import plan_tflite

    calls: Counter = Counter()

    def counted_plan(path, **kwargs):
        calls["plan"] += 1
        return plan_tflite(path, **kwargs)

    build = firmware.run.build

    def counted_build(project_dir, target, portable=False):
        calls[f"build {target}{' portable' if portable else ''}"] += 1
        return build(project_dir, target, portable)

    read = nlpool.core.tflite.read_model

    def counted_read(path):
        if Path(path).name == "model_int8_fused.tflite":
            calls["read fused"] += 1
        return read(path)

    probe = firmware.aot.generate.probe_scratch

    def counted_probe(*args, **kwargs):
        calls["cmsis-nn probe"] += 1
        return probe(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        for module in (nlpool.flow.deploy, firmware.aot.generate, firmware.tflm.project, firmware.tflm.target):
            patch.setattr(module, "plan_tflite", counted_plan)
        for module in (nlpool.core.tflite, export.pipeline, memory_planner.memory_plan):
            patch.setattr(module, "read_model", counted_read)
        patch.setattr(firmware.aot.generate, "probe_scratch", counted_probe)
        patch.setattr(firmware.run, "build", counted_build)
        yield calls


# The TFLM trees the TFLM firmware is built against where CI has them (.ci/run): the default model with
# the CMSIS-NN tree ($NLPOOL_TFLM_DIR, which nlpool export reads itself), the ResNet18 with the
# reference one (passed with --tflm-dir). Without them the TFLM run is skipped and says why.
TFLM_REF_DIR = os.environ.get("NLPOOL_TFLM_REF_DIR")
# With a CMSIS-NN tree ($NLPOOL_CMSIS_NN_DIR, read by nlpool export itself, as CI sets it) the AOT
# firmware runs on CMSIS-NN's kernels, and its portable build runs on the same board too.
CMSIS_NN_DIR = os.environ.get("NLPOOL_CMSIS_NN_DIR")
TARGETS = {"default_export": "cortex-m7", "resnet_export": "cortex-m4"}


def _export(root: Path, cfg: ModelConfig | None, target: str, tflm_dir: str | None) -> tuple[Path, dict, Counter]:
    """Export the default model with its shipped weights (cfg None) or `cfg` with settled random weights;
    also returns how often the export planned memory and built each firmware."""
    out = root / "out"
    args = ["export", "--target", target, "--sram", "512k", "--out", str(out)]
    if tflm_dir is not None:
        args += ["--tflm-dir", tflm_dir]
    if cfg is not None:
        torch.manual_seed(0)
        model = settle_batchnorm(build_model(cfg), cfg.input_size, batch=8)
        save_checkpoint(root / "model.pt", model, cfg)
        # Random weights give near-tied logits, so top-1 flips between int8 and float say nothing about
        # the firmware; the bit-exactness checks still gate, and the cosine bar stays.
        args += ["--checkpoint", str(root / "model.pt"), "--min-top1", "0.9"]
    with _counting_plans_and_builds() as calls:
        code, stdout, stderr = run_cli(args)
    assert code == 0, stderr
    assert "wrote" in stdout
    return out, json.loads((out / "report.json").read_text()), calls


@pytest.fixture(scope="module")
def default_export(tmp_path_factory):
    assert SHIPPED_WEIGHTS.is_file(), "the default model's shipped weights are part of the repository"
    return _export(tmp_path_factory.mktemp("default"), None, TARGETS["default_export"], None)


@pytest.fixture(scope="module")
def resnet_export(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("resnet"), ModelConfig(arch="resnet18", width=0.25, s1=1, input_size=32),
                   TARGETS["resnet_export"], TFLM_REF_DIR)


def _nlp_pools(cfg: ModelConfig) -> int:
    return sum(1 for p in cfg.stage_patch_sizes() if p > 0)


@pytest.mark.parametrize("which", ["default_export", "resnet_export"])
def test_export_writes_complete_folder(which, request):
    out, report, _ = request.getfixturevalue(which)
    assert {p.name for p in out.iterdir()} == FILES
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folder left
    cfg = ModelConfig.from_dict({k: v for k, v in report["model"].items() if k != "weights"})
    assert report["target"] == TARGETS[which] and report["sram_bytes"] == 512 * 1024
    assert report["onnx"]["max_abs_diff_vs_pytorch"] <= 1e-4
    assert report["fold_bn"]["batchnorms_folded"] > 0 and report["fold_bn"]["max_layer_relative_diff"] <= 1e-5
    unfused, fused = read_model(out / "model_int8.tflite").op_names(), read_model(out / "model_int8_fused.tflite").op_names()
    assert unfused.count("EXP") == unfused.count("DIV") == _nlp_pools(cfg) > 0
    assert fused.count("NLPOOL_WEIGHTED_POOL") == _nlp_pools(cfg)
    assert not POOL_OPS & set(fused)
    assert report["tflite_int8_fused"]["custom_ops"] == _nlp_pools(cfg)
    # every attention block is one NLPOOL_ATTENTION op in the model both runtimes run
    blocks = unfused.count("SOFTMAX")
    assert fused.count("NLPOOL_ATTENTION") == report["tflite_int8_fused"]["attention_ops"] == blocks
    assert "SOFTMAX" not in fused and report["tflite_int8_fused"]["attention_left_unfused"] == []
    assert report["tflm"]["file"] == "model_int8_fused.tflite" and "NLPOOL_ATTENTION" in report["tflm"]["ops"]


@pytest.mark.parametrize("which", ["default_export", "resnet_export"])
def test_fused_model_is_no_worse_than_unfused_int8(which, request):
    _, report, _ = request.getfixturevalue(which)
    fidelity = report["fidelity"]
    assert fidelity["samples"] >= 200
    assert fidelity["onnx"]["max_abs_error"] <= 1e-4 and fidelity["onnx"]["top1_agreement"] == 1.0
    assert fidelity["tflite_int8_fused"]["mean_abs_error"] <= fidelity["tflite_int8"]["mean_abs_error"]


def test_default_model_fidelity_bars(default_export):
    _, report, _ = default_export
    assert report["model"]["weights"].startswith("shipped weights")
    fidelity = report["fidelity"]
    fused = fidelity["tflite_int8_fused"]
    assert fused["top1_agreement"] >= 0.99
    assert fused["cosine"] >= 0.99
    assert fused["accuracy"] >= fidelity["pytorch"]["accuracy"] - 0.01  # on the labelled synthetic task it was trained on


@pytest.mark.parametrize("which", ["default_export", "resnet_export"])
def test_export_plans_memory_and_runs_both_firmwares(which, request):
    """The one command ends with a memory verdict, the AOT firmware on QEMU and, given a TFLM tree, the TFLM
    firmware on QEMU, bit-exact with the AOT firmware and within 2 % of the planner's arena prediction."""
    out, report, _ = request.getfixturevalue(which)
    memory = report["memory"]
    assert memory["fits"] and memory["budget_bytes"] == 512 * 1024
    assert 0 < memory["peak_bytes"] <= memory["budget_bytes"] and memory["peak_layer"] and memory["flash_bytes"] > 0
    firmware = report["firmware"]
    assert firmware["target"] == TARGETS[which] and firmware["inferences"] == 100
    assert firmware["bitexact_vs_host"] and firmware["bitexact_vs_reference"] and firmware["passed"]
    assert firmware["arena_bytes"] == memory["peak_bytes"]
    assert firmware["arena_bytes"] <= firmware["sram_used_bytes"] <= 512 * 1024
    assert firmware["stack_high_water_bytes"] > 0 and firmware["instructions_per_inference"] > firmware["macs_per_inference"]
    assert (out / "firmware_aot" / "Makefile").is_file() and (out / "firmware_tflm" / "main.cc").is_file()
    tflm = report["tflm"]
    assert "NLPOOL_WEIGHTED_POOL" in tflm["ops"]
    tree = os.environ.get("NLPOOL_TFLM_DIR") if which == "default_export" else TFLM_REF_DIR
    if tree is None:
        assert not tflm["target_verified"] and tflm["run"].startswith("skipped: no TFLM source tree; get a TFLM")
        return
    assert tflm["target_verified"] and tflm["max_abs_diff_vs_aot"] == 0 and tflm["inferences"] == 100
    assert tflm["kernels"] == ("cmsis-nn" if which == "default_export" else "reference")
    assert abs(tflm["predicted_arena_bytes"] - tflm["target_arena_used_bytes"]) <= 0.02 * tflm["target_arena_used_bytes"]
    assert tflm["target_arena_used_bytes"] <= tflm["arena_bytes"]
    assert tflm["top1_agreement_vs_pytorch"] == firmware["top1_agreement_vs_pytorch"]
    assert tflm["instructions_per_inference"] > 0 and tflm["stack_high_water_bytes"] > 0
    # MicroProfiler's per-op profile of the first inference: every op of the TFLM model, summing to that
    # inference's measured instructions less the interpreter's and the profiler's work between ops.
    profile = tflm["profile"]
    assert [o["op"] for o in profile["by_op"]] == read_model(out / "model_int8_fused.tflite").op_names()
    measured = profile["profiled_inference_instructions"]
    assert 0 <= measured - profile["profiled_instructions"] <= 0.01 * measured


def test_export_plans_memory_once_reads_the_fused_model_once_and_builds_each_firmware_once(default_export):
    """One plan of the fused model for the memory report and the AOT generator, one for TFLM's arena
    (`tflm_plan`: no folding, nothing in place, its CMSIS-NN kernels' buffers on this core); the AOT host
    run serves the firmware check and the TFLM comparison."""
    calls = default_export[2]
    # With a CMSIS-NN tree (CI's TFLM tree carries the same one) its buffer sizes are probed once for
    # the memory plan, the AOT generator and TFLM's arena plan.
    cmsis = {"build cortex-m7 portable": 1, "cmsis-nn probe": 1} if CMSIS_NN_DIR else {}
    # The fused model is parsed once, where the fuse step writes it; every later step takes that model.
    assert calls == {"plan": 2, "build host": 1, "build cortex-m7": 1, "read fused": 1, **cmsis}


@pytest.mark.parametrize("which", ["default_export", "resnet_export"])
def test_firmware_profile_names_every_op_and_sums_to_the_total(which, request):
    """The per-op instruction profile of the AOT firmware: one entry per op of the fused model, in order,
    with the kernel set that ran it, summing to the measured total less the loop around the ops."""
    out, report, _ = request.getfixturevalue(which)
    firmware = report["firmware"]
    profile = firmware["profile"]
    assert [o["op"] for o in profile["by_op"]] == read_model(out / "model_int8_fused.tflite").op_names()
    total = firmware["instructions_per_inference"]
    assert 0 <= total - profile["profiled_instructions"] <= 0.001 * total
    kernels = {o["kernel"] for o in profile["by_op"]}
    assert firmware["kernels"] == ("cmsis-nn" if CMSIS_NN_DIR else "portable")
    # folded: a PAD the conv does; generated: nlpool's per-layer kernels, which a CMSIS-NN build runs on DSP cores
    assert kernels - {"folded"} <= ({"generated", "cmsis-nn", "portable"} if CMSIS_NN_DIR else {"generated", "portable"})
    assert "generated" in kernels or not CMSIS_NN_DIR
    assert abs(sum(k["share"] for k in profile["by_kind"]) - 1) < 0.01


@pytest.mark.skipif(not CMSIS_NN_DIR, reason="no CMSIS-NN tree (set NLPOOL_CMSIS_NN_DIR)")
def test_default_firmware_on_cmsis_nn_is_bitexact_and_faster_than_tflm(default_export):
    """CMSIS-NN where it covers an op, nlpool's kernels elsewhere: bit-exact with the portable build and the
    reference, with CMSIS-NN's buffers in the planned arena; with the TFLM tree too, fewer instructions
    than TFLM with CMSIS-NN running the same fused model (nlpool's custom-op kernels) on the same board
    and inputs (measured 0.926x)."""
    out, report, _ = default_export
    firmware = report["firmware"]
    assert firmware["kernels"] == "cmsis-nn" and firmware["bitexact_vs_host"] and firmware["bitexact_vs_reference"]
    portable = firmware["portable"]
    assert portable["bitexact_vs_cmsis_nn"] and portable["cmsis_nn_speedup"] > 1.2
    layers = json.loads((out / "memory.json").read_text())["layers"]
    scratch = {layer["op"] for layer in layers if layer["scratch_bytes"]}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "CUSTOM:NLPOOL_ATTENTION"} <= scratch  # CMSIS-NN's buffers and the attention's
    if os.environ.get("NLPOOL_TFLM_DIR"):
        ratio = report["tflm"]["aot_vs_tflm_instructions"]
        assert ratio["aot_kernels"] == "cmsis-nn" and ratio["ratio"] <= 0.95


@pytest.mark.skipif(not (CMSIS_NN_DIR and os.environ.get("NLPOOL_TFLM_DIR")), reason="needs the CMSIS-NN and TFLM trees")
def test_default_firmware_on_cmsis_nn_needs_at_most_0_8x_tflm_with_its_own_attention_ops(default_export, tmp_path):
    """What a TFLM user without nlpool's attention kernel runs: the model with only the weighted poolings
    fused, each attention block as TFLM's own ops, with CMSIS-NN; the AOT firmware on CMSIS-NN needs at
    most 0.8x its instructions per inference (measured 0.61x)."""
    import numpy as np

    from export.fusion import fuse_file
    from firmware.tflm import build_for_target, find_tree, generate_tflm_project, run_on_target

    out, report, _ = default_export
    stock = tmp_path / "model_int8_pools_fused.tflite"
    fuse_file(out / "model_int8.tflite", stock)
    assert "SOFTMAX" in read_model(stock).op_names() and "NLPOOL_ATTENTION" not in read_model(stock).op_names()
    tree = find_tree(os.environ["NLPOOL_TFLM_DIR"])
    project = generate_tflm_project(stock, tmp_path / "tflm", "cortex-m7")
    build = build_for_target(project.path, "cortex-m7", tree)
    inputs = np.random.default_rng(0).integers(-128, 128, size=(2, 1, 96, 96, 3), dtype=np.int8)
    run = run_on_target(project.path, "cortex-m7", build.elf, inputs, tree=tree)
    aot = report["firmware"]["instructions_per_inference"]
    assert report["firmware"]["kernels"] == "cmsis-nn" and aot <= 0.8 * run.instructions_per_inference


def test_default_arena_keeps_the_papers_memory_promise(default_export):
    """The attention blocks stream (no heads x N x N scores) and the peak depthwise convolution runs in
    place: the whole arena, CMSIS-NN's buffers included when it is used, stays under 66,000 B."""
    out, report, _ = default_export
    firmware = report["firmware"]
    assert firmware["arena_bytes"] <= 66_000 and report["memory"]["peak_bytes"] == firmware["arena_bytes"]
    assert "nl_depthwise_conv2d_inplace(" in (out / "firmware_aot" / "model.c").read_text()


def test_default_model_firmware_agrees_with_pytorch(default_export):
    firmware = default_export[1]["firmware"]
    assert firmware["top1_agreement_vs_pytorch"] >= 0.98 and firmware["cosine_vs_pytorch"] >= 0.99


@pytest.mark.skipif(not (CMSIS_NN_DIR and os.environ.get("NLPOOL_TFLM_DIR")), reason="needs the CMSIS-NN and TFLM trees")
def test_default_model_on_cortex_m33_is_bitexact_with_both_runtimes(default_export, tmp_path):
    """The default model's fused file on the Cortex-M33 (CMSIS-NN's DSP paths and nlpool's generated kernels):
    the AOT firmware bit-exact with the host reference chain, which the M7 firmware above matches too, and
    TFLM (both custom ops through nlpool's kernels) bit-exact with it; the cycle estimate never below the
    instructions on this single-issue core."""
    fused = default_export[0] / "model_int8_fused.tflite"
    code, _, stderr = run_cli(["export", str(fused), "--target", "cortex-m33", "--sram", "512k", "--out", str(tmp_path / "m33"),
                               "--firmware-inputs", "4", "--clock", "160"])
    assert code == 0, stderr
    report = json.loads((tmp_path / "m33" / "report.json").read_text())
    firmware, tflm = report["firmware"], report["tflm"]
    assert firmware["bitexact_vs_host"] and firmware["bitexact_vs_reference"] and firmware["kernels"] == "cmsis-nn"
    assert tflm["target_verified"] and tflm["max_abs_diff_vs_aot"] == 0
    assert firmware["estimated_cycles_per_inference"] >= firmware["instructions_per_inference"]
    assert firmware["clock_mhz"] == 160


def test_over_budget_export_writes_the_report_and_exits_3(tmp_path):
    """Over the SRAM budget: the evidence (memory report, projects) is written, the exit code says no."""
    out = tmp_path / "out"
    code, _, stderr = run_cli(["export", "--target", "cortex-m4", "--sram", "48k", "--out", str(out), "--no-run"])
    assert code == 3
    assert stderr.strip().splitlines()[-1].startswith("error: over budget") and "49,152 B budget" in stderr
    report = json.loads((out / "report.json").read_text())
    assert report["memory"]["fits"] is False and report["memory"]["peak_bytes"] > 48 * 1024
    assert report["firmware"]["run"] == "skipped: over the SRAM budget" and (out / "memory.png").is_file()
    assert report["tflm"]["run"] == "skipped: over the SRAM budget"


# report.json's sections and their fields as users' scripts read them (the typed steps serialise to exactly these).
# The cycle estimate's fields, in `firmware` and `tflm` alike (docs/firmware.md, Cycle estimate).
ESTIMATE_FIELDS = {"clock_board", "clock_mhz", "cycles_per_instruction", "estimated_cycles_per_inference", "estimated_ms_per_inference",
                   "timing_model"}
REPORT_FIELDS = {
    "data": {"calibration", "class_names", "fidelity", "input_format"},
    "fold_bn": {"batchnorms_folded", "max_layer_relative_diff"},
    "onnx": {"file", "max_abs_diff_vs_pytorch", "opset"},
    "tflite_int8": {"file", "ops"},
    "tflite_int8_fused": {"attention", "attention_left_unfused", "attention_ops", "custom_ops", "file", "ops", "pools"},
    "fidelity": {"data", "onnx", "pytorch", "samples", "tflite_int8", "tflite_int8_fused"},
    "memory": {"activation_tensors", "alignment", "best_strategy", "budget_bytes", "fits", "flash_bytes", "headroom_bytes", "in_place",
               "in_place_ops", "lower_bound_bytes", "message", "model", "naive_bytes", "ops", "peak_bytes", "peak_kind", "peak_layer",
               "peak_layer_full_name", "peak_step", "plan_over_lower_bound", "source", "tflm", "tflm_fits"},
    "firmware": {"accuracy_on_labels", "arena_bytes", "arena_lower_bound_bytes", "bitexact_vs_host", "bitexact_vs_reference",
                 "cosine_vs_pytorch", "flash_bytes", "inferences", "input", "instructions_per_inference", "instructions_per_mac", "kernels",
                 "op_kernels", "kernels_note", "macs_per_inference", "mismatches_vs_host", "mismatches_vs_reference", "passed", "portable",
                 "profile", "pytorch_bars", "sram_budget_bytes", "sram_used_bytes", "stack_high_water_bytes", "target",
                 "top1_agreement_vs_pytorch",
                 *ESTIMATE_FIELDS},
}
TFLM_RUN_FIELDS = {"aot_vs_tflm_instructions", "arena_bytes", "arena_margin_bytes", "arena_prediction_error", "build_seconds", "file",
                   "flash_bytes", "inferences", "instructions_per_inference", "kernels", "max_abs_diff_vs_aot", "ops",
                   "predicted_arena_bytes", "profile", "project", "sram_used_bytes", "stack_high_water_bytes", "target",
                   "target_arena_used_bytes", "target_verified", "tflm_dir", "tflm_object_cache", "tflm_objects_compiled",
                   "top1_agreement_vs_pytorch", *ESTIMATE_FIELDS}


def test_report_json_keeps_its_sections_and_fields(default_export):
    _, report, _ = default_export
    assert set(report) == {*REPORT_FIELDS, "model", "target", "sram_bytes", "tflm", "step_seconds", "total_seconds"}
    for section, fields in REPORT_FIELDS.items():
        assert set(report[section]) == fields, section
    if report["tflm"].get("target_verified"):
        assert set(report["tflm"]) == TFLM_RUN_FIELDS
    assert report["memory"]["source"] == "model_int8_fused.tflite"  # the file as it is after the export, not the build folder
