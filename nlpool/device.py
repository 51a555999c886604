"""Where a model runs: device choice, CPU threads, and what CUDA changes (bf16, channels_last, determinism).

One place decides these for `nlpool train`, `nlpool visualize` and the benchmarks, so a GPU run and
its CPU fallback differ only in the ways written here:

- `--device auto` (the default) takes the CUDA GPU when PyTorch sees one, else the CPU;
  `--device cuda` without one is an error rather than a silent CPU run.
- On CUDA the forward pass runs under bf16 autocast and the model and batches are channels_last (the
  fast layout for cuDNN's convolutions); on the CPU everything stays fp32 and contiguous, as before.
- CPU threads default to ONE per process unless the user asked otherwise (`--threads N`, or
  OMP_NUM_THREADS / MKL_NUM_THREADS in the environment). PyTorch's own default, one per core, falls off
  a cliff as soon as anything else uses the cores: its threads spin waiting for each other (measured
  in docs/training.md: 3-9x slower on a shared 2-core machine).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
from torch import nn

from nlpool.core.checks import number
from nlpool.core.errors import NlpoolError

DEVICES = ("auto", "cpu", "cuda")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_THREADS = 1
THREADS_RANGE = (1, 1024)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for a --device value; under torchrun each process takes GPU `local_rank`."""
    if name not in DEVICES:
        raise NlpoolError(f"unknown device {name!r}: use --device {'|'.join(DEVICES)}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise NlpoolError("--device cuda: PyTorch sees no CUDA GPU (torch.cuda.is_available() is False): use --device auto or cpu")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise NlpoolError(
            f"process {local_rank} needs GPU {local_rank} but only {count} are visible: start at most {count} processes per node"
        )
    return torch.device("cuda", local_rank)


def configure_threads(threads: int | None = None) -> int:
    """Set PyTorch's intra-op threads: `threads` if given, else the environment's, else one; returns the count.

    The environment wins over the default so that torchrun (which exports OMP_NUM_THREADS=1) and a
    user's `OMP_NUM_THREADS=4 nlpool train ...` keep working as the PyTorch documentation says.
    """
    if threads is not None:
        torch.set_num_threads(number("--threads", threads, *THREADS_RANGE))
    elif not any(os.environ.get(name) for name in THREAD_VARIABLES):
        torch.set_num_threads(DEFAULT_THREADS)
    return torch.get_num_threads()


def one_thread_worker(_worker_id: int) -> None:
    """DataLoader worker_init_fn: a worker renders or decodes images, so one thread each (no oversubscription)."""
    torch.set_num_threads(1)


@dataclass(frozen=True)
class Placement:
    """How tensors and the model are laid out on `device` and how the forward pass runs there."""

    device: torch.device

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.is_cuda else torch.contiguous_format

    def model(self, model: nn.Module) -> nn.Module:
        """Move a model here (in place, as nn.Module.to does) in this device's layout."""
        return model.to(self.device, memory_format=self.memory_format)

    def images(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.device, memory_format=self.memory_format, non_blocking=True)

    def labels(self, labels: torch.Tensor) -> torch.Tensor:
        return labels.to(self.device, non_blocking=True)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA (no loss scaling needed: bf16 has fp32's range); nothing on the CPU."""
        if self.is_cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def make_deterministic(self) -> str:
        """Ask PyTorch for deterministic kernels; returns what is (and is not) bit-reproducible here.

        On the CPU every op these models use has a deterministic kernel, so a run and its resume agree
        bit for bit. On CUDA, bf16 autocast and the backward passes of some ops (bilinear upsampling in
        nlp pooling, adaptive average pooling, index_add) accumulate with atomics in no fixed order, and
        PyTorch has no deterministic alternative for all of them: asking strictly would raise. So CUDA
        asks with warn_only (deterministic kernels where they exist, a warning where they do not).
        """
        if not self.is_cuda:
            torch.use_deterministic_algorithms(True)
            return "bit-exact: data order, augmentation, dropout, learning rates and every kernel"
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic mode
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
        return ("data order, augmentation, dropout and learning rates are exact; weights agree only to rounding"
                " (bf16 autocast, atomics in some CUDA backward kernels)")

