"""The export flow's verdicts: a skipped step names the failure that stopped it, and the user's bars decide.

The generators are replaced by stand-ins, so these run in seconds: what is checked is the flow's
wiring of failures, not the firmware (tests/test_export_end_to_end.py runs the real thing).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import synthetic_export_data
from torch import nn

from export.pipeline import FusedResult
from firmware.common import ProjectIO, Rgb888Input
from firmware.tflm import SramBudgetExceeded, TflmProject
from nlpool.core.errors import NlpoolError
from nlpool.flow import export_flow as flow
from nlpool.models import ModelConfig

NO_KERNEL = "the AOT runtime has no kernel for op(s) EXP"


def _memory(fits: bool) -> flow.MemoryResult:
    message = "fits: ..." if fits else "does not fit: arena 100 B is 36 B over the 64 B budget"
    return flow.MemoryResult(plan=SimpleNamespace(), section={"fits": fits, "message": message}, files=())


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    def tflm_project(_fused: Path, out_dir: Path, target: str, **_kwargs: object) -> TflmProject:
        return TflmProject(Path(out_dir), target, ["CONV_2D"], 1024, 8192)

    monkeypatch.setattr(flow, "generate_tflm_project", tflm_project)
    monkeypatch.setattr(flow, "tflm_plan", lambda *_args: None)  # the stand-in project plans nothing
    return {
        "source": flow.ModelToExport.from_config(nn.Identity(), ModelConfig(input_size=32), "test weights", trained=True),
        "data": synthetic_export_data(32, 1, 1),
        "fused": FusedResult(tmp_path / "model_int8_fused.tflite", (), (), ()),
        "options": flow.ExportOptions("cortex-m7", 512 << 10, tmp_path / "out"),
        "work": tmp_path,
        "io": ProjectIO(Rgb888Input(32, 32, np.zeros((3, 256), np.int8), "test"), 10),
    }


def test_skips_after_a_firmware_generation_failure_name_it(stand_ins: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_kernels(*_args: object, **_kwargs: object) -> None:
        raise NlpoolError(NO_KERNEL)

    monkeypatch.setattr(flow, "generate_project", no_kernels)
    s, memory = stand_ins, _memory(fits=True)
    firmware = flow.build_firmware(s["source"], nn.Identity(), s["data"], s["fused"], memory, s["io"], s["options"], None, s["work"],
                                   memory.failure)
    assert firmware.failure is not None and firmware.failure.exit_code == flow.EXIT_CHECK_FAILED
    assert firmware.report_section() == {"target": "cortex-m7", "generated": False, "error": NO_KERNEL}
    tflm = flow.build_tflm(s["fused"], firmware, s["io"], s["options"], s["work"], firmware.failure)
    assert tflm.report_section()["run"] == f"skipped: firmware generation failed: {NO_KERNEL}"
    assert tflm.failure is None and not tflm.report_section()["target_verified"]


def test_skips_after_an_over_budget_plan_name_the_budget(stand_ins: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flow, "generate_project", lambda *_args, **_kwargs: SimpleNamespace(arena_bytes=100))
    s, memory = stand_ins, _memory(fits=False)
    assert memory.failure is not None and memory.failure.exit_code == flow.EXIT_OVER_BUDGET
    firmware = flow.build_firmware(s["source"], nn.Identity(), s["data"], s["fused"], memory, s["io"], s["options"], None, s["work"],
                                   memory.failure)
    assert firmware.failure is None and firmware.report_section()["run"] == "skipped: over the SRAM budget"
    tflm = flow.build_tflm(s["fused"], firmware, s["io"], s["options"], s["work"], memory.failure)
    assert tflm.report_section()["run"] == "skipped: over the SRAM budget"


MEASURED = {"bitexact_vs_host": True, "bitexact_vs_reference": True, "top1_agreement_vs_pytorch": 0.95, "cosine_vs_pytorch": 0.995}


@pytest.mark.parametrize(
    ("measured", "min_top1", "trained", "passes"),
    [
        (MEASURED, 0.99, True, False),  # below the user's top-1 bar
        (MEASURED, 0.9, True, True),  # the user lowered the bar
        (MEASURED, 0.99, False, True),  # random weights: only bit-exactness decides
        ({**MEASURED, "bitexact_vs_host": False}, 0.9, True, False),
        ({**MEASURED, "bitexact_vs_reference": False}, 0.9, False, False),
    ],
)
def test_the_firmware_verdict_follows_the_users_bars(tmp_path: Path, measured: dict, min_top1: float, trained: bool,
                                                     passes: bool) -> None:
    options = flow.ExportOptions("cortex-m7", 512 << 10, tmp_path, min_top1=min_top1, min_cosine=0.99)
    passed, bars = flow.judge_firmware(measured, options, trained)
    assert passed is passes
    assert bars == ({"min_top1_agreement": min_top1, "min_cosine": 0.99} if trained else flow.RANDOM_WEIGHTS_NOTE)


def _ran_firmware() -> flow.FirmwareResult:
    inputs = flow.FirmwareInputs(np.zeros((2, 4), np.int8), np.zeros((2, 3), np.int8), np.zeros((2, 3), np.float32), None)
    measurement = SimpleNamespace(board=SimpleNamespace(outputs=[np.zeros((2, 3), np.int8)]))
    return flow.FirmwareResult(None, {}, None, inputs, measurement)


def test_without_a_tflm_tree_the_target_run_is_skipped_with_how_to_get_one(stand_ins: dict,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NLPOOL_TFLM_DIR", raising=False)
    s = stand_ins
    tflm = flow.build_tflm(s["fused"], _ran_firmware(), s["io"], s["options"], s["work"], None)
    assert tflm.failure is None and not tflm.report_section()["target_verified"]
    assert tflm.report_section()["run"].startswith("skipped: no TFLM source tree; get a TFLM source tree")
    assert tflm.report_section()["file"] == "model_int8_fused.tflite"  # TFLM runs the AOT firmware's model
    assert "--tflm-dir" in tflm.summary() and "NLPOOL_TFLM_DIR" in tflm.summary()


def test_a_folder_that_is_no_tflm_tree_fails_the_step_with_one_line(stand_ins: dict, tmp_path: Path) -> None:
    s = stand_ins
    options = flow.ExportOptions("cortex-m7", 512 << 10, tmp_path / "out", tflm_dir=tmp_path)
    tflm = flow.build_tflm(s["fused"], _ran_firmware(), s["io"], options, s["work"], None)
    assert tflm.failure is not None and tflm.failure.exit_code == flow.EXIT_CHECK_FAILED
    assert "is not a TFLM source tree" in tflm.failure.message and "\n" not in tflm.failure.message


def test_a_tflm_firmware_over_the_sram_budget_is_reported_without_failing_the_export(stand_ins: dict,
                                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """At 224 px TFLM's arena does not fit 512 KiB where the AOT firmware's does: the AOT firmware is the
    export's product, so the TFLM step says why it did not run, with both arenas, and fails nothing."""
    def over_budget(*_args: object, **_kwargs: object) -> None:
        raise SramBudgetExceeded("the TFLM firmware for cortex-m7 does not link: nlpool: SRAM use exceeds the --sram budget")

    monkeypatch.setattr(flow, "find_tree", lambda _tflm_dir: SimpleNamespace(kernels="cmsis-nn"))
    monkeypatch.setattr(flow, "read_model", lambda _path: None)
    monkeypatch.setattr(flow, "long_softmax_row", lambda _model: 0)
    monkeypatch.setattr(flow, "build_for_target", over_budget)
    ran = _ran_firmware()
    ran.measurement.board.arena_bytes = 351_360
    s = stand_ins
    tflm = flow.build_tflm(s["fused"], ran, s["io"], s["options"], s["work"], None)
    assert tflm.failure is None and not tflm.report_section()["target_verified"]
    run = tflm.report_section()["run"]
    assert run.startswith("not run: the TFLM firmware for cortex-m7 does not link") and "351,360 B" in run and "1,024 B" in run
