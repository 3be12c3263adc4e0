"""Hidden checks for Lesson 3.3, the projection head (`dino_course/heads.py`).

Deterministic pieces are compared with the reference over a grid of widths, depths and
batch sizes, and the whole head is pinned to the original DINO implementation's numbers
(golden entry `head`, all three cases). The initialisation is random: checked by its
statistics (std of thousands of draws, the truncation, zero biases), never by replaying the
reference's random stream. Before the values, each check looks for the typical mistakes of
its exercise (a column norm instead of a row norm, g ignored, the normalisation after the
last layer, ...) by comparing with what that mistake computes, so the hint names it.

Tolerances (float32, u = 1.19e-7 = one ulp of 1) are derived from the computation, so that
any correct order of operations passes (a loop, `F.normalize`, `einsum`, `torch._weight_norm`,
float64 intermediates):

- the norm of a row of d values: its sum of squares is rounded by at most d·u relative (any
  summation order), the square root halves that, plus u/2: ≤ (d/2 + 1)·u. A normalised
  value x / ‖x‖ or g · v / ‖v‖ adds one or two roundings: ≤ (d/2 + 3)·u relative, so two
  correct implementations differ by at most (d + 6)·u relative (`normalized_tol`);
- a head output is a dot product of a unit vector with a row of norm g over the bottleneck d:
  ≤ d·u·g from the sum plus the two factors' errors, ≤ (2d + 5)·u·g per implementation
  (`head_output_tol`);
- gradients: compared tensor by tensor relative to the largest gradient involved, never
  element by element relative to a value whose true size is zero (`expect_gradients_match`).
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import solutions.heads as ref
from dino_course.grading.hints import FLOAT32_EPS as U
from dino_course.grading.hints import call_unmutated, expect, expect_close, expect_type
from dino_course.grading.learner import LearnerModule

hd = LearnerModule("heads")

# Golden numbers. The last-layer weight: dino_v1_golden.README.md measured 6e-8 against an independent
# g·v/‖v‖ (operation order) and suggests 1e-7; we use the derived (d + 6)·u·g = 2.6e-6 for d = 16, which
# admits every correct order of operations (a mistake changes the weight by O(1)). Head outputs: it measured
# 1.8e-7 for an independent implementation and suggests 1e-6 (the MLP and the reference's own rounding); we
# add that to the derived freedom of the learner's forward, `head_output_tol`.
GOLDEN_EXTRA = 1e-6


exercise = functools.partial(pytest.mark.exercise, "3.3")  # @exercise("name"): a check of that exercise of the lesson


def normalized_tol(d: int, scale: float = 1.0) -> dict:
    """Two correct implementations of x / ‖x‖ (or g · v / ‖v‖) over rows of d values: (d + 6)·u relative,
    i.e. (d + 6)·u·scale absolute for values of size ≤ scale (the row's g, 1 for a unit row)."""
    return dict(rtol=(d + 6) * U, atol=(d + 6) * U * scale)


def head_output_tol(d: int, g_max: float = 1.0) -> dict:
    """Two correct heads with the same MLP: (2d + 5)·u·g each (see the module docstring)."""
    return dict(rtol=0.0, atol=2 * (2 * d + 5) * U * g_max)


def close(a: torch.Tensor, b: torch.Tensor, tol: dict) -> bool:
    return (
        a.shape == b.shape
        and bool(torch.isfinite(a).all())
        and torch.allclose(a, b, rtol=tol["rtol"], atol=tol["atol"])
    )


def matching_mistake(got: torch.Tensor, want: torch.Tensor, candidates: dict, tol: dict) -> str | None:
    """The hint of the first candidate (hint -> what that mistake computes) that `got` matches, skipping any
    candidate that happens to equal the right answer on this input."""
    for hint, wrong in candidates.items():
        if close(got, wrong, tol) and not close(want, wrong, tol):
            return hint
    return None


def expect_gradients_match(got: nn.Module, want: nn.Module, hint: str) -> None:
    """Every parameter of `got` has the gradient of the same parameter of `want`, up to float32 rounding.

    Tolerance per tensor: 1e-4 of its own largest gradient (a float32 backward through a few ops of
    width ≤ 1024 is measured at ≤ 1e-6 relative, so this is a 100× margin), plus 1e-6 of the largest
    gradient of the whole module, for tensors whose true gradient is zero and whose computed gradient
    is pure rounding noise (a Linear bias right before a training-mode BatchNorm: its gradient is a sum
    of terms that cancel exactly). A missing gradient path changes a whole tensor's gradient by its own
    size, far above both.
    """
    pairs = list(zip(got.named_parameters(), want.parameters()))
    largest = max((float(q.grad.abs().max()) for _, q in pairs if q.grad is not None), default=0.0)
    for (name, p), q in pairs:
        if q.grad is None:
            expect(p.grad is None, f"{name} received a gradient but should not (it does not require grad)")
            continue
        expect(
            p.grad is not None,
            f"{name} received no gradient: the computation must stay differentiable (no .detach(), .data or "
            "torch.no_grad())",
        )
        atol = 1e-4 * float(q.grad.abs().max()) + 1e-6 * largest
        expect_close(p.grad, q.grad, f"{hint} (gradient of {name})", rtol=1e-4, atol=atol)


def copy_weights(target: nn.Module, source: nn.Module) -> None:
    """Copy `source`'s state into `target` (same keys)."""
    target.load_state_dict(source.state_dict())


# ----------------------------------------------------------------------------- build_mlp


def expected_kinds(nlayers: int, use_bn: bool) -> list[str]:
    if nlayers == 1:
        return ["Linear"]
    hidden = ["Linear", "BatchNorm1d", "GELU"] if use_bn else ["Linear", "GELU"]
    return hidden * (nlayers - 1) + ["Linear"]


def layout_hint(mlp, in_dim: int, hidden: int, bottleneck: int, nlayers: int, use_bn: bool) -> str | None:
    """The most specific thing wrong with the layout of `mlp`, or None if it is the expected one."""
    call = f"build_mlp({in_dim}, {hidden}, {bottleneck}, nlayers={nlayers}, use_bn={use_bn})"
    if mlp is None:
        return f"{call} returned None: did you forget the `return` statement?"
    if not isinstance(mlp, nn.Sequential):
        return f"{call} must return an nn.Sequential (e.g. nn.Sequential(*layers)), got {type(mlp).__name__}"
    modules = list(mlp)
    kinds = [type(m).__name__ for m in modules]
    want = expected_kinds(nlayers, use_bn)
    if kinds == want:
        return None
    linears = [m for m in modules if isinstance(m, nn.Linear)]
    activations = [k for k in kinds if k not in ("Linear", "BatchNorm1d")]
    if any(k != "GELU" for k in activations):
        return f"{call}: the activation between the Linear layers is nn.GELU(), got {kinds}"
    if kinds and kinds[-1] != "Linear":
        return (
            f"{call}: the MLP must end with the bottleneck Linear, nothing after it (no GELU, no BatchNorm: the "
            "bottleneck is "
            f"L2-normalised, not activated); got {kinds}"
        )
    if len(linears) != nlayers:
        return (
            f"{call}: nlayers counts the Linear layers, so there must be {nlayers} of them, "
            f"got {len(linears)} ({kinds})"
        )
    has_bn = "BatchNorm1d" in kinds
    if use_bn and not has_bn:
        return f"{call}: use_bn=True puts a BatchNorm1d(hidden_dim) after every hidden Linear layer, got {kinds}"
    if not use_bn and has_bn:
        return f"{call}: no BatchNorm1d when use_bn=False, got {kinds}"
    return (
        f"{call}: each hidden layer is Linear, [BatchNorm1d], GELU in this order (the state-dict keys depend on it); "
        f"expected {want}, got {kinds}"
    )


MLP_GRID = [
    # (in_dim, hidden, bottleneck, nlayers, use_bn)
    (24, 32, 16, 3, False),
    (24, 32, 16, 3, True),
    (7, 5, 3, 1, False),
    (7, 5, 3, 1, True),  # one layer: no hidden layer, so no BatchNorm either
    (7, 5, 3, 2, True),
    (10, 12, 4, 4, False),
    (10, 12, 4, 5, True),
]


@exercise("build_mlp")
def test_build_mlp_paper_layout():
    mlp = hd.build_mlp(24, 32, 16, nlayers=3, use_bn=False)
    problem = layout_hint(mlp, 24, 32, 16, 3, False)
    expect(problem is None, problem)
    expect(
        all(m.approximate == "none" for m in mlp if isinstance(m, nn.GELU)),
        "use the exact GELU, nn.GELU() (the original does not use the tanh approximation)",
    )
    shapes = [tuple(m.weight.shape) for m in mlp if isinstance(m, nn.Linear)]
    expect(
        shapes == [(32, 24), (32, 32), (16, 32)],
        "the Linear layers map 24 → 32 → 32 → 16 (in_dim → hidden_dim → hidden_dim → bottleneck_dim): weights should "
        "be "
        f"(32, 24), (32, 32), (16, 32), got {shapes}",
    )
    expect(
        all(m.bias is not None for m in mlp if isinstance(m, nn.Linear)),
        "the MLP's Linear layers have a bias (bias=True, the default)",
    )


@exercise("build_mlp")
def test_build_mlp_batchnorm_layout():
    mlp = hd.build_mlp(24, 32, 16, nlayers=3, use_bn=True)
    problem = layout_hint(mlp, 24, 32, 16, 3, True)
    expect(problem is None, problem)
    sizes = [m.num_features for m in mlp if isinstance(m, nn.BatchNorm1d)]
    expect(sizes == [32, 32], f"each BatchNorm1d normalises the hidden width (32 here), got BatchNorm1d sizes {sizes}")
    keys = [k for k in mlp.state_dict() if k.endswith(".weight")]
    expect(
        keys == ["0.weight", "1.weight", "3.weight", "4.weight", "6.weight"],
        f"with BatchNorm the original's keys are 0, 1 (BN), 3, 4 (BN), 6; got {keys}",
    )


@exercise("build_mlp")
@pytest.mark.parametrize("in_dim,hidden,bottleneck,nlayers,use_bn", MLP_GRID)
def test_build_mlp_matches_reference_keys_and_shapes(in_dim, hidden, bottleneck, nlayers, use_bn):
    mlp = hd.build_mlp(in_dim, hidden, bottleneck, nlayers=nlayers, use_bn=use_bn)
    problem = layout_hint(mlp, in_dim, hidden, bottleneck, nlayers, use_bn)
    expect(problem is None, problem)
    want = ref.build_mlp(in_dim, hidden, bottleneck, nlayers=nlayers, use_bn=use_bn)
    got_shapes = {k: tuple(v.shape) for k, v in mlp.state_dict().items()}
    want_shapes = {k: tuple(v.shape) for k, v in want.state_dict().items()}
    expect(
        nlayers != 1 or got_shapes == want_shapes,
        f"nlayers=1 is a single Linear(in_dim, bottleneck_dim) = Linear({in_dim}, {bottleneck}) (no hidden layer), got "
        "weight "
        f"{got_shapes.get('0.weight')} instead of {want_shapes['0.weight']}",
    )
    expect(
        got_shapes == want_shapes,
        f"build_mlp({in_dim}, {hidden}, {bottleneck}, nlayers={nlayers}, use_bn={use_bn}): the first Linear takes "
        "in_dim, the hidden "
        f"ones hidden_dim → hidden_dim, the last maps to bottleneck_dim; state-dict shapes {got_shapes} should be "
        f"{want_shapes}",
    )
    mlp.load_state_dict(want.state_dict())
    x = torch.randn(5, in_dim, generator=torch.Generator().manual_seed(nlayers))
    mlp.train(), want.train()
    # The same modules in the same order compute the same floats: any difference is a different layer.
    expect_close(
        mlp(x), want(x), f"nlayers={nlayers}, use_bn={use_bn}: same weights, different output", rtol=0.0, atol=0.0
    )


@exercise("build_mlp")
def test_build_mlp_rejects_bad_sizes():
    hd.build_mlp(4, 4, 2)
    for kwargs in ({"nlayers": 0}, {"hidden_dim": -1}, {"in_dim": 2.5}):
        args = {"in_dim": 4, "hidden_dim": 4, "bottleneck_dim": 2, **kwargs}
        with pytest.raises(ValueError):
            hd.build_mlp(**args)


# ----------------------------------------------------------------------------- init_linear_weights


def init_learner(module: nn.Module) -> None:
    """Run the learner's init on `module`, turning the typical crashes into hints."""
    try:
        hd.init_linear_weights(module)
    except RuntimeError as exc:
        if "leaf Variable" in str(exc) or "in-place operation" in str(exc):
            raise AssertionError(
                "changing a parameter in place needs torch.no_grad(): use the nn.init functions "
                "(nn.init.trunc_normal_, nn.init.zeros_), which run without gradient tracking"
            ) from None
        raise
    except (AttributeError, TypeError) as exc:
        kind = type(module).__name__
        if isinstance(module, nn.Linear) and module.bias is None:
            raise AssertionError(
                f"init_linear_weights failed on nn.Linear(..., bias=False) ({type(exc).__name__}: {exc}): "
                "zero the bias only `if module.bias is not None`"
            ) from None
        if not isinstance(module, nn.Linear):
            raise AssertionError(
                f"init_linear_weights failed on a {kind} ({type(exc).__name__}: {exc}): mlp.apply calls it on every "
                "submodule (GELU, BatchNorm1d, the Sequential itself); change only nn.Linear (isinstance(module, "
                "nn.Linear))"
            ) from None
        raise


@exercise("init_linear_weights")
def test_init_linear_statistics():
    torch.manual_seed(0)
    layer = nn.Linear(256, 512)
    default = layer.weight.detach().clone()
    init_learner(layer)
    weight = layer.weight.detach()
    expect(
        not torch.equal(weight, default),
        "the weight was not changed: initialise the layer in place (mlp.apply ignores what the function returns)",
    )
    std, n = float(weight.std()), weight.numel()
    # 131072 draws: the sample std of N(0, σ²) has relative standard error 1/sqrt(2n) = 0.2 %, the fraction of
    # draws in an interval has standard error ≤ 0.14 %; every threshold below is many standard errors wide.
    expect(
        not 0.7 < std < 1.1,
        f"the weight std is {std:.2f}, about 1: nn.init.trunc_normal_(w, 0.02) passes 0.02 as the *mean* (its second "
        "positional argument); pass std=0.02 by keyword",
    )
    # The shape of the distribution, whatever its scale. The largest of 131072 normal draws lies ~4.4 std out
    # (below 3.5 std with probability e^-61); a uniform stops at sqrt(3) = 1.73 std, a normal cut at ±2 std at
    # 2 / 0.88 = 2.27 sample std, one cut at ±3 std at 3.04.
    extent = float(weight.abs().max()) / std
    expect(
        extent > 2.0,
        f"the weights stop at {extent:.2f} std, as a uniform distribution does (1.73): draw from a (truncated) normal",
    )
    expect(
        extent > 3.5,
        f"the weights stop at {extent:.2f} std, a normal's largest of {n} draws lies ~4.4 std out: the cut is at ±2 in "
        "absolute value "
        "(nn.init.trunc_normal_(w, std=0.02) with its default a=-2, b=2, which never bites), not at ±2 std",
    )
    # A normal has 68.3 % of its draws within one (sample) std, a uniform 57.7 %.
    inside = float((weight.abs() < std).float().mean())
    expect(
        0.66 < inside < 0.70,
        f"{inside:.0%} of the weights lie within one std, a normal has 68 %: draw from a (truncated) normal, not a "
        "uniform",
    )
    expect(abs(std - 0.02) < 2e-4, f"weight std is {std:.4f}, expected 0.02: nn.init.trunc_normal_(w, std=0.02)")
    expect(
        abs(float(weight.mean())) < 5e-4,
        f"the weights should have mean 0, got {float(weight.mean()):.4f} (over {n} draws)",
    )
    expect(float(weight.abs().max()) <= 2.0, "truncated normal: no value outside [-2, 2]")
    expect(torch.count_nonzero(layer.bias) == 0, "the bias must be set to zero (nn.init.zeros_(module.bias))")


@exercise("init_linear_weights")
def test_init_leaves_other_modules_alone():
    torch.manual_seed(1)
    layer = nn.Linear(4, 4, bias=False)
    init_learner(layer)  # no bias: must not fail
    expect(layer.bias is None, "a Linear without bias must stay without bias")
    others = [nn.BatchNorm1d(6), nn.LayerNorm(6), nn.Conv1d(3, 6, 2), nn.Embedding(5, 6), nn.GELU(), nn.Identity()]
    with torch.no_grad():
        others[0].weight.fill_(3.0)  # not BatchNorm's default, so resetting it shows too
        others[1].bias.fill_(0.5)
    for module in others:
        before = {k: v.clone() for k, v in module.state_dict().items()}
        init_learner(module)
        after = module.state_dict()
        changed = [k for k in before if not torch.equal(before[k], after[k])]
        expect(
            not changed,
            f"init_linear_weights changed {type(module).__name__}.{changed}: only nn.Linear is initialised, leave "
            "every other module as it is",
        )
    sequential = nn.Sequential(nn.Linear(4, 4))
    before = sequential[0].weight.detach().clone()
    init_learner(sequential)
    expect(
        torch.equal(sequential[0].weight, before),
        "called on an nn.Sequential, init_linear_weights must not touch it: mlp.apply visits each Linear itself",
    )
    mlp = ref.build_mlp(64, 128, 32, nlayers=3, use_bn=True)
    mlp.apply(init_learner)
    stds = [float(m.weight.detach().std()) for m in mlp if isinstance(m, nn.Linear)]
    # 4096 to 16384 draws per layer: the sample std is within 1.1 % (3 standard errors) of 0.02.
    expect(
        all(abs(s - 0.02) < 7e-4 for s in stds),
        f"mlp.apply(init_linear_weights) should give every Linear std 0.02, got {stds}",
    )
    expect(
        all(float(m.weight.detach().mean()) == 1.0 for m in mlp if isinstance(m, nn.BatchNorm1d)),
        "BatchNorm keeps weight 1",
    )


@exercise("init_linear_weights")
def test_head_init_mlp_only():
    torch.manual_seed(2)
    head = hd.DINOProjectionHead(in_dim=128, output_dim=512, hidden_dim=256, bottleneck_dim=64)
    for name, module in head.mlp.named_children():
        if isinstance(module, nn.Linear):
            expect(
                abs(float(module.weight.detach().std()) - 0.02) < 1e-3,
                f"head.mlp.{name}.weight should be initialised with std 0.02",
            )
            expect(torch.count_nonzero(module.bias) == 0, f"head.mlp.{name}.bias should be zero")
    v = head.last_layer.weight_v.detach()
    bound = 1 / 64**0.5  # PyTorch's default Linear init: uniform(±1/sqrt(in_features))
    expect(
        float(v.abs().max()) <= bound and float(v.std()) > 0.05,  # uniform(±1/8): std 0.072, vs 0.02
        "the last layer's v keeps PyTorch's default Linear init (as in the original): apply the init to the MLP only",
    )
    expect(torch.all(head.last_layer.weight_g == 1), "the last layer's g starts at 1")


# ----------------------------------------------------------------------------- l2_normalize


def normalize_learner(x: torch.Tensor, **kwargs) -> torch.Tensor:
    """The learner's l2_normalize(x), with hints for a broadcasting error and for a changed input."""
    try:
        return call_unmutated(hd.l2_normalize, x, **kwargs)
    except RuntimeError as exc:
        if "must match the size" in str(exc):
            raise AssertionError(
                f"dividing x {tuple(x.shape)} by its row norms failed to broadcast ({exc}): keep the reduced dimension "
                "(keepdim=True) so that the norms have shape (..., 1)"
            ) from None
        raise


def l2_mistake(got: torch.Tensor, x: torch.Tensor, want: torch.Tensor, tol: dict) -> str | None:
    """Which typical mistake `got` = l2_normalize(x) computed, if any (x has no zero rows)."""
    candidates = {
        "normalise over the last dimension (each row): you divided by the norms of the columns (dim=0)": x
        / x.norm(dim=0, keepdim=True),
        "divide each row by its own norm, not the whole tensor by one norm (pass dim=-1 and keepdim=True)": x
        / x.norm(),
        "divide by the L2 norm, the square root of the sum of squares (you divided by the sum of squares)": x
        / x.pow(2).sum(-1, keepdim=True),
        "divide by the L2 norm, sqrt(sum of squares), not the L1 norm (sum of absolute values)": x
        / x.abs().sum(-1, keepdim=True),
    }
    if x.dim() == 3:
        candidates["normalise over the last dimension (dim=-1), not dim=1"] = x / x.norm(dim=1, keepdim=True)
    return matching_mistake(got, want, candidates, tol)


@exercise("l2_normalize")
@pytest.mark.parametrize("shape", [(6, 16), (1, 3), (4, 2, 5), (128, 256)])
def test_l2_normalize_matches_reference(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape))) * 7
    got = normalize_learner(x)
    tol = normalized_tol(shape[-1])
    expect_type(got, x, "l2_normalize")
    expect(got.shape == x.shape, f"l2_normalize must keep the shape {tuple(x.shape)}, got {tuple(got.shape)}")
    want = ref.l2_normalize(x)
    mistake = l2_mistake(got, x, want, tol)
    expect(mistake is None, f"l2_normalize of shape {shape}: {mistake}")
    expect_close(
        got, want, f"shape {shape}: every row (over the last dimension) should be divided by its L2 norm", **tol
    )
    norms = torch.linalg.vector_norm(got, dim=-1)
    # The norm of a normalised row, recomputed here: both roundings together stay below (d + 6)·u.
    expect_close(
        norms, torch.ones_like(norms), "every row of the result should have norm 1", **normalized_tol(shape[-1])
    )


