"""`nlpool plan` / `nlpool claims`, the report files, and planning from a PyTorch model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import VWW_MODEL, mlperf_model, run_cli

from memory_planner import build_plan, graph_from_torch, plan_model, plan_tflite, write_reports
from memory_planner import claims as claims_module
from memory_planner.claims import attention_score_tensors
from nlpool.checkpoint import save_checkpoint
from nlpool.cli import main
from nlpool.cli.claims_cmd import mobilenetv2_graph
from nlpool.cli.plan_cmd import EXIT_OVER_BUDGET
from nlpool.models import ModelConfig, build_model

CHAIN = Path(__file__).parent / "data" / "planner" / "chain_int8.tflite"  # arena 12,288 B


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_fits_exits_zero(capsys):
    code, out, _ = run(capsys, "plan", str(CHAIN), "--sram", "16k")
    assert code == 0
    assert "<- peak" in out and "fits" in out


def test_over_budget_exits_3_names_the_peak_layer_and_still_reports(capsys, tmp_path):
    png = tmp_path / "chart.png"
    code, out, err = run(capsys, "plan", str(CHAIN), "--sram", "8k", "--json", "--plot", str(png))
    assert code == EXIT_OVER_BUDGET == 3
    report = json.loads(out)
    assert report["fits"] is False and report["peak_bytes"] == 12288 and report["budget_bytes"] == 8192
    assert report["peak_layer"] in err and "4,096 B" in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs_are_one_line_errors(capsys, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(CHAIN.read_bytes()[:300])
    cases = ((["plan", str(bad), "--sram", "1m"], 1), (["plan", str(CHAIN), "--sram", "lots"], 2),  # a bad flag value: usage, as on export
             (["plan", str(CHAIN), "--sram", "1m", "--s1", "2"], 1))
    for argv, expected in cases:
        code, _, err = run(capsys, *argv)
        assert code == expected
        assert err.startswith("error: ") and err.count("\n") == 1


def test_plan_from_model_flags(capsys):
    code, out, _ = run(capsys, "plan", "--pool", "strided", "--s1", "1", "--input-size", "96", "--sram", "64k", "--json")
    report = json.loads(out)
    assert code == EXIT_OVER_BUDGET
    # Stage 2's stride-2 depthwise conv needs a PAD (PyTorch's 1-pixel padding of an even map is not
    # TFLite's SAME), folded into the convolution: no 50x50x48 padded copy; the peak is the depthwise
    # reading its 48x48x48 input and writing 24x24x48.
    assert report["peak_bytes"] >= report["lower_bound_bytes"] == 48 * 48 * 48 + 24 * 24 * 48
    assert report["peak_kind"] == "DEPTHWISE_CONV_2D"
    assert any(layer["op"] == "PAD" and layer["output_bytes"] == 0 for layer in report["layers"])


def test_plan_from_a_checkpoint(capsys, tmp_path):
    cfg = ModelConfig(pool="max", s1=2, input_size=64)
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, build_model(cfg), cfg)
    code, out, _ = run(capsys, "plan", "--checkpoint", str(ckpt), "--sram", "1m", "--json")
    report = json.loads(out)
    assert code == 0 and report["fits"] is True
    # The first block's depthwise (32x32x16 in and out) runs in place through one padded channel plane
    # (34x34), so the peak moves to the stem, whose PAD it folds: its input 64x64x3 and output 32x32x16.
    depthwise = next(layer for layer in report["layers"] if layer["op"] == "DEPTHWISE_CONV_2D")
    assert depthwise["scratch_bytes"] == 34 * 34 and depthwise["live_bytes"] == 32 * 32 * 16 + 34 * 34
    assert report["lower_bound_bytes"] == 64 * 64 * 3 + 32 * 32 * 16


def test_write_reports_files_and_export_keys(tmp_path):
    plan = plan_tflite(CHAIN)
    data = write_reports(plan, 16 * 1024, tmp_path / "out")
    for key in ("peak_bytes", "budget_bytes", "fits", "peak_layer", "flash_bytes", "tflm"):
        assert key in data
    assert data["tflm"]["head_bytes"] == 12288
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["memory.json", "memory.md", "memory.png"]
    assert json.loads((tmp_path / "out" / "memory.json").read_text())["fits"] is True
    assert "(peak)" in (tmp_path / "out" / "memory.md").read_text()


@pytest.fixture(scope="module")
def nlp_plan():
    cfg = ModelConfig()  # 0.35x, nlp, s1=2, 96 px: stage 1 pools a 48x48 map with 4x4 patches -> 144 tokens
    return plan_model(build_model(cfg), cfg)


def test_unfused_model_graph_exposes_attention_scores():
    cfg = ModelConfig()
    graph = graph_from_torch(build_model(cfg), cfg.input_size, fuse_attention=False)
    scores = attention_score_tensors(graph)
    assert (1, 2, 144, 144) in {graph.tensors[t].shape for t in scores}
    assert not any(op.kind == "BATCH_NORM" for op in graph.ops)  # folded into the convs
    peak = build_plan(graph).peak_layer
    assert peak.kind == "SOFTMAX" and peak.output_shape == (1, 2, 144, 144)
    assert peak.live_bytes >= 2 * 2 * 144 * 144  # scores and softmax output live together


def test_model_plan_is_the_deployed_graph(nlp_plan):
    """As the firmware runs it: each attention block one NLPOOL_ATTENTION op with its O(N E) scratch
    (no score tensor), the peak depthwise in place, the stem's PAD folded; the arena is the firmware's
    (64,512 B, measured by the export on the same model with the portable kernels)."""
    graph = nlp_plan.graph
    attention = [op for op in graph.ops if op.kind == "CUSTOM:NLPOOL_ATTENTION"]
    assert len(attention) == 5 and not attention_score_tensors(graph)
    stage1 = graph.tensors[attention[0].scratch[0]].nbytes
    assert stage1 == 2 * 144 * 8 + 144 + 2 * 8  # tokens 144, width 8
    assert [op.kind for op in graph.ops if op.inplace] == ["DEPTHWISE_CONV_2D"]
    assert nlp_plan.best.arena_bytes == 64_512


def test_model_plan_predicts_tflms_arena_as_the_exported_file_does(nlp_plan):
    """TFLM's arena from the PyTorch graph: the same head as the exported file's plan (73,728 B) and a
    tail within 0.2 % of it, the per-channel arrays counted over NCHW channels and the attention
    kernel's OpData and option arrays included (measured on QEMU M7: 161,300 B used, reference
    kernels; the file's prediction 161,392 B)."""
    tflm = nlp_plan.tflm
    assert nlp_plan.graph.channel_axis == 1 and tflm.head_bytes == 73_728
    assert abs(tflm.total_bytes_target - 161_300) <= 0.002 * 161_300
    attention = [op for op in nlp_plan.graph.ops if op.kind == "CUSTOM:NLPOOL_ATTENTION"]
    assert attention[0].tflm_kernel_data == (208, 4 * (256 + 8 * 8 + 10 * (1 + 4)) + 8 * 4)  # E = 8, table, 4 steps


