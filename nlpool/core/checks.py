"""The one rule per kind of user input, checked before any work starts: output paths, numbers, input files, folders.

Every command (and the Python API) calls these at its start, so a bad value fails in one line naming the
flag, the problem and the fix, and never after an epoch of training or half an export. A new kind of input
gets one function here; the commands call it with their flag's name (docs/architecture.md, "Input checks").

Each function returns the checked value (a path made absolute) or raises `NlpoolError`; `error` lets a
caller with its own error type (the TFLite reader's `TfliteFileError`) raise that instead.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import TypeVar

from .errors import NlpoolError

NAME_MAX_BYTES = 255  # one path component, on every file system Linux and macOS use
PATH_MAX_BYTES = 4095  # a whole path the kernel takes (4096 with the terminating zero)
# nlpool writes an output first under a temporary sibling name (".NAME.nlpool-PID-START.RANDOM.partial" for an
# export folder, ".NAME.RANDOM.tmp" for a file) and renames it when complete: the name must leave room for that.
TEMP_NAME_BYTES = 64
OUTPUT_NAME_MAX_BYTES = NAME_MAX_BYTES - TEMP_NAME_BYTES
# Kernel interfaces that look like folders but take no files (a write there fails, or changes the kernel).
KERNEL_TREES = (Path("/proc"), Path("/sys"))

# A seed: what NumPy's and PyTorch's generators all take, and small enough that the seeds derived from it
# (seed x prime + epoch, nlpool.train and nlpool.data) stay inside 64 bits.
SEED_RANGE = (0, 2**32 - 1)

Number = TypeVar("Number", int, float)


def _shown(path: Path | str, limit: int = 80) -> str:
    """A path short enough for a one-line message (a 300-byte name would hide the rest of the line)."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"


def _bytes(name: str) -> int:
    return len(os.fsencode(name))


def _nearest_existing(path: Path) -> Path:
    ancestor = path
    while not os.path.lexists(ancestor):
        ancestor = ancestor.parent
    return ancestor


