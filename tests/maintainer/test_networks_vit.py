"""The given Vision Transformer: contract checks and parity with the original implementation."""

from __future__ import annotations

import pytest
import torch

from dino_course.networks import vit
from dino_course.networks.vit import TINY_CPU, VIT_SMALL_16, ViTConfig, VisionTransformer, interpolate_pos_embed, vit_small, vit_tiny_cpu

pytestmark = pytest.mark.maintainer


@pytest.mark.parametrize("unit", [False, True], ids=["init-scale", "unit-scale"])
def test_pos_embed_interpolation_matches_original(golden, unit):
    entry = golden["pos_embed"]
    pos_embed = entry["pos_embed_unit" if unit else "pos_embed"]
    for case in entry["cases_unit" if unit else "cases"]:
        rows, cols = case["grid"]
        got = interpolate_pos_embed(pos_embed, rows, cols)
        # dino_v1_golden.README.md: an independent implementation agrees to 5.2e-7 x max|pos_embed|;
        # suggested 1e-6 relative
        torch.testing.assert_close(got, case["output"], rtol=0, atol=1e-6 * pos_embed.abs().max().item())


def _golden_backbone(golden) -> VisionTransformer:
    config = golden["train"]["config"]
    model = VisionTransformer(
        ViTConfig(img_size=config["img_size"][0], patch_size=config["patch_size"], embed_dim=config["embed_dim"], depth=config["depth"], num_heads=config["num_heads"])
    )
    state = {k.removeprefix("backbone."): v for k, v in golden["train"]["init_student"].items() if k.startswith("backbone.")}
    model.load_state_dict(state)  # strict: the keys match the original's
    return model


