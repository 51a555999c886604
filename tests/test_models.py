"""Backbones, configs and presets: shapes, placements, widths and the one-line config errors."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import torch
from conftest import run_cli, settle_batchnorm
from torch import nn

from nlpool.checkpoint import load_model, read_checkpoint, save_checkpoint
from nlpool.cli.model_options import SHIPPED_WEIGHTS
from nlpool.core.errors import NlpoolError
from nlpool.layers import POOL_KINDS, LIPPool, NLPoolOptions, SelfAttentivePool, create_pool
from nlpool.models import (
    DEFAULT_PRESET,
    PRESETS,
    MobileNetV2,
    ModelConfig,
    ResNet18,
    backbone_names,
    build_model,
    downsampling_stages,
    get_backbone,
    preset_config,
    register_backbone,
    unregister_backbone,
)
from nlpool.summary import summarize

ARCHS = ("mobilenetv2", "resnet18")
# Small but real: MobileNetV2-0.35x and a quarter-width ResNet18 keep 168 forward passes in seconds.
SMALL_WIDTH = {"mobilenetv2": 0.35, "resnet18": 0.25}
LATER_STRIDES = {"mobilenetv2": (2, 2, 2, 1, 2, 1), "resnet18": (2, 2, 2)}


def expected_feature_side(arch: str, input_size: int, s1: int, pool: str) -> int:
    """Side of the last feature map, from the architecture's definition (not from the config code)."""
    side = -(-input_size // 2)  # stem conv 3x3 (7x7) / 2 with padding: ceil
    if arch == "resnet18":
        side //= 2  # stem max pool 2 / 2
    for stride in (s1, *LATER_STRIDES[arch]):
        # strided convs (3x3, padding 1) round up; window pools drop a partial window
        side = -(-side // stride) if pool == "strided" else side // stride
    return side


def pool_units(model: nn.Module) -> list[str]:
    return [name for name, _ in model.features.named_children() if name.endswith("_pool")]


@pytest.mark.parametrize(
    ("pool", "arch", "s1", "placement"), list(itertools.product(POOL_KINDS, ARCHS, (1, 2, 4), ("inner", "outer")))
)
def test_shapes_for_every_pool_arch_s1_and_placement(pool: str, arch: str, s1: int, placement: str) -> None:
    for input_size in (128, 160):
        cfg = ModelConfig(arch=arch, width=SMALL_WIDTH[arch], pool=pool, s1=s1, placement=placement, input_size=input_size, num_classes=7)
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        names = [name for name, _ in model.features.named_children()]
        strided_stages = [i for i, s in enumerate((s1, *LATER_STRIDES[arch]), start=1) if s > 1]
        if pool == "strided":
            assert pool_units(model) == []
        else:
            assert pool_units(model) == [f"stage{i}_pool" for i in strided_stages]
        # placement: where each pooling layer sits relative to its stage's blocks
        for i in strided_stages if pool != "strided" else []:
            at = names.index(f"stage{i}_pool")
            before, after = names[at - 1], [*names, ""][at + 1]
            if placement == "inner":
                assert before == f"stage{i}_block0"
            elif arch == "mobilenetv2":
                assert after == f"stage{i}_block0"
            else:
                assert before == f"stage{i}_block1" and not after.startswith(f"stage{i}_")

        seen: dict[str, tuple[torch.Size, torch.Size]] = {}
        hooks = [
            unit.register_forward_hook(lambda _m, i, o, name=name, seen=seen: seen.__setitem__(name, (i[0].shape, o.shape)))
            for name, unit in model.features.named_children()
        ]
        with torch.no_grad():
            logits = model(torch.randn(2, 3, input_size, input_size))
        for hook in hooks:
            hook.remove()
        assert logits.shape == (2, 7) and torch.isfinite(logits).all()
        for name in pool_units(model):
            stride = (s1, *LATER_STRIDES[arch])[int(name[5]) - 1]
            (b, c, h, w), out = seen[name]
            assert out == (b, c, h // stride, w // stride), name
        side = expected_feature_side(arch, input_size, s1, pool)
        last = list(model.features.named_children())[-1][0]
        assert seen[last][1][-2:] == (side, side), f"{cfg}"


@pytest.mark.parametrize("arch", ARCHS)
def test_strided_baseline_strides_its_first_blocks(arch: str) -> None:
    model = build_model(ModelConfig(arch=arch, width=SMALL_WIDTH[arch], pool="strided", s1=2, input_size=64))
    for i, stride in enumerate((2, *LATER_STRIDES[arch]), start=1):
        strides = {m.stride for m in getattr(model.features, f"stage{i}_block0").modules() if isinstance(m, nn.Conv2d)}
        assert max(strides) == (stride, stride)


# Output channels of (stem, stages 1..7, head): torchvision's / Keras' MobileNetV2 at these multipliers.
MOBILENETV2_CHANNELS = {
    1.0: (32, 16, 24, 32, 64, 96, 160, 320, 1280),
    0.75: (24, 16, 24, 24, 48, 72, 120, 240, 1280),
    0.5: (16, 8, 16, 16, 32, 48, 80, 160, 1280),
    0.35: (16, 8, 8, 16, 24, 32, 56, 112, 1280),
}


@pytest.mark.parametrize("width", list(MOBILENETV2_CHANNELS))
def test_mobilenetv2_width_multiplier_channels(width: float) -> None:
    model = build_model(ModelConfig(width=width, pool="strided", s1=1, input_size=64))
    units = dict(model.features.named_children())
    blocks = {1: 1, 2: 2, 3: 3, 4: 4, 5: 3, 6: 3, 7: 1}
    last_conv_out = lambda unit: [m for m in unit.modules() if isinstance(m, nn.Conv2d)][-1].out_channels  # noqa: E731
    channels = (
        last_conv_out(units["stem"]),
        *(last_conv_out(units[f"stage{i}_block{n - 1}"]) for i, n in blocks.items()),
        last_conv_out(units["head"]),
    )
    assert channels == MOBILENETV2_CHANNELS[width]
    assert all(c % 8 == 0 for c in channels)


def test_default_model_is_the_papers_best_mobilenetv2() -> None:
    cfg = preset_config(DEFAULT_PRESET)
    assert cfg == ModelConfig()
    assert (cfg.arch, cfg.width, cfg.pool, cfg.s1, cfg.placement, cfg.input_size, cfg.num_classes) == (
        "mobilenetv2", 0.35, "nlp", 2, "inner", 96, 10,
    )
    model = build_model(cfg)
    pools = {name: unit for name, unit in model.features.named_children() if name.endswith("_pool")}
    assert all(isinstance(unit, SelfAttentivePool) for unit in pools.values())
    # every down-sampling stage (1, 2, 3, 4, 6) pools with the authors' schedule (4, 4, 4, 2, 2, 1, 1)
    assert {name: (unit.stride, unit.patch_size) for name, unit in pools.items()} == {
        "stage1_pool": (2, 4), "stage2_pool": (2, 4), "stage3_pool": (2, 4), "stage4_pool": (2, 2), "stage6_pool": (2, 1),
    }
    assert all(unit.options.upsample == "bilinear" and unit.options.num_heads == 2 for unit in pools.values())


def test_explicit_patch_sizes_reach_the_layers() -> None:
    model = build_model(ModelConfig(input_size=128, patch_sizes=(2, 2, 2, 2, 1, 1, 1)))
    assert [u.patch_size for n, u in model.features.named_children() if n.endswith("_pool")] == [2, 2, 2, 2, 1]


def test_scheduled_patch_falls_back_to_a_divisor_of_the_map() -> None:
    # 160 input: stage 4 sees 10x10 with scheduled patch 2; stage 6 sees 5x5 (patch 1); stage 3 sees 20x20 (4)
    model = build_model(ModelConfig(input_size=160))
    patches = {n: u.patch_size for n, u in model.features.named_children() if n.endswith("_pool")}
    assert patches == {"stage1_pool": 4, "stage2_pool": 4, "stage3_pool": 4, "stage4_pool": 2, "stage6_pool": 1}
    model = build_model(ModelConfig(input_size=72))  # stage 3 sees 9x9: scheduled 4 -> largest divisor 3
    patches = {n: u.patch_size for n, u in model.features.named_children() if n.endswith("_pool")}
    assert patches["stage3_pool"] == 3


@pytest.mark.parametrize("arch", ARCHS)
def test_every_nlp_option_reaches_every_pooling_layer(arch: str) -> None:
    changes = {
        "embed_ratio": 0.25, "num_heads": 4, "pos_embed": "none", "attention": "prenorm", "upsample": "bilinear",
        "use_sigmoid": False, "use_exp": False, "embed_norm": False, "restore_norm": False, "pooling": "nowin",
    }
    cfg = ModelConfig(arch=arch, width=SMALL_WIDTH[arch], input_size=64).replace(**changes)
    pools = [m for m in build_model(cfg).modules() if isinstance(m, SelfAttentivePool)]
    assert len(pools) == (5 if arch == "mobilenetv2" else 4)
    for pool in pools:
        assert all(getattr(pool.options, name) == value for name, value in changes.items())


@pytest.mark.parametrize("arch", ARCHS)
def test_lip_in_a_model_starts_as_average_pooling(arch: str) -> None:
    """The backbones' weight init must leave LIP's zero logit conv alone."""
    model = build_model(ModelConfig(arch=arch, width=SMALL_WIDTH[arch], pool="lip", input_size=64))
    lips = [m for m in model.modules() if isinstance(m, LIPPool)]
    assert lips and all(torch.count_nonzero(m.logit.weight) == 0 for m in lips)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds(name: str) -> None:
    cfg = preset_config(name)
    assert cfg.validated() is cfg
    model = build_model(cfg)
    assert [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features == cfg.num_classes


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"pool": "median"}, "--pool"),
        ({"s1": 3}, "--s1"),
        ({"input_size": 98}, "--input-size"),  # not a multiple of stem stride 2 x s1 2
        ({"arch": "resnet18", "input_size": 100}, "--input-size"),  # resnet stem stride 4 x s1 2 = 8
        ({"input_size": 32}, "--input-size"),  # too small for six stride-2 stages
        ({"arch": "vgg16"}, "--arch"),
        ({"placement": "middle"}, "--placement"),
        ({"width": 0.0}, "--width"),
        ({"num_classes": 1}, "--num-classes"),
        ({"patch_sizes": (4, 4)}, "--patch-sizes"),
        ({"patch_sizes": (0, 4, 4, 2, 2, 1, 1)}, "--patch-sizes"),
        ({"patch_sizes": (4, 4, 8, 2, 2, 1, 1)}, "--patch-sizes"),  # 8 does not divide stage 3's 12x12 map
        ({"upsample": "cubic"}, "upsample"),
    ],
)
def test_bad_configs_give_one_line_errors(changes: dict[str, object], names: str) -> None:
    with pytest.raises(NlpoolError) as err:
        build_model(ModelConfig().replace(**changes))
    message = str(err.value)
    assert "\n" not in message and names in message and ":" in message


