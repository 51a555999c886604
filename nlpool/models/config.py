"""ModelConfig: everything needed to rebuild a model, validated with one-line messages.

A checkpoint stores `ModelConfig.to_dict()` beside the weights, so every command can rebuild the model
from the checkpoint alone.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from nlpool.core.errors import NlpoolError

from ..layers import MAX_GRID, POOL_KINDS, NLPoolOptions
from .registry import get_backbone

PLACEMENTS = ("inner", "outer")
# No microcontroller holds a larger input (2048 x 2048 x 3 int8 is 12 MiB), and PyTorch would need
# gigabytes to calibrate on it: refused here, before any network is built.
MAX_INPUT_SIZE = 2048
# Bounds on what a (possibly corrupted) checkpoint can ask us to allocate: far above any real model.
MAX_CLASSES = 1 << 16
MAX_HEADS = 64
MAX_EMBED_RATIO = 16.0
S1_CHOICES = (1, 2, 4)

# The layer options a config carries, under the flat names to_dict writes and checkpoints store. The
# patch size is left out: it is chosen per stage (`patch_sizes` or the backbone's schedule).
NLP_OPTION_KEYS = tuple(f.name for f in fields(NLPoolOptions) if f.name != "patch_size")

# The one deliberate departure from the layer's defaults (the authors' code) is bilinear restoration
# (the paper's text): with nearest restoration every pooling window whose stride divides the patch
# size sees one constant weight, so AvgPool(pi x) / AvgPool(pi) collapses to plain average pooling
# and the attention gets no gradient — the default schedule (4, 4, 4, 2, ...) at stride 2 would make
# the first four "self-attentive" pools exactly AvgPool (measured: logits equal to 2e-7).
MODEL_NLP_OPTIONS = NLPoolOptions(upsample="bilinear")


@dataclass(frozen=True)
class ModelConfig:
    """A backbone, its pooling and the self-attentive pooling options `nlp` (see `NLPoolOptions`).

    `nlp` defaults to `MODEL_NLP_OPTIONS` (bilinear restoration); its `patch_size` must stay the
    layer default because each stage picks its own: `patch_sizes=None` means the backbone's schedule,
    where a stage whose map is not divisible by the scheduled patch uses the largest patch that
    divides it; explicit patch sizes must divide exactly.
    `pruned_channels` holds (unit name, hidden channels kept) pairs written by `nlpool.prune` after
    channel pruning, so a checkpoint rebuilds the physically smaller network (empty = unpruned).

    `to_dict` / `from_dict` and `replace` spell the layer options flat (`upsample`, `num_heads`, ...),
    as checkpoints, report.json and the CLI flags always have.
    """

    arch: str = "mobilenetv2"
    width: float = 0.35
    pool: str = "nlp"
    s1: int = 2
    placement: str = "inner"
    input_size: int = 96
    num_classes: int = 10
    patch_sizes: tuple[int, ...] | None = None
    nlp: NLPoolOptions = MODEL_NLP_OPTIONS
    pruned_channels: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain, flat values (lists, no nested options): what checkpoints and report.json store."""
        data: dict[str, Any] = {}
        for field in fields(self):
            if field.name == "nlp":
                data |= {key: getattr(self.nlp, key) for key in NLP_OPTION_KEYS}
            else:
                data[field.name] = getattr(self, field.name)
        data["patch_sizes"] = list(self.patch_sizes) if self.patch_sizes is not None else None
        data["pruned_channels"] = [[name, kept] for name, kept in self.pruned_channels]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Read `to_dict`'s output (missing keys take today's defaults), validated.

        The dict comes from a file (a checkpoint), so every value's type is checked before use: a
        wrong type is a one-line NlpoolError naming the key, never a TypeError inside a layer.
        """
        if not isinstance(data, dict):
            raise NlpoolError(f"model config is a {type(data).__name__}, not a mapping: the checkpoint is corrupt or not nlpool's")
        defaults = cls().to_dict()
        unknown = sorted((key for key in data if key not in defaults), key=str)
        if unknown:
            raise NlpoolError(f"model config has unknown keys {unknown[:5]}: the checkpoint was written by another nlpool version")
        for key, value in data.items():
            if not _value_fits(defaults[key], value, key):
                raise NlpoolError(f"model config {key}={value!r:.60} has the wrong type (expected like {defaults[key]!r}): "
                                  "the checkpoint is corrupt or not nlpool's")
        data = dict(data)
        if data.get("patch_sizes") is not None:
            data["patch_sizes"] = tuple(data["patch_sizes"])
        data["pruned_channels"] = tuple((name, kept) for name, kept in data.get("pruned_channels", ()))
        return cls().replace(**data).validated()

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with `changes`; layer options may be given by their flat names, e.g. `upsample="nearest"`."""
        layer_changes = {key: changes.pop(key) for key in NLP_OPTION_KEYS if key in changes}
        if layer_changes:
            try:
                changes["nlp"] = replace(changes.get("nlp", self.nlp), **layer_changes)
            except ValueError as err:
                raise NlpoolError(f"bad self-attentive pooling option: {err}") from None
        return replace(self, **changes)

    def option(self, key: str) -> Any:
        """The value of a flat key (as `to_dict` and the CLI flags spell it), wherever the config keeps it."""
        return getattr(self.nlp, key) if key in NLP_OPTION_KEYS else getattr(self, key)

    @property
    def stage_strides(self) -> tuple[int, ...]:
        return (self.s1, *get_backbone(self.arch).later_stage_strides)

    def nlp_options(self, patch_size: int) -> NLPoolOptions:
        """The options of one stage's self-attentive pooling layer."""
        return replace(self.nlp, patch_size=patch_size)

    def stage_patch_sizes(self) -> tuple[int, ...]:
        """The patch size each stage's self-attentive pooling uses (validated against map sizes)."""
        return tuple(stage.patch_size for stage in downsampling_stages(self))

    def validated(self) -> ModelConfig:
        """Return self, or raise NlpoolError with a one-line message naming the bad option and the fix."""
        backbone = get_backbone(self.arch)
        if self.pool not in POOL_KINDS:
            raise NlpoolError(f"unknown pooling kind {self.pool!r}: use --pool {'|'.join(POOL_KINDS)}")
        if self.s1 not in S1_CHOICES:
            raise NlpoolError(f"s1 must be 1, 2 or 4, got {self.s1}: use --s1 1|2|4")
        if self.placement not in PLACEMENTS:
            raise NlpoolError(f"unknown placement {self.placement!r}: use --placement inner|outer")
        if not 0 < self.width <= 4:
            raise NlpoolError(f"width multiplier must be in (0, 4], got {self.width}: use e.g. --width 0.35")
        if not 2 <= self.num_classes <= MAX_CLASSES:
            raise NlpoolError(f"the number of classes must be in 2..{MAX_CLASSES}, got {self.num_classes}: use --num-classes K")
        if not (1 <= self.nlp.num_heads <= MAX_HEADS and 0 < self.nlp.embed_ratio <= MAX_EMBED_RATIO):
            raise NlpoolError(f"num_heads {self.nlp.num_heads} / embed_ratio {self.nlp.embed_ratio} are outside 1..{MAX_HEADS} /"
                              f" (0, {MAX_EMBED_RATIO}]: the checkpoint is corrupt, or pass values in range")
        if self.patch_sizes is not None and len(self.patch_sizes) != len(self.stage_strides):
            raise NlpoolError(
                f"{self.arch} has {len(self.stage_strides)} stages but {len(self.patch_sizes)} patch sizes were given:"
                f" pass --patch-sizes with {len(self.stage_strides)} comma-separated values"
            )
        if self.patch_sizes is not None and min(self.patch_sizes) < 1:
            raise NlpoolError(f"patch sizes must be >= 1, got {list(self.patch_sizes)}: fix --patch-sizes")
        if any(not 1 <= kept <= MAX_CLASSES for _, kept in self.pruned_channels):
            raise NlpoolError(f"pruned_channels {list(self.pruned_channels)[:4]} keeps no channel (or an impossible number) in some"
                              " unit: keep 1 or more per unit")
        if self.nlp.patch_size != NLPoolOptions.patch_size:
            # to_dict does not store it, so a checkpoint would silently rebuild a different model
            raise NlpoolError(f"nlp.patch_size={self.nlp.patch_size} is not used: set per-stage patch sizes with --patch-sizes")
        if not 1 <= self.input_size <= MAX_INPUT_SIZE:
            raise NlpoolError(f"input size {self.input_size} is outside 1..{MAX_INPUT_SIZE} px (a microcontroller holds"
                              f" nothing larger): use e.g. --input-size 96")
        first = backbone.stem_stride * self.s1
        if self.input_size % first:
            raise NlpoolError(
                f"input size {self.input_size} is not divisible by {first} (stem stride x s1={self.s1}),"
                f" so the first pooling windows do not tile the map: use an --input-size that is a multiple of {first}"
            )
        downsampling_stages(self)
        return self