@exercise("l2_normalize")
def test_l2_normalize_hand_values_and_zero_rows():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]])
    got = normalize_learner(x)
    expect_type(got, x, "l2_normalize")
    expect(
        got.shape == x.shape,
        f"l2_normalize must keep the shape {tuple(x.shape)}, got {tuple(got.shape)}: divide by norms of shape (..., 1) "
        "(keepdim=True)",
    )
    expect(
        bool(torch.isfinite(got).all()),
        "an all-zero row must stay 0, not NaN: divide by max(‖x‖, eps), e.g. norm.clamp_min(eps)",
    )
    expect_close(
        got,
        torch.tensor([[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]]),
        "[3, 4] → [0.6, 0.8], [0, −2] → [0, −1], and an all-zero row stays 0",
        **normalized_tol(2),
    )
    tiny = torch.full((1, 4), 1e-30)
    expect(
        bool(torch.isfinite(normalize_learner(tiny)).all()),
        "a tiny row (norm underflows to 0) must not give inf or NaN: divide by max(‖x‖, eps)",
    )


@exercise("l2_normalize")
def test_l2_normalize_uses_eps_as_a_floor():
    # eps = 0.25 and rows of norm 0.1, 0.3, 2 and 0: max(‖x‖, eps) divides the first by 0.25 (norm 0.4 after),
    # normalises the next two, keeps the zero row.
    direction = torch.tensor([0.6, 0.0, -0.8])
    x = torch.stack([0.1 * direction, 0.3 * direction, 2.0 * direction, torch.zeros(3)])
    got = normalize_learner(x, eps=0.25)
    want = torch.stack([0.4 * direction, direction, direction, torch.zeros(3)])
    tol = normalized_tol(3)
    candidates = {
        "divide by max(‖x‖, eps), not ‖x‖ + eps: a row longer than eps must come out with norm exactly 1": x
        / (x.norm(dim=-1, keepdim=True) + 0.25),
        "use the eps argument: a row shorter than eps is divided by eps (its norm becomes ‖x‖ / eps), not normalised": x
        / x.norm(dim=-1, keepdim=True).clamp_min(1e-12),
        "the floor applies to the norm: max(‖x‖, eps), not max(‖x‖², eps)": x
        / x.pow(2).sum(-1, keepdim=True).clamp_min(0.25).sqrt(),
    }
    mistake = matching_mistake(got, want, candidates, tol)
    expect(mistake is None, f"l2_normalize(x, eps=0.25): {mistake}")
    expect_close(
        got,
        want,
        "l2_normalize(x, eps=0.25) divides each row by max(‖x‖, eps): rows of norm 0.1, 0.3, 2, 0 become 0.4, 1, 1, 0",
        **tol,
    )


