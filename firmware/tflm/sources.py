"""Which upstream TFLM and CMSIS-NN source files a model needs, so the project compiles those and nothing else.

A whole TFLM library is ~200 C++ files (7-8 minutes on two cores); a model uses the interpreter core
and the kernels its op resolver registers, a quarter of that. The core is a fixed list
(`CORE_SOURCES`). The kernel files are derived from the user's tree, not from a hand table (a table
missed `arm_convolve_1x1_s8_fast`, which TFLM's CMSIS-NN FULLY_CONNECTED calls, and the MVE depthwise
kernel's `arm_transpose_s8`): starting from the `Register_*` function that TFLM's
`MicroMutableOpResolver` calls for each of the model's ops, every source file that defines a function
a chosen file names is added, transitively, over the tree's kernel sources (`kernels/`, its
`cmsis_nn/` versions in a CMSIS-NN build), `tensorflow/lite/kernels/` and CMSIS-NN's `Source/`.
A name counts when it appears in the file or in a function body of a header it includes, so a
function passed by pointer (`RegisterOp(ConvInit, ConvPrepare, ...)`) counts as well as a call. The
scan reads the C/C++ text (comments and strings removed, brace nesting tracked to tell a definition
from a use, `static` and anonymous-namespace functions kept local); it ignores `#if`, so it may
add a file that one core does not need (the MVE-only transpose on an M4), never miss one.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware.tflm.target import TflmTree

# The interpreter, allocator, memory planner, flatbuffer parsing, the kernel helpers every kernel links
# against, and `MicroProfiler` (main.cc profiles one inference per op with it). Left out on purpose: test
# helpers, the recording allocator and `micro_time.cc`: a tree made for project generation compiles it
# as a stub whose clock is always 0, so the project defines `tflite::GetCurrentTimeTicks()` and
# `ticks_per_second()` itself, from the platform's SysTick counter (main.cc).
CORE_SOURCES: tuple[str, ...] = (
    "tensorflow/compiler/mlir/lite/core/api/error_reporter.cc",
    "tensorflow/compiler/mlir/lite/schema/schema_utils.cc",
    "tensorflow/lite/core/api/flatbuffer_conversions.cc",
    "tensorflow/lite/core/api/tensor_utils.cc",
    "tensorflow/lite/core/c/common.cc",
    "tensorflow/lite/kernels/kernel_util.cc",
    "tensorflow/lite/kernels/internal/common.cc",
    "tensorflow/lite/kernels/internal/portable_tensor_utils.cc",
    "tensorflow/lite/kernels/internal/quantization_util.cc",
    "tensorflow/lite/kernels/internal/runtime_shape.cc",
    "tensorflow/lite/kernels/internal/tensor_ctypes.cc",
    "tensorflow/lite/micro/arena_allocator/non_persistent_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/arena_allocator/persistent_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/cortex_m_generic/debug_log.cc",
    "tensorflow/lite/micro/flatbuffer_utils.cc",
    "tensorflow/lite/micro/memory_helpers.cc",
    "tensorflow/lite/micro/memory_planner/greedy_memory_planner.cc",
    "tensorflow/lite/micro/memory_planner/linear_memory_planner.cc",
    "tensorflow/lite/micro/memory_planner/non_persistent_buffer_planner_shim.cc",
    "tensorflow/lite/micro/micro_allocation_info.cc",
    "tensorflow/lite/micro/micro_allocator.cc",
    "tensorflow/lite/micro/micro_context.cc",
    "tensorflow/lite/micro/micro_interpreter.cc",
    "tensorflow/lite/micro/micro_interpreter_context.cc",
    "tensorflow/lite/micro/micro_interpreter_graph.cc",
    "tensorflow/lite/micro/micro_log.cc",
    "tensorflow/lite/micro/micro_op_resolver.cc",
    "tensorflow/lite/micro/micro_profiler.cc",
    "tensorflow/lite/micro/micro_resource_variable.cc",
    "tensorflow/lite/micro/micro_utils.cc",
    "tensorflow/lite/micro/tflite_bridge/flatbuffer_conversions_bridge.cc",
    "tensorflow/lite/micro/tflite_bridge/micro_error_reporter.cc",
    "tensorflow/lite/micro/kernels/kernel_util.cc",
)

KERNEL_DIR = "tensorflow/lite/micro/kernels"
RESOLVER_HEADER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"
# Where definitions are looked for, relative to the tree: TFLM's kernels (top level; `cmsis_nn/` is
# added for a CMSIS-NN build), the TFLite kernel helpers, and the micro runtime's own folders.
_TFLM_SEARCH = ("tensorflow/lite/micro/kernels", "tensorflow/lite/kernels", "tensorflow/lite/core",
                "tensorflow/lite/micro/arena_allocator", "tensorflow/lite/micro/memory_planner",
                "tensorflow/lite/micro/tflite_bridge", "tensorflow/compiler/mlir/lite")
_RECURSIVE = ("tensorflow/lite/kernels", "tensorflow/lite/core", "tensorflow/compiler/mlir/lite")
_KEYWORDS = frozenset({
    "if", "for", "while", "switch", "return", "sizeof", "alignof", "decltype", "static_cast", "reinterpret_cast",
    "const_cast", "dynamic_cast", "defined", "case", "do", "else", "new", "delete", "catch", "throw", "__attribute__",
    "alignas", "noexcept", "static_assert"})
_COMMENT_OR_STRING = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
_QUALIFIED = re.compile(r"(?:[A-Za-z_]\w*\s*::\s*)*[A-Za-z_]\w*")
_ATTRIBUTE = re.compile(r"__attribute__\s*\(\(.*?\)\)", re.S)
_REGISTRATION = re.compile(r"\b(Register_\w+)\s*\(")


@dataclass(frozen=True)
class SourceScan:
    """What one C/C++ file defines and names. Names are written with their namespaces ("tflite::Foo";
    a member function is filed under its class, "tflite::MicroContext", since a user names the class):
    `exported` definitions (callable from other files), the simple names of `local` ones (static,
    inline or in an anonymous namespace), every name it uses as written, qualified or not (`names`),
    those inside its function and type bodies (`body_names`: what a header contributes to the files
    including it) and its `#include "..."` targets."""

    exported: frozenset[str]
    local: frozenset[str]
    names: frozenset[str]
    body_names: frozenset[str]
    includes: tuple[str, ...]


def _blank(match: re.Match[str]) -> str:
    """A comment becomes its newlines (line structure kept for the preprocessor lines), a literal an empty one."""
    text = match.group(0)
    return '""' if text[0] in "\"'" else "\n" * text.count("\n") + " "


def _names(code: str) -> set[str]:
    return {re.sub(r"\s+", "", m) for m in _QUALIFIED.findall(code)} - _KEYWORDS


@functools.lru_cache(maxsize=4096)
def _scan_text(text: str) -> SourceScan:
    includes = tuple(_INCLUDE.findall(text))
    code = _COMMENT_OR_STRING.sub(_blank, text)
    names = _names(code)
    code = "\n".join("" if line.lstrip().startswith("#") else line for line in code.split("\n"))
    code = _ATTRIBUTE.sub(" ", code)
    exported: set[str] = set()
    local: set[str] = set()
    body: list[str] = []
    stack: list[str] = []  # a namespace's name ("" anonymous, "extern" for extern "C"), or "{" for a body
    segment_start = 0
    for match in re.finditer(r"[{};]", code):
        char = match.group(0)
        segment = code[segment_start:match.start()]
        in_body = "{" in stack
        if in_body:
            body.append(segment)
        if char == "{":
            stripped = segment.strip()
            namespace = re.search(r"\bnamespace\s*([\w:]*)$", stripped)
            if namespace is not None:
                stack.append(namespace.group(1))
            elif re.search(r'\bextern\s*""$', stripped):
                stack.append("extern")
            else:
                if not in_body:
                    _note_definition(stripped, stack, exported, local)
                stack.append("{")
        elif char == "}" and stack:
            stack.pop()
        segment_start = match.end()
    return SourceScan(frozenset(exported), frozenset(local), frozenset(names), frozenset(_names(" ".join(body))), includes)


def _note_definition(signature: str, namespaces: list[str], exported: set[str], local: set[str]) -> None:
    """File the function that `signature` (the text before a top-level `{`) defines, if it is one."""
    head = signature.split("(", 1)[0]
    if "=" in head or re.search(r"\b(struct|class|union|enum)\b", head):
        return
    declarator = re.search(r"((?:\w+\s*::\s*)*)(~?\w+)\s*$", head)
    if declarator is None or declarator.group(2) in _KEYWORDS:
        return
    qualifier = [q for q in re.sub(r"\s+", "", declarator.group(1)).split("::") if q]
    name = declarator.group(2)
    if "" in namespaces or re.search(r"\b(static|inline)\b", head):
        local.add(name)
        return
    if qualifier and qualifier[-1][:1].isupper():  # Class::Method: filed under the class
        name = qualifier.pop()
    exported.add("::".join([n for n in namespaces if n != "extern"] + qualifier + [name]))


def scan_file(path: Path) -> SourceScan:
    """The scan of one source or header (cached by content)."""
    return _scan_text(path.read_text(errors="replace"))


@dataclass(frozen=True)
class TflmSources:
    """The model's sources in a tree: TFLM kernel files (paths relative to the tree) and CMSIS-NN files
    (relative to its `cmsis_nn/` folder), and which file registers each builtin op."""

    kernels: tuple[str, ...]
    cmsis_nn: tuple[str, ...]
    registrations: dict[str, str]

    def kernel_set(self, op: str) -> str:
        """"tflm-cmsis-nn" when the op's registration is TFLM's `kernels/cmsis_nn/` version, else "tflm-reference"."""
        return "tflm-cmsis-nn" if "/cmsis_nn/" in self.registrations.get(op, "") else "tflm-reference"


@dataclass(frozen=True)
class _Index:
    """Every file of the tree that may be compiled, by the definitions it exports: simple name ->
    ((namespace path and name), file) for each definition of that name."""

    definitions: dict[str, tuple[tuple[tuple[str, ...], Path], ...]]
    core: frozenset[Path]
    include_dirs: tuple[Path, ...]

    def files_defining(self, name: str) -> list[Path]:
        """The files defining what `name` refers to: its qualifier, if written, must end its definition's path."""
        parts = tuple(name.split("::"))
        return [path for full, path in self.definitions.get(parts[-1], ()) if full[-len(parts):] == parts]


