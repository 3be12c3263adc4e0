"""Hidden checks for Lesson 3.3, the projection head (`dino_course/heads.py`).

Deterministic pieces are compared with the reference over a grid of widths, depths and
batch sizes, and the whole head is pinned to the original DINO implementation's numbers
(golden entry `head`, all three cases). The initialisation is random: checked by its
statistics (std of thousands of draws, the truncation, zero biases), never by replaying the
reference's random stream.

Tolerances (float32): the golden README measured 1.8e-7 between two independent correct
implementations of the head and 6e-8 for the effective last-layer weight, and suggests
1e-6 and 1e-7; we use those. Learner vs reference on the same weights: a few ulps per
operation through 3 small matmuls, hence rtol 1e-5 / atol 1e-6.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import solutions.heads as ref
from dino_course.grading.hints import expect, expect_close
from dino_course.grading.learner import LearnerModule

hd = LearnerModule("heads")

HEAD_GOLDEN_TOL = dict(rtol=0.0, atol=1e-6)  # golden README: 1.8e-7 observed, 1e-6 suggested
WEIGHT_GOLDEN_TOL = dict(rtol=0.0, atol=1e-7)  # golden README: 6e-8 observed (operation order), 1e-7 suggested
SAME_WEIGHTS_TOL = dict(rtol=1e-5, atol=1e-6)


def exercise(name: str):
    return pytest.mark.exercise("3.3", name)


def copy_weights(target: nn.Module, source: nn.Module) -> None:
    """Copy `source`'s state into `target` (same keys); fails the check with a hint if keys differ."""
    got, want = list(target.state_dict()), list(source.state_dict())
    expect(
        got == want,
        f"the head's state-dict keys {got} differ from the original's {want}: "
        "check the order of Linear / BatchNorm / GELU in build_mlp and the last layer's weight_g, weight_v",
    )
    target.load_state_dict(source.state_dict())


# ----------------------------------------------------------------------------- build_mlp

MLP_GRID = [
    # (in_dim, hidden, bottleneck, nlayers, use_bn)
    (24, 32, 16, 3, False),
    (24, 32, 16, 3, True),
    (7, 5, 3, 1, False),
    (7, 5, 3, 2, True),
    (10, 12, 4, 4, False),
    (10, 12, 4, 5, True),
]


@exercise("build_mlp")
def test_build_mlp_paper_layout():
    mlp = hd.build_mlp(24, 32, 16, nlayers=3, use_bn=False)
    expect(isinstance(mlp, nn.Sequential), f"build_mlp must return an nn.Sequential, got {type(mlp).__name__}")
    kinds = [type(m).__name__ for m in mlp]
    expect(
        kinds == ["Linear", "GELU", "Linear", "GELU", "Linear"],
        f"3 layers without BatchNorm should be Linear, GELU, Linear, GELU, Linear; got {kinds} "
        "(no activation after the last Linear: the bottleneck is normalised, not activated)",
    )
    expect(
        all(m.approximate == "none" for m in mlp if isinstance(m, nn.GELU)),
        "use the exact GELU, nn.GELU() (the original does not use the tanh approximation)",
    )
    shapes = [tuple(m.weight.shape) for m in mlp if isinstance(m, nn.Linear)]
    expect(shapes == [(32, 24), (32, 32), (16, 32)], f"Linear weights should be (32,24), (32,32), (16,32), got {shapes}")
    expect(all(m.bias is not None for m in mlp if isinstance(m, nn.Linear)), "the MLP's Linear layers have a bias")


@exercise("build_mlp")
@pytest.mark.parametrize("in_dim,hidden,bottleneck,nlayers,use_bn", MLP_GRID)
def test_build_mlp_matches_reference_keys_and_shapes(in_dim, hidden, bottleneck, nlayers, use_bn):
    mlp = hd.build_mlp(in_dim, hidden, bottleneck, nlayers=nlayers, use_bn=use_bn)
    want = ref.build_mlp(in_dim, hidden, bottleneck, nlayers=nlayers, use_bn=use_bn)
    got_shapes = {k: tuple(v.shape) for k, v in mlp.state_dict().items()}
    want_shapes = {k: tuple(v.shape) for k, v in want.state_dict().items()}
    hint = (
        f"nlayers={nlayers}, use_bn={use_bn}: state-dict keys/shapes {got_shapes} differ from {want_shapes}. "
        "Expected order per hidden layer: Linear, [BatchNorm1d], GELU; a single Linear when nlayers=1"
    )
    expect(got_shapes == want_shapes, hint)
    mlp.load_state_dict(want.state_dict())
    x = torch.randn(5, in_dim, generator=torch.Generator().manual_seed(nlayers))
    mlp.train(), want.train()
    expect_close(mlp(x), want(x), f"nlayers={nlayers}, use_bn={use_bn}: same weights, different output", **SAME_WEIGHTS_TOL)


