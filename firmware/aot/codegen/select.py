"""Which generated kernel, if any, runs an op."""

from __future__ import annotations

from firmware.aot.codegen.add import add_kernel
from firmware.aot.codegen.avg_pool import avg_pool_kernel
from firmware.aot.codegen.constants import Constants
from firmware.aot.codegen.conv import conv_kernel
from firmware.aot.codegen.depthwise import depthwise_kernel
from firmware.aot.codegen.fully_connected import fully_connected_kernel
from firmware.aot.codegen.kernel import GeneratedKernel
from firmware.aot.codegen.mve_conv import mve_conv_kernel
from firmware.aot.codegen.mve_depthwise import mve_depthwise_kernel
from firmware.aot.ops.add import AddParams
from firmware.aot.ops.conv2d import Conv2dParams
from firmware.aot.ops.depthwise_conv2d import DepthwiseConv2dParams
from firmware.aot.ops.fully_connected import FullyConnectedParams
from firmware.aot.ops.pool2d import AVERAGE, PoolParams
from firmware.aot.ops.unit import Params


def generated_kernel(params: Params, position: int, scratch_bytes: int, known: Constants, function: str = "") -> GeneratedKernel | None:
    """The generated kernel for an op's prepared parameters, None where none covers it.

    `scratch_bytes` is the scratch the memory plan holds for the op (CMSIS-NN's buffer, which the
    generated kernel borrows): a kernel that needs more is not used, so the arena never grows.
    `known` are the input's channels proved constant upstream (they narrow the output's proof);
    `function` is the op's portable kernel (AVERAGE_POOL_2D and MAX_POOL_2D share their parameters)."""
    if isinstance(params, Conv2dParams):
        kernel = conv_kernel(params, position, known)
    elif isinstance(params, DepthwiseConv2dParams):
        kernel = depthwise_kernel(params, position, known)
    elif isinstance(params, AddParams):
        kernel = add_kernel(params, position)
    elif isinstance(params, FullyConnectedParams):
        kernel = fully_connected_kernel(params, position)
    elif isinstance(params, PoolParams) and function == AVERAGE.function:
        kernel = avg_pool_kernel(params, position)
    else:
        return None
    if kernel is None or kernel.scratch_bytes > scratch_bytes:
        return None
    return kernel


def generated_mve_kernel(params: Params, position: int, scratch_bytes: int, inplace: bool = False) -> GeneratedKernel | None:
    """The generated Helium (MVE) kernel for an op, None where none covers it: CONV_2D and
    DEPTHWISE_CONV_2D, the latter with `inplace` in its form that writes over its input (where the
    memory plan runs the op in place).
    `scratch_bytes` is the scratch planned for the op (in place: the portable in-place kernel's plane);
    a kernel that needs more is not used."""
    if isinstance(params, DepthwiseConv2dParams):
        kernel = mve_depthwise_kernel(params, position, inplace)
    elif isinstance(params, Conv2dParams) and not inplace:
        kernel = mve_conv_kernel(params, position)
    else:
        return None
    if kernel is None or kernel.scratch_bytes > scratch_bytes:
        return None
    return kernel
