"""The TFLM project against an upstream TFLM tree: which sources it compiles, how a tree is found
(flat tree or checkout, CMSIS-NN or not), the object cache's key, and the planner's 32-bit arena.

The builds themselves (minutes) run in tests/test_export_end_to_end.py where CI has the trees; here
only `make -n` runs against a tree, when one is at hand ($NLPOOL_TFLM_DIR / $NLPOOL_TFLM_REF_DIR, as
.ci/run sets them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firmware.tflm import TflmTree, find_tree
from firmware.tflm.ops import RESOLVER_METHODS
from firmware.tflm.project import arena_with_margin
from firmware.tflm.sources import CORE_SOURCES, TflmSources, model_sources, scan_file
from firmware.tflm.target import cache_key, parse_profile, user_cache_dir
from memory_planner.graph import Graph, Op, Tensor
from memory_planner.tflm_model import predict_target_tail
from nlpool.core.errors import NlpoolError

TREES = {kernels: os.environ.get(var) for kernels, var in (("cmsis-nn", "NLPOOL_TFLM_DIR"), ("reference", "NLPOOL_TFLM_REF_DIR"))}
needs_trees = pytest.mark.skipif(not all(TREES.values()), reason="no TFLM trees (set NLPOOL_TFLM_DIR and NLPOOL_TFLM_REF_DIR)")


def _flat_tree(root: Path, cmsis_nn: bool = False) -> Path:
    """The files find_tree looks at, nothing else."""
    (root / "tensorflow/lite/micro").mkdir(parents=True)
    (root / "tensorflow/lite/micro/micro_interpreter.h").write_text("")
    (root / "third_party/flatbuffers/include/flatbuffers").mkdir(parents=True)
    (root / "third_party/flatbuffers/include/flatbuffers/flatbuffers.h").write_text("")
    if cmsis_nn:
        (root / "third_party/cmsis_nn/Include").mkdir(parents=True)
        (root / "third_party/cmsis_nn/Include/arm_nnfunctions.h").write_text("")
    return root


def test_the_scan_tells_definitions_from_uses(tmp_path):
    source = tmp_path / "k.cc"
    source.write_text('''#include "a/b.h"
namespace tflite {
namespace {
TfLiteStatus Prepare(TfLiteContext* c) { return ConvPrepare(c); }  // Helper(x) in a comment
}  // namespace
TFLMRegistration Register_X() { return micro::RegisterOp(Init, Prepare, ConvEval); }
TfLiteStatus MicroContext::Grow(int n) { const char* s = "Fake(1)"; return arm_convolve_s8(n); }
static int Local(int x) { return x; }
}  // namespace tflite
''')
    scan = scan_file(source)
    assert scan.exported == {"tflite::Register_X", "tflite::MicroContext"}  # a method is filed under its class
    assert scan.local == {"Prepare", "Local"}
    assert {"ConvPrepare", "ConvEval", "arm_convolve_s8", "micro::RegisterOp"} <= scan.names
    assert "Helper" not in scan.names and "Fake" not in scan.names and scan.includes == ("a/b.h",)


def test_find_tree_reads_the_argument_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("NLPOOL_TFLM_DIR", raising=False)
    assert find_tree(None) is None
    ref, cmsis = _flat_tree(tmp_path / "ref"), _flat_tree(tmp_path / "cmsis", cmsis_nn=True)
    assert find_tree(ref) == TflmTree(ref.resolve(), ref.resolve() / "third_party", "reference")
    monkeypatch.setenv("NLPOOL_TFLM_DIR", str(cmsis))
    assert find_tree(None).kernels == "cmsis-nn"
    assert find_tree(ref).kernels == "reference"  # --tflm-dir wins over the environment


def test_a_checkout_has_its_third_party_code_in_the_downloads_folder(tmp_path):
    tree = _flat_tree(tmp_path / "tflite-micro", cmsis_nn=True)
    make = tree / "tensorflow/lite/micro/tools/make"
    make.mkdir(parents=True)
    (make / "Makefile").write_text("")
    with pytest.raises(NlpoolError, match="run TFLM's Makefile once"):
        find_tree(tree)
    (tree / "third_party").rename(make / "downloads")
    found = find_tree(tree)
    assert found.third_party == make.resolve() / "downloads" and found.kernels == "cmsis-nn"


def test_a_folder_that_is_no_tflm_tree_is_refused_with_the_way_to_get_one(tmp_path):
    with pytest.raises(NlpoolError, match=r"is not a TFLM source tree .*create_tflm_tree\.py"):
        find_tree(tmp_path)


def test_the_cache_key_follows_the_tree_content_and_the_core(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert user_cache_dir() == tmp_path / "cache" / "nlpool"
    tree = find_tree(_flat_tree(tmp_path / "tree"))
    key = cache_key(tree, "cortex-m7")
    assert key == cache_key(tree, "cortex-m7") != cache_key(tree, "cortex-m4")
    (tree.path / "tensorflow/lite/micro/micro_interpreter.h").write_text("// edited\n")
    assert cache_key(tree, "cortex-m7") != key


def test_the_arena_margin_is_three_percent_at_least_1_kib():
    assert arena_with_margin(200_000) == 206_000
    assert arena_with_margin(10_000) == 11_024


def test_the_target_tail_counts_what_tflm_allocates():
    tensors = [Tensor(0, "x", (1, 8, 8, 3), "int8", 1), Tensor(1, "w", (16, 3, 3, 3), "int8", 1, constant=True),
               Tensor(2, "y", (1, 8, 8, 16), "int8", 1), Tensor(3, "z", (1, 8, 8, 16), "int8", 1)]
    ops = [Op(0, "CONV_2D", "conv", (0, 1), (2,)), Op(1, "RELU", "relu", (2,), (3,))]
    graph = Graph("g", {t.index: t for t in tensors}, ops, (0,), (3,))
    # interpreter objects, 4 eval tensors, 2 nodes, input and output tensors and their pointer arrays,
    # CONV_2D's options (28), OpDataConv (56 -> 64) and per-channel multiplier and shift (2 x 64), RELU's
    # OpData (64) and options (8)
    assert predict_target_tail(graph) == 132 + 4 * 12 + 2 * 32 + 2 * 52 + 2 * 16 + 28 + 64 + 128 + 64 + 8


@needs_trees
@pytest.mark.parametrize("kernels", ["cmsis-nn", "reference"])
def test_every_op_the_resolver_knows_gets_its_sources_from_the_tree(kernels):
    """For every op nlpool can register, the derivation finds the file registering it, and every file it
    names exists; the core list is in the tree too."""
    tree = find_tree(TREES[kernels])
    assert tree.kernels == kernels
    assert not [path for path in CORE_SOURCES if not (tree.path / path).is_file()]
    for op in RESOLVER_METHODS:
        sources = model_sources(tree, [op], RESOLVER_METHODS)
        assert op in sources.registrations, op
        assert all((tree.path / p).is_file() for p in sources.kernels)
        assert all((tree.third_party / "cmsis_nn" / p).is_file() for p in sources.cmsis_nn)


@needs_trees
def test_cmsis_nn_fully_connected_brings_the_1x1_convolution_it_calls():
    """TFLM's CMSIS-NN FULLY_CONNECTED calls arm_convolve_1x1_s8_fast (ConvolutionFunctions): a table by
    op folder missed it and an FC-only model did not link; the depthwise wrapper calls arm_transpose_s8."""
    tree = find_tree(TREES["cmsis-nn"])
    fc = model_sources(tree, ["FULLY_CONNECTED"], RESOLVER_METHODS)
    assert "Source/ConvolutionFunctions/arm_convolve_1x1_s8_fast.c" in fc.cmsis_nn
    assert "Source/FullyConnectedFunctions/arm_fully_connected_s8.c" in fc.cmsis_nn
    assert not any("Pooling" in p or "Softmax" in p for p in fc.cmsis_nn)  # only what it needs
    assert fc.kernels == ("tensorflow/lite/micro/kernels/cmsis_nn/fully_connected.cc",
                          "tensorflow/lite/micro/kernels/fully_connected_common.cc")
    depthwise = model_sources(tree, ["DEPTHWISE_CONV_2D"], RESOLVER_METHODS)
    assert "Source/TransposeFunctions/arm_transpose_s8.c" in depthwise.cmsis_nn
    reference = model_sources(find_tree(TREES["reference"]), ["FULLY_CONNECTED"], RESOLVER_METHODS)
    assert reference.cmsis_nn == () and reference.kernel_set("FULLY_CONNECTED") == "tflm-reference"
    assert fc.kernel_set("FULLY_CONNECTED") == "tflm-cmsis-nn"


@needs_trees
def test_make_picks_the_cmsis_nn_kernel_where_there_is_one(tmp_path):
    tf = pytest.importorskip("tensorflow")
    from firmware.testing import convert
    from firmware.tflm import generate_tflm_project

    w = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 2, 4)).astype(np.float32))
    model = tmp_path / "conv.tflite"
    model.write_bytes(convert(lambda x: tf.nn.conv2d(x, w, 1, "SAME"), [(1, 6, 6, 2)], np.random.default_rng(0)))
    make = shutil.which("make")
    project = generate_tflm_project(model, tmp_path / "tflm", "cortex-m4", arena_bytes=16 << 10,
                                    tree=find_tree(TREES["cmsis-nn"]))
    dry = subprocess.run([make, "-n", "tflm-lib", f"TFLM_DIR={TREES['cmsis-nn']}", "TFLM_OBJ_DIR=obj"],
                         cwd=project.path, capture_output=True, text=True, check=True).stdout
    assert "kernels/cmsis_nn/conv.cc" in dry and "kernels/conv_common.cc" in dry and "-DCMSIS_NN" in dry
    assert "arm_convolve_s8.c" in dry and "micro_interpreter.cc" in dry and "kernels/cmsis_nn/add.cc" not in dry
    # the list was derived for the CMSIS-NN tree: building another kernel set with it says so
    wrong = subprocess.run([make, "tflm-lib", f"TFLM_DIR={TREES['reference']}", "TFLM_OBJ_DIR=obj"],
                           cwd=project.path, capture_output=True, text=True)
    assert wrong.returncode != 0 and "tflm_sources.mk lists the cmsis-nn kernels' sources" in wrong.stdout + wrong.stderr
    project = generate_tflm_project(model, tmp_path / "tflm", "cortex-m4", arena_bytes=16 << 10,
                                    tree=find_tree(TREES["reference"]))
    dry = subprocess.run([make, "-n", "tflm-lib", f"TFLM_DIR={TREES['reference']}", "TFLM_OBJ_DIR=obj"],
                         cwd=project.path, capture_output=True, text=True, check=True).stdout
    assert "kernels/conv.cc" in dry and "cmsis_nn" not in dry


@needs_trees
def test_a_tflite_micro_checkout_layout_builds_from_its_downloads_folder(tmp_path):
    """The same sources, laid out as a checkout: TFLM's Makefile present, third-party code in downloads/."""
    tf = pytest.importorskip("tensorflow")
    from firmware.testing import convert
    from firmware.tflm import generate_tflm_project

    checkout = tmp_path / "tflite-micro"
    shutil.copytree(Path(TREES["cmsis-nn"]) / "tensorflow", checkout / "tensorflow", symlinks=True,
                    copy_function=os.symlink)
    make_dir = checkout / "tensorflow/lite/micro/tools/make"
    make_dir.mkdir(parents=True, exist_ok=True)
    (make_dir / "Makefile").write_text("# stands in for TFLM's Makefile\n")
    (make_dir / "downloads").symlink_to(Path(TREES["cmsis-nn"]) / "third_party")
    tree = find_tree(checkout)
    assert tree.third_party == make_dir.resolve() / "downloads" and tree.kernels == "cmsis-nn"
    model = tmp_path / "add.tflite"
    model.write_bytes(convert(tf.add, [(1, 4, 4, 2), (1, 4, 4, 2)], np.random.default_rng(0)))
    project = generate_tflm_project(model, tmp_path / "tflm", "cortex-m55", arena_bytes=16 << 10, tree=tree)
    dry = subprocess.run(["make", "-n", "tflm-lib", f"TFLM_DIR={checkout}", "TFLM_OBJ_DIR=obj"],
                         cwd=project.path, capture_output=True, text=True, check=True).stdout
    assert f"-I{checkout}/tensorflow/lite/micro/tools/make/downloads/flatbuffers/include" in dry
    assert "kernels/cmsis_nn/add.cc" in dry and "-mcpu=cortex-m55" in dry


