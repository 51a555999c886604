"""The export's defaults and the ranges of its numbers, in one place.

`nlpool export`'s flags, `ExportOptions`' fields and `nlpool.export_model`'s keywords all read these
(tests/test_export_cli.py checks that the three agree), and `check_export_numbers` is the one range check
of the numbers, run by the CLI before any model is built and by the flow before the export starts.
Kept free of heavy imports so the CLI can read it without loading TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

from nlpool.core.checks import number

OUT_DIR = Path("nlpool-out")
INPUT_FORMAT = "normalized"
CALIB_SAMPLES = 200
# Calibration images beyond this change no int8 range measurably and only cost memory (each 224 px image is 600 kB).
CALIB_SAMPLES_RANGE = (1, 100_000)
FIRMWARE_INPUTS = 100
FIRMWARE_INPUTS_RANGE = (1, 200)  # the firmware's input header holds them all; 200 is the held-out set's size
# Firmware vs PyTorch top-1 agreement needed to pass (trained weights only). 0.98: with TFLM's double rounding
# (what runs on the device) the default model agrees on 98 of its 100 held-out inputs.
MIN_TOP1 = 0.98
MIN_TOP1_RANGE = (0.0, 1.0)
MIN_COSINE = 0.99  # firmware vs PyTorch cosine similarity needed to pass (trained weights only)
MIN_COSINE_RANGE = (-1.0, 1.0)
# --clock: the core clock the estimated milliseconds assume; None: the core's typical board clock
# (firmware/timing/cores.py, named in the output). The range spans every Cortex-M part shipped (a few MHz to 1 GHz).
CLOCK_MHZ = None
CLOCK_MHZ_RANGE = (1.0, 2000.0)


def check_export_numbers(calib_samples: int, firmware_inputs: int, min_top1: float, min_cosine: float,
                         clock_mhz: float | None = None) -> None:
    """NlpoolError naming the flag when a number is NaN, infinite or outside its range (a NaN bar would pass anything)."""
    number("--calib-samples", calib_samples, *CALIB_SAMPLES_RANGE)
    number("--firmware-inputs", firmware_inputs, *FIRMWARE_INPUTS_RANGE)
    number("--min-top1", min_top1, *MIN_TOP1_RANGE)
    number("--min-cosine", min_cosine, *MIN_COSINE_RANGE)
    if clock_mhz is not None:
        number("--clock", clock_mhz, *CLOCK_MHZ_RANGE)
