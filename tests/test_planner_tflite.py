"""Planning .tflite files: reading, clean errors on bad files, and TFLM's arena vs the real TFLM.

The models in tests/data/planner/ are built by benchmarks/make_planner_models.py (int8, ops the
TFLM reference kernels run).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memory_planner import plan_tflite
from memory_planner.tflm_model import measure_tflm
from nlpool.core.errors import NlpoolError

DATA = Path(__file__).parent / "data" / "planner"
MODELS = sorted(DATA.glob("*_int8.tflite"))


def test_there_are_five_tflm_models():
    assert len(MODELS) >= 5


def test_reads_ops_and_tensors_by_tflite_index():
    plan = plan_tflite(DATA / "chain_int8.tflite")
    graph = plan.graph
    assert [op.kind for op in graph.ops] == ["CONV_2D", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert graph.tensors[graph.inputs[0]].shape == (1, 32, 32, 3)
    assert set(plan.best.offsets) == set(graph.activations)
    assert all(not graph.tensors[t].constant for t in plan.best.offsets)
    plan.best.check(graph)
    # conv1 output (32x32x8 = 8192 B) and conv2 output (16x16x16 = 4096 B) are live together at step 1
    assert plan.lower_bound == 8192 + 4096
    assert plan.peak_layer.step == 1


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_tflm_prediction_matches_real_tflm(path):
    plan = plan_tflite(path)
    measured = measure_tflm(path)
    error = abs(plan.tflm.head_bytes - measured["head"]) / measured["head"]
    assert error <= 0.03, f"predicted {plan.tflm.head_bytes} B, TFLM planned {measured['head']} B"
    assert plan.best.arena_bytes <= measured["head"]  # our best plan is never worse than TFLM's


def test_best_plan_beats_tflm_on_the_residual_model():
    plan = plan_tflite(DATA / "residual_int8.tflite")
    assert plan.best.arena_bytes < plan.tflm.head_bytes
    assert plan.best.arena_bytes == plan.lower_bound


def test_attention_scores_are_planned_like_any_tensor():
    plan = plan_tflite(DATA / "attention_int8.tflite")
    softmax = next(r for r in plan.layers if r.kind == "SOFTMAX")
    assert softmax.output_shape == (1, 64, 64)
    assert softmax.peak


@pytest.mark.parametrize("cut", [0, 7, 100, 2000])
def test_truncated_file_is_a_clean_error(tmp_path, cut):
    bad = tmp_path / "cut.tflite"
    bad.write_bytes((DATA / "chain_int8.tflite").read_bytes()[:cut])
    with pytest.raises(NlpoolError) as info:
        plan_tflite(bad)
    assert "\n" not in str(info.value)


def test_not_a_tflite_file_is_a_clean_error(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(NlpoolError, match="not a TFLite model"):
        plan_tflite(bad)
    with pytest.raises(NlpoolError, match="does not exist"):
        plan_tflite(tmp_path / "missing.tflite")
