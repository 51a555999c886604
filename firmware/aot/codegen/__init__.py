"""nlpool's own int8 kernels, generated per layer (docs/firmware.md, Generated kernels).

For the hot ops (CONV_2D, DEPTHWISE_CONV_2D, ADD) the generator writes one C function per layer into
the project's `kernels/nl_generated.c`: a call of an always-inline template (firmware/kernels/generated)
with every shape, stride, offset and clamp as a literal, and the layer's weights re-laid out in the
order its inner loop reads them. model.c runs it on cores with the DSP extension; CMSIS-NN (or the
portable kernel) stays the fallback for every layer the generated kernel does not cover. Where a
layer also has a Helium (MVE) kernel (`core="mve"`), Cortex-M55 builds run that one.
"""

from firmware.aot.codegen.constants import Constants
from firmware.aot.codegen.kernel import GENERATED_HEADER, GENERATED_SOURCE, TEMPLATE_DIR, GeneratedKernel, generated_source
from firmware.aot.codegen.select import generated_kernel, generated_mve_kernel

__all__ = ["GENERATED_HEADER", "GENERATED_SOURCE", "TEMPLATE_DIR", "Constants", "GeneratedKernel", "generated_kernel",
           "generated_mve_kernel", "generated_source"]
