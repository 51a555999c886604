"""What a generated AOT project is (project.json): its arena, ops, kernel sets and input/output tensors.

Written by the AOT generator, read back by the runners (firmware.run, firmware.verify) that build and
run a project, so it lives beside them in firmware.common rather than in the generator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TensorSpec:
    """Shape, dtype and quantisation of a model input or output (what the runner needs)."""

    name: str
    shape: list[int]
    dtype: str
    scale: float
    zero_point: int
    nbytes: int


@dataclass
class ProjectInfo:
    """Summary of a generated project; also written to `project.json` inside it."""

    path: str
    arena_bytes: int
    arena_lower_bound: int  # the planner's bound: no layout of these tensors is smaller
    sram_budget: int
    macs: int  # multiply-accumulates per inference (convolutions, matmuls, weighted pooling)
    ops: list[str]
    # Per op, the kernel that runs it in a Cortex-M4/M7 build with CMSIS-NN: "generated" (nlpool's
    # kernel for this layer), "cmsis-nn", "portable" (nlpool's C) or "folded" (a PAD its convolution
    # does, or shape arithmetic the generator computed). No "cmsis-nn" without a CMSIS-NN tree. What
    # each build ran: its profile (firmware/run.py).
    op_kernels: list[str]
    cmsis_nn_dir: str  # the CMSIS-NN tree the Makefile builds against by default ("" for none)
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    # Per op, its readable name (memory_planner.op_label, `CONV_2D #3 conv2d_1`): the profile's rows.
    # Empty in a project.json written before the field existed.
    op_names: list[str] = field(default_factory=list)
    # Per op, the kernel a Cortex-M55 (Helium) build with CMSIS-NN runs: "generated" where the op has a
    # generated MVE kernel, else as op_kernels except that nlpool's DSP kernels give way to CMSIS-NN's
    # MVE ones. Empty in a project.json written before the field existed.
    mve_op_kernels: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, project_dir: Path) -> ProjectInfo:
        """Reads project.json back (the runner's entry point)."""
        raw = json.loads((Path(project_dir) / "project.json").read_text())
        raw["inputs"] = [TensorSpec(**t) for t in raw["inputs"]]
        raw["outputs"] = [TensorSpec(**t) for t in raw["outputs"]]
        return cls(**raw)
