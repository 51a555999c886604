"""Generate a standalone AOT C project from an int8 (fused) TFLite model.

The project holds: model.h / model.c (const weights, ONE static arena at the memory planner's
offsets, one kernel call per op), the kernel files the model uses, board files for every target
(startup code, a linker script whose SRAM budget is asserted at link time), a test driver and a
Makefile with a host target. It is written to a temporary folder and moved into place at the end.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from firmware.aot.cmsis_nn import BufferSizes, CmsisNn, probe_scratch
from firmware.aot.codegen import (
    GENERATED_HEADER,
    GENERATED_SOURCE,
    TEMPLATE_DIR,
    Constants,
    generated_kernel,
    generated_mve_kernel,
    generated_source,
)
from firmware.aot.ops import MAX_VERSIONS, OPS, Kernel, Prepared, UnsupportedOp
from firmware.aot.ops.c_text import KERNEL_HEADER, SHARED_HEADERS, call, initializer, kernel_header
from firmware.aot.shape_folding import COMPUTED, fold_shape_ops
from firmware.boards import BOARD_DIR, BOARDS, check_sram_budget, linker_script
from firmware.common import ProjectInfo, ProjectIO, TensorSpec
from memory_planner import MemoryPlan, foldable_pads, op_label, plan_tflite
from nlpool.core.custom_ops import ATTENTION_OP_NAME, WEIGHTED_POOL_OP_NAME, AttentionParams
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import Operator, Tensor, TfliteModel, load_model

FIRMWARE_DIR = Path(__file__).resolve().parent.parent
KERNEL_DIR = FIRMWARE_DIR / "kernels"
PLATFORM_DIR = FIRMWARE_DIR / "platform"
STACK_BYTES = 8 * 1024
HEAP_BYTES = 8 * 1024
_CTYPES = {"int8": "int8_t", "float32": "float", "int32": "int32_t"}
FUSED_ACTIVATIONS = (0, 1, 2, 3)  # what quant.activation_range implements, as TFLite's int8 kernels do


def _spec(t: Tensor) -> TensorSpec:
    return TensorSpec(t.name, list(t.shape), t.dtype, t.scale, t.zero_point, t.nbytes)


def _arena_layout(plan: MemoryPlan, graph: TfliteModel, activations: list[int]) -> tuple[dict[int, int], int, int]:
    """Arena offsets, arena size and lower bound from the memory plan, checked against this graph's tensors."""
    best = plan.best
    for i in activations:
        off = best.offsets.get(i)
        if off is None or off < 0 or off + graph.tensors[i].nbytes > best.arena_bytes:
            raise NlpoolError(f"memory plan has no valid slot for tensor {i} "
                              f"'{graph.tensors[i].name}': pass the plan of this model, or report this memory_planner bug")
    return dict(best.offsets), int(best.arena_bytes), int(plan.lower_bound)


class _EmitContext:
    """Implements c_text.EmitContext: pointers into the arena or into const arrays."""

    def __init__(self, graph: TfliteModel, offsets: dict[int, int], scratch: dict[int, tuple[int, int]]) -> None:
        self.graph = graph
        self.offsets = offsets
        self.scratch_slots = scratch
        self.consts: list[str] = []
        self._const_names: dict[int, str] = {}

    def const(self, values: np.ndarray | list, ctype: str, unused_ok: bool = False) -> str:
        name = f"nl_c{len(self.consts)}"
        flat = np.asarray(values).reshape(-1)
        fmt = (lambda v: f"{float(np.float32(v))!r}f") if ctype == "float" else (lambda v: str(int(v)))
        body = ",".join(fmt(v) for v in flat)
        unused = "__attribute__((unused)) " if unused_ok else ""
        self.consts.append(f"{unused}static const {ctype} {name}[{max(1, flat.size)}] "
                           f"__attribute__((aligned(4))) = {{{body}}};")
        return name

    def scratch(self, position: int, nbytes: int) -> str:
        """The arena address the plan gave op `position`'s scratch ("" for an op without one); the
        plan must hold exactly the `nbytes` its Prepare asks for."""
        offset, planned = self.scratch_slots.get(position, (0, 0))
        if planned != nbytes:
            raise NlpoolError(f"the memory plan holds {planned} B of scratch for op {position}, its kernel needs {nbytes} B: "
                              "pass the plan of this model, or report this memory_planner bug")
        return f"nl_arena + {offset}" if nbytes else ""

    def ptr(self, index: int, ctype: str = "int8_t") -> str:
        t = self.graph.tensors[index]
        if t.data is not None:
            if index not in self._const_names:
                self._const_names[index] = self.const(t.data, _CTYPES.get(t.dtype, "int8_t"))
            return f"({ctype} *){self._const_names[index]}"
        return f"({ctype} *)(nl_arena + {self.offsets[index]})"


