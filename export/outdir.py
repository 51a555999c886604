"""The output folder: built in a temporary sibling, moved into place only when complete.

Kept free of heavy imports so the CLI can refuse a bad `--out` before loading TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from nlpool.core.errors import NlpoolError

REPORT_FILE = "report.json"


def check_output_dir(out_dir: Path) -> Path:
    """The absolute folder path, or NlpoolError when it cannot become (or replace) an export folder."""
    out_dir = out_dir.expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise NlpoolError(f"--out {out_dir} is a file: pass a folder path")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / REPORT_FILE).is_file():
        raise NlpoolError(f"--out {out_dir} is a non-empty folder that is not an nlpool export: pass a new or empty folder")
    ancestor = out_dir.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        why = "is not a folder" if not ancestor.is_dir() else "is not writable"
        raise NlpoolError(f"cannot write the output folder {out_dir} ({ancestor} {why}): pass a writable --out")
    return out_dir


def make_work_dir(out_dir: Path) -> Path:
    """A fresh temporary folder beside `out_dir` (same file system, so the final move is a rename)."""
    out_dir = check_output_dir(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    except OSError as err:
        raise NlpoolError(f"cannot write the output folder {out_dir} ({err.strerror}): pass a writable --out") from None


def move_into_place(work_dir: Path, out_dir: Path) -> None:
    """Replace `out_dir` (absent, or a previous export) with the finished `work_dir`."""
    previous = None
    if out_dir.exists():
        previous = out_dir.with_name(f".{out_dir.name}.previous")
        shutil.rmtree(previous, ignore_errors=True)
        out_dir.rename(previous)
    work_dir.rename(out_dir)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
