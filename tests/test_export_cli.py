"""`nlpool export` on bad input: one line on stderr, a non-zero exit, and no output folder left behind."""

from __future__ import annotations

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
    _assert_clean_failure(code, err, out, "cannot be read")


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
    assert code != 0 and len(err.strip().splitlines()) == 1 and "cannot write the output folder" in err, err
    assert blocker.read_text() == "not a folder"


def test_out_that_is_a_foreign_folder_is_not_overwritten(tmp_path, default_checkpoint):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code, _, err = run_cli([*BASE, "--checkpoint", str(default_checkpoint), "--out", str(out)])
    assert code != 0 and "not an nlpool export" in err
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


def test_new_export_replaces_a_previous_one_whole(tmp_path):
    from export.outdir import make_work_dir, move_into_place

    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    (out / "stale.bin").write_text("from the previous export")
    work = make_work_dir(out)
    assert work.parent == tmp_path and work.name.startswith(".out.")
    (work / "report.json").write_text('{"new": true}')
    move_into_place(work, out)
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    assert (out / "report.json").read_text() == '{"new": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
