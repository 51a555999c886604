"""The AOT runtime: int8 TFLite model -> standalone C project (static arena, one call per op), on
nlpool's portable kernels or, given a CMSIS-NN tree, on Arm's CMSIS-NN where it covers an op."""

from firmware.aot.cmsis_nn import CMSIS_NN_DIR_ENV, CMSIS_NN_HINT, CmsisNn, find_cmsis_nn
from firmware.aot.generate import CmsisNnBuffers, cmsis_nn_buffers, cmsis_nn_scratch, generate_project

__all__ = ["CMSIS_NN_DIR_ENV", "CMSIS_NN_HINT", "CmsisNn", "CmsisNnBuffers", "cmsis_nn_buffers", "cmsis_nn_scratch", "find_cmsis_nn",
           "generate_project"]
