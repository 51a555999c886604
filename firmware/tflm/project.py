"""Write a TFLite-Micro C++ project for a fused nlpool model.

The project is for users who already ship TFLM: the model as an aligned const array, a `main.cc`
with a `MicroInterpreter` and an op resolver holding exactly the model's ops, nlpool's
custom ops as TFLM kernels calling nlpool's shared C functions, and a Makefile that builds it for the
chosen Cortex-M board against the user's upstream TFLM tree (`TFLM_DIR`: only the interpreter core
and this model's kernels, see `sources.py`) with the AOT project's startup code and linker script,
or for the host against the `xmos-ai-tools` wheel (the check that needs no tree).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from firmware.aot.ops import HOST_SHIM_KERNELS, KERNEL_HEADER, SHARED_HEADERS, Kernel, kernel_header
from firmware.boards import BOARD_DIR, BOARDS, human_bytes, linker_script
from firmware.common import ProjectIO
from firmware.tflm.ops import CUSTOM_OPS_HEADER, RESOLVER_METHODS, ModelOps, model_io, model_ops, per_channel_fully_connected
from firmware.tflm.sources import CORE_SOURCES, write_sources_mk
from memory_planner import MemoryPlan, plan_tflite
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import TfliteModel, load_model

if TYPE_CHECKING:
    from firmware.tflm.target import TflmTree

TEMPLATES = Path(__file__).resolve().parent / "templates"
FIRMWARE_DIR = Path(__file__).resolve().parent.parent

# The arena is the planner's prediction of TFLM's whole 32-bit arena (or of what AllocateTensors needs
# while planning, when that is more) plus a margin of 3 % (at least 1 KiB): the predictions are within
# 0.5 % of TFLM on the target for the models in docs/tflm.md, and CMSIS-NN's scratch buffers add a
# few hundred bytes to the reference kernels' need.
ARENA_MARGIN_FRACTION = 0.03
ARENA_MARGIN_MIN_BYTES = 1024
STACK_BYTES = 16 << 10
HEAP_BYTES = 16 << 10  # newlib's stdio buffers for the semihosted input.bin / output.bin


@dataclass(frozen=True)
class TflmProject:
    """A generated TFLM project and the numbers it was generated with."""

    path: Path
    target: str
    ops: list[str]
    predicted_arena_bytes: int
    arena_bytes: int
    host_shims: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def margin_bytes(self) -> int:
        return self.arena_bytes - self.predicted_arena_bytes


def arena_with_margin(predicted_bytes: int) -> int:
    """The arena the project declares (16-byte aligned): the prediction plus ARENA_MARGIN_FRACTION of it."""
    margin = max(int(predicted_bytes * ARENA_MARGIN_FRACTION), ARENA_MARGIN_MIN_BYTES)
    return (predicted_bytes + margin + 15) // 16 * 16


def generate_tflm_project(fused_tflite: str | Path | TfliteModel, out_dir: str | Path, target: str = "cortex-m7",
                          arena_bytes: int | None = None, sram_budget: int | None = None,
                          plan: MemoryPlan | None = None, io: ProjectIO | None = None,
                          tree: TflmTree | None = None) -> TflmProject:
    """Writes the project for `fused_tflite` (a file, or the model already read) into `out_dir`
    (replaced as a whole, never half-written).

    `arena_bytes` is the planner's prediction of TFLM's whole arena for this model on the target (the
    project adds the margin of ARENA_MARGIN_FRACTION); when omitted it comes from `plan.tflm` (the
    arena TFLM uses, and, if larger, what AllocateTensors needs while planning), the memory plan of
    this model, which a caller that already has it (`nlpool export`) passes so the model is planned
    once; without either the model is planned here.
    `sram_budget` bounds the linker script's SRAM assertion (the board's SRAM by default).
    `tree`: the TFLM tree the project is for; its `tflm_sources.mk` (the TFLM and CMSIS-NN files the
    model's ops need, derived from that tree) is written now. Without it `build_for_target` writes the
    file for the tree it builds against.
    """
    out_dir = Path(out_dir)
    if target not in BOARDS:
        raise NlpoolError(f"unknown target {target!r}: use one of {', '.join(sorted(BOARDS))}")
    if not isinstance(fused_tflite, TfliteModel) and not Path(fused_tflite).is_file():
        raise NlpoolError(f"{fused_tflite} does not exist: pass the fused int8 model written by nlpool export")
    model = load_model(fused_tflite)
    ops = model_ops(model)
    if "EXP" in ops.builtins:
        raise NlpoolError(f"{model.path} still has EXP, which TFLM cannot run in int8: pass model_int8_fused.tflite, "
                          f"where each weighted pooling is one NLPOOL_WEIGHTED_POOL op")
    if arena_bytes is None:
        tflm = (plan if plan is not None else plan_tflite(model)).tflm
        predicted, required = int(tflm.total_bytes_target), int(tflm.required_bytes_target)
    else:
        predicted = required = int(arena_bytes)
    arena = arena_with_margin(required)
    board = BOARDS[target]
    budget = sram_budget if sram_budget is not None else board.sram_length

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        _write_sources(staging, model, ops, target, predicted, arena)
        if tree is not None:
            write_sources_mk(staging, tree, ops.builtins, RESOLVER_METHODS)
        if io is not None:  # camera frame to input, class names
            io.write(staging)
        (staging / "boards").mkdir()
        shutil.copy(BOARD_DIR / "startup.S", staging / "boards" / "startup.S")
        (staging / "boards" / "link.ld").write_text(linker_script(board, budget, STACK_BYTES, HEAP_BYTES))
        files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shims = [t.removeprefix("host_").removesuffix(".cc").upper() for t in _host_shims(model, ops)]
    return TflmProject(out_dir, target, ops.names, predicted, arena, shims, files)


def _render(template: str, **values: object) -> str:
    text = (TEMPLATES / template).read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    if "{{" in text:
        raise RuntimeError(f"template {template} has an unfilled placeholder")
    return text


def _write_sources(root: Path, model: TfliteModel, ops: ModelOps, target: str, predicted: int,
                   arena: int) -> None:
    fused_tflite = model.path
    data = fused_tflite.read_bytes()
    (root / "model_data.h").write_text(
        "/* The fused int8 model (generated by nlpool). */\n#ifndef NLPOOL_MODEL_DATA_H_\n"
        "#define NLPOOL_MODEL_DATA_H_\n\nextern const unsigned char g_nlpool_model_data[];\n"
        "extern const unsigned int g_nlpool_model_data_len;\n\n#endif  // NLPOOL_MODEL_DATA_H_\n")
    (root / "model_data.cc").write_text(_model_array(data, fused_tflite.name))
    (root / "io.json").write_text(json.dumps(model_io(model), indent=1) + "\n")
    calls = "\n".join(f"  TF_LITE_ENSURE_STATUS(resolver.{call});" for call in ops.resolver_calls())
    # Register and compile only the custom ops the model uses: the resolver is sized to exactly its ops.
    customs = ops.custom_kernels
    registrations = "".join(f"  const TFLMRegistration {k.variable} = nlpool::{k.register}();\n"
                            f"  TF_LITE_ENSURE_STATUS(resolver.AddCustom(nlpool::{k.name_constant}, &{k.variable}));\n"
                            for k in customs)
    (root / "main.cc").write_text(_render(
        "main.cc.in", arena_bytes=arena, predicted_bytes=predicted, num_ops=len(ops.names), op_list=", ".join(ops.names),
        custom_includes="".join(f'#include "{k.op_header}"\n' for k in customs),
        resolver_calls=calls, custom_registration=registrations + "  return kTfLiteOk;",
        ticks_per_second=round(1e9 / BOARDS[target].ns_per_tick)))
    shutil.copy(TEMPLATES / "nlpool_tflm.h", root / "nlpool_tflm.h")
    (root / "kernels").mkdir()
    if customs:
        shutil.copy(TEMPLATES / CUSTOM_OPS_HEADER, root / CUSTOM_OPS_HEADER)
    for name, kernel in zip(ops.customs, customs, strict=True):
        for file in (kernel.op_source, *kernel.op_headers):
            shutil.copy(TEMPLATES / file, root / file)
        (root / kernel.op_header).write_text(_render(f"{kernel.op_header}.in", op_name=name))
        for file in kernel.kernel_files:
            shutil.copy(FIRMWARE_DIR / "kernels" / file, root / "kernels" / file)
    (root / "platform").mkdir()
    for name in ("nl_platform.h", "cortex_m.c", "host.c"):
        shutil.copy(FIRMWARE_DIR / "platform" / name, root / "platform" / name)
    shims = _host_shims(model, ops)
    if shims:
        (root / "host_shims").mkdir()
        for template, kernel in shims.items():
            shutil.copy(TEMPLATES / template, root / "host_shims" / template.removeprefix("host_"))
            shutil.copy(FIRMWARE_DIR / "kernels" / kernel.source, root / "host_shims" / kernel.source)
        (root / "host_shims" / KERNEL_HEADER).write_text(kernel_header(shims.values()))
        for header in SHARED_HEADERS:
            shutil.copy(FIRMWARE_DIR / "kernels" / header, root / "host_shims" / header)
    board = BOARDS[target]
    (root / "Makefile").write_text(_render(
        "Makefile.in", target=target, cpu_flags=board.cpu_flags,
        custom_sources="".join(f" {k.op_source}" for k in customs),
        kernel_sources=" ".join(f"kernels/{k.stem}.c" for k in customs),
        core_sources=" \\\n".join(f"  {path}" for path in CORE_SOURCES),
        tflm_ops=" ".join(ops.builtins)))
    (root / "README.md").write_text(_render(
        "README.md.in", target=target, machine=board.machine,
        ops="\n".join(f"- `{name}`" for name in ops.names), custom_ops=_custom_op_note(ops),
        ops_count_note=f"{len(ops.builtins)} builtin + {len(ops.customs)} custom", predicted=predicted, arena=arena,
        margin=arena - predicted, arena_h=human_bytes(arena), model=fused_tflite.name,
        host_shims=_shim_note(shims)))


def _host_shims(model: TfliteModel, ops: ModelOps) -> dict[str, Kernel]:
    """Host-only kernels replacing what XMOS's fork lacks or gets wrong: {template: nlpool C kernel}."""
    shims = {}
    if "BATCH_MATMUL" in ops.builtins:
        shims["host_batch_matmul.cc"] = HOST_SHIM_KERNELS["BATCH_MATMUL"]
    if per_channel_fully_connected(model):
        shims["host_fully_connected.cc"] = HOST_SHIM_KERNELS["FULLY_CONNECTED"]
    return shims


def _custom_op_note(ops: ModelOps) -> str:
    """The README's file entries of the model's custom-op kernels and the header they share."""
    notes = "".join(f"- `{k.op_source}` / `.h`: the custom op `{name}` ({k.readme}, the same C function nlpool's "
                    "AOT firmware calls).\n" for name, k in zip(ops.customs, ops.custom_kernels, strict=True))
    if ops.customs:
        notes += (f"- `{CUSTOM_OPS_HEADER}`: what the custom-op kernels share: the persistent op data of their init, "
                  "reading the FlexBuffer options (the root map, one int32 option) and a tensor's per-tensor "
                  "quantisation.\n")
    return notes


def _shim_note(shims: dict[str, Kernel]) -> str:
    if not shims:
        return ""
    names = ", ".join(t.removeprefix("host_").removesuffix(".cc").upper() for t in shims)
    return (f"- `host_shims/` (host build only, never on Cortex-M): {names} run nlpool's own C kernels in the "
            "host build, because XMOS's fork has no BATCH_MATMUL kernel and its FULLY_CONNECTED applies the "
            "first channel's scale to every channel of per-channel weights (see nlpool's docs/tflm.md).")


def _model_array(data: bytes, name: str) -> str:
    """The flatbuffer as a 16-byte aligned const array (TFLM reads it in place, no copy).

    Written as string-literal rows of \\xNN escapes rather than an initializer list: compilers parse
    them several times faster, which matters for megabyte models (the array gains one trailing NUL).
    """
    escapes = [f"\\x{b:02x}" for b in range(256)]
    rows = ["\"" + "".join(escapes[b] for b in data[i:i + 32]) + "\"" for i in range(0, len(data), 32)]
    body = "\n  ".join(rows)
    return (f"/* {name}, {len(data)} bytes (generated by nlpool). */\n#include \"model_data.h\"\n\n"
            f"alignas(16) const unsigned char g_nlpool_model_data[] =\n  {body};\n"
            f"const unsigned int g_nlpool_model_data_len = {len(data)};\n")
