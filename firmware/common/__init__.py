"""What the two firmware runtimes (firmware.aot, firmware.tflm) and their runners share.

Public surface (import from `firmware.common`):
    ProjectInfo, TensorSpec            a generated AOT project's summary (project.json), read by the runners
    ProjectIO, Rgb888Input, HEADER     the input/output header both projects carry (nlpool_io.h)
    Profile, OpProfile, format_profile per-op instruction profiles, from the AOT firmware and from TFLM

It imports neither runtime: either may import it, it imports only the base layer.
"""

from firmware.common.io_header import HEADER, ProjectIO, Rgb888Input
from firmware.common.profile import OpProfile, Profile, format_profile
from firmware.common.project_info import ProjectInfo, TensorSpec

__all__ = ["HEADER", "OpProfile", "Profile", "ProjectIO", "ProjectInfo", "Rgb888Input", "TensorSpec", "format_profile"]
