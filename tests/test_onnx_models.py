"""Every model exports to ONNX (opset 17) and ONNX Runtime computes what PyTorch computes.

Exporter choice (torch 2.13): `torch.onnx.export` defaults to the dynamo exporter, which cannot emit
opset 17 for these models (onnx's version converter has no Resize adapter down from 18: it logs a
traceback and silently keeps opset 18) and takes ~5x longer. The TorchScript exporter
(`dynamo=False`) writes opset 17 directly; it is what `export/` uses too.
"""

from __future__ import annotations

import io
import itertools
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import settle_batchnorm

from nlpool.layers import POOL_KINDS
from nlpool.models import ModelConfig, build_model

OPSET = 17
TOLERANCE = 1e-4
SIZE = 64  # the smallest input every default model accepts (six stride-2 stages after the stem)
CASES = {
    f"{pool}-{arch}": ModelConfig(arch=arch, width=0.35 if arch == "mobilenetv2" else 0.25, pool=pool, input_size=SIZE)
    for pool, arch in itertools.product(POOL_KINDS, ("mobilenetv2", "resnet18"))
}
# The non-default graph pieces of the self-attentive pooling: LayerNorm + residual, bilinear Resize, nowin.
CASES["nlp-prenorm-bilinear-nowin"] = ModelConfig(input_size=SIZE).replace(attention="prenorm", upsample="bilinear", pooling="nowin")
CASES["nlp-outer-s1-4"] = ModelConfig(input_size=128, s1=4, placement="outer")


def export_to_onnx(model: torch.nn.Module, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (example,), buffer, opset_version=OPSET, input_names=["x"], output_names=["logits"], dynamo=False)
    return buffer.getvalue()


@pytest.mark.parametrize("name", list(CASES))
def test_model_exports_and_onnx_runtime_matches(name: str) -> None:
    cfg = CASES[name]
    torch.manual_seed(0)
    model = settle_batchnorm(build_model(cfg), cfg.input_size)
    gen = torch.Generator().manual_seed(1)
    example, probe = (torch.randn(1, 3, cfg.input_size, cfg.input_size, generator=gen) for _ in range(2))
    graph = export_to_onnx(model, example)

    proto = onnx.load_from_string(graph)
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        reference = model(probe).numpy()  # an input the exporter never saw: nothing is baked in
    result = session.run(None, {"x": probe.numpy()})[0]
    assert result.shape == reference.shape == (1, cfg.num_classes)
    scale = float(np.abs(reference).max())
    assert scale > 0.05, "outputs too small for a 1e-4 comparison to mean anything"
    # 1e-4 absolute for logits of order 1; float32 rounding grows with magnitude, so beyond 1 it is relative
    # (only GaussianPool-ResNet18 reaches logits of ~200, where AvgPool(x^2) - mu^2 loses digits)
    assert np.abs(result - reference).max() <= TOLERANCE * max(1.0, scale)