def test_last_attention_matches_original(golden):
    model = _golden_backbone(golden)
    attention = model.last_attention(golden["train"]["inputs"][0][0])
    torch.testing.assert_close(attention, golden["attention"]["attention"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [32, 16, 24])
def test_fast_attention_path_equals_explicit_probabilities(size):
    torch.manual_seed(0)
    model = vit_tiny_cpu(depth=1)
    images = torch.randn(2, 3, size, size)
    block = model.blocks[0]
    x = block.norm1(model.embed(images))
    explicit = block.attn.attention_probs(x) @ block.attn._split_heads(x)[2]  # (B, heads, N, hd)
    explicit = block.attn.proj(explicit.transpose(1, 2).reshape(x.shape))
    torch.testing.assert_close(block.attn(x), explicit, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cfg", [TINY_CPU, ViTConfig(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=4)])
def test_shapes_for_global_and_local_crops(cfg):
    model = VisionTransformer(cfg)
    for size in (cfg.img_size, cfg.img_size // 2):
        images = torch.randn(3, 3, size, size)
        tokens = (size // cfg.patch_size) ** 2
        assert model(images).shape == (3, cfg.embed_dim)
        assert model.token_features(images).shape == (3, 1 + tokens, cfg.embed_dim)
        attention = model.last_attention(images)
        assert attention.shape == (3, cfg.num_heads, 1 + tokens, 1 + tokens)
        torch.testing.assert_close(attention.sum(-1), torch.ones(3, cfg.num_heads, 1 + tokens))


def test_every_parameter_gets_a_gradient_and_no_nans():
    model = vit_tiny_cpu()
    out = model(torch.randn(2, 3, 32, 32)).sum() + model(torch.randn(2, 3, 16, 16)).sum()
    out.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name


def test_presets():
    assert sum(p.numel() for p in vit_small().parameters()) == 21_665_664  # ViT-S/16 with 224 px position embeddings
    assert VIT_SMALL_16.patch_size == 16 and VIT_SMALL_16.embed_dim == 384
    assert vit_tiny_cpu(embed_dim=48, num_heads=2).embed_dim == 48


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="embed_dim"):
        ViTConfig(embed_dim=100, num_heads=3)
    with pytest.raises(ValueError, match="img_size"):
        ViTConfig(img_size=30, patch_size=4)
    model = vit_tiny_cpu()
    with pytest.raises(ValueError, match="images"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="multiples of the patch size"):
        model(torch.randn(1, 3, 30, 30))


@pytest.mark.parametrize(
    "field, value",
    [("depth", True), ("patch_size", 16.0), ("num_heads", 0), ("mlp_ratio", float("nan")), ("mlp_ratio", 0),
     ("qkv_bias", "no"), ("qkv_bias", 1), ("layernorm_eps", -1e-6), ("layernorm_eps", float("inf"))],
)
def test_a_bad_config_field_is_refused_naming_it_and_its_value(field, value):
    with pytest.raises(ValueError, match=rf"^ViTConfig\.{field} must be .*, got {value!r}$"):
        ViTConfig(**{field: value})


@pytest.mark.skipif(vit._ONEDNN_LINEAR is None, reason="the oneDNN linear path is used on x86 CPUs with oneDNN only")
def test_onednn_linear_equals_f_linear_to_float32_rounding(monkeypatch):
    """The blocks' oneDNN linear (a speed change) gives F.linear's output and gradients up to rounding.

    Bound: a float32 dot product of k terms differs from the exact one by at most k·eps·Σ|a_i b_i|
    (the standard γ_k bound), so two orders of summation differ by at most twice that.
    """
    torch.manual_seed(0)
    layer = torch.nn.Linear(96, 384)
    x = torch.randn(4, 17, 96, requires_grad=True)
    grad_out = torch.randn(4, 17, 384)
    results = {}
    for fast in (True, False):
        monkeypatch.setattr(vit, "FAST_CPU_LINEAR", fast)
        layer.zero_grad()
        x.grad = None
        out = vit.linear(layer, x)
        assert (out.grad_fn.name() == "_OneDNNLinearBackward") == fast  # the path taken is the one asked for
        out.backward(grad_out)
        results[fast] = (out.detach(), x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone())
    eps = torch.finfo(torch.float32).eps
    w, xs, g = layer.weight.detach().abs(), x.detach().abs().reshape(-1, 96), grad_out.abs().reshape(-1, 384)
    bounds = (
        2 * 96 * eps * (xs @ w.T + layer.bias.detach().abs()).reshape(4, 17, 384),  # output
        2 * 384 * eps * (g @ w).reshape(4, 17, 96),  # input gradient
        2 * 68 * eps * (g.T @ xs),  # weight gradient (68 rows)
        2 * 68 * eps * g.sum(0),  # bias gradient
    )
    for name, fast, plain, bound in zip(("output", "input grad", "weight grad", "bias grad"), results[True], results[False], bounds):
        excess = ((fast - plain).abs() - bound).max().item()
        assert excess <= 0, f"{name}: the oneDNN linear differs from F.linear by more than float32 rounding ({excess:.3g} over)"


def test_explicit_attention_on_short_sequences_equals_the_fused_kernel(monkeypatch):
    """Up to `EXPLICIT_ATTENTION_MAX_TOKENS` tokens the ViT computes softmax(q k^T * scale) v itself;
    output and gradients agree with `F.scaled_dot_product_attention` to float32 rounding."""
    from dino_course.networks import vit

    torch.manual_seed(0)
    attention = vit.Attention(dim=48, num_heads=3, qkv_bias=True)
    x = torch.randn(5, 17, 48, requires_grad=True)
    results = {}
    for limit in (32, 0):  # 17 tokens: explicit, then fused
        monkeypatch.setattr(vit, "EXPLICIT_ATTENTION_MAX_TOKENS", limit)
        attention.zero_grad()
        x.grad = None
        out = attention(x)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        results[limit] = (out.detach(), x.grad.clone(), attention.qkv.weight.grad.clone())
    for explicit, fused in zip(results[32], results[0]):
        torch.testing.assert_close(explicit, fused, rtol=1e-5, atol=1e-6)
