"""Build a generated TFLM project for its Cortex-M target against the user's upstream TFLM tree, and
run it under QEMU.

The tree comes from `--tflm-dir` or `NLPOOL_TFLM_DIR`: a flat tree made by TFLM's
`create_tflm_tree.py` or a tflite-micro checkout. The project's own Makefile does the build (so a
user can repeat exactly what nlpool checked); nlpool only points its object folder at a cache in
the user's cache folder, keyed by the tree's content, the compiler and the flags, so the TFLM
objects are compiled once per tree and core, not once per export.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware.aot import CmsisNnBuffers, cmsis_nn_buffers, find_cmsis_nn
from firmware.boards import BOARDS
from firmware.common import OpProfile, Profile
from firmware.run import elf_sizes, run_executable
from firmware.tflm.host import io_spec
from firmware.tflm.ops import RESOLVER_METHODS
from firmware.tflm.project import TEMPLATES
from firmware.tflm.sources import model_sources, read_ops, write_sources_mk
from firmware.timing import CycleEstimate, estimate_elf
from memory_planner import MemoryPlan, builtin_kernel_data, cmsis_nn_persistent_fc, plan_tflite
from nlpool.core.checks import input_folder
from nlpool.core.custom_ops import ATTENTION_OP_NAME, WEIGHTED_POOL_OP_NAME
from nlpool.core.errors import NlpoolError
from nlpool.core.tflite import TfliteModel, load_model

TFLM_DIR_ENV = "NLPOOL_TFLM_DIR"
TREE_HINT = ("get a TFLM source tree: git clone https://github.com/tensorflow/tflite-micro, then either "
             "make its flat tree (python3 tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py "
             "<out>; add --makefile_options=\"OPTIMIZED_KERNEL_DIR=cmsis_nn\" for CMSIS-NN kernels) or run TFLM's "
             "Makefile once so it downloads flatbuffers and gemmlowp; then pass --tflm-dir <tree> or set "
             f"{TFLM_DIR_ENV} (see docs/tflm.md)")
# Files whose content decides what the TFLM objects are (headers included: they are compiled in).
_SOURCE_SUFFIXES = (".h", ".hpp", ".cc", ".c", ".inc")
_STATS = re.compile(r"NLPOOL_STATS inferences=(\d+) ticks_hi=(\d+) ticks_lo=(\d+) arena_used=(\d+) arena=(\d+) "
                    r"stack_high_water=(\d+)")
_KERNELS = re.compile(r"NLPOOL_TFLM kernels=(\S+)")
_BUDGET = re.compile(r"nlpool: SRAM use .*")
# The first inference's MicroProfiler events (MicroProfiler::LogCsv: a header, then event,tag,ticks).
_PROFILE = re.compile(r"NLPOOL_TFLM_PROFILE inference=0 ticks=(\d+)\s*\n(.*?)NLPOOL_TFLM_PROFILE_END", re.S)
_PROFILE_EVENT = re.compile(r"^(\d+),([^,\s]+),(-?\d+)\s*$", re.M)
# The TFLM objects compile on these many jobs (the machines nlpool's docs assume have two cores).
MAKE_JOBS = max(1, min(os.cpu_count() or 1, 2))


@dataclass(frozen=True)
class TflmTree:
    """A user's TFLM source tree: its root, where its third-party code is, and which kernels it builds."""

    path: Path
    third_party: Path
    kernels: str  # "cmsis-nn" when the tree has CMSIS-NN, else "reference"


@dataclass(frozen=True)
class TargetBuild:
    """The linked firmware, the cache folder its TFLM objects are in, and what building cost."""

    elf: Path
    cache_dir: Path
    seconds: float
    tflm_objects_compiled: int


