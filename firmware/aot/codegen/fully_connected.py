"""FULLY_CONNECTED as a generated kernel (template firmware/kernels/generated/nlg_fc.h).

The weights are laid out offline in the order a pass reads them: passes of 3 row pairs where packed,
else 2 (the last pass of the pairs left), per input word, per pair, 2 words. Where the layer's own numbers allow
it, a pair's two rows share each weight word (`packed`, nlg_fc.h): row o's weight in the low byte of
an int16 half, row o + 1's minus 1 where o's is negative in its high byte, so the half reads as
256 w[o + 1] + w[o]. That is exact when no such high byte leaves int8 and every row o + 1 sum of
int8 inputs times its weights stays below 2^23 in magnitude (128 sum |w| < 2^23), so that 256 times
it fits in the 32-bit accumulator difference the kernel divides by 256.
"""

from __future__ import annotations

import numpy as np

from firmware.aot.codegen.kernel import GeneratedKernel
from firmware.aot.codegen.requant import quant_table
from firmware.aot.ops.fully_connected import FullyConnectedParams

PACKED_SUM_LIMIT = 1 << 23  # |sum w x| of a pair's second row, int8 x: 256 times it must fit in int32


def fully_connected_kernel(p: FullyConnectedParams, position: int) -> GeneratedKernel | None:
    """The layer's kernel, None where the template does not apply (weights with a zero point, as
    CMSIS-NN, whose int8 scheme is symmetric)."""
    if p.filter_offset != 0 or p.accum_depth < 1 or p.out_depth < 1:
        return None
    rows, k = p.out_depth, p.accum_depth
    kw = -(-k // 4)
    weights = np.asarray(p.filter, np.int8).reshape(rows, k)
    mults = np.broadcast_to(np.asarray(p.out_mult), (rows,))
    shifts = np.broadcast_to(np.asarray(p.out_shift), (rows,))
    quant, fast = quant_table(weights, None if p.bias is None else np.asarray(p.bias), p.input_offset, mults, shifts,
                              p.output_offset)
    padded = np.zeros((rows + rows % 2, 4 * kw), np.int16)
    padded[:rows, :k] = weights
    first, second = padded[0::2], padded[1::2]  # (pairs, 4 kw): rows o and o + 1 of each pair
    high = second - (first < 0)
    packed = bool(high.min() >= -128 and (128 * np.abs(second).sum(axis=1)).max() < PACKED_SUM_LIMIT)
    words = _packed_words(first, high) if packed else _row_words(first, second)
    group = 3 if packed else 2  # pairs per pass: the unpacked layout needs one more register per step
    call = (f"nlg_fc(in, out, nl_gen_op{position}_w, (const nlg_quant_t *)nl_gen_op{position}_q, {p.batches}, {k}, {kw}, "
            f"{rows}, {group}, {int(packed)}, {int(fast)}, {p.output_offset}, {p.act_min}, {p.act_max});")
    arrays: tuple[tuple[str, str, np.ndarray], ...] = (("uint32_t", "w", _pass_order(words, group)), ("int32_t", "q", quant))
    return GeneratedKernel("fully_connected", position, "nlg_fc.h", arrays, call)


def _packed_words(first: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(pairs, kw, 2) words: word 0 of group g holds inputs 4g and 4g + 2, word 1 inputs 4g + 1 and
    4g + 3; each int16 half is (row o's byte, row o + 1's adjusted byte)."""
    lo = first.reshape(first.shape[0], -1, 4).astype(np.uint8).astype(np.uint32)
    hi = high.reshape(high.shape[0], -1, 4).astype(np.int8).astype(np.uint8).astype(np.uint32)
    word0 = lo[..., 0] | hi[..., 0] << 8 | lo[..., 2] << 16 | hi[..., 2] << 24
    word1 = lo[..., 1] | hi[..., 1] << 8 | lo[..., 3] << 16 | hi[..., 3] << 24
    return np.stack([word0, word1], axis=-1)


def _row_words(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(pairs, kw, 2) words: word 0 is row o's 4 bytes of group g, word 1 row o + 1's."""
    def as_words(rows: np.ndarray) -> np.ndarray:
        return rows.astype(np.int8).reshape(rows.shape[0], -1, 4).view("<u4").reshape(rows.shape[0], -1)

    return np.stack([as_words(first), as_words(second)], axis=-1)


def _pass_order(words: np.ndarray, group: int) -> np.ndarray:
    """The (pairs, kw, 2) words in pass order: per pass of `group` pairs (the last may hold fewer), per input word, per pair."""
    passes = [words[i:i + group].transpose(1, 0, 2).reshape(-1) for i in range(0, words.shape[0], group)]
    return np.concatenate(passes)
