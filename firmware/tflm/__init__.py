"""TFLite-Micro C++ project for the fused model, built against upstream TFLM for the target.

Public surface: :func:`generate_tflm_project` writes the project (:class:`TflmProject`);
:func:`find_tree`, :func:`build_for_target` and :func:`run_on_target` build it against the user's
TFLM tree (objects cached per tree and flags) and run it under QEMU, in the arena :func:`tflm_plan`
predicts for that tree and core; :func:`target_report` is
`report.json`'s `tflm` key. :func:`run_host` / :func:`host_report` build and run it on the host
against the `xmos-ai-tools` TFLM fork (the check that needs no TFLM tree); :func:`model_ops` lists
the ops the resolver registers.
"""

from firmware.tflm.host import HostRun, io_spec, run_host, verify_on_host
from firmware.tflm.ops import model_io, model_ops
from firmware.tflm.project import TflmProject, generate_tflm_project
from firmware.tflm.report import host_report, max_abs_diff, target_report
from firmware.tflm.target import (
    TREE_HINT,
    SramBudgetExceeded,
    TargetBuild,
    TargetRun,
    TflmTree,
    build_for_target,
    find_tree,
    run_on_target,
    tflm_plan,
)

__all__ = ["TREE_HINT", "HostRun", "SramBudgetExceeded", "TargetBuild", "TargetRun", "TflmProject", "TflmTree",
           "build_for_target", "find_tree", "generate_tflm_project", "host_report", "io_spec", "max_abs_diff", "model_io",
           "model_ops", "run_host", "run_on_target", "target_report", "tflm_plan", "verify_on_host"]