@exercise("build_mlp")
def test_build_mlp_rejects_bad_sizes():
    hd.build_mlp(4, 4, 2)
    for kwargs in ({"nlayers": 0}, {"hidden_dim": -1}, {"in_dim": 2.5}):
        args = {"in_dim": 4, "hidden_dim": 4, "bottleneck_dim": 2, **kwargs}
        with pytest.raises(ValueError):
            hd.build_mlp(**args)


# ----------------------------------------------------------------------------- init_linear_weights


@exercise("init_linear_weights")
def test_init_linear_statistics():
    torch.manual_seed(0)
    layer = nn.Linear(256, 512)
    hd.init_linear_weights(layer)
    weight = layer.weight.detach()
    # 131072 draws: the sample std of N(0, 0.02²) is within 0.02 · (1 ± 0.01) with overwhelming probability
    # (its relative standard error is 1/sqrt(2n) = 0.2 %); PyTorch's default init has std ≈ 0.026.
    expect(abs(float(weight.std()) - 0.02) < 2e-4, f"weight std is {float(weight.std()):.4f}, expected 0.02: use nn.init.trunc_normal_(w, std=0.02)")
    expect(abs(float(weight.mean())) < 5e-4, "the weights should have mean 0")
    expect(float(weight.abs().max()) <= 2.0, "truncated normal: no value outside [-2, 2]")
    # A normal, not a uniform: about 68 % of the draws lie within one std (a uniform gives 58 %).
    inside = float((weight.abs() < 0.02).float().mean())
    expect(0.66 < inside < 0.70, f"{inside:.0%} of the weights lie within ±0.02, expected about 68 %: draw from a (truncated) normal")
    expect(torch.count_nonzero(layer.bias) == 0, "the bias must be set to zero")


@exercise("init_linear_weights")
def test_init_leaves_other_modules_alone():
    layer = nn.Linear(4, 4, bias=False)
    hd.init_linear_weights(layer)  # no bias: must not fail
    expect(layer.bias is None, "a Linear without bias must stay without bias")
    norm = nn.BatchNorm1d(6)
    with torch.no_grad():
        norm.weight.fill_(3.0)
    hd.init_linear_weights(norm)
    expect(torch.all(norm.weight == 3.0), "init_linear_weights changed a BatchNorm layer: only nn.Linear is initialised")
    torch.manual_seed(1)
    mlp = ref.build_mlp(64, 128, 32, nlayers=3, use_bn=True)
    mlp.apply(hd.init_linear_weights)
    stds = [float(m.weight.detach().std()) for m in mlp if isinstance(m, nn.Linear)]
    expect(all(abs(s - 0.02) < 1.5e-3 for s in stds), f"mlp.apply(init_linear_weights) should give every Linear std 0.02, got {stds}")


@exercise("init_linear_weights")
def test_head_init_mlp_only():
    torch.manual_seed(2)
    head = hd.DINOProjectionHead(in_dim=128, output_dim=512, hidden_dim=256, bottleneck_dim=64)
    for name, module in head.mlp.named_children():
        if isinstance(module, nn.Linear):
            expect(abs(float(module.weight.detach().std()) - 0.02) < 1e-3, f"head.mlp.{name}.weight should be initialised with std 0.02")
            expect(torch.count_nonzero(module.bias) == 0, f"head.mlp.{name}.bias should be zero")
    v = head.last_layer.weight_v.detach()
    bound = 1 / 64**0.5  # PyTorch's default Linear init: uniform(±1/sqrt(in_features))
    expect(
        float(v.abs().max()) <= bound and float(v.std()) > 0.05,  # uniform(±1/8): std 0.072, vs 0.02
        "the last layer's v keeps PyTorch's default Linear init (as in the original): apply the init to the MLP only",
    )
    expect(torch.all(head.last_layer.weight_g == 1), "the last layer's g starts at 1")


# ----------------------------------------------------------------------------- l2_normalize


@exercise("l2_normalize")
@pytest.mark.parametrize("shape", [(6, 16), (1, 3), (4, 2, 5), (128, 256)])
def test_l2_normalize_matches_reference(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape))) * 7
    got = hd.l2_normalize(x)
    expect_close(got, ref.l2_normalize(x), "rows should be divided by their L2 norm over the last dimension", **SAME_WEIGHTS_TOL)
    norms = torch.linalg.vector_norm(got, dim=-1)
    expect_close(norms, torch.ones_like(norms), "every row of the result should have norm 1", rtol=0, atol=1e-6)


