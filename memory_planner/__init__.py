"""Peak-activation memory planning: tensor lifetimes, arena plans, per-layer reports, SRAM verdicts.

Public surface:
    plan_tflite(path) -> MemoryPlan      a .tflite file; best.offsets keyed by TFLite tensor index
    plan_model(model, cfg) -> MemoryPlan a PyTorch model at int8 sizes (no TensorFlow)
    write_reports(plan, budget_bytes, out_dir) -> dict   memory.md / memory.json / memory.png
    claims_report(sram_bytes, graph_for) -> dict         the paper's 22x claim under three accountings
    graph_from_torch(model, input_size, ...) -> Graph    a PyTorch model as a planning graph
    foldable_pads(model) -> {pad: conv}                  PAD ops their convolution does (planned and generated so)
    op_label(kind, index, tensor_name) -> str            `CONV_2D #3 conv2d_1`: an op's readable name in reports
    builtin_kernel_data(model, kernels, mve)             TFLM kernels' persistent buffers per op (plan_tflite's tflm_kernel_data)
    cmsis_nn_persistent_fc(model, op, kernels, mve)      whether TFLM's CMSIS-NN FC keeps kernel sums instead of scratch
"""

from .claims import ClaimConfig, attention_score_tensors, claims_report, format_claims
from .from_tflite import graph_from_model
from .graph import Graph
from .memory_plan import LayerRecord, MemoryPlan, build_plan, plan_model, plan_tflite
from .names import op_label
from .pad_folding import foldable_pads
from .plans import ALIGNMENT, ArenaPlan
from .report import as_json, format_markdown, format_text, plot_png, verdict, write_reports
from .tflm_model import builtin_kernel_data, cmsis_nn_persistent_fc, measure_tflm

__all__ = [
    "ALIGNMENT",
    "ArenaPlan",
    "ClaimConfig",
    "Graph",
    "LayerRecord",
    "MemoryPlan",
    "as_json",
    "attention_score_tensors",
    "build_plan",
    "builtin_kernel_data",
    "claims_report",
    "cmsis_nn_persistent_fc",
    "foldable_pads",
    "format_claims",
    "format_markdown",
    "format_text",
    "graph_from_model",
    "graph_from_torch",
    "measure_tflm",
    "op_label",
    "plan_model",
    "plan_tflite",
    "plot_png",
    "verdict",
    "write_reports",
]


def __getattr__(name: str) -> object:
    """`graph_from_torch` is imported on first use: it needs PyTorch, which `nlpool plan FILE.tflite` should not pay for."""
    if name == "graph_from_torch":
        from .from_torch import graph_from_torch

        return graph_from_torch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
