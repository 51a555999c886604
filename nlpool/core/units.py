"""Memory sizes as users type them: `512k`, `512K`, `1m`, `524288`, `2MiB`.

Suffixes are binary (k = KiB = 1024 bytes), because SRAM sizes on microcontroller data sheets are.
"""

from __future__ import annotations

import re
from fractions import Fraction

from .errors import NlpoolError

MAX_SIZE = 1 << 32  # a 32-bit core addresses no more
_MAX_DIGITS = 32  # longer numbers are over MAX_SIZE (or absurd): refused before any arithmetic

_MULTIPLIERS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes in `text`; raises NlpoolError naming the accepted forms when it is not a size.

    Exact arithmetic (a Fraction, never a float): `99999999999999999999` is not rounded to 1e20, and
    a few hundred digits is a refusal, not an OverflowError. Nothing above a 32-bit core's whole
    address space (`MAX_SIZE`) is a memory size.
    """
    shown = f"{str(text)[:24]}..." if len(str(text)) > 24 else str(text)
    match = _SIZE.match(str(text).lower())
    if not match or match.group(2) not in _MULTIPLIERS:
        raise NlpoolError(f"{shown!r} is not a memory size: use bytes or a k/K/KiB or m/M/MiB suffix, e.g. 512k, 1m, 524288, 2MiB")
    if len(match.group(1)) > _MAX_DIGITS:
        raise NlpoolError(f"{shown!r} is larger than a Cortex-M's 4 GiB address space: use e.g. 512k or 2m")
    value = Fraction(match.group(1)) * _MULTIPLIERS[match.group(2)]
    if value.denominator != 1 or value <= 0:
        raise NlpoolError(f"{shown!r} is not a positive whole number of bytes: use e.g. 512k or 524288")
    if value > MAX_SIZE:
        raise NlpoolError(f"{shown!r} is larger than a Cortex-M's 4 GiB address space: use e.g. 512k or 2m")
    return int(value)


def format_size(num_bytes: int) -> str:
    """Short human form, e.g. 524288 -> '512 KiB', 1536 -> '1.5 KiB'."""
    for unit, size in (("MiB", 1024**2), ("KiB", 1024)):
        if num_bytes >= size:
            return f"{num_bytes / size:.4g} {unit}"
    return f"{num_bytes} B"