@exercise("l2_normalize")
def test_l2_normalize_hand_values_zero_rows_and_gradients():
    got = hd.l2_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]]))
    expect_close(got, torch.tensor([[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]]), "[3, 4] → [0.6, 0.8]; an all-zero row must stay 0 (divide by max(‖x‖, eps)), not NaN")
    x = torch.randn(4, 8, requires_grad=True)
    y = hd.l2_normalize(x)
    expect(y.requires_grad, "l2_normalize must stay differentiable: no .detach(), no in-place ops on the input")
    (y * torch.randn(4, 8)).sum().backward()
    # The gradient of a normalisation is orthogonal to the input row (scaling x changes nothing).
    radial = (x.grad * x.detach()).sum(-1)
    expect_close(radial, torch.zeros(4), "the gradient should be orthogonal to each row: is the norm detached?", rtol=0, atol=1e-5)
    tiny = torch.full((1, 4), 1e-30)
    expect(torch.isfinite(hd.l2_normalize(tiny)).all(), "a tiny row must not give inf or NaN")


# ----------------------------------------------------------------------------- WeightNormalizedLinear.effective_weight


@exercise("WeightNormalizedLinear.effective_weight")
@pytest.mark.parametrize("in_features,out_features", [(16, 40), (3, 2), (256, 1000)])
def test_effective_weight_matches_reference(in_features, out_features):
    torch.manual_seed(in_features)
    layer = hd.WeightNormalizedLinear(in_features, out_features)
    with torch.no_grad():
        layer.weight_g.uniform_(0.5, 1.5)
        layer.weight_v.mul_(3.0)
    got = layer.effective_weight()
    expected = ref.WeightNormalizedLinear.effective_weight(layer)
    expect_close(got, expected, "W[k] should be g[k] · v[k] / ‖v[k]‖ (norm of each row of v, over the input dimension)", rtol=1e-6, atol=1e-7)
    norms = torch.linalg.vector_norm(got, dim=1, keepdim=True)
    expect_close(norms, layer.weight_g.detach(), "every row of the effective weight should have norm g[k]", rtol=1e-5, atol=1e-6)


@exercise("WeightNormalizedLinear.effective_weight")
def test_effective_weight_is_recomputed_and_differentiable():
    layer = hd.WeightNormalizedLinear(5, 4)
    first = layer.effective_weight()
    expect(first.requires_grad, "the effective weight must be differentiable with respect to g and v")
    first.sum().backward()
    expect(layer.weight_v.grad is not None and layer.weight_g.grad is not None, "gradients must reach both weight_g and weight_v")
    with torch.no_grad():
        layer.weight_v.mul_(10.0)
        layer.weight_g.fill_(2.0)
    second = layer.effective_weight()
    expect_close(second, 2 * first.detach(), "scaling v must not change W, and g = 2 must double it: compute W from g and v on every call", rtol=1e-5, atol=1e-6)


@exercise("WeightNormalizedLinear.effective_weight")
def test_effective_weight_matches_golden(golden):
    for case in ("default", "unnormed_last"):
        entry = golden["head"][case]
        layer = hd.WeightNormalizedLinear(16, 40)
        with torch.no_grad():
            layer.weight_g.copy_(entry["params"]["last_layer_g"])
            layer.weight_v.copy_(entry["params"]["last_layer_v"])
        expect_close(layer.effective_weight(), entry["params"]["last_layer_weight"], f"golden {case}: the original's last-layer weight differs", **WEIGHT_GOLDEN_TOL)
    perturbed = golden["head"]["unnormed_last"]["perturbed_g"]
    with torch.no_grad():
        layer.weight_g.copy_(perturbed["last_layer_g"])
    expect_close(layer.effective_weight(), perturbed["last_layer_weight"], "golden with g in [0.5, 1.5): the row norms must follow g", **WEIGHT_GOLDEN_TOL)


# ----------------------------------------------------------------------------- DINOProjectionHead.forward