def _validate(graph: TfliteModel, computed: frozenset[int]) -> None:
    """Everything the op units take for granted, checked before any of them runs, so that a model
    another tool wrote (or a damaged file) stops with one line naming the op and the fix: every op
    reads data that exists when it runs, has a kernel here at its version, and no op fuses an
    activation the kernels lack or touches an empty tensor. The `computed` ops (shape arithmetic)
    need no kernel."""
    _check_dataflow(graph)
    missing = [op for op in graph.operators if op.name not in OPS and op.position not in computed]
    if missing:
        listed = ", ".join(f"op {op.position} ({op.name})" for op in missing)
        raise NlpoolError(f"the AOT runtime has no kernel for {listed}: export a model without "
                          f"{'them' if len(missing) > 1 else 'it'}, or add an op unit (docs/firmware.md, Kernels and op units)")
    for op in graph.operators:
        if op.position in computed:
            continue
        if not 1 <= op.version <= MAX_VERSIONS[op.name]:
            raise NlpoolError(f"op {op.position} ({op.name}) is version {op.version}, the AOT kernel implements versions 1 to "
                              f"{MAX_VERSIONS[op.name]} (a higher version is a feature it lacks): convert the model with int8 "
                              "weights and activations (TFLiteConverter, Optimize.DEFAULT and an int8 representative dataset)")
        activation = getattr(op.options, "fusedActivationFunction", 0)
        if activation not in FUSED_ACTIVATIONS:
            raise NlpoolError(f"op {op.position} ({op.name}) has fused activation {activation}, which the int8 kernels do not"
                              " implement (NONE, RELU, RELU_N1_TO_1, RELU6): export a model without it")
        empty = [i for i in (*op.inputs, *op.outputs) if i >= 0 and graph.tensors[i].size == 0]
        if empty:
            raise NlpoolError(f"op {op.position} ({op.name}) has the empty tensor {empty[0]} ({graph.tensors[empty[0]].shape}): "
                              "the model is corrupted; re-export it")


def _check_dataflow(graph: TfliteModel) -> None:
    """Every tensor an op reads is a constant (its buffer holds the data), a model input, or the output
    of an earlier op; every model output is written. A weight whose buffer is missing reads as a
    tensor nothing writes."""
    written = set(graph.inputs)
    writer = {t: op for op in graph.operators for t in op.outputs}
    for op in graph.operators:
        for t in op.inputs:
            if t < 0 or t in written or graph.tensors[t].data is not None:
                continue
            tensor = graph.tensors[t]
            if t not in writer:
                raise NlpoolError(f"op {op.position} ({op.name}) reads tensor {t} '{tensor.name}', which has no data and no op "
                                  "writes: its buffer is missing or empty, the file is damaged; re-export the model")
            raise NlpoolError(f"op {op.position} ({op.name}) reads tensor {t} '{tensor.name}' before op "
                              f"{writer[t].position} ({writer[t].name}) writes it: the ops are out of order; re-export the model")
        written.update(op.outputs)
    unwritten = [t for t in graph.outputs if t not in written and graph.tensors[t].data is None]
    if unwritten:
        raise NlpoolError(f"model output tensor {unwritten[0]} '{graph.tensors[unwritten[0]].name}' is written by no op: "
                          "the file is damaged; re-export the model")


def _activation_tensors(graph: TfliteModel, prepared: list[tuple[Operator, Prepared]]) -> list[int]:
    """The tensors the arena must hold: what the emitted ops read and write (a folded PAD's output is none)."""
    seen: list[int] = []
    for i in graph.inputs:
        if i not in seen:
            seen.append(i)
    folded = {op.outputs[0]: op.inputs[0] for op, p in prepared if p.folded_into >= 0}  # PAD output -> its input
    for op, p in prepared:
        if not p.emitted:
            continue
        for i in [*(folded.get(t, t) for t in op.inputs), *op.outputs]:
            if i >= 0 and graph.tensors[i].data is None and i not in seen:
                seen.append(i)
    return seen


def _macs(graph: TfliteModel, op: Operator) -> int:
    """Multiply-accumulates of one op (0 for data movement and element-wise ops)."""
    t = graph.tensors
    out = t[op.outputs[0]]
    if op.name == "CONV_2D":
        _, fh, fw, cin = t[op.inputs[1]].shape
        return out.size * fh * fw * cin
    if op.name == "DEPTHWISE_CONV_2D":
        _, fh, fw, _ = t[op.inputs[1]].shape
        return out.size * fh * fw
    if op.name == "FULLY_CONNECTED":
        return out.size * t[op.inputs[1]].shape[1]
    if op.name == "BATCH_MATMUL":
        lhs = t[op.inputs[0]]
        depth = lhs.shape[-2] if op.options.adjX else lhs.shape[-1]
        return out.size * depth
    if op.name == WEIGHTED_POOL_OP_NAME:
        return t[op.inputs[0]].size
    if op.name == ATTENTION_OP_NAME:  # projections 4 N E^2, scores and mixing 2 N^2 E
        options = AttentionParams.from_flexbuffer(op.custom_options)
        n, e = options.tokens, options.width
        return 4 * n * e * e + 2 * n * n * e
    return 0


