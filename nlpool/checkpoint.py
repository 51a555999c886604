"""Checkpoints: weights plus the full model configuration, written atomically, read without pickle code.

Loading uses `torch.load(weights_only=True)`, so a checkpoint can carry tensors and plain containers
but can never make us execute code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nlpool.core.errors import NlpoolError

from .models import ModelConfig, build_model

FORMAT_VERSION = 1


def _on_cpu(value: Any) -> Any:
    """`value` with every tensor in it (nested dicts, lists, tuples) copied to the CPU, exactly."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().contiguous()
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_on_cpu(item) for item in value)
    return value


def save_checkpoint(path: str | Path, model: nn.Module, cfg: ModelConfig, **extra: Any) -> None:
    """Write {format, config, model, **extra} to `path` via a temporary file and an atomic rename.

    Tensors are stored on the CPU whatever device trained them, so a checkpoint written on a GPU loads
    on any machine and resumes on either (the optimiser moves its state to its parameters' device).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = _on_cpu({"format": FORMAT_VERSION, "config": cfg.to_dict(), "model": model.state_dict(), **extra})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict safely; one-line errors for missing or corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise NlpoolError(f"checkpoint {path} does not exist: pass the path of a file written by `nlpool train`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or foreign files
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise NlpoolError(f"checkpoint {path} cannot be read ({first_line[:120]}): it is corrupt or not an nlpool checkpoint") from None
    if not isinstance(payload, dict) or "config" not in payload or "model" not in payload:
        raise NlpoolError(f"checkpoint {path} has no model config or weights: it was not written by `nlpool train`")
    return payload


def load_model(path: str | Path) -> tuple[nn.Module, ModelConfig]:
    """Rebuild the model a checkpoint describes and load its weights (eval mode)."""
    payload = read_checkpoint(path)
    cfg = ModelConfig.from_dict(payload["config"])
    model = build_model(cfg)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise NlpoolError(f"checkpoint {path} weights do not fit its own config ({str(err).splitlines()[0][:100]})") from None
    return model.eval(), cfg
