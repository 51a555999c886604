"""What one firmware op is: a typed parameter struct, a Prepare, and one C entry point.

An op unit is a module of this package named after its kernel file in firmware/kernels (or after
a family of kernels, e.g. pool2d). It declares its parameters once, as a frozen dataclass whose
field annotations carry the C types (`I32`, `Dims`, `I8Array`, ...); the C `typedef struct` in the
generated `nlpool_kernels.h`, the prototype, the static initialiser in model.c and the call are all
derived from that class and from one `Kernel` (function name, tensor arguments). Its `prepare` functions do what TFLite's Prepare does
(validate the op, compute multipliers, padding, tables) and return a `Prepared`: plain values, no C
text. They are registered by TFLite op name with `@register`.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, ClassVar

import numpy as np

from nlpool.core.tflite import Operator, TfliteModel

if TYPE_CHECKING:  # codegen's templates read the op units' Params: no import at run time
    from firmware.aot.codegen.kernel import GeneratedKernel


class UnsupportedOp(Exception):
    """An op (or an op configuration) the AOT runtime has no kernel for."""


@dataclass(frozen=True)
class CType:
    """How a parameter field is spelled in C.

    `array` names the length of a fixed array member (e.g. NL_MAX_DIMS); `pointee` marks a pointer
    to a constant array in flash, whose values the field holds in Python (None renders as NULL);
    `mve_only` such an array that only builds for a core with Helium read (NULL, and no flash, elsewhere).
    """

    spelling: str
    array: str = ""
    pointee: str = ""
    mve_only: bool = False


I32 = Annotated[int, CType("int32_t")]
F32 = Annotated[float, CType("float")]
Dims = Annotated[tuple[int, ...], CType("int32_t", array="NL_MAX_DIMS")]
I8Array = Annotated[np.ndarray, CType("const int8_t *", pointee="int8_t")]
OptionalI8Array = Annotated[np.ndarray | None, CType("const int8_t *", pointee="int8_t")]
I32Array = Annotated[np.ndarray, CType("const int32_t *", pointee="int32_t")]
F32Array = Annotated[np.ndarray, CType("const float *", pointee="float")]
OptionalI32Array = Annotated[np.ndarray | None, CType("const int32_t *", pointee="int32_t")]
MveI32Array = Annotated[np.ndarray | None, CType("const int32_t *", pointee="int32_t", mve_only=True)]


class Params:
    """Base of every kernel's parameter struct; subclasses are frozen dataclasses.

    The C struct name is derived from the class name (`Conv2dParams` -> `nl_conv2d_params_t`)
    unless `c_name` is given; `header` names a hand-written header that defines the struct instead
    of the generated one (the weighted-pooling kernel, whose header the TFLM project shares).
    """

    c_name: ClassVar[str]
    header: ClassVar[str] = ""

    def __init_subclass__(cls, c_name: str = "", header: str = "", **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls.__name__.removesuffix("Params")).lower()
        cls.c_name = c_name or f"nl_{snake}_params_t"
        cls.header = header

    @classmethod
    def c_fields(cls) -> list[tuple[str, CType]]:
        """(name, C type) of every field, in declaration order (the order of the C struct)."""
        hints = typing.get_type_hints(cls, include_extras=True)
        return [(f.name, hints[f.name].__metadata__[0]) for f in fields(cls)]  # type: ignore[arg-type]


@dataclass(frozen=True)
class TensorArg:
    """One tensor argument of a kernel function, after the parameter pointer."""

    name: str
    element: str = "int8_t"
    output: bool = False
    many: bool = False  # an array of input pointers (CONCATENATION)
    scratch: bool = False  # the op's scratch memory: planned in the arena by memory_planner, not a tensor

    @property
    def declaration(self) -> str:
        """The C parameter declaration, e.g. `const int8_t *in`."""
        if self.many:
            return f"const {self.element} *const *{self.name}"
        return f"{'' if self.output else 'const '}{self.element} *{self.name}"


IN = TensorArg("in")
OUT = TensorArg("out", output=True)
SCRATCH = TensorArg("scratch", output=True, scratch=True)
CMSIS_NN_PREFIX = "nl_cmsis_"


@dataclass(frozen=True)
class Kernel:
    """One C entry point `function(const <params> *p, <tensors>)`, alone in its file of
    firmware/kernels: the function name without its `nl_` prefix, e.g. nl_conv2d in conv2d.c.

    The function name is the only spelling of the kernel in Python. A CMSIS-NN wrapper
    (`nl_cmsis_<op>`, in firmware/kernels/cmsis_nn/) takes the same parameters as nlpool's portable
    kernel for the op and, when it has a scratch argument, exports `nl_cmsis_<op>_scratch(p, mve)`:
    the bytes CMSIS-NN asks for on DSP or MVE builds.
    """

    function: str
    params: type[Params]
    tensors: tuple[TensorArg, ...] = (IN, OUT)

    @property
    def cmsis_nn(self) -> bool:
        """Whether this is a wrapper that calls Arm's CMSIS-NN (built only when a CMSIS-NN tree is given)."""
        return self.function.startswith(CMSIS_NN_PREFIX)

    @property
    def source(self) -> str:
        """The kernel's C file, relative to firmware/kernels (CMSIS-NN wrappers are in its cmsis_nn/)."""
        name = f"{self.function.removeprefix('nl_')}.c"
        return f"cmsis_nn/{name}" if self.cmsis_nn else name

    @property
    def scratch_function(self) -> str:
        """The wrapper's scratch-size function, "" for a kernel without scratch or not on CMSIS-NN."""
        return f"{self.function}_scratch" if self.cmsis_nn and any(t.scratch for t in self.tensors) else ""