@dataclass(frozen=True)
class CmsisNnBuffers:
    """CMSIS-NN's scratch bytes per op position of one model, as the tree at `root` computes them
    (probed once per export and handed to the memory plan, the AOT generator and TFLM's arena plan)."""

    root: Path
    sizes: dict[int, BufferSizes]

    def scratch(self, target: str | None = None) -> dict[int, int]:
        """Op position -> bytes on `target` (None: the largest of the DSP, MVE and plain-C sizes, for a project
        that serves every core), for `plan_tflite(..., kernel_scratch=...)`."""
        return {position: size.on(target) for position, size in self.sizes.items() if size.on(target)}


def cmsis_nn_buffers(model: str | Path | TfliteModel, cmsis_nn: CmsisNn) -> CmsisNnBuffers:
    """Ask CMSIS-NN (compile and run its buffer-size functions on the host) for every op it covers.

    Ops the AOT runtime has no unit for are left out rather than refused: TFLM's arena plan asks for
    these sizes too, and TFLM runs a model whose ops the AOT generator lacks (the AOT step reports them)."""
    graph, prepared = _prepare_ops(load_model(model), cmsis_nn, probe=False, covered_only=True)
    return CmsisNnBuffers(cmsis_nn.root, _probe_cmsis_scratch(cmsis_nn, graph, prepared))


def _prepare_ops(model: TfliteModel, cmsis_nn: CmsisNn | None, target: str | None = None, buffers: CmsisNnBuffers | None = None,
                 probe: bool = True, covered_only: bool = False) -> tuple[TfliteModel, list[tuple[Operator, Prepared]]]:
    """The model with its shape arithmetic computed (shape_folding) and every other op's Prepare;
    with a CMSIS-NN tree, the ops it covers get the scratch size it asks for on `target` (None: the
    larger of its DSP and MVE sizes, for a project that serves every core), from `buffers` when they
    were probed on this tree already; without a tree no op is on CMSIS-NN. `probe=False` leaves the
    sizes at 0 (for the probe itself); `covered_only` leaves out, instead of refusing, the ops without a
    unit here or whose unit declines them (the model's dataflow is still checked)."""
    graph, computed = fold_shape_ops(model)
    try:
        if covered_only:
            _check_dataflow(graph)
        else:
            _validate(graph, computed)
    except NlpoolError as err:
        raise NlpoolError(f"{graph.path.name}: {err}") from None
    prepared: list[tuple[Operator, Prepared]] = []
    for op in graph.operators:
        if op.position in computed:
            prepared.append((op, COMPUTED))
            continue
        if covered_only and (op.name not in OPS or not 1 <= op.version <= MAX_VERSIONS[op.name]):
            continue
        try:
            p = OPS[op.name](graph, op)
        except UnsupportedOp as exc:
            if covered_only:
                continue
            raise NlpoolError(f"{graph.path.name}: op {op.position} ({op.name}) is not supported by the AOT runtime: "
                              f"{exc}; export a model without it") from exc
        prepared.append((op, p if cmsis_nn else replace(p, cmsis_nn=None)))
    prepared = _fold_pads(graph, prepared)
    if not probe:
        return graph, prepared
    if cmsis_nn is None:
        return graph, _with_generated(prepared)
    if buffers is None or buffers.root != cmsis_nn.root:
        buffers = CmsisNnBuffers(cmsis_nn.root, _probe_cmsis_scratch(cmsis_nn, graph, prepared))
    sizes = buffers.scratch(target)
    return graph, _with_generated([(op, replace(p, cmsis_scratch_bytes=sizes.get(op.position, 0))) for op, p in prepared])


def _with_generated(prepared: list[tuple[Operator, Prepared]]) -> list[tuple[Operator, Prepared]]:
    """Each op's generated kernel where one covers it: it borrows the scratch planned for CMSIS-NN
    (none without a tree), so only kernels that fit in it are taken and the arena stays as planned.
    In op order, each kernel learns which of its input's channels an earlier kernel proved constant."""
    constants: dict[int, Constants] = {}  # tensor -> its channels that no input can change (codegen/constants.py)
    result = []
    for op, p in prepared:
        if p.emitted:
            kernel = generated_kernel(p.params, op.position, p.cmsis_scratch_bytes, constants.get(op.inputs[0], {}), p.kernel.function)
            if kernel is not None:
                constants[op.outputs[0]] = dict(kernel.constants)
            p = replace(p, generated=kernel, generated_mve=generated_mve_kernel(p.params, op.position, p.cmsis_scratch_bytes))
        result.append((op, p))
    return result


