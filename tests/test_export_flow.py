"""The export flow's verdicts: a skipped step names the failure that stopped it, and the user's bars decide.

The generators are replaced by stand-ins, so these run in seconds: what is checked is the flow's
wiring of failures, not the firmware (tests/test_export_end_to_end.py runs the real thing).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from firmware.common import ProjectIO, Rgb888Input
from firmware.tflm import SramBudgetExceeded, TflmProject
from nlpool.core.errors import NlpoolError
from nlpool.flow import deploy
from nlpool.flow import export_flow as flow

NO_KERNEL = "the AOT runtime has no kernel for op(s) EXP"
TREES = deploy.KernelTrees(None, None)


def _memory(fits: bool) -> deploy.MemoryResult:
    message = "fits: ..." if fits else "does not fit: arena 100 B is 36 B over the 64 B budget"
    return deploy.MemoryResult(plan=SimpleNamespace(), fits=fits, message=message, report={"fits": fits, "message": message}, files=())


def _no_inputs() -> deploy.FirmwareInputs:
    raise AssertionError("a firmware that does not run needs no inputs")


def _pass(_measured: object) -> deploy.FirmwareVerdict:
    return deploy.FirmwareVerdict(True, {})


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    def tflm_project(_fused: object, out_dir: Path, target: str, **_kwargs: object) -> TflmProject:
        return TflmProject(Path(out_dir), target, ["CONV_2D"], 1024, 8192)

    monkeypatch.setattr(deploy, "generate_tflm_project", tflm_project)
    monkeypatch.setattr(deploy, "tflm_plan", lambda *_args: None)  # the stand-in project plans nothing
    io = ProjectIO(Rgb888Input(32, 32, np.zeros((3, 256), np.int8), "test"), 10)
    return {
        "model": deploy.Deployable(SimpleNamespace(), "model_int8_fused.tflite", io, {"format": "normalized"}),
        "work": tmp_path,
    }


def _skipped(cause: str | None) -> str | None:
    return None if cause is None else f"skipped: {cause}"


def test_skips_after_a_firmware_generation_failure_name_it(stand_ins: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_kernels(*_args: object, **_kwargs: object) -> None:
        raise NlpoolError(NO_KERNEL)

    monkeypatch.setattr(deploy, "generate_project", no_kernels)
    s, memory = stand_ins, _memory(fits=True)
    firmware = deploy.build_firmware(s["model"], memory, _no_inputs, _pass, "cortex-m7", 512 << 10, TREES, s["work"], None)
    assert firmware.failure is not None and firmware.failure.exit_code == deploy.EXIT_CHECK_FAILED
    assert firmware.report_section() == {"target": "cortex-m7", "generated": False, "error": NO_KERNEL}
    tflm = deploy.build_tflm(s["model"], firmware, None, "cortex-m7", 512 << 10, TREES, s["work"], _skipped(firmware.failure.cause))
    assert tflm.report_section()["run"] == f"skipped: firmware generation failed: {NO_KERNEL}"
    assert tflm.failure is None and not tflm.report_section()["target_verified"]


def test_skips_after_an_over_budget_plan_name_the_budget(stand_ins: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    project = SimpleNamespace(arena_bytes=100, cmsis_nn_dir="")
    monkeypatch.setattr(deploy, "generate_project", lambda *_args, **_kwargs: project)
    s, memory = stand_ins, _memory(fits=False)
    assert memory.failure is not None and memory.failure.exit_code == deploy.EXIT_OVER_BUDGET
    not_run = _skipped(memory.failure.cause)
    firmware = deploy.build_firmware(s["model"], memory, _no_inputs, _pass, "cortex-m7", 512 << 10, TREES, s["work"], not_run)
    assert firmware.failure is None and firmware.report_section()["run"] == "skipped: over the SRAM budget"
    tflm = deploy.build_tflm(s["model"], firmware, None, "cortex-m7", 512 << 10, TREES, s["work"], not_run)
    assert tflm.report_section()["run"] == "skipped: over the SRAM budget"


def _measured(**changes: object) -> SimpleNamespace:
    fields = {"bitexact_vs_host": True, "bitexact_vs_reference": True, "top1_agreement_vs_pytorch": 0.95, "cosine_vs_pytorch": 0.995}
    return SimpleNamespace(**{**fields, **changes})


@pytest.mark.parametrize(
    ("measured", "min_top1", "trained", "passes"),
    [
        (_measured(), 0.99, True, False),  # below the user's top-1 bar
        (_measured(), 0.9, True, True),  # the user lowered the bar
        (_measured(), 0.99, False, True),  # random weights: only bit-exactness decides
        (_measured(bitexact_vs_host=False), 0.9, True, False),
        (_measured(bitexact_vs_reference=False), 0.9, False, False),
    ],
)
def test_the_firmware_verdict_follows_the_users_bars(tmp_path: Path, measured: SimpleNamespace, min_top1: float, trained: bool,
                                                     passes: bool) -> None:
    options = flow.ExportOptions("cortex-m7", 512 << 10, tmp_path, min_top1=min_top1, min_cosine=0.99)
    verdict = flow.judge_firmware(measured, options, trained)
    assert verdict.passed is passes
    assert verdict.bars == ({"min_top1_agreement": min_top1, "min_cosine": 0.99} if trained else flow.RANDOM_WEIGHTS_NOTE)


def _ran_firmware(arena_bytes: int = 0) -> deploy.FirmwareResult:
    inputs = deploy.FirmwareInputs(np.zeros((2, 4), np.int8), np.zeros((2, 3), np.int8), np.zeros((2, 3), np.float32), None)
    board = SimpleNamespace(outputs=[np.zeros((2, 3), np.int8)], arena_bytes=arena_bytes, instructions_per_inference=1, kernels="portable")
    return deploy.FirmwareResult("cortex-m7", None, SimpleNamespace(), "", {}, inputs=inputs, measurement=SimpleNamespace(board=board),
                                 verdict=deploy.FirmwareVerdict(True, {}))


def test_without_a_tflm_tree_the_target_run_is_skipped_with_how_to_get_one(stand_ins: dict) -> None:
    s, firmware = stand_ins, _ran_firmware()
    tflm = deploy.build_tflm(s["model"], firmware, firmware.inputs, "cortex-m7", 512 << 10, TREES, s["work"], None)
    assert tflm.failure is None and not tflm.report_section()["target_verified"]
    assert tflm.report_section()["run"].startswith("skipped: no TFLM source tree; get a TFLM source tree")
    assert tflm.report_section()["file"] == "model_int8_fused.tflite"  # TFLM runs the AOT firmware's model
    assert "--tflm-dir" in tflm.summary() and "NLPOOL_TFLM_DIR" in tflm.summary()


def test_a_folder_that_is_no_tflm_tree_stops_the_export_before_it_starts(tmp_path: Path) -> None:
    with pytest.raises(NlpoolError, match="is not a TFLM source tree") as caught:
        deploy.KernelTrees.find(None, tmp_path)
    assert "\n" not in str(caught.value)


def test_a_tflm_firmware_over_the_sram_budget_is_reported_without_failing_the_export(stand_ins: dict,
                                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """At 224 px TFLM's arena does not fit 512 KiB where the AOT firmware's does: the AOT firmware is the
    export's product, so the TFLM step says why it did not run, with both arenas, and fails nothing."""
    def over_budget(*_args: object, **_kwargs: object) -> None:
        raise SramBudgetExceeded("the TFLM firmware for cortex-m7 does not link: nlpool: SRAM use exceeds the --sram budget")

    monkeypatch.setattr(deploy, "long_softmax_row", lambda _model: 0)
    monkeypatch.setattr(deploy, "build_for_target", over_budget)
    s, firmware = stand_ins, _ran_firmware(arena_bytes=351_360)
    trees = deploy.KernelTrees(None, SimpleNamespace(kernels="cmsis-nn"))
    tflm = deploy.build_tflm(s["model"], firmware, firmware.inputs, "cortex-m7", 512 << 10, trees, s["work"], None)
    assert tflm.failure is None and not tflm.report_section()["target_verified"]
    run = tflm.report_section()["run"]
    assert run.startswith("not run: the TFLM firmware for cortex-m7 does not link") and "351,360 B" in run and "1,024 B" in run
