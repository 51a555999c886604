"""The AOT firmware on Arm's CMSIS-NN: finding the user's tree, planning CMSIS-NN's buffers, and the
CMSIS-NN build on emulated boards bit-exact with the portable build and with upstream TFLM.

The tree comes from $NLPOOL_CMSIS_NN_DIR (CI points it at the CMSIS-NN inside the shared TFLM tree);
without it the tests that build against CMSIS-NN are skipped and say so.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import tensorflow as tf

from firmware.aot import generate_project
from firmware.aot.cmsis_nn import CMSIS_NN_DIR_ENV, BufferSizes, find_cmsis_nn
from firmware.aot.generate import cmsis_nn_scratch
from firmware.boards import BOARDS
from firmware.run import HOST, build_and_run
from firmware.testing import convert, tflm_reference
from memory_planner import plan_tflite
from nlpool.core.errors import NlpoolError

TREE = os.environ.get(CMSIS_NN_DIR_ENV)
needs_tree = pytest.mark.skipif(not TREE, reason=f"no CMSIS-NN tree (set {CMSIS_NN_DIR_ENV})")
needs_qemu = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                                reason="arm-none-eabi-gcc and qemu-system-arm are needed")
# Ops CMSIS-NN covers in this model (all but the broadcasting MUL, which stays on nlpool's kernel).
CMSIS_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "PAD", "AVERAGE_POOL_2D", "MAX_POOL_2D", "FULLY_CONNECTED"}


def _fake_tree(root: Path) -> Path:
    (root / "Include").mkdir(parents=True)
    (root / "Include" / "arm_nnfunctions.h").write_text("/* stand-in */\n")
    (root / "Source").mkdir()
    return root


def test_no_tree_means_portable_kernels(monkeypatch):
    monkeypatch.delenv(CMSIS_NN_DIR_ENV, raising=False)
    assert find_cmsis_nn(None) is None


def test_tree_is_found_at_its_root_or_inside_a_tflm_tree(tmp_path, monkeypatch):
    plain = _fake_tree(tmp_path / "CMSIS-NN")
    assert find_cmsis_nn(plain).root == plain.resolve()
    tflm = tmp_path / "tflm"
    _fake_tree(tflm / "third_party" / "cmsis_nn")
    assert find_cmsis_nn(tflm).root == (tflm / "third_party" / "cmsis_nn").resolve()
    monkeypatch.setenv(CMSIS_NN_DIR_ENV, str(plain))
    assert find_cmsis_nn(None).root == plain.resolve()
    assert find_cmsis_nn(tflm).root != plain.resolve()  # --cmsis-nn-dir wins over the environment


def test_a_folder_without_cmsis_nn_is_a_one_line_error_naming_the_fix(tmp_path, monkeypatch):
    with pytest.raises(NlpoolError, match=r"^--cmsis-nn-dir .* holds no CMSIS-NN tree .*git clone https://github.com/ARM-software/CMSIS-NN"):
        find_cmsis_nn(tmp_path)
    monkeypatch.setenv(CMSIS_NN_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(NlpoolError, match=rf"^{CMSIS_NN_DIR_ENV} .* does not exist"):
        find_cmsis_nn(None)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """Every op CMSIS-NN covers, plus a broadcasting MUL that it does not."""
    rng = np.random.default_rng(3)
    w = {k: tf.constant(rng.normal(0, 0.4, size=s).astype(np.float32)) for k, s in
         {"c1": (3, 3, 3, 8), "dw": (3, 3, 8, 1), "c2": (1, 1, 8, 8), "g": (1, 1, 1, 8), "fc": (72, 10)}.items()}

    def fn(x):
        f = tf.nn.relu6(tf.nn.conv2d(x, w["c1"], 2, "VALID"))
        d = tf.nn.relu6(tf.nn.depthwise_conv2d(f, w["dw"], [1, 1, 1, 1], "SAME"))
        s = f + tf.nn.conv2d(d, w["c2"], 1, "SAME")
        p = tf.nn.avg_pool2d(s * w["g"], 2, 2, "VALID")
        m = tf.nn.max_pool2d(tf.pad(p, [[0, 0], [1, 0], [0, 1], [0, 0]]), 2, 2, "SAME")
        return tf.matmul(tf.reshape(m, (1, 72)), w["fc"])

    path = tmp_path_factory.mktemp("cmsis") / "ops.tflite"
    path.write_bytes(convert(fn, [(1, 17, 17, 3)], rng))
    return path


def test_project_without_a_tree_has_no_cmsis_nn(tmp_path, model):
    info = generate_project(model, tmp_path / "p", 512 * 1024)
    assert set(info.op_kernels) <= {"portable", "generated"} and info.cmsis_nn_dir == ""
    assert not (tmp_path / "p" / "kernels" / "cmsis_nn").exists()
    assert "NLPOOL_CMSIS_NN" not in (tmp_path / "p" / "model.c").read_text()


@needs_tree
def test_cmsis_nn_buffers_are_asked_of_cmsis_nn_and_planned(tmp_path, model):
    tree = find_cmsis_nn(TREE)
    scratch = cmsis_nn_scratch(model, tree)
    assert scratch and all(size > 0 for size in scratch.values())
    with_scratch = plan_tflite(model, kernel_scratch=scratch)
    assert with_scratch.scratch_slots().keys() == scratch.keys()
    assert {op: size for op, (_, size) in with_scratch.scratch_slots().items()} == scratch
    info = generate_project(model, tmp_path / "p", 512 * 1024, cmsis_nn=tree)
    assert info.arena_bytes == with_scratch.best.arena_bytes >= plan_tflite(model).best.arena_bytes
    kernels = dict(zip(info.ops, info.op_kernels, strict=True))
    # on DSP cores nlpool's generated kernels take over some of CMSIS-NN's layers (CMSIS-NN stays their fallback)
    assert {op for op, k in kernels.items() if k in ("cmsis-nn", "generated")} == CMSIS_OPS and kernels["MUL"] == "portable"
    with pytest.raises(NlpoolError, match=r"holds 0 B of scratch for op .*, its kernel needs"):
        generate_project(model, tmp_path / "q", 512 * 1024, cmsis_nn=tree, plan=plan_tflite(model))
    # one core's build (TFLM's CMSIS-NN kernels) asks for that core's size: DSP on M4/M7/M33, MVE on M55,
    # plain C on M3/M0+; the AOT project, which serves every core, plans the largest of the three
    per_core = {target: cmsis_nn_scratch(model, tree, target) for target in BOARDS}
    assert per_core["cortex-m4"] == per_core["cortex-m7"] == per_core["cortex-m33"]
    assert per_core["cortex-m3"] == per_core["cortex-m0plus"]
    for op, size in scratch.items():
        assert size == max(per_core[t].get(op, 0) for t in ("cortex-m7", "cortex-m55", "cortex-m3"))


def test_a_core_takes_its_own_cmsis_nn_buffer_size():
    sizes = BufferSizes(dsp=1024, mve=4464, plain=2048)
    assert [sizes.on(t) for t in ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55", "cortex-m3", "cortex-m0plus")] \
        == [1024, 1024, 1024, 4464, 2048, 2048]
    assert sizes.on() == 4464


@needs_tree
@needs_qemu
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7", "cortex-m55", "cortex-m33", "cortex-m3"])
def test_cmsis_nn_build_is_bitexact_with_portable_and_tflm(tmp_path, model, target):
    """The board on CMSIS-NN, the host on nlpool's portable kernels, the board on them too, and upstream
    TFLM's reference kernels: the same bytes; and the profile names every op with the kernel that ran it."""
    info = generate_project(model, tmp_path / "p", 512 * 1024, cmsis_nn=find_cmsis_nn(TREE))
    rng = np.random.default_rng(5)
    inputs = rng.integers(-128, 128, size=(8, 1, 17, 17, 3), dtype=np.int8)
    expected = tflm_reference(model, [inputs])[0]
    host = build_and_run(tmp_path / "p", HOST, inputs)
    board = build_and_run(tmp_path / "p", target, inputs)
    portable = build_and_run(tmp_path / "p", target, inputs, portable=True)
    assert board.kernels == "cmsis-nn" and portable.kernels == host.kernels == "portable"
    for run in (host, board, portable):
        assert np.array_equal(run.outputs[0].reshape(expected.shape), expected), run.target
    assert [o.op for o in board.profile.ops] == info.ops
    # op_kernels is what a DSP core's build runs, mve_op_kernels a Cortex-M55's (its generated MVE kernels,
    # CMSIS-NN's MVE kernels for the rest); a core without DSP (Cortex-M3) runs CMSIS-NN's plain C
    if BOARDS[target].simd == "mve":
        want = info.mve_op_kernels
    else:
        want = [("cmsis-nn" if k == "generated" else k) if BOARDS[target].simd != "dsp" else k for k in info.op_kernels]
    assert [o.kernel for o in board.profile.ops] == want
    assert {o.kernel for o in portable.profile.ops} == {"portable"}
    assert 0 <= board.instructions_per_inference - board.profile.total <= 0.01 * board.instructions_per_inference
