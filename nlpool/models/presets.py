"""Named model presets: a registry of named `ModelConfig`s (`nlpool models` lists them, `--model` picks one)."""

from __future__ import annotations

from nlpool.core.errors import NlpoolError

from .config import ModelConfig

DEFAULT_PRESET = "default"

PRESETS: dict[str, tuple[ModelConfig, str]] = {
    "default": (ModelConfig(), "MobileNetV2-0.35x, nlp pooling, s1=2, inner, 96x96, 10 classes (shipped weights)"),
    "mobilenetv2_035_strided": (ModelConfig(pool="strided", s1=1), "the 0.35x baseline: strided convs, s1=1"),
    "mobilenetv2_035_nlp_s1_4": (ModelConfig(s1=4, input_size=128), "aggressive striding: nlp, s1=4, 128x128"),
    "mobilenetv2_100_imagenet": (
        ModelConfig(width=1.0, pool="strided", s1=1, input_size=224, num_classes=1000),
        "the paper's reference point: MobileNetV2-1.0, strided, 224x224, 1000 classes",
    ),
    "mobilenetv2_035_nlp_imagenet": (
        ModelConfig(s1=2, input_size=224, num_classes=1000),
        "the paper's 22x configuration: 0.35x, nlp, s1=2, 224x224, 1000 classes",
    ),
    "resnet18_nlp": (ModelConfig(arch="resnet18", width=1.0, s1=1, input_size=96), "ResNet18, nlp pooling, 96x96"),
    "resnet18_strided": (
        ModelConfig(arch="resnet18", width=1.0, pool="strided", s1=1, input_size=96),
        "ResNet18 baseline, strided convs, 96x96",
    ),
}


def preset_config(name: str) -> ModelConfig:
    """The config of preset `name`, or NlpoolError pointing at the list."""
    if name not in PRESETS:
        raise NlpoolError(f"unknown model preset {name!r}: run `nlpool models` to list presets")
    return PRESETS[name][0]

