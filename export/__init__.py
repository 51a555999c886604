"""ONNX and int8 TFLite export: BN folding, onnx2tf conversion, weighted-pooling fusion, fidelity."""

from .fusion import fuse_file

__all__ = ["fuse_file"]
