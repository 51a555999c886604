"""`nlpool export` on bad input: one line on stderr, a non-zero exit, and no output folder left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

from nlpool.checkpoint import save_checkpoint
from nlpool.core.errors import NlpoolError
from nlpool.core.units import format_size, parse_size
from nlpool.data import Normalization, export_images
from nlpool.models import ModelConfig, build_model

BASE = ["export", "--target", "cortex-m7", "--sram", "512k"]


@pytest.mark.parametrize(("text", "expected"), [("512k", 524288), ("512K", 524288), ("1m", 1048576), ("524288", 524288), ("2MiB", 2097152)])
def test_sizes_users_type(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["512q", "", "k", "-1k", "0", "1.0001k"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(NlpoolError):
        parse_size(text)


def test_format_size():
    assert format_size(524288) == "512 KiB" and format_size(1536) == "1.5 KiB" and format_size(100) == "100 B"


def _assert_clean_failure(code: int, err: str, out_dir: Path, fragment: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], err
    assert not out_dir.exists()
    assert not [p for p in out_dir.parent.iterdir() if p.name.startswith(f".{out_dir.name}.")]


@pytest.fixture
def default_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "default.pt"
    save_checkpoint(path, build_model(ModelConfig()), ModelConfig())
    return path


def test_missing_checkpoint(tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli([*BASE, "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(out)])
    _assert_clean_failure(code, err, out, "does not exist")


def test_corrupt_checkpoint(tmp_path):
    bad, out = tmp_path / "bad.pt", tmp_path / "out"
    bad.write_bytes(b"this is not a checkpoint" * 10)
    code, _, err = run_cli([*BASE, "--checkpoint", str(bad), "--out", str(out)])
    _assert_clean_failure(code, err, out, "is corrupted")


def test_checkpoint_contradicting_flags(tmp_path, default_checkpoint):
    out = tmp_path / "out"
    code, _, err = run_cli([*BASE, "--checkpoint", str(default_checkpoint), "--width", "0.5", "--out", str(out)])
    _assert_clean_failure(code, err, out, "contradicts the checkpoint")


def test_bad_sram_size(tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli(["export", "--target", "cortex-m7", "--sram", "512q", "--out", str(out)])
    _assert_clean_failure(code, err, out, "'512q' is not a memory size")


def test_unknown_target(tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli(["export", "--target", "cortex-a53", "--sram", "512k", "--out", str(out)])
    _assert_clean_failure(code, err, out, "cortex-a53")


def test_unwritable_out(tmp_path, default_checkpoint):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "out"  # its parent is a file: nothing can be created there, even as root
    code, _, err = run_cli([*BASE, "--checkpoint", str(default_checkpoint), "--out", str(out)])
    assert code != 0 and len(err.strip().splitlines()) == 1 and "cannot write" in err, err
    assert blocker.read_text() == "not a folder"


def test_out_that_is_a_foreign_folder_is_not_overwritten(tmp_path, default_checkpoint):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code, _, err = run_cli([*BASE, "--checkpoint", str(default_checkpoint), "--out", str(out)])
    assert code != 0 and "without an nlpool export manifest" in err
    assert (out / "notes.txt").read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_failing_step_leaves_no_output(tmp_path):
    """A step that fails half-way (here: after the ONNX file is written) leaves neither DIR nor its temp."""
    from export import pipeline

    def broken(_onnx: pipeline.OnnxResult) -> pipeline.StepResult:
        raise NlpoolError("simulated failure: nothing to fix")

    cfg = ModelConfig(input_size=64)
    data_step, fold_step, onnx_step = pipeline.EXPORT_STEPS[:3]
    broken_step = pipeline.Step("broken", "a step that fails")
    run = pipeline.ExportRun(tmp_path / "out", [data_step, fold_step, onnx_step, broken_step], {}, echo=lambda _line: None)
    with pytest.raises(NlpoolError, match="simulated"), run:
        images = export_images("synthetic", cfg.input_size, cfg.num_classes, 4, 4)
        data = run.run(data_step, pipeline.prepare_data, images, Normalization())
        folded = run.run(fold_step, pipeline.fold_batchnorms, build_model(cfg).eval(), data)
        onnx = run.run(onnx_step, pipeline.export_to_onnx, folded, data, run.work_dir)
        assert onnx.path.is_file()
        run.run(broken_step, broken, onnx)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert not run.work_dir.exists() and not run.scratch_dir.exists()


def _export_into(out: Path, files: dict[str, str], passed: bool = True, keep_failed: bool = False) -> bool:
    """A finished work folder with `files`, moved into `out` as an export does it."""
    from export.outdir import make_work_dir, move_into_place, write_manifest

    work = make_work_dir(out)
    assert work.parent == out.parent and work.name.startswith(f".{out.name}.")
    for name, text in files.items():
        (work / name).write_text(text)
    write_manifest(work, passed, "test")
    placed = move_into_place(work, out, passed, keep_failed)
    shutil.rmtree(work, ignore_errors=True)  # as ExportRun does when it leaves its block
    return placed


def test_a_re_export_replaces_only_what_the_earlier_export_wrote(tmp_path):
    out = tmp_path / "out"
    assert _export_into(out, {"report.json": "old", "memory.md": "old"})
    (out / "notes.txt").write_text("the user's")
    (out / "plots").mkdir()
    (out / "plots" / "a.png").write_text("the user's too")
    assert _export_into(out, {"report.json": "new"})
    assert sorted(p.name for p in out.iterdir()) == ["nlpool_manifest.json", "notes.txt", "plots", "report.json"]
    assert (out / "report.json").read_text() == "new" and (out / "notes.txt").read_text() == "the user's"
    assert (out / "plots" / "a.png").read_text() == "the user's too"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no work or previous folder left


def test_a_report_json_alone_does_not_make_a_folder_an_export(tmp_path):
    from export.outdir import check_output_dir

    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    with pytest.raises(NlpoolError, match="without an nlpool export manifest"):
        check_output_dir(out)


def test_a_users_file_named_like_an_export_file_is_refused_up_front(tmp_path):
    from export.outdir import check_output_dir

    out = tmp_path / "out"
    _export_into(out, {"report.json": "old"})
    (out / "memory.md").write_text("the user's own notes")
    with pytest.raises(NlpoolError, match=r"holds memory\.md, which the earlier export did not write"):
        check_output_dir(out)
    assert (out / "memory.md").read_text() == "the user's own notes"


def test_a_failed_export_keeps_a_passing_one_unless_asked(tmp_path):
    out = tmp_path / "out"
    _export_into(out, {"report.json": "good"})
    assert not _export_into(out, {"report.json": "failed"}, passed=False)
    assert (out / "report.json").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert _export_into(out, {"report.json": "failed"}, passed=False, keep_failed=True)
    assert (out / "report.json").read_text() == "failed"
    assert _export_into(out, {"report.json": "failed again"}, passed=False)  # nothing passing to protect
    assert (out / "report.json").read_text() == "failed again"


def test_exports_get_the_users_umask(tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o027)
    try:
        _export_into(out, {"report.json": "x"})
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o750


def test_work_and_scratch_folders_of_dead_runs_are_removed_at_the_next_run(tmp_path):
    """Folders named by a process that no longer runs go; a live run's, and anything not ours, stay."""
    from export.outdir import clean_stale_runs

    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "out"
    stale = tmp_path / f".out.nlpool-{dead.pid}-1.abc123.partial"
    live = tmp_path / f".out.nlpool-{os.getppid()}-0.def456.partial"
    foreign = tmp_path / ".out.someone-elses.partial"
    for folder in (stale, live, foreign):
        folder.mkdir()
        (folder / "file").write_text("x")
    removed = clean_stale_runs(out)
    assert removed == [stale] and live.is_dir() and foreign.is_dir()


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    """`timeout`, CI cancellation and `docker stop` send SIGTERM: one line, exit 143, no work or scratch folder left."""
    import signal
    import tempfile
    import time

    from conftest import NLPOOL_SCRIPT

    out = tmp_path / "out"
    process = subprocess.Popen([str(NLPOOL_SCRIPT), *BASE, "--no-run", "--input-size", "64", "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any(p.name.endswith(".partial") for p in tmp_path.iterdir()):
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    assert any(p.name.endswith(".partial") for p in tmp_path.iterdir()), "the export never started its work folder"
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("error: terminated (SIGTERM)") and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert not [p for p in Path(tempfile.gettempdir()).iterdir() if p.name.startswith(f"nlpool-export-nlpool-{process.pid}-")]


def test_the_cli_the_options_and_the_python_api_share_the_export_defaults():
    """One home for the defaults (nlpool.flow.export_defaults): the API's min_top1 once said 0.99 where the rest said 0.98,
    so the default model exported from Python failed a check the command passed."""
    import inspect
    from dataclasses import fields

    import nlpool
    from nlpool.cli.export_cmd import export_command
    from nlpool.flow import export_defaults as defaults
    from nlpool.flow.export_flow import ExportOptions

    cli = {param.name: param.default for param in export_command.params}
    options = {field.name: field.default for field in fields(ExportOptions)}
    api = {name: param.default for name, param in inspect.signature(nlpool.export_model).parameters.items()}
    for value, cli_name, option_name, api_name in (
            (defaults.MIN_TOP1, "min_top1", "min_top1", "min_top1"), (defaults.MIN_COSINE, "min_cosine", "min_cosine", "min_cosine"),
            (defaults.FIRMWARE_INPUTS, "firmware_inputs", "firmware_inputs", "firmware_inputs"),
            (defaults.INPUT_FORMAT, "input_format", "input_format", "input_format"),
            (defaults.CALIB_SAMPLES, "calib_samples", "calib_samples", None), (defaults.OUT_DIR, "out_dir", None, "out")):
        assert cli[cli_name] == value, cli_name
        assert option_name is None or options[option_name] == value, option_name
        assert api_name is None or api[api_name] == value, api_name
    assert defaults.MIN_TOP1 == 0.98


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1, 1.5])
def test_the_python_api_refuses_a_bar_that_is_not_a_number_in_range(tmp_path, value):
    import torch

    import nlpool

    with pytest.raises(NlpoolError, match="--min-top1"):
        nlpool.export_model(torch.nn.Conv2d(3, 2, 8), 8, target="cortex-m7", sram="512k", out=tmp_path / "out", num_classes=2,
                            min_top1=value)
    assert not (tmp_path / "out").exists()