def _candidate_files(tree: TflmTree) -> list[Path]:
    files: list[Path] = []
    for folder in _TFLM_SEARCH:
        root = tree.path / folder
        if not root.is_dir():
            continue
        found = [Path(d) / f for d, _, names in os.walk(root) for f in names] if folder in _RECURSIVE else list(root.iterdir())
        files += sorted(f for f in found if f.suffix == ".cc" and "test" not in f.name)
    if tree.kernels == "cmsis-nn":
        optimized = sorted((tree.path / KERNEL_DIR / "cmsis_nn").glob("*.cc"))
        replaced = {f.name for f in optimized}
        files = [f for f in files if not (f.parent == tree.path / KERNEL_DIR and f.name in replaced)] + optimized
        source = tree.third_party / "cmsis_nn" / "Source"
        files += sorted(Path(d) / f for d, _, names in os.walk(source) for f in names if f.endswith(".c"))
    return files


@functools.lru_cache(maxsize=16)
def _index(tree: TflmTree) -> _Index:
    definitions: dict[str, list[tuple[tuple[str, ...], Path]]] = {}
    for path in _candidate_files(tree):
        for name in scan_file(path).exported:
            full = tuple(name.split("::"))
            definitions.setdefault(full[-1], []).append((full, path))
    include_dirs = [tree.path]
    if tree.kernels == "cmsis-nn":
        include_dirs += [tree.third_party / "cmsis_nn", tree.third_party / "cmsis_nn" / "Include"]
    return _Index({k: tuple(v) for k, v in definitions.items()}, frozenset(tree.path / p for p in CORE_SOURCES),
                  tuple(include_dirs))


