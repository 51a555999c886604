"""NLPOOL_ATTENTION: its options' contract, and the fusion pass plus golden model bit-exact with the
unfused int8 graph run by TFLite's reference kernels, on random attention blocks and a real export."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from ai_edge_litert.interpreter import Interpreter, OpResolverType
from attention_blocks import draw_block

from export.attention_fusion import fuse_attention
from export.golden import attention
from export.host_run import HostModel
from nlpool.core.custom_ops import ATTENTION_OP_NAME, AttentionParams, CustomOptionsError
from nlpool.core.tflite import read_model, write_model

RANDOM_BLOCKS = 240


def _reference(content: bytes, x: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _fused(content: bytes, tmp: Path) -> tuple[Path, object]:
    src, dst = tmp / "block.tflite", tmp / "block_fused.tflite"
    src.write_bytes(content)
    raw = read_model(src).raw
    result = fuse_attention(raw)
    write_model(raw, dst)
    return dst, result


def test_random_blocks_fused_golden_is_bit_exact_with_the_unfused_graph(tmp_path: Path) -> None:
    """240 random blocks (1-144 tokens, 1/2/4 heads, widths 1-32, with and without a positional
    table, every scale and zero point drawn): the fused op's golden model gives every output byte
    the interpreter gives for the unfused ops, on 3 random inputs each."""
    rng = np.random.default_rng(14)
    compared = distinct = with_pos = 0
    for index in range(RANDOM_BLOCKS):
        block = draw_block(rng)
        path, result = _fused(block.content, tmp_path)
        assert not result.skipped and len(result.matches) == 1, (index, result.skipped)
        model = read_model(path)
        assert [op.name for op in model.operators] == [ATTENTION_OP_NAME]
        op = model.operators[0]
        params = AttentionParams.from_flexbuffer(op.custom_options)
        consts = [model.tensors[t].data if t >= 0 else None for t in op.inputs[1:]]
        for _ in range(3):
            x = rng.integers(-128, 128, size=(1, *block.grid, block.width), dtype=np.int8)
            expected = _reference(block.content, x)
            got = attention(params, x, *consts)
            assert got.shape == expected.shape and np.array_equal(got, expected), (index, block, int((got != expected).sum()))
            compared += expected.size
            distinct += np.unique(expected).size
        with_pos += block.pos
    # the blocks exercise the arithmetic: outputs spread over many int8 levels, both variants drawn
    assert compared > 20_000 and distinct / (3 * RANDOM_BLOCKS) > 8 and 0 < with_pos < RANDOM_BLOCKS


def test_host_model_runs_the_fused_op(tmp_path: Path) -> None:
    block = draw_block(np.random.default_rng(3))
    path, _ = _fused(block.content, tmp_path)
    host = HostModel(path)
    x = np.random.default_rng(4).integers(-128, 128, size=(1, *block.grid, block.width), dtype=np.int8)
    assert host.custom_ops == 1 and np.array_equal(host.run_quantized(x), _reference(block.content, x))


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