@dataclass(frozen=True)
class Prepared:
    """One op ready to be written: its kernel, its parameters and the tensors of each argument.

    `tensors` holds one tensor index per `kernel.tensors` entry that is not `scratch` (a tuple for a
    `many` argument). `scratch_bytes` is what the kernel's scratch argument must hold: the generator
    checks the memory plan reserved exactly that much in the arena for this op.

    `cmsis_nn` is the op's CMSIS-NN wrapper when CMSIS-NN covers this instance of the op (same
    parameters and tensors, plus a scratch argument where CMSIS-NN wants a buffer); its scratch size
    comes from CMSIS-NN itself (`cmsis_scratch_bytes`, filled in by the generator).

    `inplace` is the op's kernel that writes its output over its input through
    `inplace_scratch_bytes` of scratch; the generator uses it where the memory plan put the output on
    the input (memory_planner's `Op.inplace`), instead of `kernel` and `cmsis_nn`.

    `folded_into` >= 0: the op is a PAD that the convolution at that position does itself
    (memory_planner.foldable_pads): nothing is emitted for it. `computed`: the op is shape arithmetic
    whose result the generator computed (firmware/aot/shape_folding.py): nothing is emitted either.

    `generated` is nlpool's kernel generated for this one layer (firmware/aot/codegen), which
    Cortex-M builds with the DSP extension run instead of `cmsis_nn` and `kernel`; the generator
    fills it in once it knows the op's planned scratch. `generated_mve` is its Helium (MVE) kernel,
    which Cortex-M55 builds run before any other (for an op run in place, its in-place form).
    """

    kernel: Kernel
    params: Params
    tensors: tuple[int | tuple[int, ...], ...]
    scratch_bytes: int = 0
    cmsis_nn: Kernel | None = None
    cmsis_scratch_bytes: int = 0
    inplace: Kernel | None = None
    inplace_scratch_bytes: int = 0
    folded_into: int = -1
    computed: bool = False
    generated: GeneratedKernel | None = None
    generated_mve: GeneratedKernel | None = None

    @property
    def emitted(self) -> bool:
        """Whether the firmware calls a kernel for this op (not folded, not computed beforehand)."""
        return self.folded_into < 0 and not self.computed


Prepare = Callable[[TfliteModel, Operator], Prepared]

OPS: dict[str, Prepare] = {}
# The highest version of each op its unit implements. TFLite numbers an op's versions by feature
# (tools/versioning/op_version.cc: e.g. CONV_2D 3 is int8, 6 grouped, 7 int4 filters), so a higher
# version means a feature the kernel lacks, whatever the tensors look like.
MAX_VERSIONS: dict[str, int] = {}


def register(*op_names: str, max_version: int) -> Callable[[Prepare], Prepare]:
    """Registers `prepare` as the unit of the TFLite ops `op_names` (builtin or custom names), for
    versions 1 to `max_version` of each."""

    def add(prepare: Prepare) -> Prepare:
        for name in op_names:
            if name in OPS:
                raise ValueError(f"op {name} registered twice")
            OPS[name] = prepare
            MAX_VERSIONS[name] = max_version
        return prepare

    return add
