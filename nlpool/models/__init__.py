"""Backbones (MobileNetV2, ResNet18), their configuration and named presets."""

from .config import DEFAULT_PATCH_SIZES, ModelConfig, StageSpec, downsampling_stages
from .mobilenetv2 import MobileNetV2, make_divisible
from .registry import DEFAULT_PRESET, PRESETS, build_model, preset_config
from .resnet import ResNet18

__all__ = [
    "DEFAULT_PATCH_SIZES",
    "DEFAULT_PRESET",
    "PRESETS",
    "MobileNetV2",
    "ModelConfig",
    "ResNet18",
    "StageSpec",
    "build_model",
    "downsampling_stages",
    "make_divisible",
    "preset_config",
]
