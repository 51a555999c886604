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
from firmware.aot.ops.unit import MAX_VERSIONS, OPS, Kernel, Params, Prepared, UnsupportedOp

__all__ = ["MAX_VERSIONS", "OPS", "Kernel", "Params", "Prepared", "UnsupportedOp"]
