"""Peak-activation memory planning: tensor lifetimes, arena plans, per-layer reports, SRAM verdicts.

Public surface:
    plan_tflite(path) -> MemoryPlan      a .tflite file; best.offsets keyed by TFLite tensor index
    plan_model(model, cfg) -> MemoryPlan a PyTorch model at int8 sizes (no TensorFlow)
    write_reports(plan, budget_bytes, out_dir) -> dict   memory.md / memory.json / memory.png
"""

from .memory_plan import LayerRecord, MemoryPlan, build_plan, plan_model, plan_tflite
from .plans import ALIGNMENT, ArenaPlan
from .report import as_json, format_markdown, format_text, verdict, write_reports

__all__ = [
    "ALIGNMENT",
    "ArenaPlan",
    "LayerRecord",
    "MemoryPlan",
    "as_json",
    "build_plan",
    "format_markdown",
    "format_text",
    "plan_model",
    "plan_tflite",
    "verdict",
    "write_reports",
]
