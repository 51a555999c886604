"""Checkpoints: weights plus the full model configuration, written atomically, read without pickle code.

Loading uses `torch.load(weights_only=True)`, so a checkpoint can carry tensors and plain containers
but can never make us execute code.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nlpool.core.checks import input_file
from nlpool.core.errors import NlpoolError

from .data import Normalization
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
    payload = _on_cpu({"format": FORMAT_VERSION, "config": cfg.to_dict(), "model": model.state_dict(), **extra})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:  # the CLI checked --out up front; this is the folder changing since
        raise NlpoolError(f"cannot write the checkpoint {path} ({err.strerror}): pass --out in a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; the user's umask decides, as for any file they write
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise NlpoolError(f"cannot write the checkpoint {path} ({err.strerror}): free some space or pass another --out") from None
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict safely; one-line errors for missing, corrupted or unsupported files.

    A file `weights_only` loading refuses (it holds Python objects, so loading it could run code) is
    named as such and never loaded another way: torch's own message suggests `weights_only=False`,
    which is the one thing a user must not do with a file they did not write.
    """
    path = input_file("checkpoint", path, "pass the path of a file written by `nlpool train`")
    try:
        with warnings.catch_warnings():  # torch warns in many lines about foreign pickles; our one line below says it all
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):  # not a refused object: bytes that are not a pickle at all
            raise NlpoolError(f"checkpoint {path} is corrupted or not a PyTorch file (its data is not a valid pickle): "
                              "pass a checkpoint written by `nlpool train`, or train again") from None
        raise NlpoolError(f"checkpoint {path} is unsupported: it holds Python objects beyond tensors and plain containers, which"
                          " nlpool refuses to load because loading them could run code: pass a checkpoint written by `nlpool train`"
                          ) from None
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise NlpoolError(f"checkpoint {path} is corrupted or not a PyTorch file ({type(err).__name__}): "
                          "pass a checkpoint written by `nlpool train`, or train again") from None
    if not isinstance(payload, dict) or "config" not in payload or "model" not in payload:
        raise NlpoolError(f"checkpoint {path} is unsupported: it has no model config or weights, so it was not written by `nlpool train`")
    return payload


def _check_weights(path: Path, weights: object, model: nn.Module) -> dict[str, torch.Tensor]:
    """The stored weights, checked name by name and shape by shape against the model the config builds."""
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise NlpoolError(f"checkpoint {path} is corrupted: its weights are not a mapping of names to tensors: train again")
    expected = model.state_dict()
    missing = [name for name in expected if name not in weights]
    unexpected = [name for name in weights if name not in expected]
    if missing or unexpected:
        which = f"lacks {missing[0]}" if missing else f"has an unknown parameter {unexpected[0]}"
        raise NlpoolError(f"checkpoint {path} {which} ({len(missing)} missing, {len(unexpected)} unknown): its weights do not fit its own"
                          " config, so the file is corrupted or was edited: train again")
    for name, value in expected.items():
        stored = weights[name]
        if stored.shape != value.shape or not (stored.dtype.is_floating_point == value.dtype.is_floating_point):
            raise NlpoolError(f"checkpoint {path} parameter {name} is {stored.dtype} {tuple(stored.shape)} but its config needs "
                              f"{value.dtype} {tuple(value.shape)}: the file is corrupted or was edited: train again")
        if stored.dtype.is_floating_point and not bool(torch.isfinite(stored).all()):
            raise NlpoolError(f"checkpoint {path} parameter {name} holds NaN or infinite values: the training diverged or the file is"
                              " corrupted: train again (e.g. with a lower --lr)")
    return weights


def checkpoint_config(path: str | Path, payload: dict[str, Any] | None = None) -> ModelConfig:
    """The validated model config a checkpoint stores (errors name the file)."""
    payload = read_checkpoint(path) if payload is None else payload
    try:
        return ModelConfig.from_dict(payload["config"])
    except NlpoolError as err:
        raise NlpoolError(f"checkpoint {path}: {err}") from None


def load_model(path: str | Path) -> tuple[nn.Module, ModelConfig]:
    """Rebuild the model a checkpoint describes and load its weights (eval mode)."""
    loaded = open_checkpoint(path)
    return loaded.model, loaded.config


@dataclass(frozen=True)
class TrainingRecord:
    """What a checkpoint says about the data it was trained on: the export calibrates on the same data,
    normalises the same way and names the classes in the firmware."""

    data: str | None
    normalization: Normalization
    class_names: tuple[str, ...] | None


def training_record(path: str | Path, payload: dict[str, Any] | None = None) -> TrainingRecord:
    """The training record of a checkpoint (defaults where an older checkpoint has none)."""
    payload = read_checkpoint(path) if payload is None else payload
    settings = payload.get("train")
    data = settings.get("data") if isinstance(settings, dict) else None
    mean, std = payload.get("input_mean"), payload.get("input_std")
    normalization = Normalization()
    if mean is not None or std is not None:
        valid = all(isinstance(v, (list, tuple)) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v) for v in (mean, std))
        if not valid or min(std) <= 0:
            raise NlpoolError(f"checkpoint {path} has a malformed input_mean/input_std: it was not written by `nlpool train`")
        normalization = Normalization(tuple(float(x) for x in mean), tuple(float(x) for x in std))
    names = payload.get("classes")
    if names is not None and not (isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names)):
        raise NlpoolError(f"checkpoint {path} has malformed class names: it was not written by `nlpool train`")
    return TrainingRecord(data if isinstance(data, str) else None, normalization, tuple(names) if names is not None else None)


# The default model's weights, shipped in the package (`nlpool export` with no model flags loads them).
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "default.pt"


@dataclass(frozen=True)
class LoadedCheckpoint:
    """Everything an export needs from one checkpoint, from one read of the file."""

    model: nn.Module
    config: ModelConfig
    record: TrainingRecord


def open_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Read a checkpoint once: the rebuilt model with its weights (eval mode), its config and training record."""
    path = Path(path)
    payload = read_checkpoint(path)
    cfg = checkpoint_config(path, payload)
    model = build_model(cfg)
    model.load_state_dict(_check_weights(path, payload["model"], model))
    return LoadedCheckpoint(model.eval(), cfg, training_record(path, payload))