def golden_head(module, golden: dict, case: str):
    """A head of `module` with the golden case's weights loaded under the original keys."""
    config, entry = golden["head"]["config"], golden["head"][case]
    options = config["cases"][case]
    head = module.DINOProjectionHead(
        in_dim=config["in_dim"],
        output_dim=config["out_dim"],
        hidden_dim=config["hidden_dim"],
        bottleneck_dim=config["bottleneck_dim"],
        nlayers=config["nlayers"],
        use_bn=options["use_bn"],
        norm_last_layer=options["norm_last_layer"],
    )
    state = {entry["original_keys"][alias]: value for alias, value in entry["params"].items() if alias in entry["original_keys"]}
    keys = list(head.state_dict())
    expect(sorted(keys) == sorted(state), f"golden {case}: the head's state-dict keys {keys} should be the original's {sorted(state)}")
    head.load_state_dict(state)
    return head.train(), entry


@exercise("DINOProjectionHead.forward")
def test_head_forward_shapes_and_unit_scale():
    torch.manual_seed(3)
    head = hd.DINOProjectionHead(in_dim=24, output_dim=40, hidden_dim=32, bottleneck_dim=16)
    out = head(torch.randn(6, 24) * 50)
    expect(tuple(out.shape) == (6, 40), f"output should be (B, K) = (6, 40), got {tuple(out.shape)}")
    expect(
        float(out.abs().max()) <= 1 + 1e-5,
        "with g = 1 every score is a cosine similarity in [-1, 1]: L2-normalise the bottleneck before the last layer",
    )


@exercise("DINOProjectionHead.forward")
@pytest.mark.parametrize("case", ["default", "unnormed_last", "with_bn"])
def test_head_matches_original_implementation(golden, case):
    head, entry = golden_head(hd, golden, case)
    parameters = dict(head.named_parameters())
    for alias, trainable in entry["trainable"].items():
        key = entry["original_keys"][alias]
        expect(
            parameters[key].requires_grad == trainable,
            f"golden {case}: {key}.requires_grad should be {trainable} (g is frozen exactly when norm_last_layer=True)",
        )
    output = head(entry["x"])
    expect_close(output, entry["output"], f"golden {case}: the output differs from the original DINO head (MLP → L2-normalise → last layer)", **HEAD_GOLDEN_TOL)
    if case == "with_bn":
        after = entry["bn_running_stats_after_forward"]
        for alias, value in after.items():
            key = entry["original_keys"][alias]
            expect_close(head.state_dict()[key], value, f"golden with_bn: BatchNorm {key} after one training-mode forward differs", **HEAD_GOLDEN_TOL)
    if case == "unnormed_last":
        perturbed = entry["perturbed_g"]
        with torch.no_grad():
            head.last_layer.weight_g.copy_(perturbed["last_layer_g"])
        expect_close(head(entry["x"]), perturbed["output"], "golden unnormed_last with g ≠ 1: the output must use g · v / ‖v‖", **HEAD_GOLDEN_TOL)


@exercise("DINOProjectionHead.forward")
def test_head_bottleneck_matches_original(golden):
    head, entry = golden_head(hd, golden, "default")
    expect_close(head.mlp(entry["x"]), entry["mlp_output"], "golden default: the MLP output differs", **HEAD_GOLDEN_TOL)
    expect_close(head.bottleneck(entry["x"]), entry["bottleneck_normalized"], "golden default: the normalised bottleneck differs", **HEAD_GOLDEN_TOL)


@exercise("DINOProjectionHead.forward")
@pytest.mark.parametrize(
    "in_dim,output_dim,hidden,bottleneck,nlayers,use_bn,norm_last",
    [(8, 5, 16, 4, 3, False, True), (12, 30, 20, 6, 2, True, False), (384, 1024, 512, 64, 3, False, True), (5, 7, 9, 3, 1, False, False)],
)
def test_head_matches_reference_and_backprops(in_dim, output_dim, hidden, bottleneck, nlayers, use_bn, norm_last):
    kwargs = dict(in_dim=in_dim, output_dim=output_dim, hidden_dim=hidden, bottleneck_dim=bottleneck, nlayers=nlayers, use_bn=use_bn, norm_last_layer=norm_last)
    torch.manual_seed(4)
    head = hd.DINOProjectionHead(**kwargs)
    want = ref.DINOProjectionHead(**kwargs)
    copy_weights(head, want)
    x = torch.randn(7, in_dim, generator=torch.Generator().manual_seed(in_dim))
    expect_close(head(x), want(x), "same weights, different output from the reference head", **SAME_WEIGHTS_TOL)
    head.zero_grad()
    want.zero_grad()
    (head(x) * torch.linspace(-1, 1, output_dim)).sum().backward()
    (want(x) * torch.linspace(-1, 1, output_dim)).sum().backward()
    for (name, p), q in zip(head.named_parameters(), want.parameters()):
        if q.grad is None:
            expect(p.grad is None, f"{name} received a gradient but is frozen (norm_last_layer=True fixes g)")
            continue
        expect(p.grad is not None, f"{name} received no gradient")
        expect_close(p.grad, q.grad, f"gradient of {name} differs from the reference", rtol=1e-4, atol=1e-6)