def _header_names(path: Path, include_dirs: tuple[Path, ...], seen: set[Path]) -> set[str]:
    """Names used in the function bodies of the headers `path` includes, transitively (the tree's own
    headers and CMSIS-NN's; flatbuffers and the C library are left out: they call nothing of the tree)."""
    names: set[str] = set()
    for include in scan_file(path).includes:
        for folder in (path.parent, *include_dirs):
            header = folder / include
            if header.is_file():
                header = header.resolve()
                if header not in seen and "flatbuffers" not in header.parts:
                    seen.add(header)
                    names |= scan_file(header).body_names | _header_names(header, include_dirs, seen)
                break
    return names


def resolver_registrations(tree: TflmTree, methods: dict[str, str]) -> dict[str, str]:
    """Op -> the `Register_*` function TFLM's MicroMutableOpResolver method for it registers by default."""
    text = (tree.path / RESOLVER_HEADER).read_text()
    found = {}
    for op, method in methods.items():
        start = re.search(rf"\b{method}\s*\(", text)
        if start is None:
            continue
        end = text.find("}", start.end())
        registration = _REGISTRATION.search(text, start.end(), end)
        if registration is not None:
            found[op] = registration.group(1)
    return found


def model_sources(tree: TflmTree, builtins: Iterable[str], methods: dict[str, str]) -> TflmSources:
    """The TFLM kernel and CMSIS-NN files the model's builtin ops need in `tree` (see the module doc).

    `methods`: op -> MicroMutableOpResolver method (firmware.tflm.ops.RESOLVER_METHODS). Raises
    LookupError naming an op whose registration no file of the tree defines."""
    index = _index(tree)
    registrations = resolver_registrations(tree, {op: methods[op] for op in builtins})
    chosen: dict[Path, None] = {}
    registered: dict[str, str] = {}
    queue: list[Path] = []
    for op in builtins:
        files = index.files_defining(registrations.get(op, "-"))
        if not files:
            raise LookupError(f"{tree.path} has no kernel registering {op} ({registrations.get(op, 'no resolver entry')})")
        registered[op] = str(files[0].relative_to(tree.path))
        queue += files
    while queue:
        path = queue.pop()
        if path in chosen or path in index.core:
            continue
        chosen[path] = None
        scan = scan_file(path)
        own = scan.local | {name.rsplit("::", 1)[-1] for name in scan.exported}
        used = {name for name in scan.names | _header_names(path, index.include_dirs, set()) if name.rsplit("::", 1)[-1] not in own}
        queue += [f for name in sorted(used) for f in index.files_defining(name) if f not in chosen]
    cmsis_root = tree.third_party / "cmsis_nn"
    cmsis = sorted(str(p.relative_to(cmsis_root)) for p in chosen if p.is_relative_to(cmsis_root))
    kernels = sorted(str(p.relative_to(tree.path)) for p in chosen if not p.is_relative_to(cmsis_root))
    return TflmSources(tuple(kernels), tuple(cmsis), registered)


