"""Bad input across every command, as a table: each case must exit with its code, print exactly one line
on stderr (no traceback), and leave the workspace exactly as it was (nothing written, nothing deleted).

Most cases fail before any heavy work (flag parsing, file checks), so the whole table runs in-process in
seconds; a case that gets past them is a bug this table exists to catch.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

from nlpool.checkpoint import save_checkpoint
from nlpool.core.tflite import read_model, write_model
from nlpool.models import ModelConfig, build_model

DATA = Path(__file__).parent / "data"
MODEL = DATA / "planner" / "chain_int8.tflite"
CFG = ModelConfig(input_size=32, s1=1)


class Unsafe:
    """Pickled by reference: a weights-only load must refuse it (loading it could run code)."""


def _checkpoint(path: Path, edit: Callable[[dict], object] | None = None) -> None:
    save_checkpoint(path, build_model(CFG), CFG)
    if edit is not None:
        payload = torch.load(path, weights_only=True)
        buffer = io.BytesIO()
        torch.save(edit(payload), buffer)
        path.write_bytes(buffer.getvalue())


def _set(payload: dict, *keys_and_value: object) -> dict:
    *keys, value = keys_and_value
    target = payload
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return payload


def _tflite(path: Path, edit: Callable[[object], None]) -> None:
    model = read_model(MODEL).raw
    edit(model)
    write_model(model, path)


def _make_workspace(ws: Path) -> None:
    """Every bad file the table hands to a command."""
    ck = ws / "ck"
    ck.mkdir()
    _checkpoint(ck / "good.pt")
    good = (ck / "good.pt").read_bytes()
    (ck / "garbage.pt").write_bytes(b"not a checkpoint at all" * 20)
    (ck / "empty.pt").write_bytes(b"")
    (ck / "truncated.pt").write_bytes(good[: len(good) // 2])
    for name, edit in {
        "size_text": lambda p: _set(p, "config", "input_size", "abc"),
        "width_text": lambda p: _set(p, "config", "width", "wide"),
        "config_none": lambda p: _set(p, "config", None),
        "config_list": lambda p: _set(p, "config", [1, 2]),
        "config_unknown": lambda p: _set(p, "config", "depth", 3),
        "config_bool": lambda p: _set(p, "config", "num_classes", True),
        "config_nan": lambda p: _set(p, "config", "width", float("nan")),
        "config_huge": lambda p: _set(p, "config", "input_size", 1 << 40),
        "weights_list": lambda p: _set(p, "model", [1, 2]),
        "weights_missing": lambda p: _set(p, "model", {k: v for k, v in list(p["model"].items())[1:]}),
        "weights_shape": lambda p: _set(p, "model", next(iter(p["model"])), torch.zeros(3, 3)),
        "weights_nan": lambda p: _set(p, "model", next(iter(p["model"])), torch.full_like(next(iter(p["model"].values())), float("nan"))),
        "weights_text": lambda p: _set(p, "model", next(iter(p["model"])), "w"),
        "no_config": lambda p: {"model": p["model"]},
        "a_list": lambda p: [1, 2, 3],
        "bad_mean": lambda p: _set(p, "input_mean", "x"),
        "bad_classes": lambda p: _set(p, "classes", [1, 2]),
    }.items():
        _checkpoint(ck / f"{name}.pt", edit)
    torch.save({"config": CFG.to_dict(), "model": Unsafe()}, ck / "unsafe.pt")
    tf = ws / "tflite"
    tf.mkdir()
    data = MODEL.read_bytes()
    (tf / "garbage.tflite").write_bytes(b"\x00" * 64)
    (tf / "empty.tflite").write_bytes(b"")
    (tf / "truncated.tflite").write_bytes(data[: len(data) // 3])
    (tf / "folder.tflite").mkdir()
    _tflite(tf / "op_index.tflite", lambda m: setattr(m.subgraphs[0].operators[2], "inputs", [999]))
    _tflite(tf / "graph_output.tflite", lambda m: setattr(m.subgraphs[0], "outputs", [12345]))
    _tflite(tf / "graph_input.tflite", lambda m: setattr(m.subgraphs[0], "inputs", [-7]))
    _tflite(tf / "nan_scale.tflite", lambda m: setattr(m.subgraphs[0].tensors[0].quantization, "scale", [float("nan")]))
    _tflite(tf / "zero_scale.tflite", lambda m: setattr(m.subgraphs[0].tensors[0].quantization, "scale", [0.0]))
    _tflite(tf / "buffer_index.tflite", lambda m: setattr(m.subgraphs[0].tensors[1], "buffer", 10**6))
    _tflite(tf / "opcode.tflite", lambda m: setattr(m.subgraphs[0].operators[0], "opcodeIndex", 99))
    _tflite(tf / "dynamic.tflite", lambda m: setattr(m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]], "shapeSignature", [1, -1, 32, 3]))
    _tflite(tf / "no_subgraph.tflite", lambda m: setattr(m, "subgraphs", []))
    _tflite(tf / "type.tflite", lambda m: setattr(m.subgraphs[0].tensors[0], "type", 99))
    _tflite(tf / "rank0_out.tflite", lambda m: setattr(m.subgraphs[0].tensors[m.subgraphs[0].operators[0].outputs[0]], "shape", []))
    _tflite(tf / "no_options.tflite", lambda m: setattr(m.subgraphs[0].operators[0], "builtinOptions", None))
    (tf / "not_tflite.txt").write_text("hello")
    npy = ws / "npy"
    npy.mkdir()
    (npy / "text.npy").write_text("not numpy")
    np.save(npy / "shape.npy", np.zeros((4, 32, 32), np.uint8))
    np.save(npy / "size.npy", np.zeros((4, 16, 16, 3), np.uint8))
    np.save(npy / "range.npy", np.full((4, 32, 32, 3), 7.0, np.float32))
    np.save(npy / "one.npy", np.zeros((1, 32, 32, 3), np.uint8))
    np.save(npy / "dtype.npy", np.zeros((4, 32, 32, 3), np.complex64))
    np.savez(npy / "noimages.npz", pixels=np.zeros((4, 32, 32, 3), np.uint8))
    np.savez(npy / "labels.npz", images=np.zeros((4, 32, 32, 3), np.uint8), labels=np.array([0, 1, 2, 99]))
    folder = ws / "folder"
    for split, classes in (("train", ("a", "b")), ("val", ("a", "c"))):
        for name in classes:
            (folder / "mismatch" / split / name).mkdir(parents=True)
            (folder / "mismatch" / split / name / "x.png").write_bytes(b"")
    (folder / "oneclass" / "train" / "a").mkdir(parents=True)
    for split in ("train", "val"):
        for name in ("a", "b"):
            (folder / "emptyclass" / split / name).mkdir(parents=True)
    stl = ws / "stl"
    for name, images, labels in (("short", b"\0" * 100, b"\1"), ("labels", b"\0" * 27648 * 2, b"\1"),
                                 ("range", b"\0" * 27648, b"\x0b")):
        (stl / name).mkdir(parents=True)
        for split in ("train", "test"):
            (stl / name / f"{split}_X.bin").write_bytes(images)
            (stl / name / f"{split}_y.bin").write_bytes(labels)
    (ws / "user_folder").mkdir()
    (ws / "user_folder" / "notes.txt").write_text("the user's")
    (ws / "a_file").write_text("a file, not a folder")


# (case id, arguments with {ws} for the workspace, exit code, a fragment of the one stderr line)
EXPORT = ["export", "--target", "cortex-m7", "--sram", "512k", "--no-run", "--out", "{ws}/out"]
PLAN = ["plan", "--sram", "512k"]
CASES: list[tuple[str, list[str], int, str]] = [
    # sizes, on every command that takes one: a usage error (2) everywhere
    *[(f"plan-sram-{i}", ["plan", str(MODEL), "--sram", value], 2, "--sram")
      for i, value in enumerate(["512q", "", "-1k", "0", "9" * 300, "1e3", "1.5", "99999999999999999999", "4097m", "k", "0.5"])],
    *[(f"export-sram-{i}", ["export", "--target", "cortex-m7", "--sram", value, "--out", "{ws}/out"], 2, "--sram")
      for i, value in enumerate(["512q", "", "-1k", "0", "9" * 300, "99999999999999999999", "1.5"])],
    ("export-sram-over-m7", ["export", "--target", "cortex-m7", "--sram", "16m", "--out", "{ws}/out"], 2, "4 MiB of SRAM cortex-m7"),
    ("export-sram-over-m4", ["export", "--target", "cortex-m4", "--sram", "5m", "--out", "{ws}/out"], 2, "of SRAM cortex-m4"),
    ("export-sram-over-m55", ["export", "--target", "cortex-m55", "--sram", "4097k", "--out", "{ws}/out"], 2, "of SRAM cortex-m55"),
    ("claims-sram", ["claims", "--sram", "lots"], 2, "--sram"),
    ("claims-sram-digits", ["claims", "--sram", "9" * 400], 2, "address space"),
    # the export's other flags
    ("export-target", ["export", "--target", "cortex-a53", "--sram", "512k", "--out", "{ws}/out"], 2, "cortex-a53"),
    ("export-no-target", ["export", "--sram", "512k", "--out", "{ws}/out"], 2, "--target"),
    ("export-calib-samples", [*EXPORT, "--calib-samples", "0"], 2, "--calib-samples"),
    ("export-firmware-inputs", [*EXPORT, "--firmware-inputs", "500"], 2, "--firmware-inputs"),
    ("export-min-top1", [*EXPORT, "--min-top1", "2"], 2, "--min-top1"),
    ("export-input-format", [*EXPORT, "--input-format", "bgr"], 2, "--input-format"),
    ("export-cmsis-nn-not-a-tree", [*EXPORT, "--cmsis-nn-dir", "{ws}/user_folder"], 1, "holds no CMSIS-NN tree"),
    ("export-cmsis-nn-a-file", [*EXPORT, "--cmsis-nn-dir", "{ws}/a_file"], 2, "--cmsis-nn-dir"),
    ("export-out-file", ["export", "--target", "cortex-m7", "--sram", "512k", "--out", "{ws}/a_file"], 2, "is a file"),
    ("export-out-under-file", ["export", "--target", "cortex-m7", "--sram", "512k", "--out", "{ws}/a_file/out"], 1, "cannot write"),
    ("export-out-user-folder", ["export", "--target", "cortex-m7", "--sram", "512k", "--out", "{ws}/user_folder"], 1,
     "without an nlpool export manifest"),
    ("export-input-4096", [*EXPORT, "--input-size", "4096"], 1, "outside 1..2048"),
    ("export-input-2048", [*EXPORT, "--input-size", "2048"], 1, "more than the --sram budget"),
    ("export-model-and-checkpoint", [*EXPORT, "--model", "default", "--checkpoint", "{ws}/ck/good.pt"], 1, "both name a model"),
    ("export-contradicting-flag", [*EXPORT, "--checkpoint", "{ws}/ck/good.pt", "--width", "0.5"], 1, "contradicts"),
    ("export-calib-unknown", [*EXPORT, "--calib-data", "imagenet:/x"], 1, "unknown --calib-data"),
    ("export-calib-synthetic-n", [*EXPORT, "--calib-data", "synthetic:many"], 1, "synthetic:N"),
    ("export-calib-npy-missing", [*EXPORT, "--calib-data", "npy:{ws}/npy/none.npy"], 1, "does not exist"),
    ("export-calib-folder-missing", [*EXPORT, "--calib-data", "folder:{ws}/none"], 1, "not found"),
    ("export-calib-stl10-missing", [*EXPORT, "--calib-data", "stl10:{ws}/none"], 1, "not found"),
    # checkpoints, through every command that reads one
    *[(f"{command}-checkpoint-{name}", [*args, "--checkpoint", f"{{ws}}/ck/{name}.pt"], 1, fragment)
      for command, args in (("plan", PLAN), ("export", EXPORT), ("summary", ["summary"]),
                            ("train", ["train", "--data", "synthetic:8", "--epochs", "1", "--out", "{ws}/trained.pt"]))
      for name, fragment in (("missing", "does not exist"), ("garbage", "is corrupted"), ("empty", "is corrupted"),
                             ("truncated", "is corrupted"), ("size_text", "input_size='abc' has the wrong type"),
                             ("width_text", "width='wide'"), ("config_none", "not a mapping"), ("config_list", "not a mapping"),
                             ("unsafe", "could run code"), ("a_list", "no model config"), ("weights_list", "not a mapping"),
                             ("weights_shape", "parameter"))],
    *[(f"plan-checkpoint-{name}", [*PLAN, "--checkpoint", f"{{ws}}/ck/{name}.pt"], 1, fragment)
      for name, fragment in (("config_unknown", "unknown keys ['depth']"), ("config_bool", "num_classes=True"),
                             ("config_nan", "width=nan"), ("config_huge", "outside 1..2048"), ("weights_missing", "lacks"),
                             ("weights_nan", "NaN"), ("weights_text", "not a mapping"), ("no_config", "no model config"))],
    ("export-checkpoint-bad-mean", [*EXPORT, "--checkpoint", "{ws}/ck/bad_mean.pt"], 1, "input_mean"),
    ("export-checkpoint-bad-classes", [*EXPORT, "--checkpoint", "{ws}/ck/bad_classes.pt"], 1, "class names"),
    ("visualize-checkpoint-garbage", ["visualize", "--checkpoint", "{ws}/ck/garbage.pt", "--synthetic", "1", "--out", "{ws}/v.png"], 1,
     "is corrupted"),
    ("visualize-checkpoint-unsafe", ["visualize", "--checkpoint", "{ws}/ck/unsafe.pt", "--synthetic", "1", "--out", "{ws}/v.png"], 1,
     "could run code"),
    ("visualize-no-source", ["visualize", "--checkpoint", "{ws}/ck/good.pt", "--out", "{ws}/v.png"], 1,
     "exactly one of"),
    ("visualize-image-missing", ["visualize", "--checkpoint", "{ws}/ck/good.pt", "--image", "{ws}/none.png", "--out", "{ws}/v.png"], 1,
     "does not exist"),
    ("visualize-dpi", ["visualize", "--checkpoint", "{ws}/ck/good.pt", "--synthetic", "1", "--dpi", "5", "--out", "{ws}/v.png"], 1,
     "--dpi"),
    # .tflite files
    *[(f"plan-tflite-{name}", ["plan", f"{{ws}}/tflite/{name}", "--sram", "512k"], 1, fragment)
      for name, fragment in (("none.tflite", "does not exist"), ("garbage.tflite", "not a TFLite model"),
                             ("empty.tflite", "not a TFLite model"), ("truncated.tflite", "corrupt"),
                             ("op_index.tflite", "refers to index 999"), ("graph_output.tflite", "subgraph's output refers to index"),
                             ("graph_input.tflite", "subgraph's input refers to index"), ("nan_scale.tflite", "positive finite"),
                             ("zero_scale.tflite", "positive finite"), ("buffer_index.tflite", "buffer refers to index"),
                             ("opcode.tflite", "operator code refers to index"),
                             ("dynamic.tflite", "dynamic shape"),
                             ("no_subgraph.tflite", "no subgraph"), ("type.tflite", "unknown element type"),
                             ("rank0_out.tflite", "rank 0"), ("no_options.tflite", "no options"),
                             ("not_tflite.txt", "not a TFLite model"))],
    ("plan-tflite-folder", ["plan", "{ws}/tflite/folder.tflite", "--sram", "512k"], 2, "is a directory"),
    ("plan-tflite-and-flags", ["plan", str(MODEL), "--sram", "512k", "--width", "0.5"], 1, "both name a model"),
    ("plan-plot-missing-folder", ["plan", str(MODEL), "--sram", "512k", "--plot", "{ws}/none/plot.png"], 1, "does not exist"),
    ("plan-plot-not-png", ["plan", str(MODEL), "--sram", "512k", "--plot", "{ws}/plot.jpg"], 1, ".png"),
    # model flags
    *[(f"plan-flag-{flag}-{value}", [*PLAN, f"--{flag}", value], code, fragment)
      for flag, value, code, fragment in (
          ("input-size", "4096", 1, "outside 1..2048"), ("input-size", "0", 1, "outside 1..2048"), ("input-size", "-32", 1, "outside"),
          ("input-size", "33", 1, "not divisible"), ("input-size", "abc", 2, "--input-size"), ("input-size", "9" * 30, 1, "outside"),
          ("s1", "3", 1, "s1 must be 1, 2 or 4"), ("width", "0", 1, "width multiplier"), ("width", "nan", 1, "width multiplier"),
          ("width", "inf", 1, "width multiplier"), ("width", "wide", 2, "--width"), ("pool", "median", 1, "unknown pooling"),
          ("arch", "vgg", 1, "vgg"), ("placement", "middle", 1, "placement"), ("num-classes", "1", 1, "classes must be in 2..65536"),
          ("patch-sizes", "a,b", 2, "--patch-sizes"), ("patch-sizes", "0,1", 2, "--patch-sizes"), ("patch-sizes", "1,1", 1, "patch sizes"),
          ("upsample", "cubic", 1, "upsample"), ("model", "huge", 1, "huge"))],
    ("summary-input-size", ["summary", "--input-size", "4096"], 1, "outside 1..2048"),
    ("summary-grid", ["summary", "--s1", "1", "--input-size", "2048", "--patch-sizes", "1,1,1,1,1,1,1"], 1, "positional tables"),
    # data specs of training
    *[(f"train-data-{i}", ["train", "--data", spec, "--epochs", "1", "--out", "{ws}/trained.pt", "--input-size", "32", "--s1", "1"], 1,
       fragment)
      for i, (spec, fragment) in enumerate((
          ("imagenet:/x", "unknown"), ("folder:{ws}/none", "not found"), ("folder:{ws}/folder/mismatch", "has classes"),
          ("folder:{ws}/folder/oneclass", "need at least 2"), ("folder:{ws}/folder/emptyclass", "hold no images"),
          ("stl10:{ws}/none", "not found"), ("stl10:{ws}/stl/short", "not a multiple of"), ("stl10:{ws}/stl/labels", "labels but"),
          ("stl10:{ws}/stl/range", "outside 1..10")))],
    # npy data for the export
    *[(f"export-npy-{name}", [*EXPORT, "--input-size", "32", "--s1", "1", "--calib-data", f"npy:{{ws}}/npy/{name}"], 1, fragment)
      for name, fragment in (("text.npy", "not a readable NumPy file"), ("shape.npy", "expected (N, H, W, 3)"),
                             ("size.npy", "resize them first"), ("range.npy", "[0, 1]"), ("one.npy", "at least 2"),
                             ("dtype.npy", "complex64"), ("noimages.npz", "no 'images' array"), ("labels.npz", "labels must be"))],
    ("export-folder-mismatch", [*EXPORT, "--calib-data", "folder:{ws}/folder/mismatch"], 1, "has classes"),
    ("export-stl10-short", [*EXPORT, "--calib-data", "stl10:{ws}/stl/short"], 1, "not a multiple of"),
    # usage
    ("unknown-command", ["deploy"], 2, "deploy"),
    ("unknown-flag", ["plan", "--sram", "512k", "--fast"], 2, "--fast"),
    ("plan-no-sram", ["plan", str(MODEL)], 2, "--sram"),
    ("train-epochs-text", ["train", "--data", "synthetic", "--epochs", "one", "--out", "{ws}/t.pt"], 2, "--epochs"),
]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and modification time: what 'nothing written or deleted' compares."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("bad_input")
    _make_workspace(ws)
    return ws


def test_the_table_is_large_and_has_unique_ids():
    ids = [case[0] for case in CASES]
    assert len(ids) >= 100 and len(ids) == len(set(ids)), (len(ids), len(set(ids)))


@pytest.mark.parametrize(("args", "code", "fragment"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input(workspace: Path, args: list[str], code: int, fragment: str) -> None:
    before = _snapshot(workspace.parent)
    exit_code, _out, err = run_cli([a.replace("{ws}", str(workspace)) for a in args])
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert fragment in lines[0], lines[0]
    assert exit_code == code, (exit_code, lines[0])
    assert _snapshot(workspace.parent) == before, "a failed command wrote or deleted something"
