"""The output folder: built in a temporary sibling, moved into place only when complete, and never at
the cost of a file nlpool did not write.

Kept free of heavy imports so the CLI can refuse a bad `--out` before loading TensorFlow.

- An export writes `MANIFEST` (the entries it wrote, whether it passed). A folder is an earlier
  export only when it holds a valid manifest — never because of a file name such as report.json.
- A re-export replaces exactly the entries the earlier manifest lists; everything else in the folder
  (the user's notes, plots, ...) stays where it is. An entry of the user's that an export would
  overwrite is refused up front. A non-empty folder without a manifest is refused whole.
- A failed export does not replace a passing one unless the caller asks (`keep_failed`).
- Work folders (`.NAME.nlpool-PID-START.RANDOM.partial`) and scratch folders (`nlpool-export-PID-START-...`
  in the temp directory) carry the creating process's id and start time in their names; the next run
  removes those whose process is gone (and only those, owned by this user), so SIGKILL leaves nothing
  behind for long.
- Folders get the user's umask (mkdtemp makes them private, which the user did not ask for).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nlpool.core.checks import output_path
from nlpool.core.errors import NlpoolError

REPORT_FILE = "report.json"
MANIFEST = "nlpool_manifest.json"
MANIFEST_FORMAT = 1
# Every top-level entry a full `nlpool export` writes: a user's file by one of these names blocks an export.
EXPORT_ENTRIES = ("model.onnx", "model_int8.tflite", "model_int8_fused.tflite", "memory.md",
                  "memory.json", "memory.png", "firmware_aot", "firmware_tflm", REPORT_FILE, MANIFEST)
SCRATCH_PREFIX = "nlpool-export-"
_RUN_TAG = re.compile(r"nlpool-(\d+)-(\d+)[.-]")


@dataclass(frozen=True)
class Manifest:
    """What an earlier export wrote into a folder (top-level entries) and whether it passed its checks."""

    entries: tuple[str, ...]
    passed: bool


def read_manifest(out_dir: Path) -> Manifest | None:
    """The folder's manifest, or None when it has none or one nlpool did not write (then nothing is ours)."""
    try:
        data = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError, UnicodeError):
        return None
    if not isinstance(data, dict) or data.get("nlpool_export") != MANIFEST_FORMAT:
        return None
    entries = data.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, str) and _plain_name(e) for e in entries):
        return None
    return Manifest(tuple(entries), data.get("passed") is True)