def output_path(flag: str, path: str | Path, *, folder: bool = False, suffix: str | None = None,
                parent_must_exist: bool = False, error: type[NlpoolError] = NlpoolError) -> Path:
    """An output file (or `folder`) nlpool can create or replace at `path`; returns it absolute.

    Checked without writing anything: the name (and each folder's) fits the file system with room for the
    temporary sibling it is written under first, the path is not under /proc or /sys, it is not a folder
    where a file is asked for (nor a file where a folder is), the nearest existing ancestor is a writable
    folder on a writable file system, and a file has the `suffix` its format needs.
    """
    shown = _shown(path)
    absolute = Path(os.path.abspath(Path(path).expanduser()))
    if _bytes(str(absolute)) > PATH_MAX_BYTES:
        raise error(f"{flag} {shown}: the path is {_bytes(str(absolute))} bytes, over the limit of {PATH_MAX_BYTES}: pass a shorter path")
    for part in absolute.parts[1:-1]:
        if _bytes(part) > NAME_MAX_BYTES:
            raise error(f"{flag} {shown}: the folder name {_shown(part, 24)!r} is {_bytes(part)} bytes, over the file system's limit"
                        f" of {NAME_MAX_BYTES}: pass a shorter path")
    if _bytes(absolute.name) > OUTPUT_NAME_MAX_BYTES:
        raise error(f"{flag} {shown}: the name is {_bytes(absolute.name)} bytes; an output name may have at most"
                    f" {OUTPUT_NAME_MAX_BYTES} (the file system's {NAME_MAX_BYTES} less room for the temporary name it is"
                    " written under first): pass a shorter name")
    if suffix is not None and absolute.suffix.lower() != suffix:
        raise error(f"{flag} {shown} must end in {suffix}: pass a {suffix} file name")
    real = Path(os.path.realpath(absolute))
    for tree in KERNEL_TREES:
        if real == tree or tree in real.parents:
            raise error(f"{flag} {shown}: cannot write there ({tree} is the kernel's interface, not a folder for files):"
                        " pass a path in a writable folder")
    if os.path.lexists(absolute):
        if not absolute.exists():
            raise error(f"{flag} {shown} is a link to nothing: remove it or pass another path")
        mode = os.stat(absolute).st_mode
        if folder and not stat.S_ISDIR(mode):
            raise error(f"{flag} {shown} is a file: pass a folder path")
        if not folder and stat.S_ISDIR(mode):
            raise error(f"{flag} {shown} is a folder: pass a file path")
        if not folder and not stat.S_ISREG(mode):
            raise error(f"{flag} {shown} is not a regular file (a device, pipe or socket): pass a path for a new file")
    parent = absolute.parent
    if parent_must_exist and not parent.is_dir() and not os.path.lexists(parent):
        raise error(f"{flag} {shown}: the folder {_shown(parent)} does not exist: create it or pass a path in an existing folder")
    ancestor = _nearest_existing(parent)
    if not ancestor.is_dir():
        raise error(f"{flag} {shown}: cannot write there ({_shown(ancestor)} is a file, not a folder): pass a path in a writable folder")
    if os.statvfs(ancestor).f_flag & os.ST_RDONLY:
        raise error(f"{flag} {shown}: cannot write there ({_shown(ancestor)} is on a read-only file system): pass a path in a writable"
                    " folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise error(f"{flag} {shown}: cannot write there ({_shown(ancestor)} is not writable): pass a path in a writable folder")
    return absolute


def input_file(what: str, path: str | Path, hint: str, *, error: type[NlpoolError] = NlpoolError) -> Path:
    """An existing, readable regular file at `path` (not a folder, device or pipe); `what` names it in the
    message ("checkpoint", "--image") and `hint` says what to pass instead."""
    path = Path(path)
    shown = _shown(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error(f"{what} {shown} does not exist: {hint}") from None
    except OSError as err:  # a name over the limit, a file where a folder should be, a loop of links
        raise error(f"{what} {shown} cannot be opened ({err.strerror}): {hint}") from None
    if stat.S_ISDIR(mode):
        raise error(f"{what} {shown} is a folder, not a file: {hint}")
    if not stat.S_ISREG(mode):
        raise error(f"{what} {shown} is not a regular file (a device, pipe or socket): {hint}")
    if not os.access(path, os.R_OK):
        raise error(f"{what} {shown} is not readable: {hint}")
    return path


def input_folder(what: str, path: str | Path, hint: str) -> Path:
    """An existing folder at `path`; what it must hold is the caller's rule (a TFLM tree, a CMSIS-NN tree)."""
    path = Path(path).expanduser()
    shown = _shown(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise NlpoolError(f"{what} {shown} does not exist: {hint}") from None
    except OSError as err:
        raise NlpoolError(f"{what} {shown} cannot be opened ({err.strerror}): {hint}") from None
    if not stat.S_ISDIR(mode):
        raise NlpoolError(f"{what} {shown} is not a folder: {hint}")
    return path


def _format(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def range_text(bounds: tuple[float, float]) -> str:
    """`low..high` as messages and --help show a documented range."""
    return f"{_format(bounds[0])}..{_format(bounds[1])}"


def number(flag: str, value: Number, low: float, high: float) -> Number:
    """A finite number in `low`..`high` (both included): NaN, infinities and out-of-range values are refused,
    so a bar such as --min-top1 cannot be switched off by `nan` and a count cannot overflow later."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NlpoolError(f"{flag} {value!r} is not a number: pass a value in {range_text((low, high))}")
    shown = _shown(_format(value), 40)
    if isinstance(value, float) and not math.isfinite(value):
        raise NlpoolError(f"{flag} {shown} is not a finite number: pass a value in {range_text((low, high))}")
    if not low <= value <= high:
        raise NlpoolError(f"{flag} {shown} is outside {range_text((low, high))}: pass a value in that range")
    return value