def test_the_profile_is_read_from_micro_profilers_csv():
    """The firmware prints the first inference's ticks, then MicroProfiler::LogCsv() (with TFLM's \\r\\n)."""
    log = ("NLPOOL_TFLM_PROFILE inference=0 ticks=110\n\"Event\",\"Tag\",\"Ticks\"\r\n0,CONV_2D,80\r\n"
           "1,NLPOOL_WEIGHTED_POOL,20\r\n2,ADD,7\r\nNLPOOL_TFLM_PROFILE_END\nNLPOOL_STATS inferences=1\n")
    profile, measured = parse_profile(log, 40.0, lambda tag: "portable" if tag.startswith("NLPOOL") else "tflm-cmsis-nn")
    assert measured == 4400 and profile.total == 107 * 40
    assert [(o.position, o.op, o.kernel) for o in profile.ops] == [
        (0, "CONV_2D", "tflm-cmsis-nn"), (1, "NLPOOL_WEIGHTED_POOL", "portable"), (2, "ADD", "tflm-cmsis-nn")]
    assert parse_profile("NLPOOL_STATS inferences=1\n", 40.0, str) is None


def test_an_op_runs_on_cmsis_nn_where_its_registration_is_the_cmsis_nn_kernel():
    sources = TflmSources((), (), {"CONV_2D": "tensorflow/lite/micro/kernels/cmsis_nn/conv.cc",
                                   "RESHAPE": "tensorflow/lite/micro/kernels/reshape.cc"})
    assert sources.kernel_set("CONV_2D") == "tflm-cmsis-nn"
    assert sources.kernel_set("RESHAPE") == "tflm-reference"


