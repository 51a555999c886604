"""The AOT firmware end to end on emulated Cortex-M boards (QEMU), plus its failure modes.

A small int8 CNN whose pooling is the fused NLPOOL_WEIGHTED_POOL custom op is generated, built for
the host and for the boards, and run on the same inputs: the board must agree with the host build
and with the reference chain (TFLite reference kernels + the NumPy golden op) byte for byte. The
failure modes a user can hit must be one-line errors: an SRAM budget that is too small fails at
link time naming the budget; a fault or a hang in the firmware is reported, never a stuck run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")
if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
    pytest.skip("arm-none-eabi-gcc and qemu-system-arm are needed (scripts: apt-get install gcc-arm-none-eabi "
                "libnewlib-arm-none-eabi qemu-system-arm)", allow_module_level=True)

import tensorflow as tf

from export.graph_edit import opcode_index, quant_params
from export.host_run import HostModel
from firmware.aot import generate_project
from firmware.boards import BOARDS
from firmware.run import FirmwareRunError, build_and_run
from firmware.testing import convert
from nlpool.core.custom_ops import WEIGHTED_POOL_OP_NAME, WeightedPoolParams
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import opcode_name, read_model, schema, write_model

N_INPUTS = 12


def _fuse_add_pool(src: Path, dst: Path) -> None:
    """Replace the model's ADD -> AVERAGE_POOL_2D(2x2) with one NLPOOL_WEIGHTED_POOL(x, r): a stand-in
    for export's fusion that keeps this test independent of onnx2tf."""
    model = read_model(src).raw
    sub = model.subgraphs[0]
    names = [opcode_name(model, op.opcodeIndex) for op in sub.operators]
    add_i, pool_i = names.index("ADD"), names.index("AVERAGE_POOL_2D")
    add, pool = sub.operators[add_i], sub.operators[pool_i]
    x_t, r_t, y_t = (sub.tensors[i] for i in (add.inputs[0], add.inputs[1], pool.outputs[0]))
    params = WeightedPoolParams.from_quantization((2, 2), (2, 2), quant_params(x_t), quant_params(r_t), quant_params(y_t))
    op = schema.OperatorT()
    op.opcodeIndex = opcode_index(model, schema.BuiltinOperator.CUSTOM, WEIGHTED_POOL_OP_NAME)
    op.inputs, op.outputs = list(add.inputs), list(pool.outputs)
    op.customOptions = list(params.to_flexbuffer())
    op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    sub.operators[pool_i] = op
    del sub.operators[add_i]
    write_model(model, dst)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conv -> (features, restoration) -> weighted pool -> depthwise -> mean -> dense -> softmax."""
    rng = np.random.default_rng(7)
    w = {k: tf.constant(rng.normal(0, 0.4, size=s).astype(np.float32)) for k, s in
         {"c1": (3, 3, 3, 8), "c2": (1, 1, 8, 8), "dw": (3, 3, 8, 1), "fc": (8, 10)}.items()}

    def fn(x):
        f = tf.nn.relu6(tf.nn.conv2d(x, w["c1"], 1, "SAME"))
        r = tf.nn.conv2d(f, w["c2"], 1, "SAME")
        p = tf.nn.avg_pool2d(f + r, 2, 2, "VALID")
        d = tf.nn.relu6(tf.nn.depthwise_conv2d(p, w["dw"], [1, 1, 1, 1], "SAME"))
        m = tf.reshape(tf.reduce_mean(d, axis=[1, 2], keepdims=True), (1, 8))
        return tf.nn.softmax(tf.matmul(m, w["fc"]))

    d = tmp_path_factory.mktemp("qemu")
    plain = d / "small_int8.tflite"
    plain.write_bytes(convert(fn, [(1, 16, 16, 3)], rng))
    fused = d / "small_int8_fused.tflite"
    _fuse_add_pool(plain, fused)
    return fused


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(11).integers(-128, 128, size=(N_INPUTS, 1, 16, 16, 3), dtype=np.int8)


@pytest.mark.parametrize("target", ["cortex-m7", "cortex-m55", "cortex-m33", "cortex-m3", "cortex-m0plus"])
def test_board_bitexact_with_host_and_reference(tmp_path: Path, small_model: Path, inputs: np.ndarray, target: str) -> None:
    """Every core, the Armv6-M micro:bit (16 KiB of RAM) too, computes what the host computes."""
    budget = min(256 * 1024, BOARDS[target].sram_length)
    info = generate_project(small_model, tmp_path / "proj", budget, default_target=target)
    assert "NLPOOL_WEIGHTED_POOL" in info.ops
    reference = np.stack([HostModel(small_model, kernels="tflm").run_quantized(x) for x in inputs])
    host = build_and_run(tmp_path / "proj", "host", inputs)
    board = build_and_run(tmp_path / "proj", target, inputs, timeout_s=120)
    assert np.array_equal(board.outputs[0], host.outputs[0]), "board and host builds of the same C differ"
    assert np.array_equal(board.outputs[0].reshape(reference.shape), reference), "firmware differs from the reference chain"
    assert board.inferences == N_INPUTS
    assert board.arena_bytes <= board.sram_used_bytes <= budget
    assert 0 < board.stack_high_water_bytes < 2 * 1024
    assert board.flash_bytes > 0 and board.instructions_per_inference > 10_000


def test_over_budget_sram_fails_at_link_naming_the_budget(tmp_path: Path, small_model: Path, inputs: np.ndarray) -> None:
    generate_project(small_model, tmp_path / "proj", 12 * 1024)  # arena + 8 KiB heap + 8 KiB stack > 12 KiB
    with pytest.raises(NlpoolError, match=r"exceeds the --sram budget of 12 KiB \(12288 bytes\)"):
        build_and_run(tmp_path / "proj", "cortex-m7", inputs)


@pytest.mark.parametrize("kind", ["activations", "weights"])
def test_model_too_big_for_the_microbit_is_refused_in_one_line(tmp_path: Path, kind: str) -> None:
    """A 64x64 input's first activation (32 KiB) cannot fit the micro:bit's 16 KiB of RAM, nor a dense
    layer's 320 KiB of weights (an MLPerf AD-sized model) its 256 KiB of flash: linking says so, in one line."""
    rng = np.random.default_rng(3)
    model = tmp_path / "big.tflite"
    if kind == "activations":
        kernel = tf.constant(rng.normal(0, 0.4, size=(3, 3, 3, 8)).astype(np.float32))
        shape, expected = (1, 64, 64, 3), "all the SRAM microbit has: the model does not fit this board"
        model.write_bytes(convert(lambda x: tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME")), [shape], rng))
    else:
        dense = tf.constant(rng.normal(0, 0.1, size=(640, 512)).astype(np.float32))
        shape, expected = (1, 640), "overflow the flash of microbit by"
        model.write_bytes(convert(lambda x: tf.nn.relu(tf.matmul(x, dense)), [shape], rng))
    generate_project(model, tmp_path / "proj", 16 * 1024, default_target="cortex-m0plus")
    with pytest.raises(NlpoolError) as err:
        build_and_run(tmp_path / "proj", "cortex-m0plus", np.zeros((1, *shape), np.int8))
    message = str(err.value)
    assert "\n" not in message and expected in message, message


def test_budget_above_physical_sram_is_refused(tmp_path: Path, small_model: Path) -> None:
    with pytest.raises(NlpoolError, match="more than the 4 MiB of SRAM"):
        generate_project(small_model, tmp_path / "proj", 8 << 20)


def _sabotage(project: Path, statement: str) -> None:
    model_c = project / "model.c"
    head = "void nlpool_model_invoke(void)\n{"
    model_c.write_text(model_c.read_text().replace(head, f"{head}\n    {statement}"))


def test_hang_is_a_timeout_failure(tmp_path: Path, small_model: Path, inputs: np.ndarray) -> None:
    generate_project(small_model, tmp_path / "proj", 256 * 1024)
    _sabotage(tmp_path / "proj", "for (volatile int spin = 1; spin;) {}")
    with pytest.raises(FirmwareRunError, match="did not finish within 3 s"):
        build_and_run(tmp_path / "proj", "cortex-m7", inputs[:1], timeout_s=3)


def test_fault_is_reported(tmp_path: Path, small_model: Path, inputs: np.ndarray) -> None:
    generate_project(small_model, tmp_path / "proj", 256 * 1024)
    _sabotage(tmp_path / "proj", "*(volatile int *)0xFFFFFFF0u = 1;")
    with pytest.raises(FirmwareRunError, match="fault exception"):
        build_and_run(tmp_path / "proj", "cortex-m4", inputs[:1], timeout_s=30)


def test_firmware_report_for_report_json(tmp_path: Path, small_model: Path, inputs: np.ndarray) -> None:
    from firmware.verify import format_firmware_table, measure_firmware
    from nlpool.flow.export_flow import ExportOptions, judge_firmware

    generate_project(small_model, tmp_path / "proj", 256 * 1024)
    reference = np.stack([HostModel(small_model, kernels="tflm").run_quantized(x) for x in inputs])
    spec = HostModel(small_model).output_qp
    pytorch_stand_in = (reference.astype(np.float32) - spec[1]) * spec[0]
    measured = measure_firmware(tmp_path / "proj", "cortex-m7", inputs, reference, pytorch_stand_in)
    passed = judge_firmware(measured, ExportOptions("cortex-m7", 256 * 1024, tmp_path / "out"), trained=True).passed
    report = measured.to_json()
    assert passed and report["bitexact_vs_host"] and report["bitexact_vs_reference"]
    assert report["top1_agreement_vs_pytorch"] == 1.0 and report["cosine_vs_pytorch"] > 0.999
    assert report["instructions_per_mac"] > 0 and report["arena_bytes"] >= report["arena_lower_bound_bytes"]
    table = format_firmware_table(measured, passed)
    assert "PASS" in table and "instructions per inference" in table
    # cycles appear only as the timing model's estimate, named so, never as what QEMU measured
    cycle_lines = [line for line in table.splitlines() if "cycle" in line]
    assert cycle_lines and all("estimated" in line or "est. cycles" in line for line in cycle_lines), table
    assert report["estimated_cycles_per_inference"] > 0 and report["clock_mhz"] == 216.0  # the M7's default board clock
    assert "DISCO-F746NG" in report["clock_board"] and report["estimated_ms_per_inference"] > 0


@pytest.mark.parametrize("target", list(BOARDS))
def test_instruction_count_is_exact(tmp_path: Path, small_model: Path, inputs: np.ndarray, target: str) -> None:
    """A loop of exactly 2 x 10^7 instructions (subs + bne) replaces the model: SysTick under -icount
    must report that to within its resolution, which pins each board's ticks-to-instructions factor."""
    generate_project(small_model, tmp_path / "proj", 256 * 1024)
    _sabotage(tmp_path / "proj", 'register unsigned n __asm__("r0") = 10000000u; '
                                 '__asm__ volatile(".syntax unified\\n1: subs %0, %0, #1\\n bne 1b" : "+r"(n)); return;')
    result = build_and_run(tmp_path / "proj", target, inputs[:1], timeout_s=30)
    assert abs(result.instructions_per_inference - 20_000_000) <= 2 * BOARDS[target].ns_per_tick  # SysTick resolution
