"""Hidden checks for Lesson 3.4, the complete model (`dino_course/model.py`).

The grouped multi-crop forward is checked against its definition (one backbone + head pass
per view, stacked crop-major), against the reference, by counting backbone and head calls
and the shapes they receive, and against the original DINO implementation's first
training-iteration outputs (golden `train`). Before the values, each check looks for the
typical mistakes (views in the wrong order, grouped by size across the whole list, ...) by
comparing with what that mistake computes, so the hint names it.

Tolerances (float32, u = 1.19e-7): grouping changes only the batch size of the same matrix
products, so the results differ by BLAS blocking order only. The head outputs are cosines
(≤ 1): the head alone may round by (4d + 10)·u = 5e-6 for its bottleneck d = 8, plus the
backbone's few ulps carried through, hence atol 1e-5 (measured: 1.8e-7). Gradients are
compared tensor by tensor relative to the largest gradient involved (`expect_gradients_match`).
Golden `train` outputs: dino_v1_golden.README.md measured 2.7e-7 for an independent implementation and
suggests 1e-5.
"""

from __future__ import annotations

import functools
import math
import time

import pytest
import torch
from torch import nn

import solutions.heads as ref_heads
import solutions.model as ref
from dino_course.grading.hints import call_unmutated, expect, expect_close, expect_type
from dino_course.grading.learner import LearnerModule
from dino_course.networks.vit import ViTConfig, VisionTransformer

md = LearnerModule("model")
hd = LearnerModule("heads")

GROUPING_TOL = dict(rtol=0.0, atol=1e-5)
GOLDEN_TRAIN_TOL = dict(rtol=0.0, atol=1e-5)  # dino_v1_golden.README.md: 2.7e-7 observed, 1e-5 suggested


exercise = functools.partial(pytest.mark.exercise, "3.4")  # @exercise("name"): a check of that exercise of the lesson


def expect_gradients_match(got: nn.Module, want: nn.Module, hint: str) -> None:
    """Every parameter of `got` has the gradient of the same parameter of `want`, up to float32 rounding.

    Tolerance per tensor: 1e-4 of its own largest gradient (grouped and per-view backward passes are
    measured at ≤ 3e-7 relative, so this is a wide margin), plus 1e-6 of the largest gradient of the
    whole network, for tensors whose true gradient is zero and whose computed one is rounding noise.
    A missing gradient path changes a whole tensor's gradient by its own size, far above both.
    """
    pairs = list(zip(got.named_parameters(), want.parameters()))
    largest = max((float(q.grad.abs().max()) for _, q in pairs if q.grad is not None), default=0.0)
    for (name, p), q in pairs:
        if q.grad is None:
            continue
        expect(
            p.grad is not None,
            f"{name} received no gradient through the multi-crop forward: no torch.no_grad() or .detach() in the "
            "student's forward",
        )
        atol = 1e-4 * float(q.grad.abs().max()) + 1e-6 * largest
        expect_close(p.grad, q.grad, f"{hint} (gradient of {name})", rtol=1e-4, atol=atol)


class CountingBackbone(nn.Module):
    """A small ViT that records the batch size and resolution of every call."""

    def __init__(self, seed: int = 0, embed_dim: int = 16) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.vit = VisionTransformer(ViTConfig(img_size=16, patch_size=4, embed_dim=embed_dim, depth=1, num_heads=2))
        self.embed_dim = embed_dim
        self.calls: list[tuple[int, int]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        expect(
            isinstance(images, torch.Tensor) and images.dim() == 4,
            "the backbone takes a (N, C, H, W) batch of images, got "
            f"{getattr(images, 'shape', type(images).__name__)}: "
            "concatenate the views of a group along the batch axis (torch.cat(views[start:end]))",
        )
        self.calls.append((images.shape[0], images.shape[-1]))
        return self.vit(images)


class CountingHead(nn.Module):
    """Wraps a head; records the number of rows of every call and checks it gets one (N, D) matrix."""

    def __init__(self, head: nn.Module, in_dim: int = 16) -> None:
        super().__init__()
        self.head = head
        self.in_dim = in_dim
        self.calls: list[int] = []

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        expect(
            isinstance(features, torch.Tensor) and features.dim() == 2 and features.shape[1] == self.in_dim,
            f"the head takes one (N, D) = (N, {self.in_dim}) matrix of features, got "
            f"{tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__}: "
            "concatenate the backbone's outputs along dim 0 (torch.cat(features)), not stacked or side by side",
        )
        self.calls.append(features.shape[0])
        return self.head(features)


def small_head(seed: int = 1, in_dim: int = 16, output_dim: int = 12) -> nn.Module:
    torch.manual_seed(seed)
    return ref_heads.DINOProjectionHead(in_dim, output_dim=output_dim, hidden_dim=24, bottleneck_dim=8)


def views_of_sizes(sizes: list[int], batch: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, s, s, generator=generator) for s in sizes]


