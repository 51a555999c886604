"""Firmware side of nlpool: the standalone AOT int8 C runtime, its generator, boards and runner.

Public surface: :func:`firmware.aot.generate_project` writes a C project from an int8 TFLite
model, :func:`firmware.run.build_and_run` builds it for the host or a Cortex-M target and runs it
(under QEMU for the targets), returning outputs and measured memory and instruction counts, and
:func:`firmware.verify.measure_firmware` makes the comparisons and numbers report.json records.
The TFLM project generator lives in :mod:`firmware.tflm`; :mod:`firmware.common` holds what both
runtimes share (the project summary, per-op profiles, and the io header that writes the
camera-frame and class-name header both projects ship).
"""