def _value_fits(default: Any, value: Any, key: str) -> bool:
    """Whether a stored config value has the type of the default it replaces (bool is not a number here)."""
    if key == "patch_sizes":
        return value is None or (isinstance(value, (list, tuple)) and all(type(p) is int for p in value))
    if key == "pruned_channels":
        return isinstance(value, (list, tuple)) and all(
            isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str) and type(pair[1]) is int for pair in value)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return type(value) in (int, float) and value == value  # not NaN
    return type(value) is type(default)


@dataclass(frozen=True)
class StageSpec:
    """One stage of the backbone as the pooling sees it."""

    index: int  # 1-based stage number
    stride: int
    map_size: int  # side of the square map entering the stage (the map the pooling layer sees)
    patch_size: int  # 0 when the stage does not down-sample with self-attentive pooling


def _largest_divisor_at_most(value: int, limit: int) -> int:
    return max(d for d in range(1, min(value, limit) + 1) if value % d == 0)


def downsampling_stages(cfg: ModelConfig) -> list[StageSpec]:
    """Map size and effective patch size per stage; raises NlpoolError when the input is too small."""
    backbone = get_backbone(cfg.arch)
    schedule = cfg.patch_sizes or backbone.default_patch_sizes
    size = cfg.input_size // backbone.stem_stride  # exact: validation requires a multiple of the stem stride
    stages = []
    for index, stride in enumerate(cfg.stage_strides, start=1):
        patch = 0
        if stride > 1:
            if size < stride:
                raise NlpoolError(
                    f"input size {cfg.input_size} is too small: stage {index} of {cfg.arch} would down-sample a"
                    f" {size}x{size} map by {stride}; use a larger --input-size"
                )
            if cfg.pool == "nlp":
                requested = schedule[index - 1]
                if cfg.patch_sizes is not None and size % requested:
                    raise NlpoolError(
                        f"patch size {requested} does not divide the {size}x{size} map of stage {index}:"
                        f" change --patch-sizes or --input-size"
                    )
                patch = _largest_divisor_at_most(size, requested)
                if size // patch > MAX_GRID:
                    raise NlpoolError(
                        f"stage {index} would pool a {size}x{size} map in {patch}x{patch} patches, a grid over the"
                        f" {MAX_GRID} rows of the positional tables: use a smaller --input-size or larger --patch-sizes"
                    )
        stages.append(StageSpec(index, stride, size, patch))
        if stride > 1:
            size = (size - 1) // stride + 1 if cfg.pool == "strided" else size // stride
    return stages
