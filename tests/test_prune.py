"""Channel pruning: F-norm ranking, the ratio through regrowth, physical removal == masking."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nlpool.checkpoint import load_model, save_checkpoint
from nlpool.core.errors import NlpoolError
from nlpool.models import ModelConfig, build_model
from nlpool.prune import ChannelPruner, channel_importance, parse_ratio, parse_stages, removal_error, remove_pruned_channels
from nlpool.summary import summarize

CFG = ModelConfig(pool="nlp", s1=1, input_size=32)  # stage 1 = stem + stage1_block0 + stage2_block0 (before stage2_pool)


def _train(model: torch.nn.Module, pruner: ChannelPruner, steps: int, optimizer: torch.optim.Optimizer | None = None) -> None:
    """`steps` SGD steps on random batches, calling the pruner after each step as the training loop does."""
    gen = torch.Generator().manual_seed(pruner.steps)
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(steps):
        x = torch.randn(8, 3, 32, 32, generator=gen)
        y = torch.randint(0, CFG.num_classes, (8,), generator=gen)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        pruner.step(optimizer)


def test_channel_importance_is_squared_frobenius_norm_of_input_slices() -> None:
    weight = torch.zeros(3, 4, 1, 1)
    weight[:, 0] = 1.0  # 3 * 1
    weight[0, 1] = 3.0  # 9
    weight[:, 3, 0, 0] = torch.tensor([1.0, 2.0, 2.0])  # 9... plus a little to break the tie
    weight[2, 3] += 0.5
    assert channel_importance(weight).tolist() == pytest.approx([3.0, 9.0, 0.0, 1 + 4 + 2.5**2])


def test_pruner_keeps_the_channels_with_the_largest_norm_in_a_hand_built_layer() -> None:
    model = build_model(CFG)
    project = model.features.stage1_block0.conv[1]  # reads the stem's 16 channels (after the depthwise)
    norms = torch.tensor([5.0, 1, 7, 2, 9, 3, 8, 4, 6, 10, 0.5, 11, 12, 0.1, 13, 14])
    with torch.no_grad():
        project.weight.copy_(torch.ones_like(project.weight) * norms.sqrt().view(1, -1, 1, 1) / project.weight.shape[0] ** 0.5)
    pruner = ChannelPruner(model, ratio=2.0, stages=(1,))
    group = next(g for g in pruner.groups if g.unit == "stage1_block0")
    assert group.mask.nonzero().flatten().tolist() == sorted(torch.argsort(norms, descending=True)[:8].tolist())
    assert torch.all(project.weight[:, ~group.mask] == 0) and torch.all(project.weight[:, group.mask] != 0)


def test_default_stage_is_before_the_first_pooling_layer() -> None:
    pruner = ChannelPruner(build_model(CFG), ratio=2.0)
    assert {g.unit: (g.channels, g.keep) for g in pruner.groups} == {"stage1_block0": (16, 8), "stage2_block0": (48, 24)}
    later = ChannelPruner(build_model(CFG), ratio=4.0, stages=(2,))
    assert [g.unit for g in later.groups] == ["stage2_block1", "stage3_block0"]
    assert all(g.keep == g.channels // 4 for g in later.groups)


def test_ratio_holds_and_channels_are_swapped_during_regrowth() -> None:
    torch.manual_seed(0)
    model = build_model(CFG)
    pruner = ChannelPruner(model, ratio=2.0, total_steps=6, regrow_every=1, regrow_fraction=0.5)
    initial = {g.unit: g.mask.clone() for g in pruner.groups}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(5):
        _train(model, pruner, 1, optimizer)
        for group in pruner.groups:
            assert int(group.mask.sum()) == group.keep
            assert torch.all(group.consumer.weight[:, ~group.mask] == 0)
    assert any(not torch.equal(initial[g.unit], g.mask) for g in pruner.groups), "regrowth never changed a mask"


def test_regrowth_picks_the_largest_momentum_and_drops_the_smallest_norm() -> None:
    torch.manual_seed(0)
    model = build_model(CFG)
    pruner = ChannelPruner(model, ratio=2.0)
    group = pruner.groups[0]
    weight = group.consumer.weight
    active, inactive = group.mask.nonzero().flatten(), (~group.mask).nonzero().flatten()
    weakest = active[torch.argmin(channel_importance(weight)[active])]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    momentum = torch.zeros_like(weight)
    momentum[:, inactive[3]] = 1.0
    momentum[:, inactive[5]] = 0.5
    optimizer.state[weight]["momentum_buffer"] = momentum
    swapped = pruner.prune_and_regrow(optimizer, fraction=1 / group.keep)
    assert swapped[group.unit] == 1
    assert bool(group.mask[inactive[3]]) and not bool(group.mask[weakest]) and not bool(group.mask[inactive[5]])
    assert int(group.mask.sum()) == group.keep
    assert torch.all(weight[:, inactive[3]] == 0)  # regrown from zero


@pytest.mark.parametrize(
    "cfg",
    [CFG, ModelConfig(pool="strided", s1=1, input_size=32), ModelConfig(arch="resnet18", width=0.25, s1=1, input_size=32)],
    ids=["mobilenetv2-nlp", "mobilenetv2-strided", "resnet18"],
)
def test_removal_gives_the_masked_model_outputs_with_smaller_maps(cfg: ModelConfig, tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model(cfg)
    pruner = ChannelPruner(model, ratio=2.0, total_steps=4, regrow_every=2)
    _train(model, pruner, 4)
    pruned, pruned_cfg = remove_pruned_channels(pruner, cfg)
    inputs = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    model.eval()
    logits = model(inputs)
    assert logits.std() > 1e-3  # a non-trivial function, so equality means something
    assert removal_error(model, pruned, inputs) < 1e-5
    for group in pruner.groups:
        assert getattr(pruned.features, group.unit) is not None
    assert dict(pruned_cfg.pruned_channels) == pruner.kept_channels()
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())

    # the saving is visible to everything that rebuilds the model from its config
    records, _ = summarize(pruned, pruned_cfg)
    full, _ = summarize(model, cfg)
    first = "stem" if cfg.arch == "mobilenetv2" else "stage1_block0"
    if cfg.arch == "mobilenetv2":
        assert {r.name: r.activation_bytes for r in records}[first] * 2 == {r.name: r.activation_bytes for r in full}[first]

    path = tmp_path / "pruned.pt"
    save_checkpoint(path, pruned, pruned_cfg)
    reloaded, reloaded_cfg = load_model(path)
    assert reloaded_cfg == pruned_cfg
    torch.testing.assert_close(reloaded(inputs), logits, atol=1e-5, rtol=0)


def test_pruning_state_round_trips() -> None:
    torch.manual_seed(0)
    model = build_model(CFG)
    pruner = ChannelPruner(model, ratio=2.0, total_steps=4, regrow_every=1)
    _train(model, pruner, 2)
    other = ChannelPruner(model, ratio=2.0)
    other.load_state_dict(pruner.state_dict())
    assert other.kept_channels() == pruner.kept_channels() and other.steps == 2
    assert all(torch.equal(a.mask, b.mask) for a, b in zip(other.groups, pruner.groups, strict=True))


def test_bad_options_are_one_line_errors() -> None:
    assert parse_ratio("2x") == 2.0 and parse_ratio("1.5") == 1.5
    assert parse_stages("2,1") == (1, 2)
    for text in ("0.5x", "two", ""):
        with pytest.raises(NlpoolError, match="--prune 2x"):
            parse_ratio(text)
    with pytest.raises(NlpoolError, match="--prune-stages"):
        parse_stages("a")
    with pytest.raises(NlpoolError, match=r"stages 1\.\.5"):
        ChannelPruner(build_model(CFG), stages=(9,))
    outer = ModelConfig(pool="nlp", s1=2, placement="outer", input_size=64)
    with pytest.raises(NlpoolError, match="no prunable channels"):
        ChannelPruner(build_model(outer), stages=(1,))


def test_train_with_prune_writes_the_physically_pruned_network(tmp_path) -> None:
    from nlpool.cli import main

    out = tmp_path / "pruned.pt"
    args = ["train", "--pool", "nlp", "--s1", "1", "--input-size", "32", "--data", "synthetic:64", "--epochs", "2",
            "--batch-size", "16", "--prune", "2x", "--out", str(out)]
    for extra in ([], ["--resume"]):  # resuming the finished pruned run: nothing to do, and no error
        with pytest.raises(SystemExit) as exit_:
            main([*args, *extra])
        assert exit_.value.code == 0
    model, cfg = load_model(out)
    assert dict(cfg.pruned_channels) == {"stage1_block0": 8, "stage2_block0": 24}
    assert model.features.stem[0].out_channels == 8 and model.features.stage2_block0.conv[0][0].out_channels == 24