@exercise("l2_normalize")
def test_l2_normalize_is_differentiable():
    generator = torch.Generator().manual_seed(8)
    x = (torch.randn(5, 8, generator=generator) * 3).requires_grad_()
    y = normalize_learner(x)
    expect(y.requires_grad, "l2_normalize must stay differentiable: no .detach(), .data or torch.no_grad()")
    # An upstream gradient with a large component along each row, so that a detached norm shows clearly.
    upstream = x.detach() + torch.randn(5, 8, generator=generator)
    (y * upstream).sum().backward()
    expect(x.grad is not None, "no gradient reached the input of l2_normalize")
    # Scaling a row does not change its normalisation, so the gradient is orthogonal to the row. The cosine
    # between a row and its gradient is zero up to rounding, ~d·u = 1e-6 in float32; a norm treated as a
    # constant (.detach(), .item(), .data) makes it about 0.7 here.
    cosine = F.cosine_similarity(x.grad, x.detach(), dim=-1)
    expect(
        float(cosine.abs().max()) < 1e-3,
        f"the gradient should be orthogonal to each row (|cos| ≤ 1e-3, got {float(cosine.abs().max()):.2f}): the norm "
        "must be part "
        "of the graph, not detached or turned into a number",
    )
    want_x = x.detach().clone().requires_grad_()
    (ref.l2_normalize(want_x) * upstream).sum().backward()
    # The gradient (u − y (y·u)) / ‖x‖ of a row: y·u sums d terms bounded by ‖u‖, so each implementation
    # rounds it by at most ~(2.5d + 11)·u·‖u‖ / ‖x‖; two of them differ by twice that, at most 8d·u·‖u‖/‖x‖
    # for d = 8. (Relative to the terms, not to the gradient: with u mostly along x, the gradient is smaller.)
    scale = float((upstream.norm(dim=-1) / x.detach().norm(dim=-1)).max())
    expect_close(
        x.grad,
        want_x.grad,
        "the gradient of l2_normalize differs from the reference's",
        rtol=0.0,
        atol=8 * 8 * U * scale,
    )


