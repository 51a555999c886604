"""The NLPOOL_ATTENTION C kernel (firmware/kernels/nlpool_attention.c) against the golden model of
docs/custom_op.md and the interpreter on the unfused graph (TFLM's for the double rounding nlpool
exports, TFLite's for the single rounding), called through ctypes with the very
struct values the AOT op unit's Prepare computes; and through a generated project, in place, with
its scratch planned in the arena."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from attention_blocks import draw_block, reference

from export.attention_fusion import fuse_attention
from export.golden import attention, softmax_reference
from firmware.aot import generate_project
from firmware.aot.ops.attention import AttentionParams, prepare
from firmware.aot.ops.unit import Prepared
from firmware.run import build_and_run
from memory_planner import plan_tflite
from nlpool.core.custom_ops import ATTENTION_OP_NAME
from nlpool.core.custom_ops import AttentionParams as Options
from nlpool.core.tflite import TfliteModel, read_model, write_model

KERNELS = Path(__file__).resolve().parent.parent / "firmware" / "kernels"
RANDOM_BLOCKS = 200
_CTYPES = {"int32_t": ctypes.c_int32, "const int32_t *": ctypes.POINTER(ctypes.c_int32),
           "const int8_t *": ctypes.POINTER(ctypes.c_int8)}


class _Params(ctypes.Structure):
    """The C struct as the op unit declares it (the same list the firmware's initialiser uses)."""

    _fields_ = [(name, _CTYPES[ctype.spelling]) for name, ctype in AttentionParams.c_fields()]


def test_unit_matches_the_hand_written_header() -> None:
    """The op unit mirrors kernels/nlpool_attention.h (which a TFLM kernel can share) field for field."""
    body = re.search(r"typedef struct \{(.*?)\} nlpool_attention_params_t;", (KERNELS / "nlpool_attention.h").read_text(), re.S).group(1)
    declared = []
    for decl in filter(str.strip, re.sub(r"/\*.*?\*/", "", body, flags=re.S).split(";")):
        const, base, star, names = re.fullmatch(r"\s*(const )?(\w+)\s*(\*?)\s*(.*?)\s*", decl, re.S).groups()
        declared += [(name.strip(), f"{const or ''}{base}{' *' if star else ''}") for name in names.split(",")]
    assert declared == [(name, ctype.spelling.strip()) for name, ctype in AttentionParams.c_fields()]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    lib = tmp_path_factory.mktemp("attention") / "libattention.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", f"-I{KERNELS}", "-o", str(lib),
                    str(KERNELS / "nlpool_attention.c")], check=True)
    dll = ctypes.CDLL(str(lib))
    dll.nlpool_attention.argtypes = [ctypes.POINTER(_Params), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    dll.nlpool_attention.restype = None
    dll.nlpool_attention_scratch_bytes.argtypes = [ctypes.POINTER(_Params)]
    dll.nlpool_attention_scratch_bytes.restype = ctypes.c_int32
    return dll


def _struct(params: AttentionParams) -> tuple[_Params, list[np.ndarray]]:
    """The ctypes struct of `params` and the arrays it points into (kept alive by the caller)."""
    values, keep = [], []
    for name, ctype in AttentionParams.c_fields():
        value = getattr(params, name)
        if ctype.pointee:
            if value is None:
                values.append(None)
                continue
            array = np.ascontiguousarray(value, dtype=np.int8 if ctype.pointee == "int8_t" else np.int32)
            keep.append(array)
            values.append(array.ctypes.data_as(_CTYPES[ctype.spelling]))
        else:
            values.append(int(value))
    return _Params(*values), keep


def _fused_block(content: bytes, tmp: Path, fc_double_rounding: bool = True) -> tuple[Path, TfliteModel, Prepared]:
    """The block's fused model (one NLPOOL_ATTENTION op), read back, and the op unit's Prepare of it."""
    src, dst = tmp / "block.tflite", tmp / "block_fused.tflite"
    src.write_bytes(content)
    raw = read_model(src).raw
    assert len(fuse_attention(raw, fc_double_rounding).matches) == 1
    write_model(raw, dst)
    model = read_model(dst)
    assert [op.name for op in model.operators] == [ATTENTION_OP_NAME]
    return dst, model, prepare(model, model.operators[0])


def _golden(model: TfliteModel, x: np.ndarray) -> np.ndarray:
    op = model.operators[0]
    consts = [model.tensors[t].data if t >= 0 else None for t in op.inputs[1:]]
    return attention(Options.from_flexbuffer(op.custom_options), x, *consts)


@pytest.mark.parametrize(("double_rounding", "kernels"), [pytest.param(True, "tflm", id="double-rounding-tflm"),
                                                          pytest.param(False, "tflite", id="single-rounding-tflite")])
def test_random_blocks_kernel_is_bit_exact(kernel: ctypes.CDLL, tmp_path: Path, double_rounding: bool, kernels: str) -> None:
    """200 random blocks (tokens, heads, widths, zero points, with and without a positional table),
    2 inputs each: the C kernel gives every byte of the golden model and of the unfused graph under
    the same arithmetic (TFLM's interpreter when the op rounds FULLY_CONNECTED twice, as nlpool exports
    it; TFLite's reference kernels when once); the second run writes its output over its input."""
    rng = np.random.default_rng(1414)
    compared = with_pos = 0
    for index in range(RANDOM_BLOCKS):
        block = draw_block(rng)
        _, model, prepared = _fused_block(block.content, tmp_path, double_rounding)
        assert prepared.params.fc_double_rounding == int(double_rounding)
        struct, keep = _struct(prepared.params)
        assert kernel.nlpool_attention_scratch_bytes(ctypes.byref(struct)) == prepared.scratch_bytes
        for in_place in (False, True):
            x = rng.integers(-128, 128, size=(1, *block.grid, block.width), dtype=np.int8)
            expected = reference(block.content, x, kernels)
            assert np.array_equal(_golden(model, x), expected), index
            scratch = np.full(prepared.scratch_bytes, 0x5A, np.int8)  # garbage: the kernel must not read before writing
            got = x.copy() if in_place else np.zeros_like(x)
            source = got if in_place else x
            kernel.nlpool_attention(ctypes.byref(struct), source.ctypes.data, got.ctypes.data, scratch.ctypes.data)
            assert np.array_equal(got, expected), (index, block, in_place, int((got != expected).sum()))
            compared += got.size
        with_pos += block.pos
        del keep
    assert compared > 15_000 and 0 < with_pos < RANDOM_BLOCKS


def test_generated_project_plans_the_scratch_and_runs_in_place(tmp_path: Path) -> None:
    """Through generate_project and the host build: the plan holds the op's scratch, the output
    takes the input's memory, the arena is the plan's, and the bytes are the golden model's."""
    rng = np.random.default_rng(77)
    block = draw_block(rng)
    path, model, prepared = _fused_block(block.content, tmp_path)
    plan = plan_tflite(path)
    op = model.operators[0]
    (offset, size), = plan.scratch_slots().values()
    assert size == prepared.scratch_bytes and plan.scratch_slots().keys() == {0}
    assert (0, op.inputs[0], op.outputs[0]) in plan.best.aliases
    tokens = model.tensors[op.inputs[0]].nbytes
    assert plan.peak_bytes == -(-tokens // 16) * 16 + -(-size // 16) * 16
    project = generate_project(path, tmp_path / "proj", 512 * 1024, "cortex-m7", plan=plan)
    assert project.arena_bytes == plan.peak_bytes
    assert f"(int8_t *)(nl_arena + {offset}));" in (tmp_path / "proj" / "model.c").read_text()
    inputs = rng.integers(-128, 128, size=(3, *block.grid, block.width), dtype=np.int8)
    got = build_and_run(tmp_path / "proj", "host", [inputs]).outputs[0]
    for x, y in zip(inputs, got, strict=True):
        assert np.array_equal(y.reshape(1, *x.shape), _golden(model, x[None]))


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="arm-none-eabi-gcc and qemu-system-arm are needed")
@pytest.mark.parametrize(("seed", "min_tokens"), [(1, 1), (4, 1), (6, 1), (7, 600)])
def test_board_runs_random_blocks_bit_exact(tmp_path: Path, seed: int, min_tokens: int) -> None:
    """On QEMU's Cortex-M7 board: the same bytes as the host build and the golden model, and the
    firmware's arena is the plan's; also with 600+ tokens (as at 224 px, where the 64-bit softmax
    rounding may apply)."""
    rng = np.random.default_rng(seed)
    block = draw_block(rng, max_side=30 if min_tokens > 1 else 12)
    while block.grid[0] * block.grid[1] < min_tokens:
        block = draw_block(rng, max_side=30)
    path, model, _ = _fused_block(block.content, tmp_path)
    plan = plan_tflite(path)
    generate_project(path, tmp_path / "proj", 512 * 1024, "cortex-m7", plan=plan)
    inputs = rng.integers(-128, 128, size=(2, *block.grid, block.width), dtype=np.int8)
    host = build_and_run(tmp_path / "proj", "host", [inputs])
    board = build_and_run(tmp_path / "proj", "cortex-m7", [inputs], timeout_s=120)
    assert np.array_equal(board.outputs[0], host.outputs[0])
    for x, y in zip(inputs, board.outputs[0], strict=True):
        assert np.array_equal(y.reshape(1, *x.shape), _golden(model, x[None]))
    assert board.arena_bytes == plan.peak_bytes


def test_long_rows_round_their_softmax_exactly(kernel: ctypes.CDLL, tmp_path: Path) -> None:
    """Rows of 512+ tokens (the 224 px model's 784): where the exps of a row sum to 512 or more the
    softmax's output shift passes 31 bits (TFLM's reference aborts, CMSIS-NN shifts out of range); the
    golden model and the kernel both round the same quotient exactly, and agree byte for byte."""
    equal = np.zeros((1, 600), np.int8)  # 600 scores at the maximum: each 1/600 of 256 levels = 0.43
    table_options = draw_block(np.random.default_rng(0)).content  # any block: only its softmax scale matters
    _, model, _ = _fused_block(table_options, tmp_path)
    options = Options.from_flexbuffer(model.operators[0].custom_options)
    probs = softmax_reference(equal, options.softmax_multiplier, options.softmax_left_shift, options.softmax_diff_min)
    assert (probs == -128).all()  # round(0.43) = 0: capping the shift at 31 would give 1 (-127)
    rng = np.random.default_rng(784)
    for index in range(4):
        block = draw_block(rng, max_side=30)
        while block.grid[0] * block.grid[1] < 512:
            block = draw_block(rng, max_side=30)
        _, model, prepared = _fused_block(block.content, tmp_path)
        op = model.operators[0]
        consts = [model.tensors[t].data if t >= 0 else None for t in op.inputs[1:]]
        options = Options.from_flexbuffer(op.custom_options)
        params = prepared.params
        if index % 2:  # every score equal: every row sums N >= 512 exps of 1, the shift passes 31 bits
            options, params = replace(options, score_multiplier=0), replace(params, score_multiplier=0)
        struct, keep = _struct(params)
        x = rng.integers(-128, 128, size=(1, *block.grid, block.width), dtype=np.int8)
        expected = attention(options, x, *consts)
        got = np.zeros_like(x)
        scratch = np.zeros(prepared.scratch_bytes, np.int8)
        kernel.nlpool_attention(ctypes.byref(struct), x.ctypes.data, got.ctypes.data, scratch.ctypes.data)
        assert np.array_equal(got, expected), (index, block.grid, int((got != expected).sum()))
        del keep


def test_reference_interpreters_are_not_run_on_long_softmax_rows(tmp_path: Path) -> None:
    """TFLite's and TFLM's reference SOFTMAX abort the process on rows of 512+ values whose exps sum
    past 512: the host runner refuses such a model with a one-line error instead (the export plans and
    runs the fused model, and says the unfused int8 model was not measured)."""
    import tensorflow as tf

    from export.host_run import HostModel, long_softmax_row
    from firmware.testing import convert
    from nlpool.core.errors import NlpoolError

    path = tmp_path / "softmax600.tflite"
    path.write_bytes(convert(tf.nn.softmax, [(1, 600)], np.random.default_rng(0)))
    assert long_softmax_row(read_model(path)) == 600
    with pytest.raises(NlpoolError, match="SOFTMAX over rows of 600 values"):
        HostModel(path)