@needs_trees
def test_the_profile_names_each_op_and_sums_to_the_measured_inference(tmp_path):
    """Built against the CMSIS-NN tree for cortex-m7 and run under QEMU: one profiled op per model op, in
    order, whose instructions add up to the profiled inference's measured ones less the profiler's overhead."""
    tf = pytest.importorskip("tensorflow")
    from firmware.run import check_tools
    from firmware.testing import convert
    from firmware.tflm import build_for_target, generate_tflm_project, run_on_target
    from nlpool.core.tflite import read_model

    try:
        check_tools("cortex-m7")
    except NlpoolError as err:
        pytest.skip(str(err))
    rng = np.random.default_rng(1)
    w = tf.constant(rng.normal(size=(3, 3, 4, 8)).astype(np.float32))
    model = tmp_path / "conv.tflite"
    model.write_bytes(convert(lambda x: tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME")) + 1.0, [(1, 16, 16, 4)], rng))
    tree = find_tree(TREES["cmsis-nn"])
    project = generate_tflm_project(model, tmp_path / "tflm", "cortex-m7")
    build = build_for_target(project.path, "cortex-m7", tree)
    inputs = rng.integers(-128, 128, size=(3, 1, 16, 16, 4), dtype=np.int8)
    run = run_on_target(project.path, "cortex-m7", build.elf, inputs, tree=tree)
    profile = run.profile
    assert profile is not None
    assert [o.op for o in profile.ops] == read_model(model).op_names()
    assert [o.position for o in profile.ops] == list(range(len(profile.ops)))
    assert next(o.kernel for o in profile.ops if o.op == "CONV_2D") == "tflm-cmsis-nn"
    assert all(o.instructions > 0 for o in profile.ops if o.op == "CONV_2D")
    # Per op: the profiler's two clock reads and calls, and the tick resolution (40 instructions).
    gap = run.profiled_inference_instructions - profile.total
    assert 0 <= gap <= 0.02 * run.profiled_inference_instructions, (gap, profile.total)
    assert abs(run.instructions_per_inference - run.profiled_inference_instructions) <= 0.02 * run.instructions_per_inference
    # The profiler's 80 KiB over the SRAM budget: built without it, run without a profile, same outputs.
    tight = generate_tflm_project(model, tmp_path / "tight", "cortex-m7", sram_budget=run.sram_used_bytes - (40 << 10))
    unprofiled = run_on_target(tight.path, "cortex-m7", build_for_target(tight.path, "cortex-m7", tree).elf, inputs, tree=tree)
    assert unprofiled.profile is None and unprofiled.sram_used_bytes <= run.sram_used_bytes - (40 << 10)
    assert np.array_equal(unprofiled.outputs[0], run.outputs[0])