# ----------------------------------------------------------------------------- WeightNormalizedLinear.effective_weight


def random_layer(in_features: int, out_features: int, seed: int):
    """A learner WeightNormalizedLinear with g in [0.5, 1.5) and rows of v far from unit length."""
    torch.manual_seed(seed)
    layer = hd.WeightNormalizedLinear(in_features, out_features)
    with torch.no_grad():
        layer.weight_g.uniform_(0.5, 1.5)
        layer.weight_v.mul_(3.0)
    return layer


def effective_weight_learner(layer) -> torch.Tensor:
    """layer.effective_weight() with hints for a broadcasting error, None, type and g, v changed in place."""
    g, v = layer.weight_g.detach().clone(), layer.weight_v.detach().clone()
    try:
        weight = layer.effective_weight()
    except RuntimeError as exc:
        if "must match the size" in str(exc):
            raise AssertionError(
                f"dividing v {tuple(v.shape)} by its row norms failed to broadcast ({exc}): keep the reduced dimension "
                "(keepdim=True), so that the norms have shape (K, 1)"
            ) from None
        raise
    expect_type(weight, v, "effective_weight")
    expect(
        torch.equal(layer.weight_v.detach(), v) and torch.equal(layer.weight_g.detach(), g),
        "effective_weight changed weight_v or weight_g in place: compute a new tensor and leave the parameters as they "
        "are",
    )
    K, D = v.shape
    expect(
        weight.shape == v.shape,
        f"the effective weight has one row per output: shape (out_features, in_features) = ({K}, {D}), got "
        f"{tuple(weight.shape)}",
    )
    return weight