def forward_learner(network, views: list[torch.Tensor], out_dim: int) -> torch.Tensor:
    """network(views) with hints for None, the type, views changed in place, and the number of rows."""
    try:
        out = call_unmutated(network.forward, views)
    except RuntimeError as exc:
        message = str(exc).splitlines()[0]
        if "must match except in dimension 0" in message:  # only images can differ outside dim 0: a group mixes sizes
            raise AssertionError(
                f"concatenating the views of a group failed ({message}): a group must hold views of one size only; "
                "group_by_resolution's (start, end) is end-exclusive, like a slice: views[start:end]"
            ) from None
        if "stack expects each tensor to be equal size" in message or "Sizes of tensors must match" in message:
            raise AssertionError(
                f"joining the groups' features failed ({message}): the groups hold different numbers of views, "
                "so concatenate the backbone's outputs along dim 0 (torch.cat(features)), not stacked or side by side"
            ) from None
        raise
    expect_type(out, views[0], "MultiCropNetwork.forward")
    V, B = len(views), views[0].shape[0]
    rows = out.shape[0] if out.dim() else 0
    expect(
        out.dim() == 2 and out.shape[1] == out_dim,
        f"forward should return the head's output (V*B, K) = {(V * B, out_dim)}, got {tuple(out.shape)}: run self.head "
        "on the features",
    )
    expect(
        rows <= V * B,
        f"forward returned {rows} rows for V*B = {V}*{B} = {V * B}: each view must appear exactly once "
        "(group_by_resolution's (start, end) is end-exclusive, like a slice: views[start:end])",
    )
    expect(
        rows == V * B,
        f"forward returned {rows} rows for V*B = {V}*{B} = {V * B}: every view of every group must be used "
        "(torch.cat(views[start:end]))",
    )
    return out


def order_mistake(got: torch.Tensor, per_view: torch.Tensor, sizes: list[int], batch: int) -> str | None:
    """Which wrong ordering of the rows `got` has, if any (per_view: the right rows, crop-major)."""
    V = len(sizes)
    blocks = per_view.detach().split(batch)
    batch_major = torch.stack(blocks, dim=1).reshape(V * batch, -1)
    by_size = torch.cat([blocks[v] for v in sorted(range(V), key=lambda v: -sizes[v])])
    by_size_ascending = torch.cat([blocks[v] for v in sorted(range(V), key=lambda v: sizes[v])])
    first_seen = list(dict.fromkeys(sizes))
    by_first_seen = torch.cat([blocks[v] for s in first_seen for v in range(V) if sizes[v] == s])
    unsorted = (
        "keep the views in their order: group only *consecutive* views of equal size (group_by_resolution), "
        "do not gather or sort the views by size"
    )
    candidates = [
        (
            "the rows must be crop-major (rows v*B ... v*B + B − 1 belong to view v), not interleaved image by image",
            batch_major,
        ),
        (unsorted, by_first_seen),
        (unsorted, by_size),
        (unsorted, by_size_ascending),
    ]
    atol = GROUPING_TOL["atol"]
    for hint, wrong in candidates:
        if torch.allclose(got.detach(), wrong, rtol=0.0, atol=atol) and not torch.allclose(
            per_view, wrong, rtol=0.0, atol=atol
        ):
            return hint
    return None


