"""Device selection, CPU threads and the CPU path of the GPU-aware loop, on a machine without a GPU (CI has none).

What a GPU run does differently (bf16 autocast, channels_last, NCCL) is only exercised on a GPU; here
the selection logic that routes to it is checked with `torch.cuda` patched, and the CPU path for real.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from test_train import CFG, SETTINGS, assert_same_weights

import nlpool
from nlpool.checkpoint import read_checkpoint, save_checkpoint
from nlpool.core.errors import NlpoolError
from nlpool.device import Placement, configure_threads, resolve_device
from nlpool.models import build_model
from nlpool.train import Runtime, train

ONE_EPOCH = replace(SETTINGS, epochs=1)
SHIPPED = Path(nlpool.__file__).with_name("weights") / "default.pt"


@pytest.fixture
def cuda_present(monkeypatch):
    """Pretend PyTorch sees two CUDA GPUs (selection only: nothing is moved to them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_auto_takes_the_gpu_when_present(cuda_present):
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)  # torchrun: one GPU per process
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(NlpoolError, match="only 2 are visible"):
        resolve_device("cuda", local_rank=2)


def test_auto_falls_back_to_the_cpu_and_cuda_without_a_gpu_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(NlpoolError, match="sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(NlpoolError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without a GPU gives")
def test_cli_cuda_without_a_gpu_is_a_one_line_error(tmp_path):
    for command in (["train", "--data", "synthetic:64", "--epochs", "1", "--out", str(tmp_path / "m.pt")],
                    ["visualize", "--checkpoint", str(SHIPPED), "--synthetic", "1", "--out", str(tmp_path / "v.png")]):
        code, _, err = run_cli([*command, "--device", "cuda"])
        assert code == 1 and "--device cuda: PyTorch sees no CUDA GPU" in err and err.count("\n") == 1, err
    assert not (tmp_path / "m.pt").exists()


def test_gpu_placement_is_bf16_channels_last_and_the_cpu_one_unchanged():
    gpu, cpu = Placement(torch.device("cuda", 0)), Placement(torch.device("cpu"))
    assert gpu.memory_format == torch.channels_last and cpu.memory_format == torch.contiguous_format
    assert Runtime().loader_workers(gpu) == 4 and Runtime().loader_workers(cpu) == 0 and Runtime(workers=2).loader_workers(cpu) == 2
    with cpu.autocast():
        assert not torch.is_autocast_enabled()  # fp32 on the CPU, as before
    with pytest.raises(NlpoolError, match=r"--workers -1 is outside 0\.\.256"):
        Runtime(workers=-1).loader_workers(cpu)


def test_threads_flag_then_environment_then_one(monkeypatch):
    before = torch.get_num_threads()
    try:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            monkeypatch.delenv(name, raising=False)
        torch.set_num_threads(2)
        assert configure_threads() == 1  # nothing asked: one thread, off the oversubscription cliff
        assert configure_threads(2) == 2  # --threads wins
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert configure_threads() == 2  # the user's (or torchrun's) variable is left to PyTorch
        with pytest.raises(NlpoolError, match=r"--threads 0 is outside 1\.\.1024"):
            configure_threads(0)
    finally:
        torch.set_num_threads(before)


def test_checkpoints_hold_contiguous_cpu_tensors(tmp_path):
    """What a GPU run (channels_last weights) writes must load on a CPU-only machine as plain tensors."""
    model = build_model(CFG).to(memory_format=torch.channels_last)
    assert not all(t.is_contiguous() for t in model.state_dict().values())
    save_checkpoint(tmp_path / "m.pt", model, CFG, optimizer={"state": {0: {"momentum_buffer": torch.ones(2, 3).t()}}})
    payload = read_checkpoint(tmp_path / "m.pt")
    tensors = [*payload["model"].values(), payload["optimizer"]["state"][0]["momentum_buffer"]]
    assert all(t.device.type == "cpu" and t.is_contiguous() for t in tensors)


def test_loader_workers_on_the_cpu_give_the_same_weights(tmp_path):
    """Two DataLoader workers (one thread each) feed the same batches: the run matches the in-process one bit for bit."""
    reference = train(CFG, ONE_EPOCH, tmp_path / "a.pt")
    with_workers = train(CFG, ONE_EPOCH, tmp_path / "b.pt", runtime=Runtime(device="cpu", workers=2))
    assert_same_weights(with_workers["model"], reference["model"])
    history = with_workers["history"][-1]
    assert history["device"] == "cpu" and history["images_per_s"] > 0

