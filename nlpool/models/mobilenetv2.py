"""MobileNetV2 (Sandler et al., 2018) with a pluggable down-sampling layer per stage.

Stage strides are (s1, 2, 2, 2, 1, 2, 1); the stem keeps its stride 2. With `pool="strided"` a stage
down-samples as in the original network (its first block's depthwise conv is strided). With any other
pooling kind the first block runs at stride 1 and the pooling layer does the down-sampling:
- outer placement: pooling sits before the stage's first block (on the block's input channels);
- inner placement: pooling follows the first block (on its output channels) — the paper's best for
  MobileNetV2 (Table 7).
"""

from __future__ import annotations

import torch
from torch import nn

from nlpool.core.errors import NlpoolError

from ..layers import create_pool
from .config import ModelConfig, downsampling_stages
from .helpers import make_divisible
from .registry import register_backbone

# (expansion t, output channels c, blocks n) per stage; strides come from the config and the registration.
STAGES = ((1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1))


def conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> project (1x1, linear); residual when shapes allow.

    `hidden` overrides cin * expansion after channel pruning (see `nlpool.prune`); with expansion 1
    the hidden channels are the block's input, so whatever writes them was pruned too. The residual
    rule keeps using the unpruned `cin`, so pruning never changes the network's structure.
    """

    def __init__(self, cin: int, cout: int, stride: int, expansion: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or cin * expansion
        layers: list[nn.Module] = [conv_bn_relu6(cin, hidden, 1)] if expansion != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


# Authors' "reduced" patch-size schedule: large patches where the maps are large.
@register_backbone(
    "mobilenetv2", stem_stride=2, later_stage_strides=(2, 2, 2, 1, 2, 1), default_patch_sizes=(4, 4, 4, 2, 2, 1, 1)
)
class MobileNetV2(nn.Module):
    """MobileNetV2 classifier; `features` is a flat Sequential of named units (stem, blocks, pools, head)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        keep = dict(cfg.pruned_channels)
        stem_channels = make_divisible(32 * cfg.width)
        # The first block has no expand conv (t = 1): its hidden channels are the stem's outputs.
        stem_kept = keep.get("stage1_block0", stem_channels)
        if stem_kept != stem_channels and cfg.placement == "outer" and cfg.s1 > 1 and cfg.pool != "strided":
            raise NlpoolError("pruned stem channels feed a pooling layer with outer placement: prune only inner-placement models")
        units: dict[str, nn.Module] = {"stem": conv_bn_relu6(3, stem_kept, 3, 2)}
        cin = stem_channels
        for (expansion, channels, blocks), stage in zip(STAGES, downsampling_stages(cfg), strict=False):
            cout = make_divisible(channels * cfg.width)
            pooled = stage.stride > 1 and cfg.pool != "strided"
            pool_options = {"options": cfg.nlp_options(stage.patch_size)} if pooled and cfg.pool == "nlp" else {}
            if pooled and cfg.placement == "outer":
                units[f"stage{stage.index}_pool"] = create_pool(cfg.pool, cin, stage.stride, **pool_options)
            for block in range(blocks):
                stride = stage.stride if block == 0 and not pooled else 1
                name = f"stage{stage.index}_block{block}"
                units[name] = InvertedResidual(cin, cout, stride, expansion, keep.pop(name, None))
                cin = cout
                if block == 0 and pooled and cfg.placement == "inner":
                    units[f"stage{stage.index}_pool"] = create_pool(cfg.pool, cout, stage.stride, **pool_options)
        if keep:
            raise NlpoolError(f"pruned_channels names {sorted(keep)}, not prunable units of MobileNetV2: fix the config")
        self.last_channels = make_divisible(1280 * max(1.0, cfg.width))
        units["head"] = conv_bn_relu6(cin, self.last_channels, 1)
        self.features = nn.Sequential()
        for name, unit in units.items():
            self.features.add_module(name, unit)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channels, cfg.num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module.weight.requires_grad:
                if not torch.all(module.weight == 0):  # LIP's logit conv starts at zero on purpose
                    nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.Linear) and module in self.classifier:
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.global_pool(self.features(x)), 1))