def effective_weight_mistake(
    weight: torch.Tensor, g: torch.Tensor, v: torch.Tensor, want: torch.Tensor, tol: dict
) -> str | None:
    candidates = {
        "multiply by g: W[k] = g[k] · v[k] / ‖v[k]‖ (every row of W has norm g[k], not 1)": v
        / v.norm(dim=1, keepdim=True),
        "divide each row of v by its norm ‖v[k]‖: W[k] = g[k] · v[k] / ‖v[k]‖": g * v,
        "the norm of each row of v is over the input dimension (dim=1), not over the rows (dim=0)": g
        * v
        / v.norm(dim=0, keepdim=True),
        "divide each row of v by its own norm, not by the norm of the whole matrix": g * v / v.norm(),
        "‖v[k]‖ is the square root of the sum of squares (you divided by the sum of squares)": g
        * v
        / v.pow(2).sum(1, keepdim=True),
    }
    return matching_mistake(weight, want, candidates, tol)


@exercise("WeightNormalizedLinear.effective_weight")
@pytest.mark.parametrize("in_features,out_features", [(16, 40), (3, 2), (256, 1000)])
def test_effective_weight_matches_reference(in_features, out_features):
    layer = random_layer(in_features, out_features, seed=in_features)
    got = effective_weight_learner(layer)
    g, v = layer.weight_g.detach(), layer.weight_v.detach()
    tol = normalized_tol(in_features, scale=float(g.max()))
    expected = ref.WeightNormalizedLinear.effective_weight(layer).detach()
    mistake = effective_weight_mistake(got.detach(), g, v, expected, tol)
    expect(mistake is None, f"effective_weight: {mistake}")
    expect_close(
        got, expected, "W[k] should be g[k] · v[k] / ‖v[k]‖ (norm of each row of v, over the input dimension)", **tol
    )
    norms = torch.linalg.vector_norm(got.detach(), dim=1, keepdim=True)
    expect_close(norms, g, "every row of the effective weight should have norm g[k]", **tol)


@exercise("WeightNormalizedLinear.effective_weight")
def test_effective_weight_is_differentiable():
    layer = random_layer(6, 4, seed=9)
    weight = effective_weight_learner(layer)
    expect(
        weight.requires_grad,
        "the effective weight must be differentiable with respect to g and v: no .detach(), .data or torch.no_grad()",
    )
    upstream = torch.randn(4, 6, generator=torch.Generator().manual_seed(10))
    (weight * upstream).sum().backward()
    for name in ("weight_g", "weight_v"):
        expect(
            getattr(layer, name).grad is not None,
            f"no gradient reached {name}: compute W from self.weight_g and self.weight_v themselves (not .data, not "
            ".detach())",
        )
    twin = ref.WeightNormalizedLinear(6, 4)
    copy_weights(twin, layer)
    (ref.WeightNormalizedLinear.effective_weight(twin) * upstream).sum().backward()
    expect_gradients_match(
        layer, twin, "gradients through g · v / ‖v‖ differ from the reference: is the norm part of the graph?"
    )