@exercise("DINOProjectionHead.forward")
def test_head_accepts_seed_config_and_deepcopies():
    config = {"hidden_dim": 2048, "bottleneck_dim": 256, "output_dim": 65536, "use_bn": False, "norm_last_layer": True}
    torch.manual_seed(5)
    head = hd.DINOProjectionHead(in_dim=384, **config)
    out = head(torch.randn(2, 384))
    expect(tuple(out.shape) == (2, 65536), f"the paper's head should give (B, 65536), got {tuple(out.shape)}")
    expect(not head.last_layer.weight_g.requires_grad, "norm_last_layer=True: weight_g must not require grad")
    twin = copy.deepcopy(head)
    x = torch.randn(3, 384)
    expect(torch.equal(twin(x), head(x)), "a deep copy of the head (the teacher) must give the same outputs")
    with torch.no_grad():
        twin.last_layer.weight_v.add_(1.0)
    expect(not torch.equal(twin.last_layer.weight_v, head.last_layer.weight_v), "the deep copy shares tensors with the original")


@exercise("DINOProjectionHead.forward")
def test_head_rejects_bad_input():
    head = hd.DINOProjectionHead(in_dim=8, output_dim=5, hidden_dim=16, bottleneck_dim=4)
    head(torch.randn(2, 8))
    for bad in (torch.randn(2, 7), torch.randn(8), torch.randn(2, 3, 8)):
        with pytest.raises(ValueError, match="in_dim"):
            head(bad)


# ----------------------------------------------------------------------------- cancel_last_layer_gradients


class TwoHeads(nn.Module):
    """A student-shaped module with two heads (so two `last_layer`s) and a backbone."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(6, 8)
        self.head = ref.DINOProjectionHead(8, output_dim=10, hidden_dim=12, bottleneck_dim=4, norm_last_layer=False)
        self.extra = nn.ModuleDict({"aux": ref.DINOProjectionHead(8, output_dim=3, hidden_dim=12, bottleneck_dim=4)})

    def forward(self, x):
        features = self.backbone(x)
        return self.head(features).sum() + self.extra["aux"](features).sum()


def model_with_gradients(seed: int = 6) -> nn.Module:
    torch.manual_seed(seed)
    model = TwoHeads()
    model(torch.randn(5, 6)).backward()
    return model


@exercise("cancel_last_layer_gradients")
@pytest.mark.parametrize("epoch,freeze,cancelled", [(0, 1, True), (1, 1, False), (2, 3, True), (5, 3, False), (0, 0, False)])
def test_cancel_sets_last_layer_grads_to_none(epoch, freeze, cancelled):
    model = model_with_gradients()
    before = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    hd.cancel_last_layer_gradients(model, epoch, freeze)
    for name, p in model.named_parameters():
        if "last_layer" in name and cancelled:
            expect(p.grad is None, f"epoch {epoch} < freeze_last_layer {freeze}: {name}.grad must be None (not zeros: AdamW would still step)")
        elif name in before:
            expect(p.grad is not None and torch.equal(p.grad, before[name]), f"epoch {epoch}, freeze {freeze}: {name}'s gradient must be left as it was")


@exercise("cancel_last_layer_gradients")
def test_frozen_last_layer_does_not_move_in_adamw():
    """One AdamW step with weight decay in the freeze epoch: the last layer must not move at all."""
    model = model_with_gradients(7)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    hd.cancel_last_layer_gradients(model, epoch=0, freeze_last_layer=1)
    optimizer.step()
    for name, p in model.named_parameters():
        if "last_layer" in name:
            expect(torch.equal(p, before[name]), f"{name} moved during the freeze epoch: set its .grad to None so AdamW skips it (zeros still decay it)")
            expect(p not in optimizer.state or not optimizer.state[p], f"{name} got AdamW state (moments, step) in the freeze epoch")
        elif p.requires_grad:
            expect(not torch.equal(p, before[name]), f"{name} should still train during the freeze epoch")


@exercise("cancel_last_layer_gradients")
def test_cancel_rejects_bad_epochs():
    model = model_with_gradients()
    hd.cancel_last_layer_gradients(model, 3, 1)
    for epoch, freeze in ((-1, 1), (0, -2), (0.5, 1)):
        with pytest.raises(ValueError):
            hd.cancel_last_layer_gradients(model, epoch, freeze)
