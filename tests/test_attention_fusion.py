"""The attention fusion pass (export/attention_fusion.py) plus the golden model bit-exact with the
unfused int8 graph, on random attention blocks: run by TFLM's interpreter when the op rounds its
FULLY_CONNECTED steps twice (what nlpool exports), by TFLite's reference kernels when it rounds once;
and a block that does not match stays unfused with its reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from attention_blocks import draw_block, fused, reference

from export.attention_fusion import fuse_attention
from export.golden import attention
from nlpool.core.custom_ops import ATTENTION_OP_NAME, AttentionParams
from nlpool.core.tflite import read_model

RANDOM_BLOCKS = 240


# (fc_double_rounding, the runtime whose arithmetic that is): TFLM's is the firmware's and the export's
ARITHMETICS = [pytest.param(True, "tflm", id="double-rounding-tflm"), pytest.param(False, "tflite", id="single-rounding-tflite")]


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
        path, result = fused(block.content, tmp_path, double_rounding)
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
