"""Memory sizes as users type them: `512k`, `512K`, `1m`, `524288`, `2MiB`.

Suffixes are binary (k = KiB = 1024 bytes), because SRAM sizes on microcontroller data sheets are.
"""

from __future__ import annotations

import re

from .errors import NlpoolError

_MULTIPLIERS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes in `text`; raises NlpoolError naming the accepted forms when it is not a size."""
    match = _SIZE.match(str(text).lower())
    if not match or match.group(2) not in _MULTIPLIERS:
        raise NlpoolError(f"{text!r} is not a memory size: use bytes or a k/K/KiB or m/M/MiB suffix, e.g. 512k, 1m, 524288, 2MiB")
    value = float(match.group(1)) * _MULTIPLIERS[match.group(2)]
    if value != int(value) or value <= 0:
        raise NlpoolError(f"{text!r} is not a positive whole number of bytes: use e.g. 512k or 524288")
    return int(value)


def format_size(num_bytes: int) -> str:
    """Short human form, e.g. 524288 -> '512 KiB', 1536 -> '1.5 KiB'."""
    for unit, size in (("MiB", 1024**2), ("KiB", 1024)):
        if num_bytes >= size:
            return f"{num_bytes / size:.4g} {unit}"
    return f"{num_bytes} B"
