"""`nlpool train`: the loss goes down, resume is exact, SIGKILL loses at most an epoch, DDP runs.

Every run uses a tiny model (MobileNetV2-0.35x, 32x32 input, s1=1) on a few hundred synthetic images,
and one straight 3-epoch run (module fixture) is the reference the interrupted runs must reproduce.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import NLPOOL_SCRIPT, run_cli
from PIL import Image

import nlpool.train as train_module
from nlpool.checkpoint import load_model, read_checkpoint
from nlpool.data import synthetic_batch
from nlpool.models import ModelConfig, build_model
from nlpool.train import TrainSettings, lr_at, train

CFG = ModelConfig(input_size=32, s1=1)
SETTINGS = TrainSettings(data="synthetic:512", epochs=3, batch_size=16, lr=0.003, seed=1, schedule="cosine")
CLI_ARGS = ["--input-size", "32", "--s1", "1", "--data", "synthetic:512", "--epochs", "3", "--batch-size", "16",
            "--lr", "0.003", "--seed", "1", "--schedule", "cosine"]  # the same run as CFG + SETTINGS
TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread, as the subprocesses get: on a shared 2-core machine two threads per process
    oversubscribe the cores and slow training down many times over."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    """The reference: 3 epochs in one go."""
    out = tmp_path_factory.mktemp("straight") / "model.pt"
    train(CFG, SETTINGS, out)
    return read_checkpoint(out)


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_schedules():
    step = TrainSettings(epochs=10, lr=1.0)
    assert [lr_at(step, e) for e in range(10)] == pytest.approx([1] * 6 + [0.2] * 2 + [0.04, 0.008])
    assert lr_at(TrainSettings(epochs=1, lr=1.0), 0) == 1.0  # a one-epoch run trains at lr, not lr x 0.008
    assert [lr_at(TrainSettings(epochs=2, lr=1.0), e) for e in range(2)] == [1.0, 1.0]
    assert [lr_at(TrainSettings(epochs=100, lr=1.0), e) for e in (59, 60, 80, 90)] == pytest.approx([1, 0.2, 0.04, 0.008])
    cosine = TrainSettings(epochs=4, lr=1.0, schedule="cosine")
    assert [lr_at(cosine, e) for e in range(4)] == pytest.approx([0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)])


def test_training_lowers_the_loss(tmp_path):
    """Bright vs dark images in an image folder: 24 SGD steps must bring the training loss well down."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 48), ("val", 8)):
        for name, level in (("bright", 200), ("dark", 50)):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(rng.normal(level, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    settings = TrainSettings(data=f"folder:{tmp_path}", epochs=4, batch_size=16, lr=0.01, schedule="cosine")
    history = train(CFG.replace(num_classes=2), settings, tmp_path / "model.pt")["history"]
    # Training-mode loss: after so few steps the batch-norm running statistics still lag behind.
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"], history
    assert history[-1]["train_acc"] > 0.8, history


def test_finished_run_writes_a_complete_checkpoint(straight):
    model, cfg = load_model_from(straight)
    assert cfg == CFG and model(synthetic_batch(2, 32)[0]).shape == (2, 10)
    assert straight["epoch"] == 3 and [h["epoch"] for h in straight["history"]] == [1, 2, 3]
    assert "optimizer" not in straight  # a finished run keeps only what inference needs
    assert straight["train"]["data"] == "synthetic:512" and len(straight["input_mean"]) == 3


def load_model_from(payload: dict) -> tuple[torch.nn.Module, ModelConfig]:
    cfg = ModelConfig.from_dict(payload["config"])
    model = build_model(cfg)
    model.load_state_dict(payload["model"])
    return model.eval(), cfg


class Interrupted(Exception):
    pass


def test_resume_reproduces_the_uninterrupted_run(straight, tmp_path, monkeypatch):
    out = tmp_path / "model.pt"
    real_save = train_module.save_checkpoint

    def save_then_stop(path, model, cfg, **extra):
        real_save(path, model, cfg, **extra)
        raise Interrupted  # the process "dies" right after epoch 1 is on disk

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_stop)
    with pytest.raises(Interrupted):
        train(CFG, SETTINGS, out)
    assert read_checkpoint(out)["epoch"] == 1 and "optimizer" in read_checkpoint(out)
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    train(CFG, SETTINGS, out, resume=True)
    resumed = read_checkpoint(out)
    assert resumed["epoch"] == 3
    assert_same_weights(resumed["model"], straight["model"])
    # Resuming a finished run is a no-op; resuming with other settings is refused.
    assert train(CFG, SETTINGS, out, resume=True)["epoch"] == 3
    code, _, err = run_cli(["train", *CLI_ARGS[:-1], "step", "--out", str(out), "--resume"])
    assert code == 1 and "schedule='cosine' vs 'step'" in err and err.count("\n") == 1


def test_sigkill_mid_epoch_then_resume_completes(straight, tmp_path):
    out = tmp_path / "model.pt"
    command = [str(NLPOOL_SCRIPT), "train", *CLI_ARGS, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 240
        while not out.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert out.is_file() and process.poll() is None, "epoch 1 did not finish while the process ran"
        time.sleep(0.1)  # into epoch 2 (32 batches)
        assert process.poll() is None, "training finished before it could be killed: make the run longer"
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert read_checkpoint(out)["epoch"] == 1  # the checkpoint on disk is the last complete epoch
    done = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = read_checkpoint(out)
    assert resumed["epoch"] == 3
    assert_same_weights(resumed["model"], straight["model"])


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed beside this Python")
def test_two_process_ddp_writes_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "ddp.pt"
    args = [a if a != "3" else "2" for a in CLI_ARGS]  # 2 epochs
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "--no-python", str(NLPOOL_SCRIPT), "train", *args, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    model, cfg = load_model(out)
    payload = read_checkpoint(out)
    assert cfg == CFG and payload["epoch"] == 2 and len(payload["history"]) == 2
    assert payload["history"][-1]["val_loss"] < 10 and math.isfinite(payload["history"][-1]["train_loss"])
    assert model(synthetic_batch(2, 32)[0]).shape == (2, 10)


def test_cli_errors_are_one_line(tmp_path):
    code, _, err = run_cli(["train", "--data", f"stl10:{tmp_path / 'none'}", "--epochs", "1", "--out", str(tmp_path / "x.pt")])
    assert code == 1 and "expected PATH/stl10_binary" in err and err.count("\n") == 1
    code, _, err = run_cli(["train", "--data", "synthetic:8", "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path / "x.pt")])
    assert code == 1 and "fewer than --batch-size 16" in err
    assert not (tmp_path / "x.pt").exists()
