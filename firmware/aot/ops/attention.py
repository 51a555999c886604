"""NLPOOL_ATTENTION, the streamed self-attention block (kernels/nlpool_attention.c).

Its struct is defined by the hand-written kernels/nlpool_attention.h, which a TFLM custom kernel
can share; `AttentionParams` mirrors it field for field (tests/test_attention_kernel.py checks
that). Prepare decodes the options through the contract (nlpool.core.custom_ops), checks them
against the tensors, binds the op's constant tensors and tabulates the softmax's fixed-point exp
(256 values: the exp depends only on the score's difference to its row maximum); the kernel's scratch is planned by
memory_planner in the arena, and its size is the contract's `scratch_bytes()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.aot.ops.common import require_int8
from firmware.aot.ops.unit import (
    I32,
    I8Array,
    I32Array,
    Kernel,
    OptionalI8Array,
    OptionalI32Array,
    Params,
    Prepared,
    TensorArg,
    UnsupportedOp,
    register,
)
from nlpool.core import custom_ops
from nlpool.core.fixedpoint import softmax_exp_table
from nlpool.core.tflite import Operator, TfliteModel

# The fixed-point softmax sums a row's N exps (each at most 2^19 in Q12.19) in int32, so a row holds
# at most 4,095 tokens. From 512 on its output shift can pass 31 bits, where TFLM's reference aborts:
# the kernels round exactly in 64 bits there (nl_rdbpot_wide; docs/rounding.md).
MAX_TOKENS = 4095


@dataclass(frozen=True)
class AttentionParams(Params, c_name="nlpool_attention_params_t", header="nlpool_attention.h"):
    """NLPOOL_ATTENTION: docs/custom_op.md's integer evaluation, one query row at a time."""

    tokens: I32
    width: I32
    heads: I32
    head_dim: I32
    pos_step: OptionalI32Array
    pos_table: OptionalI8Array
    qkv_weights: I8Array
    qkv_bias: OptionalI32Array
    qkv_input_offset: I32
    qkv_filter_offset: I32
    qkv_output_offset: I32
    qkv_multiplier: I32Array
    qkv_shift: I32Array
    q_column: I32
    k_column: I32
    v_column: I32
    q_step_count: I32
    k_step_count: I32
    v_step_count: I32
    q_steps: I32Array
    k_steps: I32Array
    v_steps: I32Array
    q_consts: I8Array
    k_consts: I8Array
    v_consts: I8Array
    score_lhs_offset: I32
    score_rhs_offset: I32
    score_multiplier: I32
    score_shift: I32
    score_output_offset: I32
    softmax_exp_table: I32Array
    softmax_diff_min: I32
    mix_lhs_offset: I32
    mix_rhs_offset: I32
    mix_multiplier: I32
    mix_shift: I32
    mix_output_offset: I32
    out_weights: I8Array
    out_bias: OptionalI32Array
    out_input_offset: I32
    out_filter_offset: I32
    output_offset: I32
    out_multiplier: I32Array
    out_shift: I32Array
    fc_double_rounding: I32

    @classmethod
    def from_options(cls, options: custom_ops.AttentionParams, pos_table: np.ndarray | None, qkv_weights: np.ndarray,
                     qkv_bias: np.ndarray | None, out_weights: np.ndarray, out_bias: np.ndarray | None) -> AttentionParams:
        """The C struct's values from the decoded options and the op's constant tensors."""
        o = options
        branches = {}
        for branch in "qkv":
            steps = getattr(o, f"{branch}_steps")
            branches[f"{branch}_column"] = getattr(o, f"{branch}_column")
            branches[f"{branch}_step_count"] = len(steps) // custom_ops.STEP_FIELDS
            branches[f"{branch}_steps"] = np.asarray(steps, dtype=np.int32)
            branches[f"{branch}_consts"] = np.asarray(getattr(o, f"{branch}_consts"), dtype=np.int8)

        def flat(values: np.ndarray | None, dtype: type) -> np.ndarray | None:
            return None if values is None else np.asarray(values, dtype=dtype).reshape(-1)

        return cls(tokens=o.tokens, width=o.width, heads=o.heads, head_dim=o.head_dim,
                   pos_step=np.asarray(o.pos_step, dtype=np.int32) if o.pos_step else None,
                   pos_table=flat(pos_table, np.int8) if o.pos_step else None,
                   qkv_weights=flat(qkv_weights, np.int8), qkv_bias=flat(qkv_bias, np.int32),
                   qkv_input_offset=o.qkv_input_offset, qkv_filter_offset=o.qkv_filter_offset,
                   qkv_output_offset=o.qkv_output_offset, qkv_multiplier=np.asarray(o.qkv_multiplier, dtype=np.int32),
                   qkv_shift=np.asarray(o.qkv_shift, dtype=np.int32), **branches,
                   score_lhs_offset=o.score_lhs_offset, score_rhs_offset=o.score_rhs_offset,
                   score_multiplier=o.score_multiplier, score_shift=o.score_shift, score_output_offset=o.score_output_offset,
                   softmax_exp_table=softmax_exp_table(o.softmax_multiplier, o.softmax_left_shift),
                   softmax_diff_min=o.softmax_diff_min, mix_lhs_offset=custom_ops.SOFTMAX_OUTPUT_OFFSET,
                   mix_rhs_offset=o.mix_rhs_offset, mix_multiplier=o.mix_multiplier, mix_shift=o.mix_shift,
                   mix_output_offset=o.mix_output_offset, out_weights=flat(out_weights, np.int8),
                   out_bias=flat(out_bias, np.int32), out_input_offset=o.out_input_offset,
                   out_filter_offset=o.out_filter_offset, output_offset=o.output_zero_point,
                   out_multiplier=np.asarray(o.out_multiplier, dtype=np.int32),
                   out_shift=np.asarray(o.out_shift, dtype=np.int32), fc_double_rounding=o.fc_double_rounding)