@exercise("WeightNormalizedLinear.effective_weight")
def test_effective_weight_is_recomputed_on_every_call():
    layer = random_layer(5, 4, seed=11)
    first = effective_weight_learner(layer).detach().clone()
    with torch.no_grad():
        layer.weight_v.mul_(10.0)
        layer.weight_g.mul_(2.0)
    second = layer.effective_weight()
    # Scaling v changes nothing, doubling g doubles W: the two computations round alike up to (d + 6)·u.
    expect_close(
        second,
        2 * first,
        "scaling v must not change W, and doubling g must double it: compute W from g and v on every call (do not "
        "store it)",
        **normalized_tol(5, scale=3.0),
    )


@exercise("WeightNormalizedLinear.effective_weight")
def test_effective_weight_matches_golden(golden):
    layer = hd.WeightNormalizedLinear(16, 40)
    cases = [(case, golden["head"][case]["params"]) for case in ("default", "unnormed_last")]
    cases.append(
        (
            "unnormed_last with g in [0.5, 1.5)",
            {**golden["head"]["unnormed_last"]["params"], **golden["head"]["unnormed_last"]["perturbed_g"]},
        )
    )
    for case, params in cases:
        with torch.no_grad():
            layer.weight_g.copy_(params["last_layer_g"])
            layer.weight_v.copy_(params["last_layer_v"])
        got = effective_weight_learner(layer)
        # The stored weight is the original's g·v/‖v‖ (6e-8 from an independent one, dino_v1_golden.README.md);
        # ours differs by the derived (d + 6)·u·g at most.
        expect_close(
            got,
            params["last_layer_weight"],
            f"golden {case}: the original's last-layer weight differs",
            **normalized_tol(16, scale=float(params["last_layer_g"].max())),
        )


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
    state = {
        entry["original_keys"][alias]: value
        for alias, value in entry["params"].items()
        if alias in entry["original_keys"]
    }
    head.load_state_dict(state)
    return head.train(), entry


def forward_learner(head, x: torch.Tensor) -> torch.Tensor:
    """head(x) with hints for None, the type and the shape, and x left unchanged."""
    out = call_unmutated(head.forward, x)
    expect_type(out, x, "DINOProjectionHead.forward")
    B, K, d = x.shape[0], head.output_dim, head.bottleneck_dim
    if tuple(out.shape) == (B, d) and d != K:
        raise AssertionError(
            f"forward returned the bottleneck {(B, d)}: apply the last layer (self.last_layer) to the normalised "
            f"bottleneck, giving (B, K) = {(B, K)}"
        )
    expect(
        tuple(out.shape) == (B, K), f"forward should return (B, K) = {(B, K)} prototype scores, got {tuple(out.shape)}"
    )
    return out


def forward_mistake(out: torch.Tensor, head, x: torch.Tensor, want: torch.Tensor, tol: dict) -> str | None:
    """Which typical mistake `out` = head(x) computed, if any (reference pieces, same weights)."""
    with torch.no_grad():
        z = head.mlp(x)
        last = head.last_layer
        candidates = {
            "L2-normalise the bottleneck before the last layer: out = last_layer(l2_normalize(mlp(x)))": last(z),
            "normalise the bottleneck (the MLP's output, before the last layer), not the scores after "
            "it": ref.l2_normalize(last(z)),
            "normalise each row of the bottleneck (one image, over the last dimension), not each column (dim=0)": last(
                z / z.norm(dim=0, keepdim=True)
            ),
            "normalise the MLP's output, not its input x": last(head.mlp(ref.l2_normalize(x))),
            "normalise only the MLP's output: the backbone features x go into the MLP as they are": last(
                ref.l2_normalize(head.mlp(ref.l2_normalize(x)))
            ),
            "no activation on the bottleneck: the MLP's output goes straight to the L2 normalisation": last(
                ref.l2_normalize(F.gelu(z))
            ),
            "apply the last layer itself (self.last_layer, whose weight is g · v / ‖v‖), not a product with "
            "weight_v": F.linear(ref.l2_normalize(z), last.weight_v),
        }
    return matching_mistake(out.detach(), want.detach(), candidates, tol)


@exercise("DINOProjectionHead.forward")
@pytest.mark.parametrize("norm_last_layer", [True, False])
def test_head_forward_shapes_and_unit_scale(norm_last_layer):
    torch.manual_seed(3)
    head = hd.DINOProjectionHead(
        in_dim=24, output_dim=40, hidden_dim=32, bottleneck_dim=16, norm_last_layer=norm_last_layer
    )
    with torch.no_grad():  # a bottleneck far longer than 1, so skipping the normalisation shows
        head.mlp[-1].weight.mul_(1000.0)
        if not norm_last_layer:
            head.last_layer.weight_g.uniform_(0.5, 1.5)
    x = torch.randn(6, 24) * 50
    out = forward_learner(head, x)
    g_max = float(head.last_layer.weight_g.detach().max())
    want = ref.DINOProjectionHead.forward(head, x).detach()
    mistake = forward_mistake(out, head, x, want, head_output_tol(16, g_max))
    expect(mistake is None, mistake)
    expect(
        float(out.detach().abs().max()) <= g_max * (1 + 1e-5),
        "every score is g · (a cosine similarity), so |score| ≤ g: L2-normalise the bottleneck before the last layer",
    )
    expect_close(
        out,
        want,
        "same weights, different output from the reference head (MLP → L2-normalise → last layer)",
        **head_output_tol(16, g_max),
    )


