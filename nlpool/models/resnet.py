"""ResNet18 (He et al., 2016) with a pluggable down-sampling layer per stage, as in the authors' code.

Stem: conv 7x7/2 + BN + ReLU + MaxPool 2x2/2. Stage strides (s1, 2, 2, 2). With `pool="strided"` the
first block of a stage is strided as in the original network; otherwise every block runs at stride 1
and the pooling layer is appended after the first block's residual add (inner) or at the end of the
stage (outer).
"""

from __future__ import annotations

import torch
from torch import nn

from nlpool.core.errors import NlpoolError

from ..layers import create_pool
from .config import ModelConfig, downsampling_stages
from .helpers import make_divisible
from .registry import register_backbone

STAGE_CHANNELS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; a 1x1 projection on the shortcut when the shape changes.

    `mid` overrides the channels between the two convs after channel pruning (see `nlpool.prune`).
    """

    def __init__(self, cin: int, cout: int, stride: int, mid: int | None = None) -> None:
        super().__init__()
        mid = mid or cout
        self.conv1 = nn.Conv2d(cin, mid, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


# Stem stride 4: conv /2 then max pool /2. Authors' "reduced" patch-size schedule.
@register_backbone("resnet18", stem_stride=4, later_stage_strides=(2, 2, 2), default_patch_sizes=(4, 2, 1, 1))
class ResNet18(nn.Module):
    """ResNet18 classifier; `features` is a flat Sequential of named units (stem, blocks, pools)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        keep = dict(cfg.pruned_channels)
        cin = make_divisible(64 * cfg.width)
        units: dict[str, nn.Module] = {
            "stem": nn.Sequential(
                nn.Conv2d(3, cin, 7, 2, 3, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2)
            )
        }
        for channels, stage in zip(STAGE_CHANNELS, downsampling_stages(cfg), strict=False):
            cout = make_divisible(channels * cfg.width)
            pooled = stage.stride > 1 and cfg.pool != "strided"
            pool_options = {"options": cfg.nlp_options(stage.patch_size)} if pooled and cfg.pool == "nlp" else {}
            for block in range(BLOCKS_PER_STAGE):
                stride = stage.stride if block == 0 and not pooled else 1
                name = f"stage{stage.index}_block{block}"
                units[name] = BasicBlock(cin, cout, stride, keep.pop(name, None))
                cin = cout
                last_of_placement = 0 if cfg.placement == "inner" else BLOCKS_PER_STAGE - 1
                if pooled and block == last_of_placement:
                    units[f"stage{stage.index}_pool"] = create_pool(cfg.pool, cout, stage.stride, **pool_options)
        if keep:
            raise NlpoolError(f"pruned_channels names {sorted(keep)}, which are not blocks of ResNet18: fix the config")
        self.features = nn.Sequential()
        for name, unit in units.items():
            self.features.add_module(name, unit)
        self.last_channels = cin
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, cfg.num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and not torch.all(module.weight == 0):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.global_pool(self.features(x)), 1))