def _plain_name(name: str) -> bool:
    """A single path component: a manifest can only ever name entries directly inside its own folder."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def _process_tag(pid: int | None = None) -> str:
    """`nlpool-PID-START`: START is the process's start time in clock ticks since boot (0 where /proc is missing),
    so a later process that reuses the pid is not mistaken for the one that made a folder."""
    pid = os.getpid() if pid is None else pid
    return f"nlpool-{pid}-{_start_ticks(pid)}"


def _start_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22 of proc(5); the name in () may hold spaces


def _is_dead_run(path: Path) -> bool:
    """Whether `path` is a work or scratch folder of ours whose process no longer runs."""
    match = _RUN_TAG.search(path.name)
    if match is None or not path.is_dir() or path.is_symlink():
        return False
    try:
        if path.stat().st_uid != os.getuid():
            return False
    except OSError:
        return False
    pid, start = int(match.group(1)), int(match.group(2))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return start != 0 and _start_ticks(pid) not in (0, start)


def clean_stale_runs(out_dir: Path) -> list[Path]:
    """Remove the work folders beside `out_dir` and the scratch folders in the temp directory that runs killed
    before they could clean up left behind (SIGKILL, power loss); returns what was removed."""
    candidates: list[Path] = []
    with contextlib.suppress(OSError):
        candidates += [p for p in out_dir.parent.iterdir() if p.name.startswith(f".{out_dir.name}.nlpool-")
                       and p.name.endswith((".partial", ".previous"))]
    with contextlib.suppress(OSError):
        candidates += [p for p in Path(tempfile.gettempdir()).iterdir() if p.name.startswith(SCRATCH_PREFIX + "nlpool-")]
    removed = []
    for path in candidates:
        if _is_dead_run(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def check_output_dir(out_dir: Path) -> Path:
    """The absolute folder path, or NlpoolError when it cannot become (or replace) an export folder: the
    path rules every output shares (`nlpool.core.checks.output_path`), then whether nlpool may replace
    what the folder holds."""
    out_dir = output_path("--out", out_dir, folder=True)
    if out_dir.is_dir():
        try:
            present = sorted(p.name for p in out_dir.iterdir())
        except OSError as err:
            raise NlpoolError(f"cannot read the output folder {out_dir} ({err.strerror}): pass a readable --out") from None
        manifest = read_manifest(out_dir)
        if present and manifest is None:
            raise NlpoolError(f"--out {out_dir} is a non-empty folder without an nlpool export manifest ({MANIFEST}), so nothing in"
                              " it is nlpool's to replace: pass a new or empty folder")
        if manifest is not None:
            clash = [name for name in present if name in EXPORT_ENTRIES and name not in manifest.entries]
            if clash:
                raise NlpoolError(f"--out {out_dir} holds {clash[0]}, which the earlier export did not write but this one would:"
                                  " move it elsewhere or pass another --out")
    return out_dir


def make_work_dir(out_dir: Path) -> Path:
    """A fresh temporary folder beside `out_dir` (same file system, so the final moves are renames).

    Work folders of dead runs beside it are removed first.
    """
    out_dir = check_output_dir(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_runs(out_dir)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{_process_tag()}.", suffix=".partial", dir=out_dir.parent))
    except OSError as err:
        raise NlpoolError(f"cannot write the output folder {out_dir} ({err.strerror}): pass a writable --out") from None


def make_scratch_dir() -> Path:
    """A scratch folder in the temp directory (intermediates nobody keeps), named so a later run can
    recognise and remove it when this process dies without cleaning up."""
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{_process_tag()}-"))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(root: Path) -> None:
    """Give `root` and the folders and private files under it the permissions the user's umask asks for
    (mkdtemp and mkstemp create them 0700 / 0600)."""
    mask = _umask()
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o777
        if path.is_dir() and mode == 0o700:
            path.chmod(0o777 & ~mask)
        elif path.is_file() and mode == 0o600:
            path.chmod(0o666 & ~mask)


def write_manifest(work_dir: Path, passed: bool, version: str) -> None:
    """Record what this export wrote (every top-level entry of the work folder) and whether it passed."""
    entries = sorted({p.name for p in work_dir.iterdir()} | {MANIFEST})
    data = {"nlpool_export": MANIFEST_FORMAT, "version": version, "passed": passed, "entries": entries}
    (work_dir / MANIFEST).write_text(json.dumps(data, indent=2) + "\n")


def move_into_place(work_dir: Path, out_dir: Path, passed: bool = True, keep_failed: bool = False) -> bool:
    """Put the finished `work_dir` at `out_dir`; returns False (and leaves `out_dir` as it was) when a failed
    export would replace a passing one and `keep_failed` is not set.

    An absent or empty `out_dir` is replaced by a rename. An earlier export loses exactly the entries its
    manifest lists (moved aside, then deleted); everything else in the folder stays.
    """
    apply_umask(work_dir)
    if not out_dir.exists():
        work_dir.rename(out_dir)
        return True
    manifest = read_manifest(out_dir)
    present = {p.name for p in out_dir.iterdir()}
    if manifest is None:
        if present:  # the folder changed while the export ran: keep the user's files, refuse
            raise NlpoolError(f"--out {out_dir} gained files that nlpool did not write while the export ran: nothing was"
                              " replaced; pass a new or empty folder")
        out_dir.rmdir()
        work_dir.rename(out_dir)
        return True
    if manifest.passed and not passed and not keep_failed:
        return False
    new = sorted(p.name for p in work_dir.iterdir())
    clash = [name for name in new if name in present and name not in manifest.entries]
    if clash:
        raise NlpoolError(f"--out {out_dir} holds {clash[0]}, which the earlier export did not write but this one would:"
                          " nothing was replaced; move it elsewhere or pass another --out")
    trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{_process_tag()}.", suffix=".previous", dir=out_dir.parent))
    for name in manifest.entries:
        if name in present:
            (out_dir / name).rename(trash / name)
    for name in sorted(new, key=lambda n: n == MANIFEST):  # the manifest last: it vouches for a complete folder
        (work_dir / name).rename(out_dir / name)
    work_dir.rmdir()
    shutil.rmtree(trash, ignore_errors=True)
    return True