@exercise("DINOProjectionHead.forward")
@pytest.mark.parametrize("case", ["default", "unnormed_last", "with_bn"])
def test_head_matches_original_implementation(golden, case):
    head, entry = golden_head(hd, golden, case)
    output = forward_learner(head, entry["x"])
    d = golden["head"]["config"]["bottleneck_dim"]
    tol = dict(rtol=0.0, atol=head_output_tol(d)["atol"] + GOLDEN_EXTRA)
    expect_close(
        output,
        entry["output"],
        f"golden {case}: the output differs from the original DINO head (MLP → L2-normalise → last layer)",
        **tol,
    )
    if case == "with_bn":
        after = entry["bn_running_stats_after_forward"]
        for alias, value in after.items():
            key = entry["original_keys"][alias]
            # One training-mode forward updates the running statistics once; the values are means and variances of
            # 6 numbers of size ≤ 1, agreeing to dino_v1_golden.README.md's 1e-6.
            expect_close(
                head.state_dict()[key],
                value,
                f"golden with_bn: run the MLP exactly once per forward (BatchNorm {key} after one forward differs)",
                rtol=0.0,
                atol=1e-6,
            )
    if case == "unnormed_last":
        perturbed = entry["perturbed_g"]
        with torch.no_grad():
            head.last_layer.weight_g.copy_(perturbed["last_layer_g"])
        g_max = float(perturbed["last_layer_g"].max())
        tol = dict(rtol=0.0, atol=head_output_tol(d, g_max)["atol"] + GOLDEN_EXTRA * g_max)
        expect_close(
            forward_learner(head, entry["x"]),
            perturbed["output"],
            "golden unnormed_last with g ≠ 1: the output must use g · v / ‖v‖ (the last layer itself)",
            **tol,
        )


@exercise("DINOProjectionHead.forward")
@pytest.mark.parametrize(
    "in_dim,output_dim,hidden,bottleneck,nlayers,use_bn,norm_last",
    [
        (8, 5, 16, 4, 3, False, True),
        (12, 30, 20, 6, 2, True, False),
        (384, 1024, 512, 64, 3, False, True),
        (5, 7, 9, 3, 1, False, False),
    ],
)
def test_head_matches_reference_and_backprops(in_dim, output_dim, hidden, bottleneck, nlayers, use_bn, norm_last):
    kwargs = dict(
        in_dim=in_dim,
        output_dim=output_dim,
        hidden_dim=hidden,
        bottleneck_dim=bottleneck,
        nlayers=nlayers,
        use_bn=use_bn,
        norm_last_layer=norm_last,
    )
    torch.manual_seed(4)
    head = hd.DINOProjectionHead(**kwargs)
    want = ref.DINOProjectionHead(**kwargs)
    copy_weights(head, want)
    if not norm_last:
        with torch.no_grad():
            head.last_layer.weight_g.uniform_(0.5, 1.5)
        copy_weights(want, head)
    x = torch.randn(7, in_dim, generator=torch.Generator().manual_seed(in_dim))
    out = forward_learner(head, x)
    g_max = float(head.last_layer.weight_g.detach().max())
    tol = head_output_tol(bottleneck, g_max)
    expected = want(x).detach()
    mistake = forward_mistake(out, want, x, expected, tol)
    expect(mistake is None, mistake)
    expect_close(out, expected, "same weights, different output from the reference head", **tol)
    expect(
        out.requires_grad,
        "the head's output must require grad: forward must stay differentiable (no torch.no_grad(), no .detach())",
    )
    head.zero_grad()
    want.zero_grad()
    weights = torch.linspace(-1, 1, output_dim)
    (head(x) * weights).sum().backward()
    (want(x) * weights).sum().backward()
    expect_gradients_match(
        head,
        want,
        "the gradients differ from the reference head's: every step (MLP, normalisation, last layer) must stay "
        "differentiable",
    )


@exercise("DINOProjectionHead.forward")
def test_head_deepcopies_for_the_teacher():
    torch.manual_seed(5)
    head = hd.DINOProjectionHead(in_dim=16, output_dim=64, hidden_dim=32, bottleneck_dim=8)
    out = forward_learner(head, torch.randn(2, 16))
    expect(not head.last_layer.weight_g.requires_grad, "norm_last_layer=True: weight_g must not require grad")
    out.sum().backward()  # a forward that stores tensors of the graph on the module breaks deepcopy afterwards
    try:
        twin = copy.deepcopy(head)
    except RuntimeError as exc:
        raise AssertionError(
            f"the head could not be deep-copied after a forward ({exc}): forward must not store tensors on the module "
            "(self.something = ...); keep intermediate results in local variables"
        ) from None
    x = torch.randn(3, 16)
    expect(
        torch.equal(twin(x), head(x)),
        "a deep copy of the head (the teacher) must give the same outputs: do not keep state between calls",
    )
    with torch.no_grad():
        twin.last_layer.weight_v.add_(1.0)
    expect(
        not torch.equal(twin(x), head(x)),
        "the deep copy's output must follow its own weights: compute everything from the module's parameters on each "
        "call",
    )


@exercise("DINOProjectionHead.forward")
def test_head_rejects_bad_input():
    head = hd.DINOProjectionHead(in_dim=8, output_dim=5, hidden_dim=16, bottleneck_dim=4)
    head(torch.randn(2, 8))
    for bad in (torch.randn(2, 7), torch.randn(8), torch.randn(2, 3, 8)):
        with pytest.raises(ValueError, match="in_dim"):
            head(bad)


# ----------------------------------------------------------------------------- cancel_last_layer_gradients


class TwoHeads(nn.Module):
    """A student-shaped module with two heads (so two `last_layer`s, one with a trainable g) and a backbone."""

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


def cancel_learner(model: nn.Module, epoch: int, freeze: int) -> dict[str, torch.Tensor]:
    """Run the learner's cancel; check what no call may do; return the gradients from before the call."""
    before = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    requires = {name: p.requires_grad for name, p in model.named_parameters()}
    values = {name: p.detach().clone() for name, p in model.named_parameters()}
    try:
        hd.cancel_last_layer_gradients(model, epoch, freeze)
    except AttributeError as exc:
        if "NoneType" in str(exc):
            raise AssertionError(
                f"cancel_last_layer_gradients failed on a parameter without gradient ({exc}): a frozen parameter "
                "(weight_g with "
                "norm_last_layer=True) has .grad None; do not change the gradient tensor, set parameter.grad = None"
            ) from None
        raise AssertionError(
            f"cancel_last_layer_gradients failed on a {type(model).__name__} ({exc}): `model` can be any module, so "
            "find the "
            "last layer's parameters by name in model.named_parameters(), not through attributes such as model.head"
        ) from None
    for name, p in model.named_parameters():
        expect(
            p.requires_grad == requires[name],
            f"{name}.requires_grad changed: leave requires_grad alone (the layer must train again after the freeze); "
            "drop the gradient with `.grad = None`",
        )
        expect(
            torch.equal(p.detach(), values[name]),
            f"{name} changed: cancel_last_layer_gradients only drops gradients, it never changes a parameter",
        )
    return before


