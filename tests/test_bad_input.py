"""Bad input across every command, as a table: each case must exit with its code, print exactly one line
on stderr (no traceback), and leave the workspace exactly as it was (nothing written, nothing deleted).

Most cases fail before any heavy work (flag parsing, file checks), so the whole table runs in-process in
seconds; a case that gets past them is a bug this table exists to catch.
"""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from ai_edge_litert import schema_py_generated as schema
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


def _append_pad(model: object, declared: int) -> None:
    """A PAD after the model's (1, 10) output, padding it to (1, 12), whose output says (1, `declared`)."""
    sub = model.subgraphs[0]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.PAD
    code.version = 1
    model.operatorCodes.append(code)
    buffer = schema.BufferT()
    buffer.data = list(np.array([[0, 0], [0, 2]], np.int32).tobytes())
    model.buffers.append(buffer)
    paddings = schema.TensorT()
    paddings.shape, paddings.type, paddings.buffer, paddings.name = [2, 2], schema.TensorType.INT32, len(model.buffers) - 1, b"paddings"
    padded = copy.deepcopy(sub.tensors[sub.outputs[0]])
    padded.shape, padded.name = [1, declared], b"padded"
    sub.tensors += [paddings, padded]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = len(model.operatorCodes) - 1, [sub.outputs[0], len(sub.tensors) - 2], [len(sub.tensors) - 1]
    sub.operators.append(op)
    sub.outputs = [len(sub.tensors) - 1]


def _set_output_shape(position: int, shape: list[int]) -> Callable[[object], None]:
    def edit(model: object) -> None:
        sub = model.subgraphs[0]
        sub.tensors[sub.operators[position].outputs[0]].shape = shape
    return edit


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
    with open(ck / "plain_pickle.pt", "wb") as handle:  # a pickle, but not PyTorch's: torch warns in many lines first
        pickle.dump({"config": CFG.to_dict()}, handle, protocol=4)
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
    _tflite(tf / "pad_huge.tflite", lambda m: _append_pad(m, 1 << 30))  # nlpool plan said "fits", with a 315 GB TFLM arena
    _tflite(tf / "pad_right.tflite", lambda m: _append_pad(m, 12))
    _tflite(tf / "conv_out.tflite", _set_output_shape(0, [1, 33, 32, 8]))
    _tflite(tf / "conv_channels.tflite", _set_output_shape(0, [1, 32, 32, 9]))
    _tflite(tf / "pool_out.tflite", _set_output_shape(2, [1, 16, 8, 16]))
    _tflite(tf / "fc_out.tflite", _set_output_shape(5, [1, 11]))
    npy = ws / "npy"
    npy.mkdir()
    (npy / "text.npy").write_text("not numpy")
    np.save(npy / "shape.npy", np.zeros((4, 32, 32), np.uint8))
    np.save(npy / "size.npy", np.zeros((4, 16, 16, 3), np.uint8))
    np.save(npy / "range.npy", np.full((4, 32, 32, 3), 7.0, np.float32))
    np.save(npy / "one.npy", np.zeros((1, 32, 32, 3), np.uint8))
    np.save(npy / "dtype.npy", np.zeros((4, 32, 32, 3), np.complex64))
    nan = np.full((4, 32, 32, 3), 0.5, np.float32)
    nan[3, 1, 2, 0] = np.nan
    np.save(npy / "nan.npy", nan)
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
    (ws / "dir.pt").mkdir()


