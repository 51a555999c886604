"""Backbones (MobileNetV2, ResNet18), their registry, their configuration and named presets.

Importing this package registers every backbone: each backbone module registers itself on import.
"""

from .config import MODEL_NLP_OPTIONS, PLACEMENTS, S1_CHOICES, ModelConfig, StageSpec, downsampling_stages
from .helpers import make_divisible
from .mobilenetv2 import MobileNetV2
from .pixel_input import PixelInput
from .presets import DEFAULT_PRESET, PRESETS, preset_config
from .registry import Backbone, backbone_names, build_model, get_backbone, register_backbone, unregister_backbone
from .resnet import ResNet18

__all__ = [
    "DEFAULT_PRESET",
    "MODEL_NLP_OPTIONS",
    "PLACEMENTS",
    "PRESETS",
    "S1_CHOICES",
    "Backbone",
    "MobileNetV2",
    "ModelConfig",
    "PixelInput",
    "ResNet18",
    "StageSpec",
    "backbone_names",
    "build_model",
    "downsampling_stages",
    "get_backbone",
    "make_divisible",
    "preset_config",
    "register_backbone",
    "unregister_backbone",
]