def expect_untouched(model: nn.Module, before: dict, context: str, which=lambda name: True) -> None:
    for name, p in model.named_parameters():
        if name in before and which(name):
            expect(
                p.grad is not None and torch.equal(p.grad, before[name]),
                f"{context}: {name}'s gradient must be left as it was",
            )


def expect_cancelled(model: nn.Module, before: dict, context: str) -> None:
    for name, p in model.named_parameters():
        if "last_layer" in name and name in before:
            if p.grad is not None and torch.count_nonzero(p.grad) == 0:
                raise AssertionError(
                    f"{context}: {name}.grad must be None, not zeros (with a zero gradient AdamW still decays the "
                    "weight and updates its moments)"
                )
            expect(
                p.grad is None,
                f"{context}: {name}.grad must be None: drop the gradient of every parameter whose name contains "
                "'last_layer'",
            )


def kept_gradients(model: nn.Module, before: dict) -> list[str]:
    """The last-layer parameters that still hold a non-zero gradient."""
    return [
        n
        for n, p in model.named_parameters()
        if "last_layer" in n and n in before and p.grad is not None and torch.count_nonzero(p.grad) > 0
    ]


@exercise("cancel_last_layer_gradients")
def test_cancel_in_the_freeze_epoch():
    torch.manual_seed(6)
    head = ref.DINOProjectionHead(4, output_dim=3, hidden_dim=8, bottleneck_dim=2, norm_last_layer=False)
    head(torch.randn(5, 4)).sum().backward()
    before_head = cancel_learner(head, 0, 1)
    model = model_with_gradients()
    before = cancel_learner(model, 0, 1)
    kept_bare, kept = kept_gradients(head, before_head), kept_gradients(model, before)
    expect(
        not (kept_bare and len(kept) == 3),
        "at epoch 0 with freeze_last_layer=1 (the freeze epoch) the last layer's gradients must be dropped: the freeze "
        "lasts "
        "while epoch < freeze_last_layer",
    )
    expect(
        not kept_bare,
        f"{kept_bare} kept their gradient in the freeze epoch: drop every parameter whose name contains 'last_layer' "
        "(weight_g "
        "too: it trains when norm_last_layer=False)",
    )
    expect(
        not kept,
        f"{kept} kept their gradient in the freeze epoch: drop every parameter whose name *contains* 'last_layer' (in "
        "a student "
        "they are named head.last_layer.*, and g trains too when norm_last_layer=False)",
    )
    expect_cancelled(head, before_head, "epoch 0 < freeze_last_layer 1")
    expect_cancelled(model, before, "epoch 0 < freeze_last_layer 1")
    for m, b in ((head, before_head), (model, before)):
        expect_untouched(
            m,
            b,
            "only parameters whose name contains 'last_layer' lose their gradient",
            lambda name: "last_layer" not in name,
        )


@exercise("cancel_last_layer_gradients")
@pytest.mark.parametrize(
    "epoch,freeze,cancelled,why",
    [
        (
            1,
            1,
            False,
            "the freeze lasts while epoch < freeze_last_layer (strictly): at epoch == freeze_last_layer the last layer "
            "trains again",
        ),
        (2, 3, True, "freeze_last_layer=3 freezes epochs 0, 1 and 2: compare epoch with freeze_last_layer"),
        (1, 3, True, "freeze_last_layer=3 freezes epochs 0, 1 and 2: compare epoch with freeze_last_layer"),
        (
            3,
            3,
            False,
            "the freeze lasts while epoch < freeze_last_layer (strictly): at epoch == freeze_last_layer the last layer "
            "trains again",
        ),
        (5, 3, False, "after the freeze epochs (epoch ≥ freeze_last_layer) do nothing"),
        (0, 0, False, "freeze_last_layer=0 means no freeze at all: do nothing"),
    ],
)
def test_cancel_only_while_epoch_below_freeze(epoch, freeze, cancelled, why):
    model = model_with_gradients()
    before = cancel_learner(model, epoch, freeze)
    context = f"epoch {epoch}, freeze_last_layer {freeze}: {why}"
    if cancelled:
        for name, p in model.named_parameters():
            if "last_layer" in name and name in before:
                expect(p.grad is None or torch.count_nonzero(p.grad) == 0, f"{context} ({name} kept its gradient)")
        expect_cancelled(model, before, context)
        expect_untouched(model, before, context, lambda name: "last_layer" not in name)
    else:
        expect_untouched(model, before, context)


@exercise("cancel_last_layer_gradients")
def test_frozen_last_layer_does_not_move_in_adamw():
    """One AdamW step with weight decay in the freeze epoch: the last layer must not move at all."""
    model = model_with_gradients(7)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    cancel_learner(model, 0, 1)
    optimizer.step()
    for name, p in model.named_parameters():
        if "last_layer" in name:
            expect(
                torch.equal(p, before[name]),
                f"{name} moved during the freeze epoch: set its .grad to None so AdamW skips it (zeros still decay it)",
            )
            expect(
                p not in optimizer.state or not optimizer.state[p],
                f"{name} got AdamW state (moments, step) in the freeze epoch",
            )
        elif p.requires_grad:
            expect(not torch.equal(p, before[name]), f"{name} should still train during the freeze epoch")


@exercise("cancel_last_layer_gradients")
def test_cancel_rejects_bad_epochs():
    model = model_with_gradients()
    hd.cancel_last_layer_gradients(model, 3, 1)
    for epoch, freeze in ((-1, 1), (0, -2), (0.5, 1)):
        with pytest.raises(ValueError):
            hd.cancel_last_layer_gradients(model, epoch, freeze)
