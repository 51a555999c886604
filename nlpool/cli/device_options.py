"""The --device and --threads flags that `train`, `visualize` share (nlpool.device decides the rest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..device import DEFAULT_THREADS, DEVICES


def device_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --device auto|cpu|cuda and --threads N to a Click command."""
    command = click.option(
        "--threads", type=int, default=None,
        help=f"CPU threads per process (default: OMP_NUM_THREADS / MKL_NUM_THREADS when set, else {DEFAULT_THREADS}:"
             " more threads than idle cores slow PyTorch down many times over).",
    )(command)
    return click.option(
        "--device", type=click.Choice(DEVICES), default="auto", show_default=True,
        help="auto: the CUDA GPU when PyTorch sees one (bf16 autocast, channels_last), else the CPU.",
    )(command)
