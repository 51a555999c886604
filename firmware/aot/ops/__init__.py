"""The AOT runtime's op units, one module per kernel file of firmware/kernels (see unit.py).

Importing this package registers every unit in `OPS`, keyed by TFLite op name. To add an op,
write its kernel in firmware/kernels/<file>.c and a module here with its `Params` dataclass, its
`Kernel` and a `@register`-ed prepare function, and import the module below.
"""

from firmware.aot.ops import (  # noqa: F401  (imported to register their units)
    add,
    attention,
    batch_matmul,
    concatenation,
    conv2d,
    depthwise_conv2d,
    fully_connected,
    gather,
    lookup,
    mean,
    mul,
    pad,
    pool2d,
    quantize,
    relu,
    reshape,
    resize,
    softmax,
    weighted_pool,
)
from firmware.aot.ops.c_text import KERNEL_HEADER, SHARED_HEADERS, kernel_header
from firmware.aot.ops.unit import MAX_VERSIONS, OPS, Kernel, Params, Prepared, UnsupportedOp

# The C kernels the TFLM project's host build runs as shims (firmware.tflm.project), by op name.
HOST_SHIM_KERNELS: dict[str, Kernel] = {"BATCH_MATMUL": batch_matmul.KERNEL, "FULLY_CONNECTED": fully_connected.KERNEL}

__all__ = ["HOST_SHIM_KERNELS", "KERNEL_HEADER", "MAX_VERSIONS", "OPS", "SHARED_HEADERS", "Kernel", "Params", "Prepared", "UnsupportedOp",
           "kernel_header"]
