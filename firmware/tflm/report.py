"""`report.json`'s `tflm` key: the TFLM firmware against nlpool's AOT firmware on the same inputs.

`target_report`: the project built against the user's upstream TFLM tree and run under QEMU on the
target, compared with the AOT firmware's outputs on that target. Both follow TFLM's default
arithmetic, so the expected difference is zero. `host_report`: the project's host build against XMOS's
TFLM fork (with nlpool's own kernels for the ops the fork lacks, `host_shims`), compared with the AOT
host build: the check that needs no TFLM tree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from firmware.tflm.host import HostRun
from firmware.tflm.project import TflmProject
from firmware.tflm.target import TargetBuild, TargetRun, TflmTree
from firmware.timing import timing_json


def max_abs_diff(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> int:
    """Largest difference in quantised steps over every output element."""
    if len(outputs) != len(reference):
        raise ValueError(f"{len(outputs)} outputs vs {len(reference)} reference outputs")
    worst = 0
    for got, want in zip(outputs, reference, strict=True):
        got = np.asarray(got).astype(np.int64)
        want = np.asarray(want).astype(np.int64).reshape(got.shape)
        worst = max(worst, int(np.abs(got - want).max(initial=0)))
    return worst


def host_report(project: TflmProject, run: HostRun, reference: Sequence[np.ndarray],
                reference_name: str = "aot_host") -> dict[str, object]:
    """The host check's entry for one host run compared with `reference` (the AOT host build's outputs)."""
    diff = max_abs_diff(run.outputs, reference)
    return {
        "host_verified": diff == 0,
        "max_abs_diff_vs_aot": diff,
        "reference": reference_name,
        "inferences": int(run.outputs[0].shape[0]),
        "ops": project.ops,
        "host_shims": project.host_shims,
        "target": project.target,
        "arena_bytes": project.arena_bytes,
        "predicted_arena_bytes": project.predicted_arena_bytes,
        "host_arena_used_bytes": run.arena_used_bytes,
        "project": project.path.name,
        "verified_with": ("x86-64 build against XMOS's TFLM fork (xmos-ai-tools); "
                          "not built against upstream TFLM for Cortex-M"),
    }


def target_report(project: TflmProject, tree: TflmTree, build: TargetBuild, run: TargetRun,
                  aot: np.ndarray, pytorch: np.ndarray | None) -> dict[str, object]:
    """The `tflm` entry of report.json for a run on the emulated target.

    `aot`: the AOT firmware's outputs on the same target and inputs; `pytorch`: PyTorch's logits for
    them (None to leave top-1 agreement out). Instructions, never cycles: QEMU has no timing model.
    """
    out = run.outputs[0]
    top1 = None
    if pytorch is not None:  # argmax of the int8 logits is that of the dequantised ones (positive scale)
        flat_pt = np.asarray(pytorch).reshape(len(out), -1)
        top1 = float(np.mean(out.reshape(len(out), -1).argmax(axis=1) == flat_pt.argmax(axis=1)))
    used, predicted = run.arena_used_bytes, project.predicted_arena_bytes
    return {
        "target_verified": True,
        "target": project.target,
        "kernels": run.kernels,
        "inferences": int(out.shape[0]),
        "max_abs_diff_vs_aot": max_abs_diff(run.outputs, [aot]),
        "top1_agreement_vs_pytorch": top1,
        "ops": project.ops,
        "target_arena_used_bytes": used,
        "predicted_arena_bytes": predicted,
        "arena_prediction_error": round((predicted - used) / used, 4),
        "arena_bytes": project.arena_bytes,
        "arena_margin_bytes": project.margin_bytes,
        "instructions_per_inference": run.instructions_per_inference,
        **timing_json(run.timing, run.estimated_cycles),
        "profile": None if run.profile is None else {
            **run.profile.to_json(run.timing.clock_mhz if run.timing else None),
            "profiled_inference_instructions": run.profiled_inference_instructions},
        "stack_high_water_bytes": run.stack_high_water_bytes,
        "flash_bytes": run.flash_bytes,
        "sram_used_bytes": run.sram_used_bytes,
        "tflm_dir": str(tree.path),
        "build_seconds": round(build.seconds, 1),
        "tflm_objects_compiled": build.tflm_objects_compiled,
        "tflm_object_cache": str(build.cache_dir),
        "project": project.path.name,
    }
