"""Pooling layers: each one computes its published formula, written out by hand here.

The hand computations use plain tensor ops (window means via reshape, BatchNorm as (x - m) / sqrt(v + eps),
nearest upsampling via repeat_interleave, torch's own nn.MultiheadAttention) and read only the layer's
parameters, never its forward code, so a change of meaning in a layer fails a test.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nlpool.layers import (
    POOL_KINDS,
    AvgPool,
    GaussianPool,
    LIPPool,
    MaxPool,
    MultiHeadSelfAttention,
    NLPoolOptions,
    RNNPool,
    SelfAttentivePool,
    StridedConvPool,
    create_pool,
    embed_width,
    weighted_avg_pool,
)

# Every single ablation / option switch of the self-attentive pooling, as constructor keyword arguments.
NLP_VARIANTS = {
    "default": {},
    "no_sigmoid": {"use_sigmoid": False},
    "no_exp": {"use_exp": False},
    "no_embed_norm": {"embed_norm": False},
    "no_restore_norm": {"restore_norm": False},
    "no_pos_embed": {"pos_embed": "none"},
    "prenorm": {"attention": "prenorm"},
    "bilinear": {"upsample": "bilinear"},
    "nowin": {"pooling": "nowin"},
    "heads4_ratio_half": {"num_heads": 4, "embed_ratio": 0.5},
}


@torch.no_grad()
def perturb(module: nn.Module, seed: int = 0) -> nn.Module:
    """Move every parameter and normalisation statistic off its initial value.

    Initial values are special (zero convs, unit BatchNorm, LIP's uniform weights); a formula that only
    holds at initialisation must not pass these tests.
    """
    gen = torch.Generator().manual_seed(seed)
    for param in module.parameters():
        param.add_(0.2 * torch.randn(param.shape, generator=gen))
    for sub in module.modules():
        if isinstance(sub, nn.BatchNorm2d):
            sub.running_mean.copy_(0.2 * torch.randn(sub.num_features, generator=gen))
            sub.running_var.copy_(0.5 + torch.rand(sub.num_features, generator=gen))
    return module


def window_mean(t: torch.Tensor, s: int) -> torch.Tensor:
    """Mean over non-overlapping s x s windows (floor), by reshaping: the definition of AvgPool_s."""
    b, c, h, w = t.shape
    t = t[:, :, : h // s * s, : w // s * s]
    return t.reshape(b, c, h // s, s, w // s, s).mean(dim=(3, 5))


def bn_eval(t: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    shape = (1, -1, 1, 1)
    return (t - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps) * bn.weight.view(shape) + bn.bias.view(
        shape
    )


def torch_mha_copy(attn: MultiHeadSelfAttention) -> nn.MultiheadAttention:
    """A torch.nn.MultiheadAttention holding the same weights as our explicit attention."""
    dim = attn.q_proj.in_features
    mha = nn.MultiheadAttention(dim, attn.num_heads, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
        mha.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        mha.out_proj.weight.copy_(attn.out_proj.weight)
        mha.out_proj.bias.copy_(attn.out_proj.bias)
    return mha.eval()


@torch.no_grad()
def reference_nlp(layer: SelfAttentivePool, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's layer (eval mode) by hand; returns (output, pi, r = the restoration output before weighting)."""
    opts, p, s = layer.options, layer.options.patch_size, layer.stride
    conv = layer.patch_embed[0]
    grid = F.conv2d(x, conv.weight, conv.bias, stride=p)
    if opts.embed_norm:
        grid = bn_eval(grid, layer.patch_embed[1])
    grid = grid.clamp(min=0)
    batch, dim, gh, gw = grid.shape
    tokens = grid.flatten(2).transpose(1, 2)  # token n = row * gw + col
    if opts.pos_embed == "learned":
        table = layer.pos_embed
        pos = torch.stack([torch.cat([table.row_embed[i], table.col_embed[j]]) for i in range(gh) for j in range(gw)])
        tokens = tokens + pos
    attn_in = tokens
    if opts.attention == "prenorm":
        norm = layer.attn.norm
        attn_in = F.layer_norm(tokens, (dim,), norm.weight, norm.bias, norm.eps)
    mixed = torch_mha_copy(layer.attn)(attn_in, attn_in, attn_in, need_weights=False)[0]
    if opts.attention == "prenorm":
        mixed = tokens + mixed
    grid = mixed.transpose(1, 2).reshape(batch, dim, gh, gw)
    if opts.upsample == "nearest":
        grid = grid.repeat_interleave(p, dim=2).repeat_interleave(p, dim=3)
    else:
        grid = F.interpolate(grid, scale_factor=p, mode="bilinear", align_corners=False)
    restore = layer.restore[0]
    r = F.conv2d(grid, restore.weight, restore.bias)
    if opts.restore_norm:
        r = bn_eval(r, layer.restore[1])
    pi = r
    if opts.use_sigmoid:
        pi = torch.sigmoid(pi)
    if opts.use_exp:
        pi = torch.exp(pi)
    numerator = window_mean(pi * x, s)
    out = numerator / window_mean(pi, s) if opts.pooling == "window" else numerator
    return out, pi, r


def make_nlp(channels: int = 8, stride: int = 2, seed: int = 0, **options: object) -> SelfAttentivePool:
    torch.manual_seed(seed)
    return perturb(SelfAttentivePool(channels, stride, **options), seed).eval()


# ---------------------------------------------------------------- shapes and the (channels, stride) contract


@pytest.mark.parametrize("kind", list(POOL_KINDS))
@pytest.mark.parametrize("stride", [2, 4])
def test_every_kind_maps_to_h_over_s(kind: str, stride: int) -> None:
    layer = create_pool(kind, 12, stride).eval()
    x = torch.randn(2, 12, 16, 8)
    with torch.no_grad():
        assert layer(x).shape == (2, 12, 16 // stride, 8 // stride)


@pytest.mark.parametrize("kind", [k for k in POOL_KINDS if k != "strided"])
def test_partial_windows_are_dropped(kind: str) -> None:
    """Floor semantics on odd maps for the window-based pools (nlp with patch 1 tokenises every pixel)."""
    options = {"patch_size": 1} if kind == "nlp" else {}
    layer = create_pool(kind, 4, 2, **options).eval()
    with torch.no_grad():
        assert layer(torch.randn(1, 4, 9, 7)).shape == (1, 4, 4, 3)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown pooling kind"):
        create_pool("median", 8, 2)


# ---------------------------------------------------------------- the weighted pooling and self-attentive pooling


def test_weighted_pool_with_uniform_weights_is_average_pooling() -> None:
    x = torch.randn(2, 3, 8, 8)
    pi = torch.full_like(x, 1.7)
    assert torch.allclose(weighted_avg_pool(x, pi, 2), F.avg_pool2d(x, 2), atol=1e-6)
    assert torch.allclose(weighted_avg_pool(x, pi, 2, ratio=False), 1.7 * F.avg_pool2d(x, 2), atol=1e-6)


def test_weighted_pool_with_one_hot_weights_picks_the_element() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 8, 8, generator=gen)
    s = 4
    pick = torch.randint(0, s * s, (2, 3, 2, 2), generator=gen)  # one chosen position per window
    onehot = F.one_hot(pick, s * s).float().reshape(2, 3, 2, 2, s, s)
    pi = onehot.permute(0, 1, 2, 4, 3, 5).reshape(2, 3, 8, 8)
    windows = x.reshape(2, 3, 2, s, 2, s).permute(0, 1, 2, 4, 3, 5).reshape(2, 3, 2, 2, s * s)
    expected = windows.gather(-1, pick.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(weighted_avg_pool(x, pi, s), expected, atol=1e-6)


@pytest.mark.parametrize(("patch", "stride", "size"), [(1, 2, 6), (2, 2, 8), (4, 2, 8), (2, 4, 8), (4, 4, 12)])
def test_self_attentive_pool_equals_the_paper_formula(patch: int, stride: int, size: int) -> None:
    layer = make_nlp(8, stride, patch_size=patch)
    x = torch.randn(2, 8, size, size)
    expected, pi, _ = reference_nlp(layer, x)
    with torch.no_grad():
        assert torch.allclose(layer.pool_weights(x), pi, atol=1e-5)
        assert torch.allclose(layer(x), expected, atol=1e-5)
    assert pi.min() >= 1 and pi.max() <= math.e  # exp(sigmoid(.)) lies in [1, e]


@pytest.mark.parametrize("variant", list(NLP_VARIANTS))
def test_every_option_computes_its_formula(variant: str) -> None:
    # patch 2 inside 4 x 4 windows: pi varies within a window, so every branch of the layer matters
    layer = make_nlp(8, 4, seed=3, patch_size=2, **NLP_VARIANTS[variant])
    x = torch.randn(2, 8, 8, 8)
    expected, _, _ = reference_nlp(layer, x)
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, atol=1e-5)


@pytest.mark.parametrize(("patch", "stride"), [(2, 2), (4, 2), (4, 4)])
def test_nearest_restoration_with_patch_multiple_of_stride_is_average_pooling(patch: int, stride: int) -> None:
    """A property of the formula worth knowing: nearest upsampling makes pi constant on each p x p patch,
    so when p is a multiple of s every window sees one weight and the ratio is plain AvgPool, whatever
    the attention computes (and the attention branch then gets no gradient). Bilinear restoration or
    p < s (e.g. p = 1) avoid it."""
    x = torch.randn(2, 8, 8, 8)
    nearest = make_nlp(8, stride, patch_size=patch)
    bilinear = make_nlp(8, stride, patch_size=patch, upsample="bilinear")
    with torch.no_grad():
        assert torch.allclose(nearest(x), F.avg_pool2d(x, stride), atol=1e-5)
        assert not torch.allclose(bilinear(x), F.avg_pool2d(x, stride), atol=1e-3)


def test_untrained_restoration_gives_average_pooling() -> None:
    """A zero restoration conv makes pi constant per channel: the layer is then exactly AvgPool."""
    layer = make_nlp(8, 4, patch_size=2)
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(layer(x), F.avg_pool2d(x, 4), atol=1e-3)
        layer.restore[0].weight.zero_()
        layer.restore[0].bias.zero_()
        assert torch.allclose(layer(x), F.avg_pool2d(x, 4), atol=1e-5)


@pytest.mark.parametrize(
    ("channels", "ratio", "heads", "width"),
    [(8, 1.0, 2, 8), (24, 1.0, 2, 24), (8, 0.25, 2, 2), (10, 0.25, 4, 4), (3, 0.1, 2, 2), (40, 0.25, 2, 10)],
)
def test_embedding_width_is_a_multiple_of_the_heads(channels: int, ratio: float, heads: int, width: int) -> None:
    assert embed_width(channels, ratio, heads) == width
    layer = SelfAttentivePool(channels, 2, embed_ratio=ratio, num_heads=heads)
    assert layer.embed_dim == width and layer.attn.q_proj.out_features == width


def test_defaults_are_the_authors_code() -> None:
    opts = NLPoolOptions()
    assert (opts.patch_size, opts.embed_ratio, opts.num_heads) == (2, 1.0, 2)
    assert (opts.pos_embed, opts.attention, opts.upsample, opts.pooling) == ("learned", "plain", "nearest", "window")
    assert opts.use_sigmoid and opts.use_exp and opts.embed_norm and opts.restore_norm


@pytest.mark.parametrize(
    "bad", [{"pos_embed": "sine"}, {"attention": "post"}, {"upsample": "bicubic"}, {"pooling": "max"}, {"patch_size": 0}, {"num_heads": 0}]
)
def test_bad_options_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        NLPoolOptions(**bad)


# ---------------------------------------------------------------- ablation switches change exactly what they name

STRUCTURAL = {
    "no_embed_norm": {"patch_embed.1.weight", "patch_embed.1.bias", "patch_embed.1.running_mean", "patch_embed.1.running_var",
                      "patch_embed.1.num_batches_tracked"},
    "no_restore_norm": {"restore.1.weight", "restore.1.bias", "restore.1.running_mean", "restore.1.running_var",
                        "restore.1.num_batches_tracked"},
    "no_pos_embed": {"pos_embed.row_embed", "pos_embed.col_embed"},
}


@pytest.mark.parametrize("variant", [v for v in NLP_VARIANTS if v not in ("default", "heads4_ratio_half")])
def test_ablation_changes_only_the_named_tensors(variant: str) -> None:
    """Removing a BatchNorm / the positional tables drops exactly those tensors; prenorm adds exactly a
    LayerNorm; the functional switches keep every tensor (a default checkpoint loads into them)."""
    base = set(SelfAttentivePool(8, 2).state_dict())
    keys = set(SelfAttentivePool(8, 2, **NLP_VARIANTS[variant]).state_dict())
    if variant in STRUCTURAL:
        assert base - keys == STRUCTURAL[variant] and not keys - base
    elif variant == "prenorm":
        assert keys - base == {"attn.norm.weight", "attn.norm.bias"} and not base - keys
    else:
        assert keys == base


def _restore_output(layer: SelfAttentivePool, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(r, pi): the restoration output and the pooling weights made from it."""
    seen: list[torch.Tensor] = []
    handle = layer.restore.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        pi = layer.pool_weights(x)
    handle.remove()
    return seen[0], pi


@pytest.mark.parametrize(
    ("variant", "weighting"),
    [("default", lambda r: torch.exp(torch.sigmoid(r))), ("no_sigmoid", torch.exp), ("no_exp", torch.sigmoid)],
)
def test_weighting_switches_change_only_the_weighting(variant: str, weighting) -> None:
    """Same weights: the restoration output r is identical and only pi = f(r) changes."""
    base = make_nlp(8, 2, seed=5)
    layer = SelfAttentivePool(8, 2, **NLP_VARIANTS[variant]).eval()
    layer.load_state_dict(base.state_dict())
    x = torch.randn(2, 8, 8, 8)
    r_base, _ = _restore_output(base, x)
    r, pi = _restore_output(layer, x)
    assert torch.equal(r, r_base)
    assert torch.allclose(pi, weighting(r), atol=1e-6)


def test_nowin_drops_only_the_denominator() -> None:
    base = make_nlp(8, 4, seed=6)
    nowin = SelfAttentivePool(8, 4, pooling="nowin").eval()
    nowin.load_state_dict(base.state_dict())
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        pi = base.pool_weights(x)
        assert torch.equal(nowin.pool_weights(x), pi)
        assert torch.allclose(nowin(x), F.avg_pool2d(pi * x, 4), atol=1e-6)
        assert torch.allclose(base(x), F.avg_pool2d(pi * x, 4) / F.avg_pool2d(pi, 4), atol=1e-6)


def test_bilinear_changes_only_the_interpolation() -> None:
    base = make_nlp(8, 2, seed=7, patch_size=4)
    bilinear = SelfAttentivePool(8, 2, patch_size=4, upsample="bilinear").eval()
    bilinear.load_state_dict(base.state_dict())
    x = torch.randn(2, 8, 16, 16)
    inputs: dict[str, torch.Tensor] = {}
    for name, layer in (("nearest", base), ("bilinear", bilinear)):
        handle = layer.restore.register_forward_hook(lambda _m, i, _o, name=name: inputs.__setitem__(name, i[0]))
        attn_out: list[torch.Tensor] = []
        h2 = layer.attn.register_forward_hook(lambda _m, _i, o, store=attn_out: store.append(o))
        with torch.no_grad():
            layer.pool_weights(x)
        handle.remove()
        h2.remove()
        grid = attn_out[0].transpose(1, 2).reshape(2, layer.embed_dim, 4, 4)
        inputs[name + "_grid"] = grid
    assert torch.equal(inputs["nearest_grid"], inputs["bilinear_grid"])
    grid = inputs["nearest_grid"]
    assert torch.equal(inputs["nearest"], grid.repeat_interleave(4, 2).repeat_interleave(4, 3))
    assert torch.allclose(inputs["bilinear"], F.interpolate(grid, scale_factor=4, mode="bilinear", align_corners=False), atol=1e-6)
    assert not torch.allclose(inputs["bilinear"], inputs["nearest"])


def test_prenorm_adds_layernorm_and_residual() -> None:
    base = make_nlp(8, 2, seed=8)
    prenorm = SelfAttentivePool(8, 2, attention="prenorm").eval()
    prenorm.load_state_dict(base.state_dict(), strict=False)
    perturb(prenorm.attn.norm, seed=9)
    assert isinstance(prenorm.attn.norm, nn.LayerNorm) and isinstance(base.attn.norm, nn.Identity)
    tokens = torch.randn(2, 16, 8)
    mha = torch_mha_copy(base.attn)
    with torch.no_grad():
        normed = F.layer_norm(tokens, (8,), prenorm.attn.norm.weight, prenorm.attn.norm.bias, prenorm.attn.norm.eps)
        assert torch.allclose(prenorm.attn(tokens), tokens + mha(normed, normed, normed, need_weights=False)[0], atol=1e-5)
        assert torch.allclose(base.attn(tokens), mha(tokens, tokens, tokens, need_weights=False)[0], atol=1e-5)


# ---------------------------------------------------------------- attention = torch.nn.MultiheadAttention


@pytest.mark.parametrize(("dim", "heads"), [(8, 1), (8, 2), (12, 3), (16, 4)])
def test_explicit_attention_equals_torch_mha(dim: int, heads: int) -> None:
    torch.manual_seed(dim + heads)
    mha = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    attn = MultiHeadSelfAttention(dim, heads)
    attn.load_from_torch_mha(mha)
    tokens = torch.randn(3, 10, dim)
    with torch.no_grad():
        assert torch.allclose(attn(tokens), mha(tokens, tokens, tokens, need_weights=False)[0], atol=1e-5)


def test_prenorm_attention_equals_layernorm_mha_residual() -> None:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 2, batch_first=True).eval()
    norm = perturb(nn.LayerNorm(16))
    attn = MultiHeadSelfAttention(16, 2, form="prenorm")
    attn.load_from_torch_mha(mha)
    attn.norm.load_state_dict(norm.state_dict())
    tokens = torch.randn(2, 9, 16)
    with torch.no_grad():
        normed = norm(tokens)
        assert torch.allclose(attn(tokens), tokens + mha(normed, normed, normed, need_weights=False)[0], atol=1e-5)


# ---------------------------------------------------------------- the peers


def test_lip_starts_as_average_pooling() -> None:
    layer = LIPPool(8, 2)
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        assert torch.allclose(layer(x), F.avg_pool2d(x, 2), atol=1e-5)


@pytest.mark.parametrize("kernel", [1, 3])
def test_lip_equals_its_formula(kernel: int) -> None:
    layer = perturb(LIPPool(8, 2, logit_kernel=kernel)).eval()
    x = torch.randn(2, 8, 8, 8)
    z = F.conv2d(x, layer.logit.weight, padding=kernel // 2)
    mean = z.mean(dim=(2, 3), keepdim=True)
    var = z.var(dim=(2, 3), unbiased=False, keepdim=True)
    z = (z - mean) / torch.sqrt(var + layer.norm.eps) * layer.norm.weight.view(1, -1, 1, 1) + layer.norm.bias.view(1, -1, 1, 1)
    weights = torch.exp(12 * torch.sigmoid(z))
    expected = window_mean(weights * x, 2) / window_mean(weights, 2)
    with torch.no_grad():
        assert torch.allclose(layer(x), expected, atol=1e-4, rtol=1e-4)


def _gaussian_by_hand(layer: GaussianPool, x: torch.Tensor, eps: torch.Tensor | None) -> torch.Tensor:
    """mu + softplus(M [+ S * eps]) * sigma, BatchNorm in eval form (eps None) or with batch statistics."""

    def bn(t: torch.Tensor, norm: nn.BatchNorm2d) -> torch.Tensor:
        if eps is None:
            return bn_eval(t, norm)
        mean = t.mean(dim=(0, 2, 3), keepdim=True)
        var = t.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        return (t - mean) / torch.sqrt(var + norm.eps) * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)

    def conv1x1(t: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
        return torch.einsum("oi,bihw->bohw", conv.weight[:, :, 0, 0], t)

    context = x.mean(dim=(2, 3), keepdim=True)
    z = bn(conv1x1(context, layer.squeeze[0]), layer.squeeze[1]).clamp(min=0)
    m = bn(conv1x1(z, layer.mean_head[0]), layer.mean_head[1])
    if eps is not None:
        m = m + torch.sigmoid(bn(conv1x1(z, layer.scale_head[0]), layer.scale_head[1])) * eps
    eta = torch.log1p(torch.exp(m))
    mu = window_mean(x, 2)
    var = window_mean((x - mu.repeat_interleave(2, 2).repeat_interleave(2, 3)) ** 2, 2)
    return mu + eta * torch.sqrt(var.clamp(min=1e-6))


def test_gaussian_pool_eval_is_mu_plus_softplus_m_sigma() -> None:
    layer = perturb(GaussianPool(8, 2)).eval()
    x = torch.randn(3, 8, 8, 8)
    with torch.no_grad():
        assert torch.allclose(layer(x), _gaussian_by_hand(layer, x, None), atol=1e-5)


def test_gaussian_pool_is_stochastic_in_training_deterministic_in_eval() -> None:
    layer = perturb(GaussianPool(8, 2))
    x = torch.randn(4, 8, 8, 8)
    with torch.no_grad():
        layer.train()
        torch.manual_seed(11)
        first = layer(x)
        torch.manual_seed(11)
        eps = torch.randn(4, 8, 1, 1)
        assert torch.allclose(first, _gaussian_by_hand(layer, x, eps), atol=1e-5)  # eta = softplus(M + S * eps)
        torch.manual_seed(12)
        assert not torch.allclose(layer(x), first)
        layer.eval()
        torch.manual_seed(13)
        evaluated = layer(x)
        torch.manual_seed(14)
        assert torch.equal(layer(x), evaluated)


def _fastgrnn_step(cell, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    pre = x @ cell.w.weight.T + h @ cell.u.weight.T
    z = torch.sigmoid(pre + cell.bias_gate)
    candidate = torch.tanh(pre + cell.bias_update)
    return z * h + (torch.sigmoid(cell.zeta) * (1 - z) + torch.sigmoid(cell.nu)) * candidate


def test_rnnpool_equals_hand_unrolled_fastgrnn_on_2x2_windows() -> None:
    """RNN1 over each row and each column of a window; bidirectional RNN2 over the two row summaries and
    over the two column summaries; output = [rows forward, rows backward, cols forward, cols backward]."""
    layer = perturb(RNNPool(8, 2, hidden1=3, hidden2=2)).eval()  # 4 * hidden2 == channels: no projection
    assert isinstance(layer.project, nn.Identity)
    x = torch.randn(2, 8, 4, 6)
    rnn1, rnn2 = layer.rnn1, layer.rnn2
    expected = torch.empty(2, 8, 2, 3)
    with torch.no_grad():
        for i in range(2):
            for j in range(3):
                win = x[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]  # (B, C, 2, 2)

                def sweep(cell, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
                    h = torch.zeros(first.shape[0], cell.hidden_size)
                    return _fastgrnn_step(cell, second, _fastgrnn_step(cell, first, h))

                row0, row1 = sweep(rnn1, win[:, :, 0, 0], win[:, :, 0, 1]), sweep(rnn1, win[:, :, 1, 0], win[:, :, 1, 1])
                col0, col1 = sweep(rnn1, win[:, :, 0, 0], win[:, :, 1, 0]), sweep(rnn1, win[:, :, 0, 1], win[:, :, 1, 1])
                summary = [sweep(rnn2, row0, row1), sweep(rnn2, row1, row0), sweep(rnn2, col0, col1), sweep(rnn2, col1, col0)]
                expected[:, :, i, j] = torch.cat(summary, dim=1)
        assert torch.allclose(layer(x), expected, atol=1e-5)


def test_rnnpool_projects_back_to_the_channel_count() -> None:
    layer = RNNPool(10, 2)
    assert isinstance(layer.project, nn.Conv2d) and layer.project.in_channels == 4 * layer.rnn2.hidden_size
    assert layer(torch.randn(1, 10, 4, 4)).shape == (1, 10, 2, 2)


@pytest.mark.parametrize("stride", [2, 4])
def test_local_pools_equal_torch_functional(stride: int) -> None:
    x = torch.randn(2, 8, 12, 12)
    strided = perturb(StridedConvPool(8, stride)).eval()
    expected = F.batch_norm(
        F.conv2d(x, strided.conv.weight, stride=stride, padding=1, groups=8),
        strided.bn.running_mean, strided.bn.running_var, strided.bn.weight, strided.bn.bias, eps=strided.bn.eps,
    )
    with torch.no_grad():
        assert torch.allclose(strided(x), expected, atol=1e-5)
        assert torch.equal(MaxPool(8, stride)(x), F.max_pool2d(x, stride, stride))
        assert torch.allclose(AvgPool(8, stride)(x), window_mean(x, stride), atol=1e-6)


# ---------------------------------------------------------------- gradients and determinism


def _redundant_bias(layer: nn.Module, name: str) -> bool:
    """Biases whose gradient is exactly zero by construction (redundant, not disconnected).

    - attention's key bias shifts every score of a query equally, and softmax ignores shifts (the same
      holds in torch.nn.MultiheadAttention);
    - a training-mode BatchNorm subtracts the batch mean, so it cancels any per-channel constant added
      before it: the patch-embedding conv bias, and, before the restoration BatchNorm, the restoration
      conv bias and the value / output-projection biases (attention rows sum to 1, so those biases add
      the same vector to every token, i.e. a per-channel constant over the map);
    - without the sigmoid, pi = exp(r): a per-channel bias on r scales pi of that channel, and the ratio
      AvgPool(pi x) / AvgPool(pi) ignores scale.
    """
    if not isinstance(layer, SelfAttentivePool):
        return False
    opts = layer.options
    before_restore_norm = {"restore.0.bias", "attn.v_proj.bias", "attn.out_proj.bias"}
    last_bias = "restore.1.bias" if opts.restore_norm else "restore.0.bias"
    return (
        name == "attn.k_proj.bias"
        or (name == "patch_embed.0.bias" and opts.embed_norm)
        or (name in before_restore_norm and opts.restore_norm)
        or (name == last_bias and not opts.use_sigmoid and opts.use_exp and opts.pooling == "window")
    )


def _assert_every_parameter_learns(layer: nn.Module, x: torch.Tensor) -> None:
    x = x.clone().requires_grad_(True)
    out = layer(x)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, param in layer.named_parameters():
        if _redundant_bias(layer, name):
            assert param.grad is not None and param.grad.abs().max() < 1e-4
            continue
        assert param.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        # a threshold, not > 0: a gradient that is zero in exact arithmetic comes out as float noise (~1e-8)
        assert param.grad.abs().max() > 3e-4, f"{name} gets no real gradient (max {param.grad.abs().max():.2g})"


@pytest.mark.parametrize("kind", list(POOL_KINDS))
def test_gradients_reach_every_parameter(kind: str) -> None:
    torch.manual_seed(0)
    _assert_every_parameter_learns(perturb(create_pool(kind, 8, 4)).train(), torch.randn(4, 8, 8, 8))


@pytest.mark.parametrize("variant", list(NLP_VARIANTS))
def test_gradients_reach_every_nlp_parameter_with_every_option(variant: str) -> None:
    torch.manual_seed(0)
    layer = perturb(SelfAttentivePool(8, 4, patch_size=2, **NLP_VARIANTS[variant])).train()
    _assert_every_parameter_learns(layer, torch.randn(4, 8, 8, 8))


@pytest.mark.parametrize("kind", list(POOL_KINDS))
def test_eval_is_deterministic(kind: str) -> None:
    layer = perturb(create_pool(kind, 8, 2)).eval()
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        first = layer(x)
        torch.manual_seed(123)
        assert torch.equal(layer(x), first)
