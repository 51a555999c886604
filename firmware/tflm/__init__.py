"""TFLite-Micro C++ project for the fused model, and its host check against real TFLM code.

Public surface: :func:`generate_tflm_project` writes the project (:class:`TflmProject`),
:func:`verify_on_host` / :func:`run_host` build it against the `xmos-ai-tools` TFLM fork and run it,
:func:`model_ops` lists the ops the resolver registers, :func:`tflm_report` is `report.json`'s `tflm` key,
:func:`generate_and_verify` does all of it for `nlpool export`.
"""

from firmware.tflm.host import HostRun, run_host, verify_on_host
from firmware.tflm.ops import model_io, model_ops
from firmware.tflm.project import TflmProject, generate_tflm_project
from firmware.tflm.report import generate_and_verify, tflm_report

__all__ = ["HostRun", "TflmProject", "generate_and_verify", "generate_tflm_project", "model_io", "model_ops",
           "run_host", "tflm_report", "verify_on_host"]