LAYOUTS = [
    ([16, 16, 8, 8, 8, 8], 3),  # 2 global + 4 local, CPU-like
    ([16, 16], 2),  # global views only (what the teacher sees)
    ([16, 16, 8, 8, 16], 3),  # a size that comes back: three groups
    ([8, 16, 8], 2),  # alternating
    ([12, 12, 12, 4, 4], 1),  # other sizes, B = 1
]


# ----------------------------------------------------------------------------- MultiCropNetwork.forward


@exercise("MultiCropNetwork.forward")
def test_grouped_forward_runs_backbone_once_per_resolution_group():
    network = md.MultiCropNetwork(CountingBackbone(), CountingHead(small_head()))
    views = views_of_sizes([16, 16, 8, 8, 8, 8], batch=3)
    forward_learner(network, views, 12)
    calls = network.backbone.calls
    expect(
        calls != [(3, 16)] * 2 + [(3, 8)] * 4,
        f"the backbone ran once per view, calls (batch, size) = {calls}: concatenate each run of consecutive "
        "equal-size views "
        "along the batch axis and run the backbone once per run: twice here, on 2*B = 6 images of 16 px then 4*B = 12 "
        "of 8 px",
    )
    expect(
        calls == [(6, 16), (12, 8)],
        f"the backbone should run twice, on 2*B = 6 global images of 16 px then 4*B = 12 local images of 8 px; "
        f"got calls (batch, size) = {calls}: concatenate each group of views with torch.cat",
    )
    expect(
        network.head.calls == [18],
        f"the head should run once, on all V*B = 18 features concatenated, got calls with {network.head.calls} rows",
    )


@exercise("MultiCropNetwork.forward")
@pytest.mark.parametrize(
    "sizes,batch", LAYOUTS, ids=lambda s: "-".join(map(str, s)) if isinstance(s, list) else f"B{s}"
)
def test_grouped_forward_equals_one_pass_per_view(sizes, batch):
    backbone, head = CountingBackbone(seed=2), small_head(seed=3)
    network = md.MultiCropNetwork(backbone, head)
    views = views_of_sizes(sizes, batch, seed=len(sizes))
    got = forward_learner(network, views, 12)
    passes = len(backbone.calls)
    with torch.no_grad():
        per_view = torch.cat([head(backbone(view)) for view in views])  # the definition, crop-major
    mistake = order_mistake(got, per_view, sizes, batch)
    expect(mistake is None, f"{sizes}: {mistake}")
    expect_close(
        got,
        per_view,
        "the grouped forward must equal one pass per view, stacked crop-major in view order",
        **GROUPING_TOL,
    )
    expected_groups = len(ref.group_by_resolution(views))
    expect(
        passes == expected_groups,
        f"{sizes}: expected {expected_groups} backbone passes (one per run of consecutive equal sizes), got {passes}",
    )
    want = ref.MultiCropNetwork(backbone, head)(views)
    expect_close(got, want, "output differs from the reference multi-crop network", **GROUPING_TOL)


@exercise("MultiCropNetwork.forward")
def test_grouped_forward_backpropagates_to_backbone_and_head():
    network = md.MultiCropNetwork(CountingBackbone(seed=4), small_head(seed=5))
    twin = ref.MultiCropNetwork(CountingBackbone(seed=4), small_head(seed=5))
    views = views_of_sizes([16, 16, 8, 8], batch=2, seed=6)
    out = forward_learner(network, views, 12)
    expect(out.requires_grad, "the student's output must require grad: no torch.no_grad() or .detach() in the forward")
    weights = torch.linspace(-1, 1, 12)
    (out * weights).sum().backward()
    (twin(views) * weights).sum().backward()
    expect_gradients_match(network, twin, "gradient differs from the reference")


@exercise("MultiCropNetwork.forward")
def test_multicrop_network_matches_original_first_iteration(golden):
    """Golden `train`: the original student and teacher outputs of iteration 0, from `init_student`."""
    train = golden["train"]
    config = train["config"]
    backbone = VisionTransformer(ViTConfig(img_size=32, patch_size=4, embed_dim=32, depth=2, num_heads=2))
    head = ref_heads.DINOProjectionHead(32, output_dim=64, hidden_dim=48, bottleneck_dim=16)
    network = md.MultiCropNetwork(backbone, head)
    network.load_state_dict(train["init_student"])
    views = list(train["inputs"][0])
    student_output = forward_learner(network, views, 64)
    expect_close(
        student_output,
        train["student_output"][0],
        "golden train, iteration 0: the student output differs from the original multi-crop forward",
        **GOLDEN_TRAIN_TOL,
    )
    with torch.no_grad():
        teacher_output = forward_learner(network, views[: config.get("n_global", 2)], 64)
    expect_close(
        teacher_output,
        train["teacher_output"][0],
        "golden train, iteration 0: the output on the two global views differs",
        **GOLDEN_TRAIN_TOL,
    )


