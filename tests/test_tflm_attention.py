"""NLPOOL_ATTENTION as a TFLM kernel (firmware/tflm/templates/nlpool_attention_op.cc): a generated TFLM
project for a fused attention block, built on the host against XMOS's TFLM fork and on QEMU's
Cortex-M7 against the CMSIS-NN tree, gives the bytes of the golden model (export.golden.attention,
which the AOT kernel's tests tie to the unfused graph); Prepare refuses bad options with one line.

Random blocks as onnx2tf writes them (tests/attention_blocks.py), fused by export/attention_fusion.py.
Each host build takes ~6 s, so the module builds five projects.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("xmos_ai_tools")
pytest.importorskip("tflite_micro")

from attention_blocks import Block, draw_block
from flatbuffers import flexbuffers

from export.attention_fusion import fuse_attention
from export.golden import attention
from export.host_run import HostModel
from firmware.tflm import generate_tflm_project, run_host
from firmware.tflm.project import _model_array
from nlpool.core.custom_ops import ATTENTION_OP_NAME, WEIGHTED_POOL_OP_NAME, AttentionParams
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import TfliteModel, read_model, write_model

TEMPLATES = Path(__file__).resolve().parent.parent / "firmware" / "tflm" / "templates"
ARENA = 64 << 10  # the host build's 64-bit interpreter; the blocks here need under 16 KiB


def fused_block(rng: np.random.Generator, root: Path, pos: bool) -> tuple[Block, Path]:
    """A random block with (or without) a positional table, fused into one NLPOOL_ATTENTION op."""
    block = draw_block(rng)
    while block.pos != pos:
        block = draw_block(rng)
    raw_path, fused = root / "block.tflite", root / "block_fused.tflite"
    raw_path.write_bytes(block.content)
    raw = read_model(raw_path).raw
    assert len(fuse_attention(raw, True).matches) == 1
    write_model(raw, fused)
    return block, fused


def golden(model: TfliteModel, x: np.ndarray) -> np.ndarray:
    op = model.operators[0]
    consts = [model.tensors[t].data if t >= 0 else None for t in op.inputs[1:]]
    return attention(AttentionParams.from_flexbuffer(op.custom_options), x, *consts)


def typed_options(params: AttentionParams) -> bytes:
    """The options with every non-empty vector written as a typed FlexBuffer vector (the export writes
    untyped ones; other writers may not)."""
    builder = flexbuffers.Builder()
    with builder.Map():
        for key, value in dataclasses.asdict(params).items():
            builder.Key(key)
            if isinstance(value, tuple) and value:
                builder.TypedVectorFromElements(list(value), element_type=flexbuffers.Type.INT)
            elif isinstance(value, tuple):
                builder.VectorFromElements([])
            else:
                builder.Int(value)
    return bytes(builder.Finish())


def set_options(fused: Path, out: Path, options: bytes) -> None:
    model = read_model(fused).raw
    model.subgraphs[0].operators[0].customOptions = list(options)
    write_model(model, out)


@pytest.mark.parametrize(("seed", "pos", "typed"), [pytest.param(3, True, False, id="pos-table"),
                                                     pytest.param(4, False, False, id="no-pos-table"),
                                                     pytest.param(5, True, True, id="typed-vectors")])
def test_host_build_is_bit_exact_with_the_golden_model(tmp_path: Path, seed: int, pos: bool, typed: bool) -> None:
    """Blocks with and without a positional table (one with typed-vector options), 3 inputs each: the
    TFLM project's outputs are the golden model's and HostModel's (TFLM's arithmetic); the project
    holds the attention kernel's files and not the weighted pooling's."""
    rng = np.random.default_rng(seed)
    block, fused = fused_block(rng, tmp_path, pos)
    if typed:
        params = AttentionParams.from_flexbuffer(read_model(fused).operators[0].custom_options)
        set_options(fused, fused, typed_options(params))
        assert flexbuffers.GetRoot(bytearray(read_model(fused).operators[0].custom_options)).AsMap["qkv_shift"].IsTypedVector
    project = generate_tflm_project(fused, tmp_path / "tflm", "cortex-m7", arena_bytes=ARENA)
    assert project.ops == [ATTENTION_OP_NAME]
    assert {"nlpool_attention_op.cc", "nlpool_attention_op.h", "nlpool_tflm_options.h",
            "kernels/nlpool_attention.c", "kernels/nlpool_fixedpoint.h"} <= set(project.files)
    assert not any("weighted_pool" in name for name in project.files)
    inputs = rng.integers(-128, 128, size=(3, 1, *block.grid, block.width), dtype=np.int8)
    got = run_host(project.path, [inputs]).outputs[0]
    model, host = read_model(fused), HostModel(fused, kernels="tflm")
    for x, y in zip(inputs, got, strict=True):
        assert np.array_equal(y, golden(model, x))
        assert np.array_equal(y, host.run_quantized(x).reshape(y.shape))


@pytest.mark.parametrize(("change", "message"), [
    pytest.param(lambda p: {"out_shift": p.out_shift[:-1]},
                 "NLPOOL_ATTENTION: option out_shift must hold width shifts in [-31, 30]", id="vector-one-short"),
    pytest.param(lambda p: {"input_zero_point": p.input_zero_point + 1 if p.input_zero_point < 127 else 126},
                 "NLPOOL_ATTENTION: tokens zero point", id="zero-point-disagrees"),
])
def test_prepare_refuses_bad_options_with_one_line(tmp_path: Path, change, message: str) -> None:
    """Options nlpool's own reader refuses too (here a vector one entry short: the project gets the
    model's bytes written past that reader) or that disagree with the tensors: AllocateTensors fails
    with Prepare's message."""
    _, fused = fused_block(np.random.default_rng(8), tmp_path, pos=True)
    model = read_model(fused)
    params = AttentionParams.from_flexbuffer(model.operators[0].custom_options)
    bad = tmp_path / "bad.tflite"
    set_options(fused, bad, dataclasses.replace(params, **change(params)).to_flexbuffer())
    project = generate_tflm_project(fused, tmp_path / "tflm", "cortex-m7", arena_bytes=ARENA)
    (project.path / "model_data.cc").write_text(_model_array(bad.read_bytes(), bad.name))
    with pytest.raises(NlpoolError, match=re.escape(message)) as err:
        run_host(project.path, [np.zeros(model.tensors[model.inputs[0]].shape, np.int8)])
    assert "AllocateTensors failed" in str(err.value)


