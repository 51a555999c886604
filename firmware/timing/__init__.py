"""Estimated cycles and milliseconds per op and per inference, from what QEMU executed and a timing
model of each core (docs/firmware.md, "Cycle estimate")."""

from firmware.timing.cores import CORES, CoreTiming
from firmware.timing.estimate import CycleEstimate, core_timing, estimate_elf, timing_json, timing_rows

__all__ = ["CORES", "CoreTiming", "CycleEstimate", "core_timing", "estimate_elf", "timing_json", "timing_rows"]