@exercise("MultiCropNetwork.forward")
def test_complete_model_student_all_views_teacher_globals():
    model = md.CompleteDINOModel(CountingBackbone(seed=7), small_head(seed=8), epochs=2, steps_per_epoch=2)
    views = views_of_sizes([16, 16, 8, 8, 8], batch=2, seed=9)
    student_output, teacher_output = model(views)
    expect(
        tuple(student_output.shape) == (10, 12) and tuple(teacher_output.shape) == (4, 12),
        "student (V*B, K) = (10, 12), teacher (2*B, K) = (4, 12)",
    )
    expect(
        model.teacher.backbone.calls[-1] == (4, 16),
        f"the teacher should run once on the 2 global views, got {model.teacher.backbone.calls}",
    )
    expect(
        model.student.backbone.calls[-2:] == [(4, 16), (6, 8)],
        f"the student should run once per resolution, got {model.student.backbone.calls}",
    )
    expect_close(
        teacher_output,
        student_output[:4].detach(),
        "teacher = student at initialisation: global rows must agree",
        **GROUPING_TOL,
    )


@exercise("MultiCropNetwork.forward")
def test_multicrop_network_rejects_bad_views():
    network = md.MultiCropNetwork(CountingBackbone(), small_head())
    network(views_of_sizes([16], batch=2))
    with pytest.raises((TypeError, ValueError)):
        network(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError):
        network([])
    with pytest.raises(ValueError):
        network([torch.randn(2, 3, 16, 16), torch.randn(3, 3, 16, 16)])


# ----------------------------------------------------------------------------- adaptive_head_dims


def pow2_up(n: int) -> int:
    return 1 << (n - 1).bit_length()


def pow2_down(n: int) -> int:
    return 1 << (n.bit_length() - 1)


EMBED_DIMS = [1, 2, 3, 5, 10, 32, 96, 100, 160, 192, 384, 512, 768, 1024, 2048]
SETTINGS = [(2048, 4, 8), (1024, 2, 4), (4096, 4, 16), (256, 3, 64)]  # (max_hidden_dim, expansion, bottleneck_ratio)


