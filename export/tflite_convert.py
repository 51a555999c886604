"""ONNX -> full-integer int8 TFLite with onnx2tf, offline.

onnx2tf runs in a child process inside a private work directory: it writes many side files, logs
heavily, and — even when given calibration data — loads a sample-image file from its working directory
(downloading it when absent, which fails offline). We place our own calibration images there under the
file name it looks for, so the conversion never touches the network.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nlpool.core.errors import NlpoolError

from .onnx_export import INPUT_NAME

# The file onnx2tf (1.29) opens from its working directory; shape (20, 128, 128, 3) float32.
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
ONNX2TF_SAMPLE_SHAPE = (20, 128, 128, 3)
FULL_INTEGER_SUFFIX = "_full_integer_quant.tflite"


def _write_sample_file(workdir: Path, calib_nchw: torch.Tensor) -> None:
    """onnx2tf's sample images, made from our calibration images (repeated and resized to 128x128)."""
    count, _, side, _ = ONNX2TF_SAMPLE_SHAPE
    images = calib_nchw[torch.arange(count) % calib_nchw.shape[0]]
    images = F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False)
    np.save(workdir / ONNX2TF_SAMPLE_FILE, images.permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32))


def convert_int8(onnx_path: Path, calib_nchw: torch.Tensor, workdir: Path, out_path: Path) -> Path:
    """Write the full-integer int8 TFLite model (per-channel weights, int8 input/output) to `out_path`.

    `calib_nchw` are normalised float inputs (the model's own input distribution), so onnx2tf's own
    normalisation is the identity (mean 0, std 1).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    calib_path = workdir / "calibration_nhwc.npy"
    np.save(calib_path, calib_nchw.permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32))
    _write_sample_file(workdir, calib_nchw)
    channels = calib_nchw.shape[1]
    mean, std = str([[[[0.0] * channels]]]), str([[[[1.0] * channels]]])
    tf_dir = workdir / "onnx2tf"
    command = [
        sys.executable, "-m", "onnx2tf", "-i", str(onnx_path.resolve()), "-o", str(tf_dir),
        "-oiqt", "-qt", "per-channel", "-iqd", "int8", "-oqd", "int8",
        "-cind", INPUT_NAME, str(calib_path), mean, std, "-n",
    ]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    produced = tf_dir / f"{onnx_path.stem}{FULL_INTEGER_SUFFIX}"
    if result.returncode != 0 or not produced.is_file():
        # The log goes outside the work directory, which a failed export removes.
        fd, log_name = tempfile.mkstemp(prefix="nlpool-onnx2tf-", suffix=".log")
        with os.fdopen(fd, "w") as log:
            log.write(result.stdout + "\n" + result.stderr)
        last = next((line for line in reversed(result.stderr.strip().splitlines()) if line.strip()), "no output")
        raise NlpoolError(f"onnx2tf failed to convert {onnx_path.name} ({last.strip()[:160]}); full log: {log_name}")
    out_path.write_bytes(produced.read_bytes())
    return out_path