def _fold_pads(graph: TfliteModel, prepared: list[tuple[Operator, Prepared]]) -> list[tuple[Operator, Prepared]]:
    """Each foldable PAD (memory_planner.foldable_pads, the rule the plan follows) done by its VALID
    convolution: the convolution reads the PAD's input with the PAD's leading rows and columns as
    its padding (a padded position is the zero point: it adds nothing), and the PAD emits nothing."""
    folds = foldable_pads(graph)
    pad_of = {conv: pad for pad, conv in folds.items()}
    result = []
    for op, p in prepared:
        if op.position in folds:
            p = replace(p, folded_into=folds[op.position], cmsis_nn=None)
        elif op.position in pad_of:
            pad = graph.operators[pad_of[op.position]]
            source = graph.tensors[pad.inputs[0]]
            (top, _), (left, _) = graph.tensors[pad.inputs[1]].data.reshape(4, 2)[1:3].tolist()
            params = replace(p.params, in_h=source.shape[1], in_w=source.shape[2],  # type: ignore[call-arg]
                             pad_h=p.params.pad_h + top, pad_w=p.params.pad_w + left)  # type: ignore[attr-defined]
            p = replace(p, params=params, tensors=(pad.inputs[0], *p.tensors[1:]), inplace=None, inplace_scratch_bytes=0)
        result.append((op, p))
    return result


def _use_inplace_kernels(prepared: list[tuple[Operator, Prepared]], inplace: set[int]) -> list[tuple[Operator, Prepared]]:
    """The ops the memory plan runs in place (output over input) switched to their in-place kernel (and
    their generated MVE kernel to its in-place form, where it fits the same scratch)."""
    result = []
    for op, p in prepared:
        if op.position in inplace:
            if p.inplace is None:
                raise NlpoolError(f"the memory plan runs op {op.position} ({op.name}) in place, which its kernel cannot do: "
                                  "pass the plan of this model, or report this memory_planner bug")
            p = replace(p, kernel=p.inplace, scratch_bytes=p.inplace_scratch_bytes, cmsis_nn=None, cmsis_scratch_bytes=0,
                          generated=None,
                          generated_mve=generated_mve_kernel(p.params, op.position, p.inplace_scratch_bytes, inplace=True))
        result.append((op, p))
    return result


def _kernel_scratch(prepared: list[tuple[Operator, Prepared]]) -> dict[int, int]:
    """Op position -> the runtime scratch the memory plan must add (CMSIS-NN's buffers)."""
    return {op.position: p.cmsis_scratch_bytes for op, p in prepared if p.cmsis_scratch_bytes}


def cmsis_nn_scratch(model: str | Path | TfliteModel, cmsis_nn: CmsisNn, target: str | None = None) -> dict[int, int]:
    """Op position -> bytes of scratch CMSIS-NN's kernels need for this model, for
    `plan_tflite(..., kernel_scratch=...)`. Without `target`, the larger of its DSP and MVE sizes: what
    `generate_project` plans, since one AOT project serves every core. With it, what a build for that
    core asks for: TFLM's CMSIS-NN kernels request it from TFLM's arena, built for one core. A caller
    that needs the sizes more than once probes once with `cmsis_nn_buffers` instead."""
    return cmsis_nn_buffers(model, cmsis_nn).scratch(target)


def _probe_cmsis_scratch(cmsis_nn: CmsisNn, graph: TfliteModel,
                         prepared: list[tuple[Operator, Prepared]]) -> dict[int, BufferSizes]:
    probed = [(op, p) for op, p in prepared if p.cmsis_nn is not None and p.cmsis_nn.scratch_function]
    if not probed:
        return {}
    ctx = _EmitContext(graph, {}, {})
    decls = [initializer(p, f"nl_op{op.position}", ctx) for op, p in probed]
    prints = [f'    printf("{op.position} %ld %ld %ld\\n", (long){p.cmsis_nn.scratch_function}(&nl_op{op.position}, NL_CMSIS_DSP), '
              f"(long){p.cmsis_nn.scratch_function}(&nl_op{op.position}, NL_CMSIS_MVE), "
              f"(long){p.cmsis_nn.scratch_function}(&nl_op{op.position}, NL_CMSIS_PLAIN));" for op, p in probed]
    probe_c = "\n".join(["#include <stdio.h>", '#include "nl_cmsis_nn.h"', *ctx.consts, *decls,
                         "int main(void)", "{", *prints, "    return 0;", "}", ""])
    with tempfile.TemporaryDirectory(prefix="nlpool-cmsis-") as tmp:
        root = Path(tmp)
        kernels = {p.cmsis_nn for _, p in probed if p.cmsis_nn}
        _copy_kernel_files(root, [k for _, p in probed for k in (p.kernel, p.cmsis_nn) if k is not None])
        return probe_scratch(cmsis_nn, root, probe_c, sorted({k.source for k in kernels}))


