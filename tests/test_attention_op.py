"""NLPOOL_ATTENTION: its options' contract, and the fusion pass plus golden model bit-exact with the
unfused int8 graph, on random attention blocks: run by TFLM's interpreter when the op rounds its
FULLY_CONNECTED steps twice (what nlpool exports), by TFLite's reference kernels when it rounds once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from attention_blocks import draw_block, reference

from export.attention_fusion import fuse_attention
from export.golden import attention
from export.host_run import HostModel
from nlpool.core.custom_ops import ATTENTION_OP_NAME, AttentionParams, CustomOptionsError
from nlpool.core.tflite import TfliteFileError, read_model, write_model

RANDOM_BLOCKS = 240


# (fc_double_rounding, the runtime whose arithmetic that is): TFLM's is the firmware's and the export's
ARITHMETICS = [pytest.param(True, "tflm", id="double-rounding-tflm"), pytest.param(False, "tflite", id="single-rounding-tflite")]


def _fused(content: bytes, tmp: Path, fc_double_rounding: bool = True) -> tuple[Path, object]:
    src, dst = tmp / "block.tflite", tmp / "block_fused.tflite"
    src.write_bytes(content)
    raw = read_model(src).raw
    result = fuse_attention(raw, fc_double_rounding)
    write_model(raw, dst)
    return dst, result


@pytest.mark.parametrize(("double_rounding", "kernels"), ARITHMETICS)
def test_random_blocks_fused_golden_is_bit_exact_with_the_unfused_graph(tmp_path: Path, double_rounding: bool, kernels: str) -> None:
    """240 random blocks (1-144 tokens, 1/2/4 heads, widths 1-32, with and without a positional
    table, every scale and zero point drawn): the fused op's golden model gives every output byte
    the interpreter gives for the unfused ops, on 3 random inputs each, under either arithmetic;
    the two arithmetics differ on some outputs, so each reference is the one that matters."""
    rng = np.random.default_rng(14)
    compared = distinct = with_pos = other = 0
    for index in range(RANDOM_BLOCKS):
        block = draw_block(rng)
        path, result = _fused(block.content, tmp_path, double_rounding)
        assert not result.skipped and len(result.matches) == 1, (index, result.skipped)
        model = read_model(path)
        assert [op.name for op in model.operators] == [ATTENTION_OP_NAME]
        op = model.operators[0]
        params = AttentionParams.from_flexbuffer(op.custom_options)
        consts = [model.tensors[t].data if t >= 0 else None for t in op.inputs[1:]]
        for _ in range(3):
            x = rng.integers(-128, 128, size=(1, *block.grid, block.width), dtype=np.int8)
            expected = reference(block.content, x, kernels)
            got = attention(params, x, *consts)
            assert got.shape == expected.shape and np.array_equal(got, expected), (index, block, int((got != expected).sum()))
            other += int((reference(block.content, x, "tflite" if kernels == "tflm" else "tflm") != expected).sum())
            compared += expected.size
            distinct += np.unique(expected).size
        with_pos += block.pos
    # the blocks exercise the arithmetic: outputs spread over many int8 levels, both variants drawn
    assert compared > 20_000 and distinct / (3 * RANDOM_BLOCKS) > 8 and 0 < with_pos < RANDOM_BLOCKS
    assert other > 0, "the two arithmetics should differ somewhere on these blocks"


def test_host_model_runs_the_fused_op_in_either_arithmetic(tmp_path: Path) -> None:
    """HostModel runs the exported op (double rounding) as the unfused block runs in TFLM with
    kernels="tflm", and as it runs in LiteRT with kernels="tflite" (fidelity): bit for bit in both."""
    rng = np.random.default_rng(3)
    differ = 0
    for _ in range(30):
        block = draw_block(rng)
        path, _ = _fused(block.content, tmp_path)
        x = rng.integers(-128, 128, size=(1, *block.grid, block.width), dtype=np.int8)
        got = {kernels: HostModel(path, kernels=kernels) for kernels in ("tflm", "tflite")}
        assert all(host.custom_ops == 1 for host in got.values())
        outputs = {kernels: host.run_quantized(x) for kernels, host in got.items()}
        for kernels, y in outputs.items():
            assert np.array_equal(y, reference(block.content, x, kernels)), kernels
        differ += not np.array_equal(outputs["tflm"], outputs["tflite"])
    assert differ > 0, "the two arithmetics should differ on some of these blocks"


def test_a_block_that_does_not_match_stays_unfused_and_says_why(tmp_path: Path) -> None:
    """A graph whose intermediate (the scores) is also a graph output cannot lose it: left as is."""
    block = draw_block(np.random.default_rng(5))
    src = tmp_path / "b.tflite"
    src.write_bytes(block.content)
    raw = read_model(src).raw
    graph = raw.subgraphs[0]
    softmax = next(op for op in graph.operators if op.opcodeIndex == next(
        i for i, c in enumerate(raw.operatorCodes) if c.builtinCode == 25))  # SOFTMAX
    graph.outputs = [*graph.outputs, int(softmax.inputs[0])]
    before = len(graph.operators)
    result = fuse_attention(raw)
    assert not result.matches and len(graph.operators) == before
    assert len(result.skipped) == 1 and "left unfused" in result.skipped[0] and "graph output" in result.skipped[0]


def test_options_round_trip_and_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    block = draw_block(np.random.default_rng(7))
    path, _ = _fused(block.content, tmp_path)
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
    path, _ = _fused(block.content, tmp_path)
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
