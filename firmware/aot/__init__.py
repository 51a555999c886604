"""AOT generator: int8 TFLite model -> standalone C project (see generate.py)."""

from firmware.aot.generate import ProjectInfo, TensorSpec, generate_project

__all__ = ["ProjectInfo", "TensorSpec", "generate_project"]
