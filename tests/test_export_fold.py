"""BatchNorm folding: every BatchNorm that follows a convolution disappears, and the outputs do not move."""

from __future__ import annotations

import torch
from conftest import settle_batchnorm
from torch import nn

from export.fold_bn import fold_batchnorm
from nlpool.models import ModelConfig, build_model


def _count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_folds_every_batchnorm_of_both_backbones():
    for cfg in (ModelConfig(input_size=64), ModelConfig(arch="resnet18", width=0.25, input_size=64)):
        torch.manual_seed(0)
        model = settle_batchnorm(build_model(cfg), cfg.input_size)
        example = torch.randn(2, 3, cfg.input_size, cfg.input_size)
        before = _count(model, nn.BatchNorm2d)
        folded, count, diff = fold_batchnorm(model, example)
        assert count == before > 0
        assert _count(folded, nn.BatchNorm2d) == 0
        assert _count(model, nn.BatchNorm2d) == before  # the original is left untouched
        assert diff <= 1e-5
        with torch.no_grad():
            torch.testing.assert_close(folded(example), model(example), rtol=1e-4, atol=1e-4)


def test_batchnorm_after_a_non_convolution_is_kept():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    settle_batchnorm(model, 8)
    folded, count, _ = fold_batchnorm(model, torch.randn(1, 3, 8, 8))
    assert count == 1
    assert isinstance(folded[2], nn.BatchNorm2d) and isinstance(folded[4], nn.Identity)
