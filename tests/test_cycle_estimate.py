"""The cycle estimate (firmware/timing): instructions classified as the TRMs time them, every op of a
real run estimated from QEMU's block counts, never below the instruction count on the single-issue
cores, milliseconds at the clock the user names, and `--clock` validated like every number flag."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from firmware.timing.cores import CORES
from firmware.timing.instructions import classify

needs_qemu = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                                reason="arm-none-eabi-gcc and qemu-system-arm are needed")


@pytest.mark.parametrize(("mnemonic", "operands", "in_it", "kind", "conditional"), [
    ("ldr.w", "r5, [r9], #4", False, "load", False),
    ("smlad", "r0, r1, r2, r0", False, "mul", False),
    ("bne.n", "1000 <loop>", False, "branch", True),
    ("ble.n", "1000 <loop>", False, "branch", True),
    ("bl", "1000 <f>", False, "branch", False),
    ("movs", "r0, #1", False, "alu", False),  # looks conditional ("vs"), is not
    ("mls", "r0, r1, r2, r3", False, "mla", False),  # looks conditional ("ls"), is not
    ("addeq", "r0, r1", True, "alu", False),
    ("bxeq", "lr", True, "branch", True),
    ("pop", "{r4, r5, r6, r7, pc}", False, "multiple", False),
])
def test_instructions_are_classified_as_the_trms_time_them(mnemonic, operands, in_it, kind, conditional):
    ins = classify(0x100, 0x104, mnemonic, operands, in_it)
    assert (ins.kind, ins.conditional_branch) == (kind, conditional)


def test_pop_with_pc_counts_its_registers_and_branches():
    ins = classify(0x100, 0x102, "pop", "{r4, r5, r6, r7, pc}")
    assert ins.registers_moved == 5 and ins.writes_pc
    assert CORES["cortex-m4"].cost(ins, None) + CORES["cortex-m4"].taken_penalty(ins) == 8  # 1 + N + P


def test_neighbouring_loads_pipeline_on_the_m4():
    first = classify(0x100, 0x102, "ldr", "r0, [r1]")
    second = classify(0x102, 0x104, "ldr", "r2, [r3]")
    dependent = classify(0x102, 0x104, "ldr", "r2, [r0]")
    m4 = CORES["cortex-m4"]
    assert (m4.cost(first, None), m4.cost(second, first), m4.cost(dependent, first)) == (2, 1, 2)


def test_every_target_has_a_timing_model_and_a_named_board_clock():
    from firmware.boards import BOARDS

    assert set(CORES) == set(BOARDS)
    assert all(core.clock_mhz > 0 and core.clock_board for core in CORES.values())
    assert {t for t, core in CORES.items() if core.single_issue} == {"cortex-m4", "cortex-m33", "cortex-m3", "cortex-m0plus"}


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tf = pytest.importorskip("tensorflow")
    from firmware.testing import convert

    rng = np.random.default_rng(3)
    w = {k: tf.constant(rng.normal(0, 0.4, size=s).astype(np.float32)) for k, s in
         {"c1": (3, 3, 3, 8), "dw": (3, 3, 8, 1), "fc": (8, 10)}.items()}

    def fn(x):
        f = tf.nn.relu6(tf.nn.conv2d(x, w["c1"], 1, "SAME"))
        d = tf.nn.relu6(tf.nn.depthwise_conv2d(f, w["dw"], [1, 1, 1, 1], "SAME"))
        m = tf.reshape(tf.reduce_mean(d, axis=[1, 2], keepdims=True), (1, 8))
        return tf.nn.softmax(tf.matmul(m, w["fc"]))

    path = tmp_path_factory.mktemp("cycles") / "small.tflite"
    path.write_bytes(convert(fn, [(1, 16, 16, 3)], rng))
    return path


@needs_qemu
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m33"])
def test_estimate_is_present_per_op_and_never_below_the_instructions(tmp_path, small_model, target):
    from firmware.aot import generate_project
    from firmware.run import build_and_run

    info = generate_project(small_model, tmp_path / "p", 256 * 1024, target)
    inputs = np.random.default_rng(0).integers(-128, 128, size=(2, 1, 16, 16, 3), dtype=np.int8)
    run = build_and_run(tmp_path / "p", target, inputs, estimate=True, clock_mhz=100.0)
    timing, profile = run.timing, run.profile
    assert timing is not None and profile is not None
    # the plugin counts what SysTick counts, op by op (SysTick: within its resolution of one tick per op)
    assert abs(sum(timing.op_instructions) - profile.total) <= len(info.ops) * 50
    assert all(o.estimated_cycles is not None and o.estimated_cycles >= c for o, c in zip(profile.ops, timing.op_instructions, strict=True))
    cycles = timing.cycles_for(run.instructions_per_inference)
    assert run.instructions_per_inference < cycles < 3 * run.instructions_per_inference
    assert timing.clock_mhz == 100.0 and timing.milliseconds(cycles) == pytest.approx(cycles / 100e3)
    table = profile.format_table("where the instructions go", clock_mhz=100.0)
    assert "est. cycles" in table and "100 MHz" in table


@pytest.mark.parametrize(("value", "fragment"), [("fast", "'fast' is not a valid float"), ("0", "outside"), ("nan", "not a finite"),
                                                 ("5000", "outside")])
def test_a_bad_clock_is_one_line(tmp_path, value, fragment):
    out = tmp_path / "out"
    code, _, err = run_cli(["export", "--target", "cortex-m33", "--sram", "512k", "--clock", value, "--out", str(out)])
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "--clock" in lines[0] and fragment in lines[0], err
    assert not out.exists()
