"""Measure the planner against real TFLM and the PyTorch front end against the converted graph.

For every int8 model TFLM's host interpreter can run, print TFLM's recorded arena (head = planned
tensors, tail = interpreter structs) next to the planner's prediction and the relative errors, and
the best plan. Models: the small ones in tests/data/planner/ plus nlpool MobileNetV2 variants
exported here through the project's own ONNX -> onnx2tf int8 path (builtin ops only: TFLM has no
int8 EXP, so self-attentive pooling runs in TFLM only as the fused custom op, which the host
interpreter cannot load). For the exported models the PyTorch-side plan (`plan_model`, no
TensorFlow) is compared with the plan of the converted .tflite.

    .venv/bin/python benchmarks/planner_vs_tflm.py [--no-export]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from memory_planner import measure_tflm, plan_model, plan_tflite

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "planner"
EXPORTED = {
    "mbv2-0.35-strided-s1=1-64px": {"pool": "strided", "s1": 1, "input_size": 64},
    "mbv2-0.35-max-s1=2-64px": {"pool": "max", "s1": 2, "input_size": 64},
    "mbv2-0.35-avg-s1=1-96px": {"pool": "avg", "s1": 1, "input_size": 96},
}
# Self-attentive pooling: no TFLM run possible on the host (EXP unfused; custom op fused), so only
# the PyTorch-side plan is compared with the plans of the unfused and the fused .tflite.
NLP = {
    "mbv2-0.35-nlp-s1=2-64px": {"pool": "nlp", "s1": 2, "input_size": 64},
    "mbv2-0.35-nlp-s1=2-96px": {"pool": "nlp", "s1": 2, "input_size": 96},
}


def export_tflite(flags: dict, out: Path):
    """(model, cfg, .tflite path) through the export's own fold -> ONNX -> int8 steps (export.pipeline)."""
    from export.pipeline import convert_to_int8, export_to_onnx, fold_batchnorms, prepare_data
    from nlpool.data import Normalization, export_images
    from nlpool.models import build_model, preset_config

    cfg = preset_config("default").replace(**flags).validated()
    model = build_model(cfg).eval()
    data = prepare_data(export_images("synthetic", cfg.input_size, cfg.num_classes, 16, 8), Normalization())
    onnx = export_to_onnx(fold_batchnorms(model, data), data, out)
    return model, cfg, convert_to_int8(onnx, data, out, out / "work").path


def row(name: str, path: Path) -> dict:
    plan = plan_tflite(path)
    real = measure_tflm(path)
    head_err = (plan.tflm.head_bytes - real["head"]) / real["head"]
    tail_err = (plan.tflm.tail_bytes_host - real["tail"]) / real["tail"]
    print(
        f"{name:<30} {real['head']:>9,} {plan.tflm.head_bytes:>9,} {head_err:>+7.2%} | {real['tail']:>7,} {plan.tflm.tail_bytes_host:>7,}"
        f" {tail_err:>+7.1%} | {plan.best.arena_bytes:>9,} {plan.lower_bound:>9,} {plan.best.arena_bytes / real['head']:>6.3f}"
    )
    return {"plan": plan, "real": real}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-export", action="store_true", help="only the committed small models")
    args = parser.parse_args()
    head = f"{'model':<30} {'TFLM head':>9} {'predicted':>9} {'error':>7} | {'tail':>7} {'pred.':>7} {'error':>7}"
    print(head + f" | {'best':>9} {'lower bd':>9} {'best/TFLM':>6}")
    for path in sorted(DATA.glob("*_int8.tflite")):
        row(path.stem, path)
    if args.no_export:
        return
    for name, flags in EXPORTED.items():
        with tempfile.TemporaryDirectory() as tmp:
            model, cfg, path = export_tflite(flags, Path(tmp))
            tflite = row(name, path)["plan"]
            start = time.perf_counter()
            torch_plan = plan_model(model, cfg)
            seconds = time.perf_counter() - start
            compare("PyTorch-side plan", torch_plan, tflite, seconds)
    from export import fuse_file
    from memory_planner import build_plan, graph_from_torch

    for name, flags in NLP.items():
        with tempfile.TemporaryDirectory() as tmp:
            model, cfg, path = export_tflite(flags, Path(tmp))
            fused_path = Path(tmp) / "model_int8_fused.tflite"
            fuse_file(path, fused_path)
            print(name)
            unfused = build_plan(graph_from_torch(model, cfg.input_size, fuse_weighted_pool=False))
            compare("PyTorch-side unfused vs unfused .tflite", unfused, plan_tflite(path), 0.0)
            start = time.perf_counter()
            fused = plan_model(model, cfg)
            compare("PyTorch-side fused vs fused .tflite", fused, plan_tflite(fused_path), time.perf_counter() - start)


def compare(label: str, torch_plan, tflite, seconds: float) -> None:
    print(
        f"    {label} ({seconds:.2f} s): lower bound {torch_plan.lower_bound:,} vs .tflite {tflite.lower_bound:,}"
        f" ({torch_plan.lower_bound / tflite.lower_bound - 1:+.1%}); best {torch_plan.peak_bytes:,} vs {tflite.peak_bytes:,};"
        f" ops {len(torch_plan.graph.ops)} vs {len(tflite.graph.ops)}"
    )


if __name__ == "__main__":
    main()