def test_model_plan_uses_the_fused_weighted_pool(nlp_plan):
    kinds = [op.kind for op in nlp_plan.graph.ops]
    assert kinds.count("CUSTOM:NLPOOL_WEIGHTED_POOL") == 5  # one per down-sampling stage
    assert "EXP" not in kinds and "DIV" not in kinds


def test_claims_marks_invalid_configurations(monkeypatch):
    monkeypatch.setattr(claims_module, "WIDTHS", (0.35,))
    monkeypatch.setattr(claims_module, "POOLS", ("nlp",))
    monkeypatch.setattr(claims_module, "S1S", (2, 4))
    monkeypatch.setattr(claims_module, "SIZES", (96,))
    report = claims_module.claims_report(512 * 1024, mobilenetv2_graph, progress=False)
    rows = {entry["s1"]: entry for entry in report["configurations"]}
    assert "too small" in rows[4]["n/a"]
    assert rows[2]["bytes"]["arena"] >= rows[2]["bytes"]["arena_noattn"]
    assert rows[2]["bytes"]["io"] > rows[2]["bytes"]["io_noattn"]
    assert rows[2]["bytes"]["deployed"] < rows[2]["bytes"]["arena_noattn"] < rows[2]["bytes"]["arena"]
    assert "n/a (" in claims_module.format_claims(report)


def test_a_float_model_is_planned_at_its_real_sizes_with_a_warning(capsys, tmp_path):
    from ai_edge_litert import schema_py_generated as schema

    from nlpool.core.tflite import read_model, write_model

    model = read_model(CHAIN)
    raw = model.raw
    for tensor in model.tensors:
        if not tensor.constant:  # every activation float32, unquantised: what a float converter writes
            raw.subgraphs[0].tensors[tensor.index].type = schema.TensorType.FLOAT32
            raw.subgraphs[0].tensors[tensor.index].quantization = None
    path = tmp_path / "float.tflite"
    write_model(raw, path)
    code, out, err = run(capsys, "plan", str(path), "--sram", "1m", "--json")
    assert code == 0 and err.startswith("warning:") and "float32 activations" in err and err.count("\n") == 1
    assert json.loads(out)["peak_bytes"] == 4 * plan_tflite(CHAIN).peak_bytes  # 4-byte elements, same layout


def test_keras_models_free_batch_is_planned_at_batch_1_with_a_note():
    code, out, err = run_cli(["plan", str(mlperf_model(VWW_MODEL)), "--sram", "512k"])
    assert code == 0, err
    assert "planned and run at batch 1" in err and len(err.strip().splitlines()) == 1
    assert "55,296 B" in out  # the VWW peak: the 48x48x8 depthwise output beside the 48x48x16 pointwise output