def test_config_round_trips_through_a_dict() -> None:
    cfg = ModelConfig(arch="resnet18", width=0.5, pool="gaussian", s1=4, placement="outer", input_size=128, patch_sizes=(4, 2, 1, 1))
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(NlpoolError, match="unknown keys"):
        ModelConfig.from_dict(cfg.to_dict() | {"dropout": 0.5})


def test_checkpoint_round_trip_rebuilds_the_same_model(tmp_path) -> None:
    cfg = ModelConfig(pool="rnnpool", input_size=64, num_classes=4)
    model = settle_batchnorm(build_model(cfg), 64)
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(path, model, cfg, epoch=3)
    loaded, loaded_cfg = load_model(path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert loaded_cfg == cfg and torch.equal(loaded(x), model(x))
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left behind
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(NlpoolError, match="corrupt"):
        load_model(path)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("pool", list(POOL_KINDS))
def test_models_are_deterministic_in_eval(arch: str, pool: str) -> None:
    model = settle_batchnorm(build_model(ModelConfig(arch=arch, width=SMALL_WIDTH[arch], pool=pool, input_size=64)), 64)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        first = model(x)
        torch.manual_seed(99)
        assert torch.equal(model(x), first)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("pool", list(POOL_KINDS))
def test_gradients_reach_every_parameter_of_every_model(arch: str, pool: str) -> None:
    """Connectivity: a training step touches every parameter (exact-zero ones would be dead weights).

    Bilinear restoration: with nearest restoration and patch >= stride the self-attentive pooling is
    exactly AvgPool and its attention gets no gradient (see test_layers), which is not what this checks.
    """
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, width=SMALL_WIDTH[arch], pool=pool, input_size=64).replace(upsample="bilinear")
    model = build_model(cfg).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    touched: set[str] = set()
    for _ in range(2):  # LIP's InstanceNorm scale gets its first gradient once the zero logit conv has moved
        optimizer.zero_grad()
        logits = model(torch.randn(4, 3, 64, 64))
        nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
        touched |= {name for name, p in model.named_parameters() if p.grad is not None and torch.any(p.grad != 0)}
        optimizer.step()
    assert [name for name, _ in model.named_parameters() if name not in touched] == []