# (case id, arguments with {ws} for the workspace, exit code, a fragment of the one stderr line)
EXPORT = ["export", "--target", "cortex-m7", "--sram", "512k", "--no-run", "--out", "{ws}/out"]
PLAN = ["plan", "--sram", "512k"]
PLAN_MODEL = ["plan", str(MODEL), "--sram", "512k"]
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
    # output paths, one rule for every command (nlpool.core.checks.output_path), refused before any work
    *[(f"{command}-out-{case}", [*args, flag, path], code, fragment)
      for command, args, flag, name in (
          ("export", ["export", "--target", "cortex-m7", "--sram", "512k", "--no-run"], "--out", "out"),
          ("train", ["train", "--data", "synthetic:8", "--epochs", "1"], "--out", "t.pt"),
          ("visualize", ["visualize", "--checkpoint", "{ws}/ck/good.pt", "--synthetic", "1"], "--out", "v.png"),
          ("plan", [*PLAN_MODEL], "--plot", "p.png"))
      for case, path, code, fragment in (
          ("name-300-bytes", "{ws}/" + "n" * (299 - len(name)) + "." + name, 1, "the name is 300 bytes"),
          ("name-200-bytes", "{ws}/" + "n" * (199 - len(name)) + "." + name, 1, "200 bytes; an output name may have at most 191"),
          ("folder-name-300-bytes", "{ws}/" + "d" * 300 + "/" + name, 1, "the folder name"),
          ("in-proc", "/proc/" + name, 1, "/proc is the kernel's interface"),
          ("in-proc-self", "/proc/self/" + name, 1, "/proc is the kernel's interface"),
          ("in-sys", "/sys/" + name, 1, "/sys is the kernel's interface"),
          ("under-a-file", "{ws}/a_file/" + name, 1, "is a file, not a folder"))],
    ("train-out-folder", ["train", "--data", "synthetic:8", "--epochs", "1", "--out", "{ws}/dir.pt"], 2, "is a directory"),
    ("train-out-dev-null", ["train", "--data", "synthetic:8", "--epochs", "1", "--out", "/dev/null"], 1, "not a regular file"),
    ("visualize-out-not-png", ["visualize", "--checkpoint", "{ws}/ck/good.pt", "--synthetic", "1", "--out", "{ws}/v.jpg"], 1,
     "must end in .png"),
    # numbers: finite and inside their documented ranges (nlpool.core.checks.number)
    *[(f"train-{flag}-{value}", ["train", "--data", "synthetic:8", "--epochs", "1", "--out", "{ws}/t.pt", f"--{flag}", value], code,
       fragment)
      for flag, value, code, fragment in (
          ("seed", "1" * 23, 1, "--seed 11111111111111111111111 is outside 0..4294967295"), ("seed", "-1", 1, "--seed -1 is outside"),
          ("lr", "inf", 1, "--lr inf is not a finite number"), ("lr", "nan", 1, "--lr nan is not a finite number"),
          ("lr", "1e30", 1, "--lr 1e+30 is outside 1e-08..10"), ("lr", "0", 1, "--lr 0 is outside"), ("lr", "-0.1", 1, "--lr -0.1"),
          ("epochs", "1" * 21, 1, "is outside 1..10000"), ("epochs", "1e20", 2, "--epochs"), ("epochs", "0", 1, "--epochs 0 is outside"),
          ("batch-size", "1", 1, "--batch-size 1 is outside 2..65536"), ("workers", "9" * 20, 1, "--workers"),
          ("threads", "9" * 20, 1, "--threads"), ("threads", "0", 1, "--threads 0 is outside 1..1024"))],
    *[(f"export-{flag}-{value}", [*EXPORT, f"--{flag}", value], 2, f"--{flag}")
      for flag, value in (("min-top1", "nan"), ("min-top1", "-0.5"), ("min-top1", "inf"), ("min-cosine", "nan"), ("min-cosine", "2"),
                          ("calib-samples", "1" * 21), ("calib-samples", "1e20"), ("calib-samples", "100001"), ("firmware-inputs", "0"),
                          ("firmware-inputs", "201"))],
    ("visualize-synthetic-17", ["visualize", "--checkpoint", "{ws}/ck/good.pt", "--synthetic", "17", "--out", "{ws}/v.png"], 1,
     "--synthetic 17 is outside 1..16"),
    ("visualize-seed-huge", ["visualize", "--checkpoint", "{ws}/ck/good.pt", "--synthetic", "1", "--seed", "9" * 23, "--out",
                             "{ws}/v.png"], 1, "--seed"),
    # source trees: checked before the export starts, as --cmsis-nn-dir is
    ("export-tflm-dir-not-a-tree", [*EXPORT, "--tflm-dir", "{ws}/user_folder"], 1, "--tflm-dir"),
    ("export-tflm-dir-missing", [*EXPORT, "--tflm-dir", "{ws}/none"], 1, "does not exist"),
    ("export-tflm-dir-a-file", [*EXPORT, "--tflm-dir", "{ws}/a_file"], 2, "--tflm-dir"),
    ("export-cmsis-nn-missing", [*EXPORT, "--cmsis-nn-dir", "{ws}/none"], 1, "does not exist"),
    # model and data files: regular files only, tensor shapes consistent between ops
    ("plan-tflite-dev-null", ["plan", "/dev/null", "--sram", "512k"], 1, "is not a regular file"),
    ("plan-tflite-dev-zero", ["plan", "/dev/zero", "--sram", "512k"], 1, "is not a regular file"),
    ("plan-checkpoint-dev-null", [*PLAN, "--checkpoint", "/dev/null"], 1, "is not a regular file"),
    ("summary-checkpoint-folder", ["summary", "--checkpoint", "{ws}/user_folder"], 2, "is a directory"),
    ("plan-checkpoint-plain-pickle", [*PLAN, "--checkpoint", "{ws}/ck/plain_pickle.pt"], 1, "not a PyTorch file"),
    ("visualize-checkpoint-plain-pickle", ["visualize", "--checkpoint", "{ws}/ck/plain_pickle.pt", "--synthetic", "1", "--out",
                                           "{ws}/v.png"], 1, "not a PyTorch file"),
    ("visualize-image-dev-zero", ["visualize", "--checkpoint", "{ws}/ck/good.pt", "--image", "/dev/zero", "--out", "{ws}/v.png"], 1,
     "is not a regular file"),
    ("export-npy-dev-zero", [*EXPORT, "--calib-data", "npy:/dev/zero"], 1, "is not a regular file"),
    ("export-npy-nan", [*EXPORT, "--input-size", "32", "--s1", "1", "--calib-data", "npy:{ws}/npy/nan.npy"], 1,
     "1 pixel value(s) are NaN (the first in image 3)"),
    *[(f"plan-tflite-{name}", ["plan", f"{{ws}}/tflite/{name}.tflite", "--sram", "512k"], 1, fragment)
      for name, fragment in (("pad_huge", "operator 6 (PAD): its output is 1x1073741824 but its inputs and options give 1x12"),
                             ("conv_out", "operator 0 (CONV_2D): its output is 1x33x32x8 but its inputs and options give 1x32x32x8"),
                             ("conv_channels", "8 channels of its filter"), ("pool_out", "operator 2 (MAX_POOL_2D)"),
                             ("fc_out", "operator 5 (FULLY_CONNECTED)"))],
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