def generate_project(tflite_path: str | Path | TfliteModel, out_dir: str | Path, sram_budget: int,
                     default_target: str = "cortex-m7", plan: MemoryPlan | None = None,
                     io: ProjectIO | None = None, cmsis_nn: CmsisNn | None = None,
                     buffers: CmsisNnBuffers | None = None) -> ProjectInfo:
    """Write the AOT project for `tflite_path` (a file, or the model already read) into `out_dir`
    (replaced if it exists).

    `plan` is memory_planner's plan of this model (`plan_tflite(tflite_path)`, with
    `kernel_scratch=cmsis_nn_scratch(...)` when `cmsis_nn` is given): the arena takes its offsets. A
    caller that already has it (`nlpool export`) passes it so the model is planned once; without it
    the model is planned here. `io` adds `nlpool_io.h` (camera frame to input, class names).

    `cmsis_nn` (a CMSIS-NN tree) makes the Cortex-M builds call Arm's CMSIS-NN for the ops it covers
    (model.c selects with NLPOOL_CMSIS_NN, which the Makefile sets when it builds against the tree);
    the host build and a build without the tree keep nlpool's portable kernels. `buffers` are
    CMSIS-NN's buffer sizes for this model when the caller probed them already (`cmsis_nn_buffers`).

    `sram_budget` (bytes) goes into every board's linker script as an ASSERT, so a firmware that
    does not fit fails to link with a message naming the budget. Raises NlpoolError for
    unsupported ops and budgets beyond a board's physical SRAM.
    """
    out_dir = Path(out_dir)
    if default_target not in BOARDS:
        raise NlpoolError(f"unknown target '{default_target}': use one of {', '.join(BOARDS)}")
    over = check_sram_budget(default_target, sram_budget)
    if over is not None:
        raise NlpoolError(over)
    graph, prepared = _prepare_ops(load_model(tflite_path), cmsis_nn, buffers=buffers)
    activations = _activation_tensors(graph, prepared)
    if plan is None:
        plan = plan_tflite(graph, kernel_scratch=_kernel_scratch(prepared))
    offsets, arena_bytes, lower_bound = _arena_layout(plan, graph, activations)
    ctx = _EmitContext(graph, offsets, plan.scratch_slots())
    prepared = _use_inplace_kernels(prepared, {op.index for op in plan.graph.ops if op.inplace})
    macs = sum(_macs(graph, op) for op in graph.operators)
    op_kernels = ["folded" if not p.emitted else "generated" if p.generated else "cmsis-nn" if p.cmsis_nn else "portable"
                  for _, p in prepared]
    info = ProjectInfo(str(out_dir), arena_bytes, lower_bound, sram_budget, macs, [op.name for op, _ in prepared],
                       op_kernels, str(cmsis_nn.root) if cmsis_nn else "",
                       [_spec(graph.tensors[i]) for i in graph.inputs],
                       [_spec(graph.tensors[i]) for i in graph.outputs],
                       [op_label(op.name, op.position, graph.tensors[op.outputs[0]].name if op.outputs else "") for op, _ in prepared],
                       [_mve_kernel(p) for _, p in prepared])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        _write_project(tmp, graph, ctx, prepared, info, default_target)
        if io is not None:
            io.write(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return info


def _mve_kernel(p: Prepared) -> str:
    """The kernel set a Cortex-M55 build with the project's kernel sets runs an op with (model.c's choice)."""
    if not p.emitted:
        return "folded"
    if p.generated_mve is not None:
        return "generated"
    return "cmsis-nn" if p.cmsis_nn else "generated" if p.generated else "portable"


def _copy_kernel_files(root: Path, kernels: list[Kernel]) -> None:
    """kernels/: the kernels' sources, the headers they include, and the generated nlpool_kernels.h."""
    (root / "kernels").mkdir()
    unique = set(kernels)
    for name in [*SHARED_HEADERS, *sorted({k.params.header for k in unique} - {""})]:
        shutil.copy2(KERNEL_DIR / name, root / "kernels" / name)
    (root / "kernels" / KERNEL_HEADER).write_text(kernel_header(unique))
    if any(k.cmsis_nn for k in unique):
        (root / "kernels" / "cmsis_nn").mkdir()
        for header in sorted((KERNEL_DIR / "cmsis_nn").glob("*.h")):
            shutil.copy2(header, root / "kernels" / "cmsis_nn" / header.name)
    for source in sorted({k.source for k in unique}):
        shutil.copy2(KERNEL_DIR / source, root / "kernels" / source)


def _write_project(root: Path, graph: TfliteModel, ctx: _EmitContext, prepared: list[tuple[Operator, Prepared]],
                   info: ProjectInfo, default_target: str) -> None:
    _copy_kernel_files(root, [k for _, p in prepared if p.emitted for k in (p.kernel, p.cmsis_nn) if k is not None])
    generated = [k for _, p in prepared for k in (p.generated, p.generated_mve) if k is not None]
    header, source = generated_source(generated)
    (root / "kernels" / GENERATED_HEADER).write_text(header)
    if generated:
        (root / "kernels" / GENERATED_SOURCE).write_text(source)
        shutil.copytree(KERNEL_DIR / TEMPLATE_DIR, root / "kernels" / TEMPLATE_DIR)
    (root / "platform").mkdir()
    for name in ["main.c", "host.c", "cortex_m.c", "nl_platform.h"]:
        shutil.copy2(PLATFORM_DIR / name, root / "platform" / name)
    (root / "boards").mkdir()
    shutil.copy2(BOARD_DIR / "startup.S", root / "boards" / "startup.S")
    for target, board in BOARDS.items():
        d = root / "boards" / target
        d.mkdir()
        budget = min(info.sram_budget, board.sram_length)
        (d / "link.ld").write_text(linker_script(board, budget, STACK_BYTES, HEAP_BYTES))
        (d / "board.mk").write_text(f"CPU_FLAGS := {board.cpu_flags}\nQEMU_MACHINE := {board.machine}\n")
    makefile = (PLATFORM_DIR / "Makefile.in").read_text().format(default_target=default_target,
                                                                 cmsis_nn_dir=info.cmsis_nn_dir)
    (root / "Makefile").write_text(makefile)
    (root / "model.h").write_text(_model_h(info))
    (root / "README.md").write_text(_readme(info, default_target))
    (root / "model.c").write_text(_model_c(graph, ctx, prepared, info))
    data = asdict(info)
    (root / "project.json").write_text(json.dumps(data, indent=2) + "\n")


def _readme(info: ProjectInfo, default_target: str) -> str:
    def tensor(t: TensorSpec) -> str:
        return f"`{t.name}` {t.dtype} {tuple(t.shape)}, scale {t.scale:.6g}, zero point {t.zero_point}"

    ops = ", ".join(sorted(set(info.ops)))
    return f"""# nlpool AOT firmware project (generated)

Standalone int8 inference: no interpreter, no heap for the model, one static arena of
{info.arena_bytes:,} bytes (memory_planner's lower bound: {info.arena_lower_bound:,}), weights in flash.
Ops: {ops} ({len(info.ops)} calls, {info.macs:,} MACs per inference).

- Input: {"; ".join(tensor(t) for t in info.inputs)}
- Output: {"; ".join(tensor(t) for t in info.outputs)}

## Use it in your firmware
Copy `model.h`, `model.c` and `kernels/` into your project (C99, no other dependency); write the
quantised input to `nlpool_model_input(0)`, call `nlpool_model_invoke()`, read
`nlpool_model_output(0)`. The kernels reproduce TFLite's int8 reference kernels bit for bit.

## Build and run here
- `make host`: the same C for this machine (`build/host/nlpool_model`).
- `make TARGET=cortex-m7` (or `cortex-m4`, `cortex-m55`): `build/<target>/firmware.elf` for QEMU's
  MPS2/MPS3 boards; linking fails if SRAM use exceeds the budget of {info.sram_budget:,} bytes.
- Both read `input.bin` (inputs back to back) and write `output.bin` in the working directory, e.g.
  `qemu-system-arm -M mps2-an500 -nographic -monitor none -semihosting-config enable=on,target=native
  -icount shift=0 -kernel build/cortex-m7/firmware.elf`.

Default target: {default_target}.
"""


def _model_h(info: ProjectInfo) -> str:
    return f"""/* Generated by nlpool: the model's entry points. Arena and weights are static. */
#ifndef NLPOOL_MODEL_H
#define NLPOOL_MODEL_H

#include <stdint.h>

#define NLPOOL_NUM_INPUTS {len(info.inputs)}
#define NLPOOL_NUM_OUTPUTS {len(info.outputs)}
#define NLPOOL_ARENA_BYTES {info.arena_bytes}
#define NLPOOL_NUM_OPS {len(info.ops)}

/* Nothing to allocate: kept so callers have one place to put future set-up. */
void nlpool_model_init(void);
/* Runs every op once; inputs must be written first, outputs are valid until the next call. */
void nlpool_model_invoke(void);
void *nlpool_model_input(int index);
void *nlpool_model_output(int index);
uint32_t nlpool_model_input_bytes(int index);
uint32_t nlpool_model_output_bytes(int index);
/* With NLPOOL_PROFILE defined: platform ticks spent in op `index` over every invoke so far. */
uint64_t nlpool_model_op_ticks(int index);
/* The kernel this build runs op `index` with: "generated", "cmsis-nn", "portable" or "folded". */
const char *nlpool_model_op_kernel(int index);

#endif /* NLPOOL_MODEL_H */
"""


# Which kernel set each op runs in this build: nlpool's generated kernels where the core has the DSP
# extension (not on Cortex-M55 with CMSIS-NN, whose MVE kernels run there), else CMSIS-NN when the
# Makefile builds against a tree, else the portable kernels; before all of them, on a core with Helium
# (Cortex-M55), the op's generated MVE kernel where it has one. NLPOOL_GENERATED is 1 by default on
# cores with the DSP extension; `make GENERATED=0` makes it 0, `make GENERATED=all` 2 (the DSP kernels
# on every build, their plain-C path on cores without the extension).
_CMSIS_NN_CHOICE_C = [
    "#ifndef NLPOOL_CMSIS_NN",
    "#define NLPOOL_CMSIS_NN 0",
    "#endif",
    "#if NLPOOL_CMSIS_NN",
    '#define NL_CMSIS_NN_OR(other) "cmsis-nn"',
    "#else",
    "#define NL_CMSIS_NN_OR(other) other",
    "#endif",
]
_GENERATED_CHOICE_C = [
    "#ifndef NLPOOL_GENERATED",
    "#if defined(__ARM_FEATURE_DSP)",
    "#define NLPOOL_GENERATED 1",
    "#else",
    "#define NLPOOL_GENERATED 0",
    "#endif",
    "#endif",
    "#if NLPOOL_GENERATED && defined(__ARM_FEATURE_MVE)",
    "#define NLPOOL_GENERATED_MVE 1",
    '#define NL_GENERATED_MVE_OR(other) "generated"',
    "#else",
    "#define NLPOOL_GENERATED_MVE 0",
    "#define NL_GENERATED_MVE_OR(other) other",
    "#endif",
    "#if NLPOOL_GENERATED == 2 || (NLPOOL_GENERATED && !(defined(__ARM_FEATURE_MVE) && {cmsis_nn}))",
    "#define NLPOOL_GENERATED_DSP 1",
    '#define NL_GENERATED_DSP_OR(other) "generated"',
    "#else",
    "#define NLPOOL_GENERATED_DSP 0",
    "#define NL_GENERATED_DSP_OR(other) other",
    "#endif",
]


def _kernel_choice_c(cmsis_nn: bool) -> list[str]:
    """The preprocessor lines that pick each op's kernel set (only those the project has)."""
    lines = _CMSIS_NN_CHOICE_C if cmsis_nn else []
    return [*lines, *(line.format(cmsis_nn="NLPOOL_CMSIS_NN" if cmsis_nn else "0") for line in _GENERATED_CHOICE_C), ""]

# Per-op timing, compiled in only with NLPOOL_PROFILE (the project's Cortex-M builds): the platform's
# tick counter read around every op. It costs two counter reads per op (measured: docs/firmware.md).
_PROFILE_C = [
    "#if defined(NLPOOL_PROFILE)",
    '#include "nl_platform.h"',
    "static uint64_t nl_op_ticks[NLPOOL_NUM_OPS];",
    "static uint64_t nl_op_start;",
    "/* Out of line: their entry addresses mark where each op starts and ends for the cycle estimate's",
    " * counting QEMU plugin (firmware/timing). */",
    "__attribute__((noinline)) void nl_op_begin(void) { nl_op_start = nl_ticks(); }",
    "__attribute__((noinline)) void nl_op_end(int index) { nl_op_ticks[index] += nl_ticks() - nl_op_start; }",
    "#define NL_OP_BEGIN() nl_op_begin()",
    "#define NL_OP_END(index) nl_op_end(index)",
    "uint64_t nlpool_model_op_ticks(int index) { return nl_op_ticks[index]; }",
    "#else",
    "#define NL_OP_BEGIN() ((void)0)",
    "#define NL_OP_END(index) ((void)0)",
    "uint64_t nlpool_model_op_ticks(int index) { (void)index; return 0; }",
    "#endif",
    "",
]


def _model_c(graph: TfliteModel, ctx: _EmitContext, prepared: list[tuple[Operator, Prepared]], info: ProjectInfo) -> str:
    lines = ["/* Generated by nlpool from a TFLite model: do not edit. */",
             "#include <stddef.h>", "#include <stdint.h>", "", '#include "model.h"',
             f'#include "{KERNEL_HEADER}"', f'#include "{GENERATED_HEADER}"', "", *_kernel_choice_c(bool(info.cmsis_nn_dir)),
             "/* One arena for every activation, laid out by memory_planner (in-place ops share slots). */",
             f"static int8_t nl_arena[{max(16, info.arena_bytes)}] __attribute__((aligned(16)));",
             ""]
    names = [f"nl_op{op.position}" for op, _ in prepared]
    # an op with a generated kernel may not use its struct in this build (the other kernels' branches)
    decls = [initializer(p, name, ctx).replace("static const", "__attribute__((unused)) static const", 1)
             if p.generated or p.generated_mve else initializer(p, name, ctx)
             for (_, p), name in zip(prepared, names, strict=True) if p.emitted]
    body = []
    kernel_names = []
    for index, ((op, p), name) in enumerate(zip(prepared, names, strict=True)):
        if p.computed:
            body.append(f"    NL_OP_BEGIN(); NL_OP_END({index}); /* {op.name}: computed by the generator (a constant) */")
            kernel_names.append('"folded"')
            continue
        if p.folded_into >= 0:
            body.append(f"    NL_OP_BEGIN(); NL_OP_END({index}); /* {op.name}: done by op {p.folded_into}'s padding */")
            kernel_names.append('"folded"')
            continue
        branches = []  # (condition, call, comment), the first whose condition holds is compiled
        pointers = ", ".join(ctx.ptr(t) for t in p.tensors) if p.generated or p.generated_mve else ""
        if p.generated_mve is not None:  # in place, the op's scratch is the in-place kernel's
            scratch = ctx.scratch(op.position, p.cmsis_scratch_bytes if p.cmsis_nn else p.scratch_bytes) or "NULL"
            branches.append(("NLPOOL_GENERATED_MVE", f"{p.generated_mve.function}({pointers}, {scratch});", "generated (MVE)"))
        if p.generated is not None:
            scratch = ctx.scratch(op.position, p.cmsis_scratch_bytes) or "NULL"
            branches.append(("NLPOOL_GENERATED_DSP", f"{p.generated.function}({pointers}, {scratch});", "generated"))
        if p.cmsis_nn is not None:
            scratch = ctx.scratch(op.position, p.cmsis_scratch_bytes) or "NULL"
            branches.append(("NLPOOL_CMSIS_NN", call(replace(p, kernel=p.cmsis_nn), name, ctx, scratch), "CMSIS-NN"))
        portable = call(p, name, ctx, ctx.scratch(op.position, p.scratch_bytes) if p.cmsis_nn is None else "")
        if not branches:
            body.append(f"    NL_OP_BEGIN(); {portable} NL_OP_END({index}); /* {op.name} */")
            kernel_names.append('"portable"')
            continue
        for i, (condition, text, comment) in enumerate(branches):
            body += [f"#{'if' if i == 0 else 'elif'} {condition}",
                     f"    NL_OP_BEGIN(); {text} NL_OP_END({index}); /* {op.name}: {comment} */"]
        body += ["#else", f"    NL_OP_BEGIN(); {portable} NL_OP_END({index}); /* {op.name} */", "#endif"]
        kernel_names.append("".join(f"NL_{c.removeprefix('NLPOOL_')}_OR(" for c, _, _ in branches) + '"portable"' + ")" * len(branches))
    lines += [*ctx.consts, "", *decls, "", *_PROFILE_C]
    lines += ["/* Which kernel runs each op in this build (the profile prints it). */",
              f"static const char *const nl_op_kernel[{max(1, len(kernel_names))}] = {{{', '.join(kernel_names) or '0'}}};",
              "const char *nlpool_model_op_kernel(int index) { return nl_op_kernel[index]; }", ""]
    lines += ["void nlpool_model_init(void) {}", "", "void nlpool_model_invoke(void)", "{", *body, "}", ""]
    in_off = ", ".join(str(ctx.offsets[i]) for i in graph.inputs)
    out_off = ", ".join(str(ctx.offsets[i]) for i in graph.outputs)
    lines += [f"static const uint32_t nl_in_off[] = {{{in_off}}};",
              f"static const uint32_t nl_in_bytes[] = {{{', '.join(str(t.nbytes) for t in info.inputs)}}};",
              f"static const uint32_t nl_out_off[] = {{{out_off}}};",
              f"static const uint32_t nl_out_bytes[] = {{{', '.join(str(t.nbytes) for t in info.outputs)}}};",
              "",
              "void *nlpool_model_input(int index) { return nl_arena + nl_in_off[index]; }",
              "void *nlpool_model_output(int index) { return nl_arena + nl_out_off[index]; }",
              "uint32_t nlpool_model_input_bytes(int index) { return nl_in_bytes[index]; }",
              "uint32_t nlpool_model_output_bytes(int index) { return nl_out_bytes[index]; }", ""]
    return "\n".join(lines)
