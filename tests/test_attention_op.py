"""NLPOOL_ATTENTION: its options' contract, the model reader's checks of the op, and the host runner
executing the fused op in either arithmetic (the fusion pass itself: tests/test_attention_fusion.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from attention_blocks import draw_block, fused, reference

from export.host_run import HostModel
from nlpool.core.custom_ops import AttentionParams, CustomOptionsError
from nlpool.core.tflite import TfliteFileError, read_model, write_model


def test_host_model_runs_the_fused_op_in_either_arithmetic(tmp_path: Path) -> None:
    """HostModel runs the exported op (double rounding) as the unfused block runs in TFLM with
    kernels="tflm", and as it runs in LiteRT with kernels="tflite" (fidelity): bit for bit in both."""
    rng = np.random.default_rng(3)
    differ = 0
    for _ in range(30):
        block = draw_block(rng)
        path, _ = fused(block.content, tmp_path)
        x = rng.integers(-128, 128, size=(1, *block.grid, block.width), dtype=np.int8)
        got = {kernels: HostModel(path, kernels=kernels) for kernels in ("tflm", "tflite")}
        assert all(host.custom_ops == 1 for host in got.values())
        outputs = {kernels: host.run_quantized(x) for kernels, host in got.items()}
        for kernels, y in outputs.items():
            assert np.array_equal(y, reference(block.content, x, kernels)), kernels
        differ += not np.array_equal(outputs["tflm"], outputs["tflite"])
    assert differ > 0, "the two arithmetics should differ on some of these blocks"


def test_options_round_trip_and_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    block = draw_block(np.random.default_rng(7))
    path, _ = fused(block.content, tmp_path)
    params = AttentionParams.from_flexbuffer(read_model(path).operators[0].custom_options)
    assert AttentionParams.from_flexbuffer(params.to_flexbuffer()) == params
    assert params.scratch_bytes() == 2 * params.tokens * params.width + params.tokens + 2 * params.width
    with pytest.raises(CustomOptionsError, match=r"not a valid FlexBuffer|not a FlexBuffer map"):
        AttentionParams.from_flexbuffer(b"\x00\x01")
    bad = replace(params, qkv_multiplier=params.qkv_multiplier[:-1])
    with pytest.raises(CustomOptionsError, match="qkv_multiplier must have"):
        AttentionParams.from_flexbuffer(bad.to_flexbuffer())
    bad = replace(params, heads=params.width + 1)
    with pytest.raises(CustomOptionsError, match="divisible by heads"):
        AttentionParams.from_flexbuffer(bad.to_flexbuffer())


def test_reader_checks_the_ops_operands_against_its_options(tmp_path: Path) -> None:
    """nlpool.core.tflite validates NLPOOL_ATTENTION like any operator: arity (6 inputs, the optional ones
    -1), options through the contract, and the tensors against the options (sizes, types, constants)."""
    block = next(b for b in (draw_block(np.random.default_rng(seed)) for seed in range(20)) if b.pos)
    path, _ = fused(block.content, tmp_path)
    read_model(path)  # the fused model passes

    def broken(change) -> str:
        raw = read_model(path).raw
        change(raw.subgraphs[0].operators[0], raw.subgraphs[0].tensors)
        bad = tmp_path / "bad.tflite"
        write_model(raw, bad)
        with pytest.raises(TfliteFileError) as err:
            read_model(bad)
        assert "\n" not in str(err.value)
        return str(err.value)

    def drop_input(op, tensors):
        op.inputs = list(op.inputs)[:-1]

    def no_weights(op, tensors):
        op.inputs = [*op.inputs[:2], -1, *op.inputs[3:]]

    def no_table(op, tensors):
        op.inputs = [op.inputs[0], -1, *op.inputs[2:]]

    def short_weights(op, tensors):  # the (3E, E) projection where the (E, E) one belongs
        op.inputs = [*op.inputs[:4], op.inputs[2], op.inputs[5]]

    def bad_options(op, tensors):
        op.customOptions = b"\x00\x01"

    assert "expected 6 and 1" in broken(drop_input)
    assert "expected 6 and 1 with qkv_weights" in broken(no_weights)
    assert "positional step and table" in broken(no_table)
    assert "out_weights must be a constant int8 tensor" in broken(short_weights)
    assert "FlexBuffer" in broken(bad_options)