def test_a_bad_tflm_tree_in_the_environment_fails_before_the_export(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NLPOOL_TFLM_DIR", str(workspace / "user_folder"))
    before = _snapshot(workspace.parent)
    code, _out, err = run_cli([a.replace("{ws}", str(workspace)) for a in EXPORT])
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: NLPOOL_TFLM_DIR ") and "is not a TFLM source tree" in err, err
    assert _snapshot(workspace.parent) == before


def test_a_pad_whose_shapes_agree_is_planned(workspace: Path) -> None:
    """The shape rule refuses only disagreement: the same PAD declaring the (1, 12) it computes plans."""
    code, out, err = run_cli(["plan", str(workspace / "tflite" / "pad_right.tflite"), "--sram", "512k"])
    assert code == 0 and "PAD" in out, err


def test_asking_for_more_calibration_images_than_the_data_holds_is_one_warning_with_both_numbers(workspace: Path) -> None:
    from nlpool.data import export_images

    spec = f"npy:{workspace / 'npy' / 'shape_ok.npy'}"
    np.save(workspace / "npy" / "shape_ok.npy", np.zeros((4, 32, 32, 3), np.uint8))
    try:
        images = export_images(spec, 32, 10, calib_samples=500, fidelity_samples=200)
        assert len(images.calibration) == 2 and images.shortfall is not None and "\n" not in images.shortfall
        assert images.shortfall.startswith(f"warning: --calib-samples 500 asks for more calibration images than {spec} holds: "
                                           "calibrating on 2"), images.shortfall
        assert export_images(spec, 32, 10, calib_samples=2, fidelity_samples=200).shortfall is None
    finally:
        (workspace / "npy" / "shape_ok.npy").unlink()
