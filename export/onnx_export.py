"""PyTorch -> ONNX (opset 17) -> onnxsim, checked against PyTorch with ONNX Runtime."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import onnxsim
import torch
from torch import nn

from nlpool.core.errors import NlpoolError

OPSET = 17
ONNX_TOLERANCE = 1e-4
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Write the simplified ONNX graph of `model` (eval mode, batch 1, fixed shapes) to `path`."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # The TorchScript exporter gives a plain, fully static graph, which is what onnx2tf converts best.
        torch.onnx.export(
            model.eval(), (example,), buffer, opset_version=OPSET, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamo=False
        )
    # onnxsim's MatMul+Add -> Gemm fusion breaks the topological order of RNNPool's unrolled, weight-shared
    # FastGRNN steps ("Nodes in a graph must be topologically sorted"); skipping that one pass fixes it.
    simplified, ok = onnxsim.simplify(onnx.load_from_string(buffer.getvalue()), skipped_optimizers=["fuse_matmul_add_bias_into_gemm"])
    if not ok:
        raise NlpoolError("onnxsim could not verify the simplified ONNX graph: please report this model")
    onnx.checker.check_model(simplified)
    onnx.save(simplified, str(path))


def onnx_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session: ort.InferenceSession, inputs_nchw: np.ndarray) -> np.ndarray:
    """Logits for a batch of NCHW float inputs, one sample at a time (the graph has batch 1)."""
    return np.concatenate([session.run(None, {INPUT_NAME: x[None].astype(np.float32)})[0] for x in inputs_nchw])


def check_onnx(path: Path, model: nn.Module, inputs_nchw: torch.Tensor) -> float:
    """Max abs difference ONNX Runtime vs PyTorch over `inputs`; NlpoolError above 1e-4."""
    with torch.no_grad():
        reference = model(inputs_nchw).numpy()
    result = run_onnx(onnx_session(path), inputs_nchw.numpy())
    diff = float(np.abs(result - reference).max())
    if diff > ONNX_TOLERANCE:
        raise NlpoolError(f"ONNX Runtime differs from PyTorch by {diff:.3g} (> {ONNX_TOLERANCE}): please report this model")
    return diff