def with_bottleneck(hidden_rule):
    return lambda d, cap, e, r: (hidden_rule(d, cap, e, r), max(1, hidden_rule(d, cap, e, r) // r))


# What typical mistakes compute, each written as a whole rule: the learner's function is matched against a rule
# on every probe, so one coincidence (e.g. 4·D already a power of two) cannot name the wrong mistake.
ADAPTIVE_MISTAKES = [
    (
        "round expansion·D up to a power of two (4·96 = 384 → 512), then cap at max_hidden_dim",
        with_bottleneck(lambda d, cap, e, r: min(cap, e * d)),
    ),
    (
        "round expansion·D *up* to a power of two, not down (4·96 = 384 → 512, not 256)",
        with_bottleneck(lambda d, cap, e, r: min(cap, pow2_down(e * d))),
    ),
    (
        "round expansion·D up to the next power of two, not to the nearest (4·5 = 20 → 32, not 16)",
        with_bottleneck(lambda d, cap, e, r: min(cap, 2 ** round(math.log2(e * d)))),
    ),
    (
        "take the smallest power of two ≥ expansion·D (not >): 4·32 = 128 stays 128",
        with_bottleneck(lambda d, cap, e, r: min(cap, 2 * pow2_down(e * d))),
    ),
    (
        "cap the hidden width at max_hidden_dim: hidden = min(max_hidden_dim, power of two)",
        with_bottleneck(lambda d, cap, e, r: pow2_up(e * d)),
    ),
    (
        "cap the hidden width with min(max_hidden_dim, ...), not max",
        with_bottleneck(lambda d, cap, e, r: max(cap, pow2_up(e * d))),
    ),
    (
        "use the expansion argument, not a fixed 4: hidden = min(cap, smallest power of two ≥ expansion·D)",
        with_bottleneck(lambda d, cap, e, r: min(cap, pow2_up(4 * d))),
    ),
    (
        "use the max_hidden_dim argument as the cap, not a fixed 2048",
        with_bottleneck(lambda d, cap, e, r: min(2048, pow2_up(e * d))),
    ),
    (
        "the bottleneck is at least 1: max(1, hidden // bottleneck_ratio)",
        lambda d, cap, e, r: (min(cap, pow2_up(e * d)), min(cap, pow2_up(e * d)) // r),
    ),
    (
        "use the bottleneck_ratio argument, not a fixed 8: bottleneck = hidden // bottleneck_ratio",
        lambda d, cap, e, r: (min(cap, pow2_up(e * d)), max(1, min(cap, pow2_up(e * d)) // 8)),
    ),
]


def adaptive_mistake(got, embed_dim: int, cap: int, expansion: int, ratio: int) -> str | None:
    """The most specific mistake that gives `got` for these arguments, if any."""
    call = f"adaptive_head_dims({embed_dim}, max_hidden_dim={cap}, expansion={expansion}, bottleneck_ratio={ratio})"
    if got is None:
        return f"{call} returned None: did you forget the `return` statement?"
    if not isinstance(got, tuple) or len(got) != 2:
        return f"{call} must return a tuple (hidden_dim, bottleneck_dim), got {got!r}"
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in got):
        return (
            f"{call} must return two Python ints, got {got!r}: use // for the bottleneck "
            "(and int(...) around anything from math or torch)"
        )
    want = ref.adaptive_head_dims(embed_dim, max_hidden_dim=cap, expansion=expansion, bottleneck_ratio=ratio)
    if got == want:
        return None
    if got == want[::-1]:
        return f"{call}: return (hidden_dim, bottleneck_dim) in this order, got {got}"
    probes = [(d, *setting) for d in EMBED_DIMS for setting in SETTINGS]
    learner = {
        p: md.adaptive_head_dims(p[0], max_hidden_dim=p[1], expansion=p[2], bottleneck_ratio=p[3]) for p in probes
    }
    for hint, rule in ADAPTIVE_MISTAKES:
        if rule(embed_dim, cap, expansion, ratio) == got and all(tuple(learner[p]) == rule(*p) for p in probes):
            return f"{call} returned {got}, expected {want}: {hint}"
    return (
        f"{call} returned {got}, expected {want}: hidden = min(max_hidden_dim, smallest power of two ≥ expansion·D), "
        "bottleneck = max(1, hidden // bottleneck_ratio)"
    )


@exercise("adaptive_head_dims")
def test_adaptive_dims_paper_values():
    for embed_dim, why in (
        (384, "ViT-S gets the paper's head"),
        (96, "4·96 = 384 rounds up to 512, bottleneck 512/8 = 64"),
        (2048, "wide backbones are capped at 2048"),
    ):
        got = md.adaptive_head_dims(embed_dim)
        mistake = adaptive_mistake(got, embed_dim, 2048, 4, 8)
        expect(mistake is None, f"{mistake} ({why})")


@exercise("adaptive_head_dims")
@pytest.mark.parametrize("embed_dim", EMBED_DIMS)
@pytest.mark.parametrize("max_hidden,expansion,ratio", SETTINGS)
def test_adaptive_dims_match_reference(embed_dim, max_hidden, expansion, ratio):
    got = md.adaptive_head_dims(embed_dim, max_hidden_dim=max_hidden, expansion=expansion, bottleneck_ratio=ratio)
    mistake = adaptive_mistake(got, embed_dim, max_hidden, expansion, ratio)
    expect(mistake is None, mistake)


@exercise("adaptive_head_dims")
def test_adaptive_dims_reject_bad_input():
    md.adaptive_head_dims(8)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError):
            md.adaptive_head_dims(bad)


# ----------------------------------------------------------------------------- freeze invariant on the full model


@pytest.mark.exercise("3.3", "cancel_last_layer_gradients")
def test_no_gradient_reaches_frozen_last_layer_in_the_complete_model():
    """Forward, loss, backward, cancel: in the freeze epoch the last layer has no gradient, the rest has one."""
    # The learner's code first, on a head without gradients yet (valid input): an unstarted exercise stops
    # here, before the reference model's forward, backward and AdamW below, whose first run in a fresh grading
    # process (imports included) can take seconds. Lesson 3.3 runs only this check of this file.
    hd.cancel_last_layer_gradients(small_head(seed=11), 0, 1)
    torch.manual_seed(10)
    model = ref.CompleteDINOModel(CountingBackbone(seed=10), small_head(seed=11), epochs=2, steps_per_epoch=1)
    views = views_of_sizes([16, 16, 8, 8], batch=2, seed=12)
    optimizer = torch.optim.AdamW(
        [p for p in model.student.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.04
    )
    last_layer_before = model.student.head.last_layer.weight_v.detach().clone()
    for epoch in (0, 1):
        student_output, teacher_output = model(views)
        targets = teacher_output.softmax(-1)
        loss = -(targets.repeat(2, 1) * student_output.log_softmax(-1)).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        hd.cancel_last_layer_gradients(model.student, epoch, 1)
        last_layer_grads = [p.grad for name, p in model.student.named_parameters() if "last_layer" in name]
        if epoch == 0:
            expect(
                all(g is None for g in last_layer_grads),
                "in the freeze epoch the last layer's gradients must be None after cancelling",
            )
            expect(model.student.head.mlp[0].weight.grad is not None, "the rest of the student must keep its gradients")
        else:
            expect(
                model.student.head.last_layer.weight_v.grad is not None,
                "after the freeze epoch the last layer trains again",
            )
        optimizer.step()
        if epoch == 0:
            expect(
                torch.equal(model.student.head.last_layer.weight_v, last_layer_before),
                "the last layer moved in the freeze epoch",
            )
    expect(all(p.grad is None for p in model.teacher.parameters()), "the teacher never receives gradients")


# ----------------------------------------------------------------------------- measure_forward
# Timings cannot be compared with the reference's (they depend on the machine and its load), so
# the checks look at what the measurement does: which forwards it runs and how (counted and
# recorded by a wrapper backbone), the units and kinds of its results, the median against a
# backbone that sleeps known times, and the peak memory, which is a property of the forward's
# allocations and not of the machine.

COST_SIZES = [16, 16, 8, 8, 8, 8]  # 2 global + 4 local views: 2 resolution groups


class RecordingBackbone(nn.Module):
    """Wraps a backbone; records each call's batch, mode and autograd state, and sleeps as told."""

    def __init__(self, inner: nn.Module, sleep_for=None, fail_at: int | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.sleep_for = sleep_for  # call index -> seconds, or None
        self.fail_at = fail_at  # raise RuntimeError at this call index
        self.calls: list[dict] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        index = len(self.calls)
        self.calls.append(dict(batch=images.shape[0], training=self.training, grad=torch.is_grad_enabled()))
        if self.fail_at is not None and index == self.fail_at:
            raise RuntimeError("a forward failed (on purpose, to see the network's mode restored)")
        if self.sleep_for is not None:
            time.sleep(self.sleep_for(index))
        return self.inner(images)


def cost_network(sleep_for=None, fail_at=None, seed: int = 0):
    """A tiny ViT + head as a MultiCropNetwork (the reference's forward), its backbone recorded."""
    torch.manual_seed(seed)
    vit = VisionTransformer(ViTConfig(img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2))
    backbone = RecordingBackbone(vit, sleep_for, fail_at)
    return ref.MultiCropNetwork(backbone, small_head()), backbone


def measure(network, views, **kwargs):
    """The learner's measure_forward, its result checked for kind and units first."""
    cost = call_unmutated(md.measure_forward, network, views, **kwargs)
    expect_type(cost, object(), "measure_forward")
    expect(all(hasattr(cost, name) for name in ("seconds", "peak_bytes", "output")),
           f"measure_forward must return a ForwardCost(seconds, peak_bytes, output), got {type(cost).__name__}")
    expect(isinstance(cost.seconds, float) and not isinstance(cost.seconds, bool),
           f"seconds must be a Python float (the median of time.perf_counter() differences), got {type(cost.seconds).__name__}")
    expect(isinstance(cost.peak_bytes, int) and not isinstance(cost.peak_bytes, bool),
           f"peak_bytes must be an int number of bytes (not MiB, not a tensor), got {cost.peak_bytes!r:.40}")
    expect(cost.seconds > 0, f"seconds must be > 0: time each forward, got {cost.seconds}")
    expect(cost.peak_bytes >= 0, f"peak_bytes is the highest level of the running sum from 0, so >= 0, got {cost.peak_bytes}")
    expect(isinstance(cost.output, torch.Tensor), f"output must be the forward's output tensor, got {type(cost.output).__name__}")
    return cost


def forwards_run(backbone: RecordingBackbone, calls_per_forward: int) -> int:
    expect(len(backbone.calls) % calls_per_forward == 0,
           f"the backbone ran {len(backbone.calls)} times, not a whole number of forwards of {calls_per_forward} passes")
    return len(backbone.calls) // calls_per_forward


@exercise("measure_forward")
@pytest.mark.parametrize("grouped", [True, False], ids=["grouped", "per-view"])
def test_measure_forward_output_is_the_forward_without_autograd(grouped):
    network, backbone = cost_network()
    views = views_of_sizes(COST_SIZES, batch=2)
    cost = measure(network, views, grouped=grouped, repeats=2)
    expect(cost.output.grad_fn is None and not cost.output.requires_grad,
           "the output has an autograd history: run the forwards under torch.no_grad()")
    network.eval()
    with torch.no_grad():
        expected = network(views)
    expect_close(cost.output, expected, "the output must be the network's output on the views, crop-major (V * B, K): "
                 + ("network(views)" if grouped else "network.head(torch.cat([network.backbone(v) for v in views]))"),
                 **GROUPING_TOL, what="measure_forward's output")
    expect(all(p.grad is None for p in network.parameters()), "a parameter received a gradient: nothing may call backward")


@exercise("measure_forward")
@pytest.mark.parametrize("grouped", [True, False], ids=["grouped", "per-view"])
def test_measure_forward_runs_the_backbone_as_asked(grouped):
    network, backbone = cost_network()
    batch = 2
    measure(network, views_of_sizes(COST_SIZES, batch), grouped=grouped, repeats=2)
    batches = [call["batch"] for call in backbone.calls]
    one_forward = [2 * batch, 4 * batch] if grouped else [batch] * len(COST_SIZES)
    n = len(batches) // len(one_forward) if batches else 0
    if grouped:
        expect(batches == one_forward * n and n > 0,
               f"grouped=True must run network(views): the backbone once per resolution group, batches {one_forward} "
               f"per forward; got backbone batches {batches[:12]}")
    else:
        expect(batches == one_forward * n and n > 0,
               f"grouped=False must run the backbone once per view (V = {len(COST_SIZES)} passes of B = {batch} images "
               f"per forward), then the head once; got backbone batches {batches[:12]}")


@exercise("measure_forward")
def test_measure_forward_runs_repeats_timed_forwards_after_a_warm_up():
    counts = {}
    for repeats in (1, 4):
        network, backbone = cost_network()
        measure(network, views_of_sizes(COST_SIZES, 2), repeats=repeats)
        counts[repeats] = forwards_run(backbone, calls_per_forward=2)
    expect(counts[4] - counts[1] == 3,
           f"`repeats` is the number of timed forwards: repeats=1 ran {counts[1]} forwards, repeats=4 ran {counts[4]}")
    expect(counts[1] == 3, f"repeats=1 ran {counts[1]} forward(s), expected 3: one untimed warm-up forward, then the "
                           "`repeats` timed ones, then one under the profiler for the memory")


@exercise("measure_forward")
@pytest.mark.parametrize("start_training", [True, False], ids=["from-train", "from-eval"])
def test_measure_forward_in_eval_mode_without_grad_and_mode_restored(start_training):
    network, backbone = cost_network()
    network.train(start_training)
    measure(network, views_of_sizes(COST_SIZES, 2), repeats=2)
    expect(not any(call["training"] for call in backbone.calls),
           "the forwards must run in evaluation mode: network.eval() before measuring")
    expect(not any(call["grad"] for call in backbone.calls),
           "every forward must run under torch.no_grad() (the warm-up, the timed and the profiled one)")
    expect(all(module.training == start_training for module in network.modules()),
           f"leave the network in the mode it was in (training={start_training}): network.train(was_training) at the end")


@exercise("measure_forward")
def test_measure_forward_restores_the_mode_when_a_forward_fails():
    measure(cost_network()[0], views_of_sizes(COST_SIZES, 2), repeats=1)  # a valid call first
    network, backbone = cost_network(fail_at=3)
    network.train()
    with pytest.raises(RuntimeError, match="on purpose"):
        md.measure_forward(network, views_of_sizes(COST_SIZES, 2), repeats=3)
    expect(network.training, "when a forward raises, the network must still be put back in its mode: "
                             "restore it in a `finally:` block")


@exercise("measure_forward")
def test_measure_forward_seconds_is_the_median_in_seconds():
    # one resolution group, so one backbone call per forward; every third forward (0, 3, 6, ...)
    # sleeps 0.5 s, the others 0.004 s: of any 9 consecutive forwards 3 are slow, so the median of
    # 9 timed forwards is a fast one (>= 0.004 s, far below 0.1 s even on a busy machine), while
    # their mean is >= 1.5 s / 9 = 0.17 s and their sum >= 1.5 s
    network, backbone = cost_network(sleep_for=lambda call: 0.5 if call % 3 == 0 else 0.004)
    cost = measure(network, views_of_sizes([16, 16], 1), repeats=9)
    expect(cost.seconds < 3.0, f"seconds must be in seconds (time.perf_counter() differences), got {cost.seconds:.4g}: "
                               "milliseconds?")
    expect(cost.seconds < 0.1, f"seconds must be the median of the {9} timed forwards, got {cost.seconds:.3f} s: a mean "
                               "or a sum counts the 3 slow forwards of 9 (0.5 s each); the median does not")
    expect(cost.seconds >= 0.004, f"every forward takes >= 0.004 s here, got {cost.seconds:.4g} s: is "
                                  "time.perf_counter() read before and after the same forward?")


@exercise("measure_forward")
def test_measure_forward_peak_memory_of_the_forward():
    peaks = {}
    for batch in (2, 8):
        network, _ = cost_network()
        views = views_of_sizes(COST_SIZES, batch)
        cost = measure(network, views, grouped=True, repeats=1)
        expect(cost.peak_bytes >= cost.output.nbytes,
               f"peak_bytes {cost.peak_bytes} is below the output's own {cost.output.nbytes} bytes, which the forward "
               "allocates: count bytes, from the profiler's self_cpu_memory_usage")
        # The allocations and frees of one forward are the same on every machine and for every
        # correct measurement; a factor 2 leaves room for op-resolution differences, and is far
        # from the typical mistakes: the final level (~0 here) or the sum of all allocations
        # (3-7 times the peak for this network, measured).
        want = ref.measure_forward(cost_network()[0], views, grouped=True, repeats=1).peak_bytes
        expect(cost.peak_bytes <= 2 * want,
               f"peak_bytes {cost.peak_bytes} is far above this forward's peak (~{want}): the peak is the highest "
               "running sum of allocations minus frees (in time order), not the sum of all allocations")
        expect(cost.peak_bytes >= want / 2,
               f"peak_bytes {cost.peak_bytes} is far below this forward's peak (~{want}): take the maximum of the "
               "running sum over the events sorted by start time, not its final value")
        peaks[batch] = cost.peak_bytes
    expect(peaks[8] > peaks[2], f"4 times the images gave no more peak memory ({peaks}): is the memory measured "
                                "during a forward of these views?")


@exercise("measure_forward")
def test_measure_forward_rejects_bad_arguments():
    network, _ = cost_network()
    views = views_of_sizes(COST_SIZES, 2)
    measure(network, views, repeats=1)
    for repeats in (0, -1, 2.0, True):
        with pytest.raises(ValueError):
            md.measure_forward(network, views, repeats=repeats)
    with pytest.raises((TypeError, ValueError)):
        md.measure_forward(network, views[0], repeats=1)