def test_summary_counts_match_hand_computation() -> None:
    cfg = ModelConfig()
    model = build_model(cfg)
    records, totals = summarize(model, cfg)
    by_name = {r.name: r for r in records}
    assert totals["params"] == sum(p.numel() for p in model.parameters()) == sum(r.params for r in records)
    assert by_name["stem"].macs == 48 * 48 * 16 * (3 * 3 * 3)  # conv 3x3/2, 3 -> 16 channels, 48x48 out
    assert by_name["stem"].output_shape == (1, 16, 48, 48) and by_name["stem"].activation_bytes == 16 * 48 * 48
    # stage 1 pooling: C = E = 8, 48x48 map, patch 4 -> 144 tokens
    tokens, c, e, side = 144, 8, 8, 48
    embed = tokens * e * c * 4 * 4
    projections = 4 * tokens * e * e
    attention = 2 * tokens * tokens * e
    restore = side * side * c * e
    assert by_name["stage1_pool"].macs == embed + projections + attention + restore
    assert by_name["stage1_pool"].output_shape == (1, 8, 24, 24)
    assert totals["macs"] == sum(r.macs for r in records)


# ---------------------------------------------------------------- the backbone registry


class _TinyNet(nn.Module):
    """The smallest backbone honouring the contract: `features` of named units, `global_pool`, `classifier`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        channels = 8
        self.features = nn.Sequential()
        self.features.add_module("stem", nn.Conv2d(3, channels, 3, 2, 1))
        for stage in downsampling_stages(cfg):
            options = {"options": cfg.nlp_options(stage.patch_size)} if cfg.pool == "nlp" else {}
            self.features.add_module(f"stage{stage.index}_pool", create_pool(cfg.pool, channels, stage.stride, **options))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.global_pool(self.features(x)), 1))


@pytest.fixture
def tiny_backbone() -> Iterator[str]:
    """Register `_TinyNet` as "tinynet" for one test, the way a backbone module registers itself."""
    register_backbone("tinynet", stem_stride=2, later_stage_strides=(2,), default_patch_sizes=(2, 1))(_TinyNet)
    try:
        yield "tinynet"
    finally:
        unregister_backbone("tinynet")
    assert "tinynet" not in backbone_names()


def test_a_registered_backbone_is_buildable_without_touching_other_files(tiny_backbone: str) -> None:
    cfg = ModelConfig(arch=tiny_backbone, input_size=16)
    model = build_model(cfg)
    assert isinstance(model, _TinyNet) and model(torch.randn(2, 3, 16, 16)).shape == (2, cfg.num_classes)
    # the registration's geometry drives validation and the patch schedule: 16 / stem 2 = 8 -> patch 2, then 4 -> patch 1
    assert cfg.stage_strides == (2, 2) and cfg.stage_patch_sizes() == (2, 1)
    with pytest.raises(NlpoolError, match="multiple of 4"):
        build_model(cfg.replace(input_size=18))
    code, out, _ = run_cli(["models"])
    assert code == 0 and "mobilenetv2 | resnet18 | tinynet" in out and "default for tinynet: 2,1" in out
    code, out, _ = run_cli(["summary", "--arch", tiny_backbone, "--input-size", "16"])
    assert code == 0 and "stage2_pool" in out


def test_backbone_registry_contents_and_errors() -> None:
    assert backbone_names() == ("mobilenetv2", "resnet18")
    assert get_backbone("mobilenetv2").cls is MobileNetV2 and get_backbone("resnet18").cls is ResNet18
    assert (get_backbone("resnet18").stem_stride, get_backbone("resnet18").default_patch_sizes) == (4, (4, 2, 1, 1))
    with pytest.raises(NlpoolError, match=r"unknown architecture 'vgg16': use --arch mobilenetv2\|resnet18"):
        get_backbone("vgg16")
    with pytest.raises(ValueError, match="already registered by MobileNetV2"):
        register_backbone("mobilenetv2", stem_stride=2, later_stage_strides=(2,), default_patch_sizes=(1, 1))(_TinyNet)
    with pytest.raises(ValueError, match="2 stages but 3 default patch sizes"):
        register_backbone("tinynet", stem_stride=2, later_stage_strides=(2,), default_patch_sizes=(1, 1, 1))(_TinyNet)
    assert get_backbone("mobilenetv2").cls is MobileNetV2 and backbone_names() == ("mobilenetv2", "resnet18")


# ---------------------------------------------------------------- the layer options inside ModelConfig


def test_layer_options_are_nested_but_stored_flat() -> None:
    """Checkpoints and report.json keep the flat keys they always had; ModelConfig holds one NLPoolOptions."""
    cfg = ModelConfig().replace(upsample="nearest", num_heads=4)
    assert cfg.nlp == NLPoolOptions(upsample="nearest", num_heads=4) and cfg.option("num_heads") == 4
    assert list(cfg.to_dict()) == [
        "arch", "width", "pool", "s1", "placement", "input_size", "num_classes", "patch_sizes", "embed_ratio", "num_heads",
        "pos_embed", "attention", "upsample", "use_sigmoid", "use_exp", "embed_norm", "restore_norm", "pooling", "pruned_channels",
    ]
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert ModelConfig.from_dict({"upsample": "nearest"}) == ModelConfig().replace(upsample="nearest")  # missing keys: defaults
    with pytest.raises(NlpoolError, match="unknown keys \\['patch_size'\\]"):
        ModelConfig.from_dict({"patch_size": 4})
    with pytest.raises(NlpoolError, match="--patch-sizes"):
        ModelConfig(nlp=NLPoolOptions(patch_size=4, upsample="bilinear")).validated()


def test_the_shipped_checkpoint_config_reads_back_unchanged() -> None:
    stored = read_checkpoint(SHIPPED_WEIGHTS)["config"]
    cfg = ModelConfig.from_dict(stored)
    assert cfg == preset_config(DEFAULT_PRESET) and cfg.to_dict() == stored