SOURCES_MK = "tflm_sources.mk"


def write_sources_mk(project_dir: Path, tree: TflmTree, builtins: Iterable[str], methods: dict[str, str]) -> TflmSources:
    """Write the project's `tflm_sources.mk`: the sources `model_sources` derives for `tree`, which the
    project's Makefile compiles (rewritten only when it changes, so make sees no new file)."""
    sources = model_sources(tree, list(builtins), methods)
    rows = lambda paths: "".join(f" \\\n  {p}" for p in paths)  # noqa: E731
    text = (f"# The TFLM sources this model's ops need in {tree.path} ({tree.kernels} kernels), derived by nlpool\n"
            f"# (firmware/tflm/sources.py): {len(sources.kernels)} TFLM kernel files, {len(sources.cmsis_nn)} CMSIS-NN files.\n"
            f"TFLM_SOURCES_KERNELS := {tree.kernels}\nTFLM_KERNEL_SRCS :={rows(sources.kernels)}\n"
            f"CMSIS_NN_SRCS :={rows(sources.cmsis_nn)}\n")
    path = Path(project_dir) / SOURCES_MK
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return sources


def read_ops(project_dir: Path) -> list[str]:
    """The builtin ops the generated project's Makefile lists (TFLM_OPS)."""
    found = re.search(r"^TFLM_OPS :=(.*)$", (Path(project_dir) / "Makefile").read_text(), re.M)
    return found.group(1).split() if found else []