@dataclass(frozen=True)
class TargetRun:
    """One run of the TFLM firmware on the emulated target: outputs and what it measured."""

    outputs: list[np.ndarray]
    kernels: str
    arena_used_bytes: int
    arena_bytes: int
    stack_high_water_bytes: int
    instructions_per_inference: int
    flash_bytes: int
    sram_used_bytes: int
    # MicroProfiler's per-op instructions of the first inference (None: the firmware printed none), and
    # that inference's own measured instructions, which the ops sum to within the profiler's overhead.
    profile: Profile | None = None
    profiled_inference_instructions: int | None = None
    timing: CycleEstimate | None = None  # the cycle estimate (run_on_target's `estimate`), None when not asked

    @property
    def estimated_cycles(self) -> int | None:
        return None if self.timing is None else self.timing.cycles_for(self.instructions_per_inference)


def find_tree(tflm_dir: str | Path | None = None) -> TflmTree | None:
    """The tree from `tflm_dir`, else from $NLPOOL_TFLM_DIR, else None; NlpoolError if it is not a TFLM tree."""
    raw = tflm_dir if tflm_dir is not None else os.environ.get(TFLM_DIR_ENV) or None
    if raw is None:
        return None
    where = "--tflm-dir" if tflm_dir is not None else TFLM_DIR_ENV
    path = input_folder(where, raw, TREE_HINT).resolve()
    if not (path / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file():
        raise NlpoolError(f"{where} {path} is not a TFLM source tree (no tensorflow/lite/micro/micro_interpreter.h): {TREE_HINT}")
    checkout = path / "tensorflow" / "lite" / "micro" / "tools" / "make"
    third_party = checkout / "downloads" if (checkout / "Makefile").is_file() else path / "third_party"
    if not (third_party / "flatbuffers" / "include" / "flatbuffers" / "flatbuffers.h").is_file():
        raise NlpoolError(f"{where} {path} has no flatbuffers in {third_party}: in a tflite-micro checkout run TFLM's "
                          "Makefile once (make -f tensorflow/lite/micro/tools/make/Makefile third_party_downloads)")
    cmsis_nn = (third_party / "cmsis_nn" / "Include" / "arm_nnfunctions.h").is_file()
    return TflmTree(path, third_party, "cmsis-nn" if cmsis_nn else "reference")


def user_cache_dir() -> Path:
    """nlpool's cache folder: $XDG_CACHE_HOME/nlpool, else ~/.cache/nlpool."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nlpool"


def _source_files(tree: TflmTree) -> Iterator[Path]:
    roots = [tree.path / "tensorflow" / "lite", tree.path / "tensorflow" / "compiler", tree.third_party]
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(_SOURCE_SUFFIXES):
                    yield Path(dirpath) / name


def cache_key(tree: TflmTree, target: str) -> str:
    """Hash of what the TFLM objects depend on: the tree's path and source content, the compiler's
    version, the core's flags and the project Makefile template's TFLM flags and compile rules (the
    section `_cache_relevant` cuts out; the source lists are not in it: objects are per file)."""
    digest = hashlib.sha256()
    compiler = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout
    template = _cache_relevant((TEMPLATES / "Makefile.in").read_text())
    for part in (str(tree.path), tree.kernels, BOARDS[target].cpu_flags, compiler.splitlines()[0] if compiler else "",
                 template):
        digest.update(part.encode() + b"\0")
    for path in _source_files(tree):
        digest.update(str(path.relative_to(tree.path)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:20]


def _cache_relevant(template: str) -> str:
    """The part of the Makefile template that decides how a TFLM object is compiled (between its two
    cache-key comments)."""
    start = template.index("# nlpool's object cache is keyed by")
    return template[start:template.index("# nlpool's object cache key ends here.", start)]


def tflm_plan(fused_tflite: str | Path | TfliteModel, target: str, tree: TflmTree | None = None,
              buffers: CmsisNnBuffers | None = None) -> MemoryPlan:
    """The memory plan whose `tflm` predicts TFLM's arena for this model built for `target` against
    `tree` (reference kernels without one). With CMSIS-NN kernels: the scratch buffers they request on
    that core (CMSIS-NN's own buffer-size functions, probed with the tree's CMSIS-NN, or `buffers` when
    the caller probed them already with the same tree) are planned in the head, and the CMSIS-NN
    kernels' own persistent data in the tail (`memory_planner.tflm_model.builtin_kernel_data`: larger
    OpData for FULLY_CONNECTED and the pooling ops; on MVE the FULLY_CONNECTED kernel sums, kept
    instead of the scratch buffer). Measured on the default model: the MVE depthwise kernel's 4,464 B
    made the Cortex-M55 arena 2.8 % larger than a prediction without them."""
    model = load_model(fused_tflite)
    if tree is None or tree.kernels != "cmsis-nn":
        return plan_tflite(model)
    mve = "-mcpu=cortex-m55" in BOARDS[target].cpu_flags  # the one core here with Helium (MVE)
    cmsis_nn = find_cmsis_nn(tree.third_party / "cmsis_nn")
    if buffers is None or cmsis_nn is None or buffers.root != cmsis_nn.root:
        buffers = cmsis_nn_buffers(model, cmsis_nn)
    persistent_fc = {op.position for op in model.operators if cmsis_nn_persistent_fc(model, op, "cmsis-nn", mve)}
    scratch = {position: size for position, size in buffers.scratch(target).items() if position not in persistent_fc}
    return plan_tflite(model, kernel_scratch=scratch, tflm_kernel_data=builtin_kernel_data(model, "cmsis-nn", mve))


class SramBudgetExceeded(NlpoolError):
    """The TFLM firmware links only beyond the SRAM budget (TFLM's arena and runtime do not fit it)."""


def build_for_target(project_dir: str | Path, target: str, tree: TflmTree) -> TargetBuild:
    """`make` in the project against `tree`, with the TFLM objects in the user cache (locked while building).

    When only the profiler's 80 KiB push the firmware over the SRAM budget, it is built again without
    the profiler (`-DNLPOOL_TFLM_NO_PROFILE`; the run then has no profile) rather than failing; when
    it does not fit even then, SramBudgetExceeded says so."""
    project_dir = Path(project_dir)
    try:
        write_sources_mk(project_dir, tree, read_ops(project_dir), RESOLVER_METHODS)
    except LookupError as err:
        raise NlpoolError(f"the TFLM project in {project_dir} cannot be built against {tree.path}: {err}") from err
    cache = user_cache_dir() / "tflm" / f"{target}-{tree.kernels}-{cache_key(tree, target)}"
    cache.mkdir(parents=True, exist_ok=True)
    before = sum(1 for _ in cache.rglob("*.o"))
    start = time.monotonic()
    make = ["make", "-s", f"-j{MAKE_JOBS}", f"TFLM_DIR={tree.path}", f"TFLM_KERNELS={tree.kernels}",
            f"TFLM_THIRD_PARTY={tree.third_party}", f"TFLM_OBJ_DIR={cache}"]
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two exports sharing the cache compile each object once
        proc = subprocess.run(make, cwd=project_dir, capture_output=True, text=True)
        if proc.returncode != 0 and _BUDGET.search(proc.stderr + proc.stdout):
            (project_dir / "build" / target / "main.o").unlink(missing_ok=True)  # make cannot see a flag change
            proc = subprocess.run([*make, "CXXFLAGS_EXTRA=-DNLPOOL_TFLM_NO_PROFILE"], cwd=project_dir,
                                  capture_output=True, text=True)
    if proc.returncode != 0:
        text = proc.stderr + proc.stdout
        budget = _BUDGET.search(text)
        if budget:
            raise SramBudgetExceeded(f"the TFLM firmware for {target} does not link: {budget.group(0).strip()}")
        lines = [ln for ln in text.splitlines() if "error" in ln.lower() or ln.startswith("nlpool:")] or text.splitlines()[-1:]
        raise NlpoolError(f"building the TFLM firmware in {project_dir} against {tree.path} failed: "
                          f"{lines[0].strip() if lines else 'see make output'} (run make there to see all)")
    compiled = sum(1 for _ in cache.rglob("*.o")) - before
    return TargetBuild(project_dir / "build" / target / "firmware.elf", cache, time.monotonic() - start, compiled)


def parse_profile(log: str, ns_per_tick: float, kernel_of: Callable[[str], str]) -> tuple[Profile, int] | None:
    """The per-op profile the firmware printed and the profiled inference's measured instructions, or None.

    One OpProfile per MicroProfiler event (one event per op, in op order); `kernel_of(tag)` names the
    kernel set that ran the op. Ticks become instructions with `ns_per_tick` (QEMU -icount shift=0)."""
    found = _PROFILE.search(log)
    if found is None:
        return None
    ops = tuple(OpProfile(int(index), tag, kernel_of(tag), round(int(ticks) * ns_per_tick))
                for index, tag, ticks in _PROFILE_EVENT.findall(found.group(2)))
    return Profile(ops), round(int(found.group(1)) * ns_per_tick)


# MicroProfiler's event methods, called around every op's Invoke: the cycle estimate's op markers.
PROFILER_BEGIN, PROFILER_END = "tflite::MicroProfiler::BeginEvent", "tflite::MicroProfiler::EndEvent"


def run_on_target(project_dir: str | Path, target: str, elf: Path, inputs: np.ndarray,
                  timeout_s: float = 900, tree: TflmTree | None = None, estimate: bool = False,
                  clock_mhz: float | None = None) -> TargetRun:
    """Run the firmware under QEMU on `inputs` ((n, *input_shape) int8, the model's one input).

    `estimate` runs the first input once more under the cycle estimate's counting plugin (per op from
    MicroProfiler's events; milliseconds at `clock_mhz`, None: the core's typical board clock).

    `tree`: the tree it was built against, to name which kernel set ran each op in the profile (without
    it every builtin op is put down to the kernels the firmware reports)."""
    spec = io_spec(project_dir)
    shape, dtype = tuple(spec["inputs"][0]["shape"]), np.dtype(spec["inputs"][0]["dtype"])
    inputs = np.asarray(inputs)
    if len(spec["inputs"]) != 1 or inputs.shape[1:] != shape or inputs.dtype != dtype:
        raise NlpoolError(f"the TFLM firmware takes one {dtype} input {shape} per inference, got {inputs.dtype} {inputs.shape}")
    log, raw = run_executable(elf, target, np.ascontiguousarray(inputs).tobytes(), timeout_s, f"{len(inputs)} inferences")
    stats, kernels = _STATS.search(log), _KERNELS.search(log)
    if stats is None or kernels is None:
        raise NlpoolError(f"the TFLM firmware printed no NLPOOL_STATS line: {log.strip()[-200:]}")
    out = spec["outputs"][0]
    done = int(stats.group(1))
    expected = done * int(np.prod(out["shape"])) * np.dtype(out["dtype"]).itemsize
    if len(spec["outputs"]) != 1 or done != len(inputs) or len(raw) != expected:
        raise NlpoolError(f"the TFLM firmware ran {done} of {len(inputs)} inferences and wrote {len(raw)} output bytes")
    outputs = [np.frombuffer(raw, np.dtype(out["dtype"])).reshape(done, *out["shape"])]
    ticks = (int(stats.group(2)) << 32) + int(stats.group(3))
    flash, sram = elf_sizes(elf)
    ns_per_tick = BOARDS[target].ns_per_tick
    built = kernels.group(1)
    customs = {WEIGHTED_POOL_OP_NAME, ATTENTION_OP_NAME}
    sources = model_sources(tree, read_ops(project_dir), RESOLVER_METHODS) if tree is not None else None

    def kernel_of(tag: str) -> str:
        if tag in customs:
            return "portable"
        return sources.kernel_set(tag) if sources is not None else f"tflm-{built}"

    profiled = parse_profile(log, ns_per_tick, kernel_of)
    profile, profiled_instructions = profiled if profiled is not None else (None, None)
    timing = None
    if estimate and profile is not None:
        first = np.ascontiguousarray(inputs[:1]).tobytes()
        timing = estimate_elf(elf, target, first, len(profile.ops), PROFILER_BEGIN, PROFILER_END, clock_mhz)
        profile = profile.with_cycles(timing.op_cycles)
    return TargetRun(outputs, built, int(stats.group(4)), int(stats.group(5)), int(stats.group(6)),
                     round(ticks * ns_per_tick / max(done, 1)), flash, sram, profile, profiled_instructions, timing)
