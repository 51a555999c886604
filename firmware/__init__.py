"""Ahead-of-time int8 C firmware and TFLM projects for Cortex-M, built and run under QEMU."""