KERNEL = Kernel("nlpool_attention", AttentionParams,
                (TensorArg("tokens"), TensorArg("out", output=True), TensorArg("scratch", output=True, scratch=True)))


def _constant(graph: TfliteModel, index: int, what: str) -> np.ndarray | None:
    if index < 0:
        return None
    data = graph.tensors[index].data
    if data is None:
        raise UnsupportedOp(f"{custom_ops.ATTENTION_OP_NAME} {what} is not a constant tensor")
    return data


@register(custom_ops.ATTENTION_OP_NAME, max_version=1)
def prepare(graph: TfliteModel, op: Operator) -> Prepared:
    """The options, decoded and validated by the contract, checked against the tensors (what a TFLM
    Prepare checks), and the constant tensors bound to the struct."""
    tokens, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    require_int8(op, tokens, out)
    try:
        options = custom_ops.AttentionParams.from_flexbuffer(op.custom_options)
    except custom_ops.CustomOptionsError as exc:
        raise UnsupportedOp(str(exc)) from None
    n, e = options.tokens, options.width
    if tokens.size != n * e or out.size != n * e:
        raise UnsupportedOp(f"{custom_ops.ATTENTION_OP_NAME} tensors of {tokens.size} and {out.size} elements, options say {n} x {e}")
    if tokens.zero_point != options.input_zero_point or out.zero_point != options.output_zero_point:
        raise UnsupportedOp(f"{custom_ops.ATTENTION_OP_NAME} zero points differ from the options")
    if n > MAX_TOKENS:
        raise UnsupportedOp(f"{custom_ops.ATTENTION_OP_NAME} over {n} tokens: the fixed-point softmax holds at most {MAX_TOKENS}")
    names = custom_ops.ATTENTION_INPUTS
    consts = {name: _constant(graph, index, name) for name, index in zip(names[1:], op.inputs[1:], strict=True)}
    if bool(options.pos_step) != (consts["pos_table"] is not None):
        raise UnsupportedOp(f"{custom_ops.ATTENTION_OP_NAME} positional step and table do not come together")
    params = AttentionParams.from_options(options, **consts)
    return Prepared(KERNEL, params, (op.inputs[0], op.outputs[0]), scratch_bytes=options.scratch_bytes())
