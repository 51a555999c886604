"""How often each instruction ran, from QEMU: nlpool's TCG plugin (block_counts.c), built once per
machine with the host C compiler into the user's cache, counts every translated block's executions
and splits them into segments at two marker functions (an op's begin and end).

Running the firmware once more with the plugin costs about what the plain run costs (one inline add
per block executed); one inference is enough, since the estimate is per inference.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from firmware.boards import BOARDS
from nlpool.core.errors import NlpoolError

PLUGIN_SOURCE = Path(__file__).resolve().parent / "block_counts.c"
INSIDE_OP, BETWEEN_OPS = "O", "G"


@dataclass(frozen=True)
class BlockTrace:
    """Translated blocks (id -> instruction addresses) and, per segment, each block's executions."""

    blocks: dict[int, tuple[int, ...]]
    segments: tuple[tuple[str, dict[int, int]], ...]  # (INSIDE_OP or BETWEEN_OPS, block id -> executions)

    def op_segments(self) -> list[dict[int, int]]:
        """The segments inside ops, in the order they ran."""
        return [counts for kind, counts in self.segments if kind == INSIDE_OP]

    def instruction_counts(self, segments: list[dict[int, int]] | None = None) -> Counter[int]:
        """Executions per instruction address over `segments` (None: the whole run)."""
        chosen = segments if segments is not None else [counts for _, counts in self.segments]
        per_block: Counter[int] = Counter()
        for counts in chosen:
            per_block.update(counts)
        result: Counter[int] = Counter()
        for block, runs in per_block.items():
            for address in self.blocks[block]:
                result[address] += runs
        return result


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nlpool" / "qemu-plugin"


def plugin_library() -> Path:
    """The compiled plugin, built on first use (keyed by its source, so an edit rebuilds it)."""
    source = PLUGIN_SOURCE.read_bytes()
    library = _cache_dir() / f"block_counts-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if library.is_file():
        return library
    if shutil.which("gcc") is None:
        raise NlpoolError("'gcc' is not on PATH, needed to build the QEMU plugin of the cycle estimate: "
                          "install it with: sudo apt-get install -y gcc")
    library.parent.mkdir(parents=True, exist_ok=True)
    partial = library.with_suffix(f".{os.getpid()}.tmp")
    built = subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-o", str(partial), str(PLUGIN_SOURCE)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        raise NlpoolError(f"cannot build the QEMU plugin {PLUGIN_SOURCE.name}: {built.stderr.strip().splitlines()[-1]}")
    partial.replace(library)
    return library


def symbol_address(elf: Path, name: str) -> int | None:
    """The address of function `name` (a C name, or a demangled C++ one up to its parameters), Thumb bit cleared."""
    listing = subprocess.run(["arm-none-eabi-nm", "-C", str(elf)], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tT" and (parts[2] == name or parts[2].startswith(name + "(")):
            return int(parts[0], 16) & ~1
    return None


def trace_blocks(elf: Path, target: str, payload: bytes, begin: int | None, end: int | None,
                 timeout_s: float = 600) -> BlockTrace:
    """Run `elf` on `target` under QEMU with the plugin, input.bin = `payload`; segments split at the
    `begin` and `end` addresses (None: the whole run is one segment)."""
    library = plugin_library()
    with tempfile.TemporaryDirectory(prefix=f"nlpool-trace-{target}-") as tmp:
        work = Path(tmp)
        (work / "input.bin").write_bytes(payload)
        args = [f"out={work / 'blocks.txt'}", *([f"begin={begin:#x}"] if begin is not None else []),
                *([f"end={end:#x}"] if end is not None else [])]
        cmd = ["qemu-system-arm", "-M", BOARDS[target].machine, "-nographic", "-monitor", "none",
               "-semihosting-config", "enable=on,target=native", "-icount", "shift=0",
               "-plugin", ",".join([str(library), *args]), "-kernel", str(elf.resolve())]
        try:
            proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise NlpoolError(f"the {target} firmware did not finish within {timeout_s:g} s under the counting plugin") from exc
        if proc.returncode != 0:
            last = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            raise NlpoolError(f"the {target} firmware exited with status {proc.returncode} under the counting plugin: {last[0]}")
        return parse_blocks((work / "blocks.txt").read_text())


def parse_blocks(text: str) -> BlockTrace:
    """The plugin's output (see block_counts.c) as a BlockTrace."""
    blocks: dict[int, tuple[int, ...]] = {}
    segments: list[tuple[str, dict[int, int]]] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "T":
            blocks[int(fields[1])] = tuple(int(a, 16) for a in fields[2:])
        elif fields[0] == "S":
            segments.append((fields[1], {int(b): int(n) for b, n in (f.split(":") for f in fields[2:])}))
    return BlockTrace(blocks, tuple(segments))