def test_the_tflm_kernel_reads_exactly_the_options_the_contract_defines() -> None:
    """The C++ kernel spells the option keys once more (it must parse them); tie them to the contract."""
    source = (TEMPLATES / "nlpool_attention_op.cc").read_text()
    keys = set(re.findall(r'\{"(\w+)",', source)) | set(re.findall(r'map\["(\w+)"\]', source))
    assert keys == {field.name for field in dataclasses.fields(AttentionParams)}


def test_the_project_registers_and_compiles_only_the_models_custom_ops(tmp_path: Path) -> None:
    """An attention-only model: one AddCustom, a resolver of one op, the attention kernel's sources in
    the Makefile and nothing of the weighted pooling's."""
    _, fused = fused_block(np.random.default_rng(9), tmp_path, pos=False)
    project = generate_tflm_project(fused, tmp_path / "tflm", "cortex-m7", arena_bytes=ARENA)
    main = (project.path / "main.cc").read_text()
    assert re.findall(r"AddCustom\(nlpool::(\w+)", main) == ["kAttentionOpName"]
    assert "kNumOps = 1;" in main and '#include "nlpool_attention_op.h"' in main
    assert f'"{ATTENTION_OP_NAME}"' in (project.path / "nlpool_attention_op.h").read_text()
    makefile = (project.path / "Makefile").read_text()
    assert "SRCS_CC := main.cc model_data.cc nlpool_attention_op.cc\n" in makefile
    assert "SRCS_C := kernels/nlpool_attention.c\n" in makefile
    assert WEIGHTED_POOL_OP_NAME not in main


@pytest.mark.skipif(not os.environ.get("NLPOOL_TFLM_DIR"), reason="no TFLM tree (set NLPOOL_TFLM_DIR)")
def test_qemu_cortex_m7_with_cmsis_nn_is_bit_exact(tmp_path: Path) -> None:
    """Built against the CMSIS-NN tree for Cortex-M7 and run under QEMU: the golden model's bytes, in the
    arena the planner predicts (its scratch in the head, its OpData and option arrays in the tail)."""
    from firmware.run import check_tools
    from firmware.tflm import build_for_target, find_tree, run_on_target

    try:
        check_tools("cortex-m7")
    except NlpoolError as err:
        pytest.skip(str(err))
    rng = np.random.default_rng(21)
    block, fused = fused_block(rng, tmp_path, pos=True)
    tree = find_tree(os.environ["NLPOOL_TFLM_DIR"])
    project = generate_tflm_project(fused, tmp_path / "tflm", "cortex-m7")
    build = build_for_target(project.path, "cortex-m7", tree)
    inputs = rng.integers(-128, 128, size=(2, 1, *block.grid, block.width), dtype=np.int8)
    run = run_on_target(project.path, "cortex-m7", build.elf, inputs, tree=tree)
    assert abs(run.arena_used_bytes - project.predicted_arena_bytes) <= 64
    model = read_model(fused)
    for x, y in zip(inputs, run.outputs[0], strict=True):
        assert np.array_equal(y, golden(model, x))
    assert run.profile is not None and [o.op for o in run.profile.ops] == [ATTENTION_OP_NAME]
