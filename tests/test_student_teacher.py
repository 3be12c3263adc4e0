"""Hidden checks for Lesson 3.1 (`dino_course/student_teacher.py`).

Each check compares the learner's code with the reference (`solutions/student_teacher.py`)
on seeded inputs and checks invariants that any correct implementation satisfies, so a plain
loop, `lerp_`, the paper's formula written literally or float64 intermediates pass as well as
the fused reference. Each tolerance is derived where it is used (see `ema_atol` and
`schedule_atol`). Checks run in the order a learner's mistakes are best named: nothing or the
wrong kind of value returned, an input changed, then the values; where a typical mistake has
its own hint (τ and 1 − τ swapped, a cosine that reaches its end, the teacher fed every view)
the check looks for it before a general comparison fails.

No check lets an optimiser carry rounding across steps before comparing: the training-loop
check of `update_teacher` compares every EMA step with the reference applied to the very same
teacher and student, and the student learns by plain SGD written out by hand.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math

import pytest
import torch
from torch import nn

import solutions.student_teacher as ref
from dino_course.grading.hints import FLOAT32_EPS, expect, expect_close, expect_raises, expect_type
from dino_course.grading.learner import LearnerModule
from dino_course.networks.vit import VisionTransformer, ViTConfig

st = LearnerModule("student_teacher")

FLOAT64_EPS = torch.finfo(torch.float64).eps  # 2.2e-16


exercise = functools.partial(pytest.mark.exercise, "3.1")  # @exercise("name"): a check of that exercise of the lesson


# ----------------------------------------------------------------------------- test networks


class BackboneWithHead(nn.Module):
    """A tiny ViT backbone plus a projection head, with a BatchNorm buffer: a DINO-shaped student."""

    def __init__(self, embed_dim: int = 24, out_dim: int = 10) -> None:
        super().__init__()
        self.backbone = VisionTransformer(
            ViTConfig(img_size=16, patch_size=4, embed_dim=embed_dim, depth=1, num_heads=2)
        )
        self.head = nn.Sequential(nn.Linear(embed_dim, 16), nn.BatchNorm1d(16), nn.GELU(), nn.Linear(16, out_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


class MLPWithStatistics(nn.Module):
    """A small MLP with a BatchNorm (float and integer buffers) and a float buffer of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
        self.register_buffer("feature_scale", torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.feature_scale


def make_mlp(seed: int, width: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, width), nn.LayerNorm(width), nn.ReLU(), nn.Linear(width, 3))


def make_mlp_with_statistics(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return MLPWithStatistics()


NETWORKS = {
    "mlp": lambda seed: make_mlp(seed),
    "wide-mlp": lambda seed: make_mlp(seed, width=64),
    "vit+head": lambda seed: (torch.manual_seed(seed), BackboneWithHead())[1],
}


def randomised_pair(kind: str, seed: int) -> tuple[nn.Module, nn.Module]:
    """A student and a frozen teacher of the same architecture with different random weights."""
    student = NETWORKS[kind](seed)
    teacher = NETWORKS[kind](seed + 100)
    teacher.requires_grad_(False)
    return student, teacher


def statistics_pair(seed: int) -> tuple[nn.Module, nn.Module]:
    """Like `randomised_pair`, and the student's buffers (BatchNorm statistics, its own buffer)
    hold values of their own, as after some training."""
    student = make_mlp_with_statistics(seed)
    teacher = make_mlp_with_statistics(seed + 100).requires_grad_(False)
    student.train()(torch.randn(6, 5))  # updates the BatchNorm running statistics and its counter
    with torch.no_grad():
        student.feature_scale.fill_(2.0)
    return student, teacher


def parameters_of(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def buffers_of(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.detach().clone() for name, b in module.named_buffers()}


def identities(module: nn.Module) -> dict[str, tuple[int, int]]:
    """The Python object and the memory of every parameter and buffer, to see one replaced."""
    return {
        name: (id(t), t.data_ptr()) for name, t in itertools.chain(module.named_parameters(), module.named_buffers())
    }


def storages(module: nn.Module) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in itertools.chain(module.parameters(), module.buffers()) if t.numel()}


def same_values(module: nn.Module, values: dict[str, torch.Tensor]) -> bool:
    current = dict(itertools.chain(module.named_parameters(), module.named_buffers()))
    return all(torch.equal(current[name].detach(), value) for name, value in values.items())


def ema_atol(teacher: torch.Tensor, student: torch.Tensor) -> float:
    """Tolerance for one EMA step of a float32 tensor, against the reference's.

    Every correct way of computing τ·θ_t + (1 − τ)·θ_s (the fused mul/add, `lerp_`, the literal
    formula, θ_t + (1 − τ)(θ_s − θ_t), float64 intermediates) rounds a handful of times, each time
    by at most one ulp of the largest quantity involved (|θ_t|, |θ_s|, |θ_s − θ_t| ≤ 2·max), and τ
    or 1 − τ may itself be rounded to float32 (an error of eps·|θ_s − θ_t|). Eight ulps of the
    largest value bounds all of them; swapping τ and 1 − τ, say, is off by ~|θ_s − θ_t| instead.
    """
    scale = max(float(teacher.detach().abs().max()), float(student.detach().abs().max()), 1e-30)
    return 8 * FLOAT32_EPS * scale


# ----------------------------------------------------------------------------- build_teacher


@exercise("build_teacher")
@pytest.mark.parametrize(
    "kind,mode", [("mlp", "train"), ("wide-mlp", "eval"), ("vit+head", "train"), ("vit+head", "eval")]
)
def test_build_teacher_is_an_exact_independent_frozen_copy(kind, mode):
    student = NETWORKS[kind](0).train(mode == "train")
    student_before = copy.deepcopy(student.state_dict())
    teacher = st.build_teacher(student)
    expect(teacher is not None, "build_teacher returned None: did you forget the `return` statement?")
    expect(
        teacher is not student,
        "build_teacher returned the student itself: the teacher must be a separate copy (copy.deepcopy(student))",
    )
    expect(isinstance(teacher, nn.Module), f"build_teacher must return an nn.Module, got {type(teacher).__name__}")
    expect(type(teacher) is type(student), f"the teacher should have the student's class {type(student).__name__}")
    expect(
        list(teacher.state_dict()) == list(student.state_dict()),
        "the teacher's state dict must have the same keys as the student's (backbone and head): copy the whole module",
    )
    for name, value in student.state_dict().items():
        expect(
            torch.equal(teacher.state_dict()[name], value),
            f"teacher tensor {name!r} differs from the student's: the teacher must start as an exact copy",
        )
    expect(
        not storages(teacher) & storages(student),
        "teacher and student share tensors: use copy.deepcopy (copy.copy shares the parameters), "
        "otherwise every optimiser step moves the teacher too",
    )
    frozen_student = [name for name, p in student.named_parameters() if not p.requires_grad]
    expect(
        not frozen_student,
        f"student parameters {frozen_student[:3]} were frozen: "
        "freeze the teacher's copy (after copying), not the student",
    )
    trainable = [name for name, p in teacher.named_parameters() if p.requires_grad]
    expect(
        not trainable,
        f"teacher parameters {trainable[:3]} still require gradients: call teacher.requires_grad_(False) (or set "
        "p.requires_grad = False on every teacher parameter; `teacher.requires_grad = False` only sets an attribute)",
    )
    for name, value in student.state_dict().items():
        expect(torch.equal(value, student_before[name]), "build_teacher changed the student's weights")
    expect(
        teacher.training == student.training,
        f"the teacher is in {'train' if teacher.training else 'eval'} mode, the student in {mode} mode: "
        "leave the copy in the student's mode (do not call .eval() or .train() on it)",
    )


@exercise("build_teacher")
def test_teacher_is_independent_of_later_student_updates():
    student = make_mlp(1)
    teacher = st.build_teacher(student)
    before = parameters_of(teacher)
    student(torch.randn(4, 5)).square().sum().backward()
    with torch.no_grad():  # one plain SGD step on the student
        for p in student.parameters():
            p.sub_(0.5 * p.grad)
    for name, value in teacher.named_parameters():
        expect(
            torch.equal(value, before[name]), "an optimiser step on the student changed the teacher: they share tensors"
        )
        expect(value.grad is None, "the teacher received gradients from the student's backward pass")


@exercise("build_teacher")
def test_teacher_forward_builds_no_graph():
    student = make_mlp(2)
    teacher = st.build_teacher(student)
    out = teacher(torch.randn(3, 5))
    expect(not out.requires_grad, "the teacher's output requires grad: its parameters must not require gradients")


# ----------------------------------------------------------------------------- sync_teacher


@exercise("sync_teacher")
@pytest.mark.parametrize("kind", ["mlp", "statistics", "vit+head"])
def test_sync_copies_student_in_place(kind):
    if kind == "statistics":
        student, teacher = statistics_pair(seed=3)
    else:
        student, teacher = randomised_pair(kind, seed=3)
    if kind == "vit+head":  # give the BatchNorm buffers different values too
        student.train()(torch.randn(4, 3, 16, 16))
    student_before = {**parameters_of(student), **buffers_of(student)}
    teacher_before = {**parameters_of(teacher), **buffers_of(teacher)}
    objects = identities(teacher)
    result = st.sync_teacher(teacher, student)
    expect(
        same_values(student, student_before),
        "sync_teacher changed the student: copy from the student into the teacher, "
        "teacher_tensor.copy_(student_tensor), not the other way round",
    )
    expect(
        not same_values(teacher, teacher_before),
        "sync_teacher left the teacher unchanged: copy the student's values into the teacher's own tensors "
        "(teacher_tensor.copy_(student_tensor)); assigning `teacher = ...` inside the function does not change "
        "the caller's teacher" + (", and sync_teacher returns nothing" if result is not None else ""),
    )
    replaced = [name for name, identity in identities(teacher).items() if identity != objects[name]]
    expect(
        not replaced,
        f"sync_teacher replaced teacher tensor {replaced[:1]}: copy into it in place (tensor.copy_), "
        "do not assign new tensors or `.data`",
    )
    expect(not storages(teacher) & storages(student), "after sync_teacher the teacher shares tensors with the student")
    for name, p in teacher.named_parameters():
        expect(
            not p.requires_grad and p.grad_fn is None,
            f"after sync_teacher teacher {name!r} requires gradients: copy under torch.no_grad()",
        )
    student_parameters = dict(student.named_parameters())
    for name, p in teacher.named_parameters():
        expect(
            torch.equal(p, student_parameters[name]),
            f"after sync_teacher, teacher parameter {name!r} differs from the student's",
        )
    student_buffers = dict(student.named_buffers())
    for name, b in teacher.named_buffers():
        expect(
            torch.equal(b, student_buffers[name]),
            f"after sync_teacher, teacher buffer {name!r} differs from the student's: copy the buffers too "
            "(e.g. BatchNorm running statistics): go over state_dict() or named_buffers() as well as the parameters",
        )


@exercise("sync_teacher")
def test_sync_rejects_a_different_architecture():
    student, teacher = randomised_pair("mlp", seed=4)
    st.sync_teacher(teacher, student)
    expect_raises(
        ValueError,
        "sync_teacher must reject networks that cannot be paired (keep the given check_same_architecture call)",
        st.sync_teacher,
        make_mlp(0, width=9),
        student,
    )


# ----------------------------------------------------------------------------- ema_update

EMA_BUFFER_HINT = (
    "ema_update changed the teacher's buffers (e.g. BatchNorm running statistics): average only the "
    "parameters (teacher.parameters(), not state_dict()); the teacher keeps its own buffers"
)


def call_ema(teacher: nn.Module, student: nn.Module, momentum: float):
    """The learner's ema_update; an error from averaging an integer buffer gets its hint."""
    try:
        return st.ema_update(teacher, student, momentum)
    except RuntimeError as exc:
        if "Long" in str(exc) and any(not b.is_floating_point() for b in teacher.buffers()):
            raise AssertionError(
                f"{EMA_BUFFER_HINT} (BatchNorm's num_batches_tracked is an integer and cannot be averaged: {exc})"
            ) from None
        raise


@exercise("ema_update")
def test_ema_changes_only_the_teacher_parameters_in_place():
    student, teacher = statistics_pair(seed=7)
    loss = student(torch.randn(4, 5)).square().sum()  # the student is mid-training, its graph alive
    student_before = {**parameters_of(student), **buffers_of(student)}
    teacher_parameters, teacher_buffers = parameters_of(teacher), buffers_of(teacher)
    objects = identities(teacher)
    call_ema(teacher, student, 0.9)
    expect(
        same_values(student, student_before),
        "ema_update changed the student: only the teacher moves (update the first argument, `teacher`, "
        "from the second, `student`)",
    )
    expect(
        not same_values(teacher, teacher_parameters),
        "ema_update(τ=0.9) left the teacher unchanged: update each teacher parameter in place "
        "(p.mul_(τ).add_(...), p.copy_(...) or p.lerp_(...)); assigning `p = ...` to a loop variable "
        "does not change the parameter",
    )
    replaced = [name for name, identity in identities(teacher).items() if identity != objects[name]]
    expect(
        not replaced,
        f"ema_update replaced teacher tensor {replaced[:1]}: update it in place (mul_/add_, copy_ or lerp_), "
        "do not assign new tensors or `.data`",
    )
    for name, p in teacher.named_parameters():
        expect(
            not p.requires_grad and p.grad_fn is None,
            f"teacher {name!r} became part of the autograd graph: "
            "do the update under torch.no_grad() (or on .detach())",
        )
    expect(same_values(teacher, teacher_buffers), EMA_BUFFER_HINT)
    loss.backward()
    expect(
        all(p.grad is None for p in teacher.parameters()),
        "teacher parameters accumulated gradients after a student backward",
    )
    expect(all(p.grad is not None for p in student.parameters()), "the student's own gradients were lost")


@exercise("ema_update")
@pytest.mark.parametrize("kind", list(NETWORKS))
@pytest.mark.parametrize("momentum", [0.3, 0.996, 0.9999, 0.0, 1.0])
def test_ema_matches_reference(kind, momentum):
    student, teacher = randomised_pair(kind, seed=5)
    teacher_before = copy.deepcopy(teacher)
    expected = copy.deepcopy(teacher)
    ref.ema_update(expected, student, momentum)
    swapped = copy.deepcopy(teacher)
    ref.ema_update(swapped, student, 1.0 - momentum)  # the most common slip: τ and 1 − τ exchanged
    student_before = parameters_of(student)
    call_ema(teacher, student, momentum)
    for name, p in student.named_parameters():
        expect(torch.equal(p, student_before[name]), "ema_update changed the student: only the teacher moves")
    student_parameters = dict(student.named_parameters())
    for (name, got), want, slip, old in zip(
        teacher.named_parameters(), expected.parameters(), swapped.parameters(), teacher_before.parameters()
    ):
        atol = ema_atol(old, student_parameters[name])
        hint = f"teacher {name!r} after ema_update(τ={momentum}) is wrong: expected τ·θ_t + (1−τ)·θ_s"
        close_to_slip = (got.detach() - slip).abs().max() <= atol
        if momentum != 0.5 and close_to_slip and not (got.detach() - want).abs().max() <= atol:
            hint += " (you computed (1−τ)·θ_t + τ·θ_s: τ weighs the teacher, not the student)"
        expect_close(got, want, hint, rtol=0, atol=atol)


@exercise("ema_update")
def test_ema_endpoints():
    student, teacher = randomised_pair("vit+head", seed=6)
    before = parameters_of(teacher)
    call_ema(teacher, student, 1.0)
    for name, p in teacher.named_parameters():
        # Exact: with τ = 1 every correct formula adds 0·(…) or multiplies by 1.
        expect(torch.equal(p, before[name]), "τ = 1 must leave the teacher exactly unchanged")
    call_ema(teacher, student, 0)  # an int is a valid momentum too
    for (name, p), s in zip(teacher.named_parameters(), student.parameters()):
        # θ_t + 1·(θ_s − θ_t) rounds twice, so τ = 0 copies the student up to the EMA tolerance
        expect_close(
            p, s.detach(), f"τ = 0 must copy the student, {name!r} differs", rtol=0, atol=ema_atol(before[name], s)
        )


@exercise("ema_update")
def test_ema_rejects_bad_input():
    student, teacher = randomised_pair("mlp", seed=8)
    call_ema(teacher, student, 0.5)
    for bad in (-0.1, 1.5):
        expect_raises(
            ValueError,
            f"ema_update must reject momentum={bad} (outside [0, 1]): keep the given check at the top",
            st.ema_update,
            teacher,
            student,
            bad,
        )
    expect_raises(
        ValueError,
        "ema_update must reject networks that cannot be paired (keep the given check_same_architecture call)",
        st.ema_update,
        make_mlp(0, width=9).requires_grad_(False),
        student,
        0.5,
    )


@exercise("ema_update")
def test_repeated_ema_converges_geometrically():
    """After n steps towards a fixed student, the gap shrinks by exactly τⁿ."""
    student, teacher = randomised_pair("mlp", seed=9)
    gap_before = {n: (s - t).detach().clone() for (n, s), t in zip(student.named_parameters(), teacher.parameters())}
    scale = {
        n: max(float(s.detach().abs().max()), float(t.abs().max()))
        for (n, s), t in zip(student.named_parameters(), teacher.parameters())
    }
    for _ in range(10):
        call_ema(teacher, student, 0.8)
    for (name, s), t in zip(student.named_parameters(), teacher.parameters()):
        # Ten steps of at most 8 ulps each (see ema_atol), plus the rounding of the two gaps.
        expect_close(
            (s - t).detach(),
            gap_before[name] * 0.8**10,
            "ten EMA steps with τ = 0.8 should shrink the student-teacher gap by 0.8¹⁰",
            rtol=0,
            atol=100 * FLOAT32_EPS * scale[name],
        )


# ----------------------------------------------------------------------------- cosine_schedule


def schedule_atol(args: dict) -> float:
    """Tolerance for a float64 schedule: every correct formula (torch or NumPy, a Python loop with
    math.cos, (b + f)/2 + (b − f)/2·cos, linspace or i/(W − 1)) rounds a few times, each by at most
    an ulp of the largest value involved; 16 ulps of it (3.6e-15 for values near 1, well under the
    docstring's 1e-15 for the golden lr schedule) bounds them. Float32 anywhere costs ~1e-8 × that."""
    scale = max(abs(args["base_value"]), abs(args["final_value"]), abs(args.get("start_warmup_value", 0.0)), 1e-300)
    return 16 * FLOAT64_EPS * scale


def _cosine_part(b: float, f: float, n: int, *, divisor: float, offset: int = 0) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64) + offset
    return f + 0.5 * (b - f) * (1 + torch.cos(math.pi * i / divisor))


def check_schedule(got, args: dict) -> None:
    """The learner's `cosine_schedule(**args)` result against the reference, the warm-up and the
    cosine part separately, each with a hint for the mistakes learners typically make there."""
    b, f = args["base_value"], args["final_value"]
    s, warmup_epochs = args.get("start_warmup_value", 0.0), args.get("warmup_epochs", 0)
    total = args["epochs"] * args["niter_per_ep"]
    w, n = warmup_epochs * args["niter_per_ep"], total - warmup_epochs * args["niter_per_ep"]
    want = ref.cosine_schedule(**args)
    if got is not None and not isinstance(got, torch.Tensor) and type(got).__module__ == "numpy":
        raise AssertionError(
            "cosine_schedule should return a torch.Tensor, got a NumPy array: convert it with torch.from_numpy(...)"
        )
    expect_type(got, want, "cosine_schedule")
    expect(
        got.dtype == torch.float64,
        f"cosine_schedule should return float64 values, got {got.dtype}: float32 cannot reach the 1e-15 agreement "
        "(create the tensors with dtype=torch.float64)",
    )
    if got.dim() == 1 and len(got) == total + w and w:
        raise AssertionError(
            f"the schedule has {len(got)} values, expected epochs·niter_per_ep = {total}: the warm-up iterations count "
            f"towards the total, so the cosine part has epochs·niter_per_ep − W = {n} values"
        )
    expect(
        tuple(got.shape) == (total,),
        f"the schedule must be a 1-D tensor of epochs·niter_per_ep = {total} values, got shape {tuple(got.shape)}",
    )
    atol = schedule_atol(args)
    float32_hint = (
        "carry float32 rounding (errors ~1e-8): compute in float64 throughout "
        "(dtype=torch.float64 for every tensor you create)"
    )

    def error(a: torch.Tensor, c: torch.Tensor) -> float:
        return float((a - c).abs().max()) if len(a) else 0.0

    scale = max(abs(b), abs(f), abs(s), 1e-300)
    got_warmup, got_cosine = got[:w].detach(), got[w:].detach()
    if w:
        off = error(got_warmup, want[:w])
        if off > atol:
            if off < 1e-6 * scale:
                raise AssertionError(f"your warm-up values {float32_hint}")
            i = torch.arange(w, dtype=torch.float64)
            if error(got_warmup, s + (b - s) * i / w) <= atol:
                raise AssertionError(
                    f"the warm-up must end exactly at base_value={b}: both ends are included, "
                    "v_i = s + (b − s)·i/(W − 1) (torch.linspace(s, b, W) does this), not i/W"
                )
            expect_close(
                got_warmup,
                want[:w],
                f"the warm-up (the first W = warmup_epochs·niter_per_ep = {w} values) should go linearly from "
                f"start_warmup_value={s} to base_value={b}, both ends included",
                rtol=0,
                atol=atol,
            )
    off = error(got_cosine, want[w:])
    if off <= atol:
        return
    if off < 1e-6 * scale:
        raise AssertionError(f"your cosine values {float32_hint}")
    mistakes = [
        (
            _cosine_part(b, f, n, divisor=n - 1) if n > 1 else None,
            (
                f"the cosine should divide by n = {n}, not n − 1: v_i = f + ½(b − f)(1 + cos(π·i/n)), "
                "so its last value is close to, not equal to, final_value"
            ),
        ),
        (
            _cosine_part(b, f, n, divisor=total, offset=w),
            (
                "the cosine starts after the warm-up: i counts from 0 at the first cosine iteration and "
                f"n = epochs·niter_per_ep − W = {n} (not the whole run)"
            ),
        ),
        (
            _cosine_part(b, f, n, divisor=total),
            (
                f"the cosine part has n = epochs·niter_per_ep − W = {n} iterations: "
                f"divide by n, not by the whole run's {total}"
            ),
        ),
        (
            _cosine_part(f, b, n, divisor=n),
            f"the cosine should start at base_value={b} and head towards final_value={f}: base and final are swapped",
        ),
    ]
    for candidate, hint in mistakes:
        if candidate is not None and error(got_cosine, candidate) <= atol:
            raise AssertionError(hint)
    expect_close(
        got_cosine,
        want[w:],
        f"the cosine part (after the {w} warm-up values) should be v_i = f + ½(b − f)(1 + cos(π·i/n)), "
        f"i = 0 … n − 1, n = {n}, from base_value={b} towards final_value={f}",
        rtol=0,
        atol=atol,
    )


@exercise("cosine_schedule")
@pytest.mark.parametrize("name", ["lr", "wd", "momentum", "momentum_0999"])
def test_cosine_schedule_matches_original(golden, name):
    config = golden["schedules"]["config"][name]
    got = st.cosine_schedule(**config)
    check_schedule(got, config)
    want = golden["schedules"][name]  # the original DINO scheduler's numbers
    expect_close(got, want, "the schedule differs from the original DINO scheduler", rtol=0, atol=schedule_atol(config))


@exercise("cosine_schedule")
@pytest.mark.parametrize(
    "epochs,niter,warmup,base,final,start",
    [
        (1, 1, 0, 0.5, 0.01, 0.1),
        (3, 5, 1, 0.5, 0.01, 0.1),
        (7, 2, 7, 0.3, 0.9, 0.05),
        (4, 3, 2, 0.04, 0.4, 0.02),
        (2, 4, 1, 1.0, 0.0, 0.5),
        (5, 1, 3, 2.5, 0.25, 1.0),
    ],
)
def test_cosine_schedule_matches_reference_on_a_grid(epochs, niter, warmup, base, final, start):
    args = dict(
        base_value=base,
        final_value=final,
        epochs=epochs,
        niter_per_ep=niter,
        warmup_epochs=warmup,
        start_warmup_value=start,
    )
    check_schedule(st.cosine_schedule(**args), args)


@exercise("cosine_schedule")
def test_cosine_schedule_defaults():
    got = st.cosine_schedule(0.996, 1.0, 1, 4)  # no warm-up by default: the docstring's example
    check_schedule(got, dict(base_value=0.996, final_value=1.0, epochs=1, niter_per_ep=4))
    got = st.cosine_schedule(0.5, 0.1, 3, 2, warmup_epochs=1)  # the warm-up starts at 0.0 by default
    check_schedule(got, dict(base_value=0.5, final_value=0.1, epochs=3, niter_per_ep=2, warmup_epochs=1))


@exercise("cosine_schedule")
def test_momentum_schedule_defaults_and_bad_input():
    schedule = st.momentum_schedule(epochs=10, niter_per_ep=7)
    expect_type(schedule, torch.zeros(1), "cosine_schedule")
    expect(abs(float(schedule[0]) - 0.996) < 1e-12, "the momentum schedule must start at 0.996")
    expect(bool((schedule[1:] >= schedule[:-1]).all()), "the momentum must never decrease during training")
    # the defaults are the paper's 0.996 → 1: the last of the 70 values is 1 − ½·0.004·(1 + cos(69π/70)), just
    # below 1 (float64: a correct cosine_schedule is within a few ulps of it)
    last = 1.0 - 0.5 * (1.0 - 0.996) * (1.0 + math.cos(math.pi * 69 / 70))
    expect(abs(float(schedule[-1]) - last) < 1e-12,
           f"the default momentum schedule (the paper's 0.996 → 1) must end at {last!r}, just below 1, "
           f"got {float(schedule[-1])!r}")
    for bad, why in (
        (dict(epochs=0, niter_per_ep=7), "epochs=0"),
        (dict(epochs=2, niter_per_ep=0), "niter_per_ep=0"),
        (dict(epochs=2, niter_per_ep=7, warmup_epochs=3), "a warm-up longer than training"),
    ):
        expect_raises(
            ValueError,
            f"cosine_schedule must reject {why}: keep the given argument checks at the top",
            st.cosine_schedule,
            0.996,
            1.0,
            **bad,
        )
    expect_raises(
        ValueError,
        "momentum_schedule must reject momentum_teacher > momentum_teacher_end",
        st.momentum_schedule,
        epochs=2,
        niter_per_ep=3,
        momentum_teacher=0.999,
        momentum_teacher_end=0.99,
    )


# ----------------------------------------------------------------------------- parameter_divergence


def divergence_pair(kind: str, seed: int) -> tuple[nn.Module, nn.Module]:
    """A student and a teacher whose norms differ clearly (so ‖θ_t‖ in place of ‖θ_s‖ shows)."""
    student = NETWORKS[kind](seed)
    teacher = copy.deepcopy(student).requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in teacher.parameters():
            p.mul_(0.5).add_(0.3 * torch.randn(p.shape, generator=generator))
    return student, teacher


# Relative tolerance of d = ‖θ_s − θ_t‖ / ‖θ_s‖ (float32): each norm sums N ≤ ~2 000 squares; torch's
# pairwise sum is off by ≲ log2(N)·eps, a float64 computation by less, a sequential sum by ~√N·eps
# (45 eps) in the typical case; the ratio of two such sums, and the difference θ_s − θ_t (rounded once,
# exact where they are close): rtol 1e-5 ≈ 84 eps covers every correct formulation.
DIVERGENCE_RTOL = 1e-5


def call_divergence(student: nn.Module, teacher: nn.Module):
    before = {
        **{("student", n): v for n, v in parameters_of(student).items()},
        **{("teacher", n): v for n, v in parameters_of(teacher).items()},
    }
    got = st.parameter_divergence(student, teacher)
    now = {
        **{("student", n): p for n, p in student.named_parameters()},
        **{("teacher", n): p for n, p in teacher.named_parameters()},
    }
    for (which, name), value in before.items():
        expect(
            torch.equal(now[(which, name)].detach(), value),
            f"parameter_divergence changed the {which}'s parameter {name!r}: compute new tensors "
            "(θ_s − θ_t), do not subtract in place (-=, sub_)",
        )
    return got


@exercise("parameter_divergence")
@pytest.mark.parametrize("kind", list(NETWORKS))
def test_divergence_matches_reference(kind):
    student, teacher = divergence_pair(kind, seed=10)
    got = call_divergence(student, teacher)
    want = ref.parameter_divergence(student, teacher)
    expect(got is not None, "parameter_divergence returned None: did you forget the `return` statement?")
    expect(isinstance(got, dict), f"parameter_divergence must return a dict of name -> float, got {type(got).__name__}")
    expect(
        list(got) == list(want),
        f"the keys must be the student's parameter names, in the student's order (named_parameters()), "
        f"e.g. {list(want)[:3]}; got {list(got)[:3]}",
    )
    for name in want:
        expect(
            not isinstance(got[name], torch.Tensor),
            f"parameter_divergence should map each name to a Python float, got a tensor for {name!r}: "
            "convert it with float(...) or .item()",
        )
        expect_type(got[name], want[name], f"parameter_divergence's value for {name!r}")
    with torch.no_grad():
        teacher_parameters = dict(teacher.named_parameters())
        for name, s in student.named_parameters():
            t = teacher_parameters[name]
            value = float(got[name])
            if not math.isfinite(value):
                zero = not bool(s.any())
                raise AssertionError(
                    f"the divergence of {name!r} is {value}"
                    + (
                        ": the student's parameter is all zeros, so divide by max(‖θ_s‖, 1e-12) as the docstring says"
                        if zero
                        else ", not a finite number: d = ‖θ_s − θ_t‖₂ / max(‖θ_s‖₂, 1e-12)"
                    )
                )
            hint = f"divergence of {name!r} is wrong: it should be ‖θ_s − θ_t‖₂ / ‖θ_s‖₂"
            scale = max(float(s.norm()), 1e-12)
            by_teacher = float((s - t).norm()) / max(float(t.norm()), 1e-12)
            squared = float((s - t).square().sum()) / scale**2
            if want[name] == 0.0:
                pass  # identical tensors: any formula gives 0
            elif math.isclose(value, by_teacher, rel_tol=DIVERGENCE_RTOL):
                hint += " (you divided by the teacher's norm ‖θ_t‖: divide by the student's)"
            elif math.isclose(value, squared, rel_tol=DIVERGENCE_RTOL):
                hint += (
                    " (you returned the ratio of squared norms: take the 2-norm, the square root of the sum of squares)"
                )
            expect_close(value, want[name], hint, rtol=DIVERGENCE_RTOL, atol=0)


@exercise("parameter_divergence")
def test_divergence_of_identical_and_of_scaled_networks():
    student = make_mlp(11)
    teacher = copy.deepcopy(student)
    got = call_divergence(student, teacher)
    expect(isinstance(got, dict), f"parameter_divergence must return a dict of name -> float, got {type(got).__name__}")
    # θ_s − θ_t is exactly 0 in floating point here, so every formulation gives exactly 0.
    expect(all(float(v) == 0.0 for v in got.values()), "identical networks must have divergence 0 everywhere")
    with torch.no_grad():
        teacher[0].weight.mul_(2.0)  # a relative distance of exactly 1 for this layer
        teacher[3].bias.mul_(-1.0)  # ‖θ_s − (−θ_s)‖ / ‖θ_s‖ = 2
    got = call_divergence(student, teacher)
    expect_close(
        float(got["0.weight"]),
        1.0,
        "doubling a teacher weight should give a relative divergence of 1.0 for that layer",
        rtol=DIVERGENCE_RTOL,
        atol=0,
    )
    expect_close(
        float(got["3.bias"]),
        2.0,
        "a teacher bias of −θ_s should give a relative divergence of 2.0",
        rtol=DIVERGENCE_RTOL,
        atol=0,
    )


@exercise("parameter_divergence")
def test_divergence_of_an_all_zero_student_parameter():
    student = make_mlp(12)
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        student[0].bias.zero_()  # θ_s = θ_t = 0: d = 0 / max(0, 1e-12) = 0
        teacher[0].bias.zero_()
        student[3].bias.zero_()  # θ_s = 0, θ_t ≠ 0: d = ‖θ_t‖ / 1e-12
        teacher[3].bias.copy_(torch.tensor([0.3, -0.4, 0.0]))
    got = call_divergence(student, teacher)
    expect(isinstance(got, dict), f"parameter_divergence must return a dict of name -> float, got {type(got).__name__}")
    values = {name: float(v) for name, v in got.items()}
    expect(
        all(math.isfinite(v) for v in values.values()),
        "an all-zero student parameter gave a non-finite divergence (0/0): "
        "divide by max(‖θ_s‖, 1e-12) as the docstring says",
    )
    expect(values["0.bias"] == 0.0, "a parameter that is zero in student and teacher alike must have divergence 0")
    expect_close(
        values["3.bias"],
        0.5 / 1e-12,
        "an all-zero student parameter must be divided by 1e-12: d = ‖θ_s − θ_t‖ / max(‖θ_s‖, 1e-12)",
        rtol=DIVERGENCE_RTOL,
        atol=0,
    )


@exercise("parameter_divergence")
def test_divergence_rejects_a_different_architecture():
    student = make_mlp(13)
    call_divergence(student, copy.deepcopy(student))
    expect_raises(
        ValueError,
        "parameter_divergence must reject networks that cannot be paired (keep the given check_same_architecture call)",
        st.parameter_divergence,
        student,
        make_mlp(0, width=9),
    )


# ----------------------------------------------------------------------------- the wrapper


class ViewProbe(nn.Module):
    """A network on a list of views that records what it was given, and stops the learner's
    forward at once, with a hint, when the teacher gets other views than the global ones (before
    a shape mismatch further on could raise an error that names nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 4 * 4, 6)
        self.role = "student"
        self.all_views: list[torch.Tensor] = []
        self.expected: list[torch.Tensor] = []  # the teacher: the views it must get
        self.calls: list[dict] = []

    def seen(self) -> list[torch.Tensor]:
        return [v for call in self.calls for v in call["views"]]

    def forward(self, views):
        if isinstance(views, torch.Tensor) or not isinstance(views, (list, tuple)):
            raise AssertionError(
                f"the {self.role} was given {type(views).__name__}, not the list of views: pass the views "
                "themselves (a list of (B, C, H, W) tensors), not one concatenated tensor"
            )
        self.calls.append(
            dict(views=list(views), grad=torch.is_grad_enabled(), inference=torch.is_inference_mode_enabled())
        )
        if self.role == "teacher":
            # One call on all global views, or one call per global view: what it saw so far must
            # be the start of views[:n_global_views].
            seen = [v.data_ptr() for v in self.seen()]
            if seen != [v.data_ptr() for v in self.expected][: len(seen)]:
                raise AssertionError(teacher_views_hint(self.seen(), self.expected, self.all_views))
        return torch.cat([self.linear(v.flatten(1)) for v in views])


def teacher_views_hint(given: list[torch.Tensor], expected: list[torch.Tensor], views: list[torch.Tensor]) -> str:
    n, k = len(expected), len(given)
    pointers = [v.data_ptr() for v in given]
    if pointers == [v.data_ptr() for v in views]:
        return (
            f"the teacher was given all {len(views)} views: it must see only the first n_global_views={n} "
            "(the global crops), views[:self.n_global_views]"
        )
    if k == n and pointers == [v.data_ptr() for v in views[-n:]]:
        return f"the teacher was given the last {n} views: the global views come first, views[:self.n_global_views]"
    if pointers == [v.data_ptr() for v in views[:k]]:
        given_views = f"more than the first {n} (views[:{k}] at least)" if k > n else f"only the first {k}"
        return (
            f"the teacher was given {given_views} of the views, but n_global_views={n}: use "
            "views[:self.n_global_views], not a fixed number"
        )
    return f"the teacher was given {k} views other than the global ones: give it views[:self.n_global_views] (here {n})"


def probe_wrapper(n_global: int, n_local: int, seed: int = 0):
    torch.manual_seed(12 + seed)
    wrapper = st.StudentTeacherWrapper(ViewProbe(), epochs=2, steps_per_epoch=3, n_global_views=n_global)
    with torch.no_grad():  # a teacher that differs from the student, so their outputs can be told apart
        for p in wrapper.teacher.parameters():
            p.add_(0.5)
    views = make_views(batch=2, n_views=n_global + n_local, seed=seed)
    wrapper.teacher.role = "teacher"
    wrapper.teacher.expected = views[:n_global]
    wrapper.teacher.all_views = views
    return wrapper, views


def make_views(batch: int = 2, n_views: int = 5, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, 4, 4, generator=generator) for _ in range(n_views)]


@exercise("StudentTeacherWrapper.forward")
@pytest.mark.parametrize("n_global,n_local", [(2, 3), (1, 4), (3, 2), (2, 0)])
def test_wrapper_forward_student_all_views_teacher_global_only(n_global, n_local):
    wrapper, views = probe_wrapper(n_global, n_local)
    batch, n_views = views[0].shape[0], len(views)
    result = wrapper(views)
    expect(result is not None, "forward returned None: did you forget the `return` statement?")
    expect(
        isinstance(result, (tuple, list)) and len(result) == 2 and all(isinstance(r, torch.Tensor) for r in result),
        f"forward should return the pair (student_output, teacher_output), got {type(result).__name__}",
    )
    student_out, teacher_out = result
    expect(wrapper.teacher.calls, "the teacher network was never called: teacher_output must come from self.teacher")
    expect(wrapper.student.calls, "the student network was never called: student_output must come from self.student")
    seen = [v.data_ptr() for v in wrapper.teacher.seen()]
    expect(
        seen == [v.data_ptr() for v in views[:n_global]],
        teacher_views_hint(wrapper.teacher.seen(), views[:n_global], views),
    )
    student_seen = [v.data_ptr() for v in wrapper.student.seen()]
    expect(
        student_seen == [v.data_ptr() for v in views],
        f"the student must see every view, global and local, in order ({n_views}); it was given {len(student_seen)}",
    )
    expect(
        not any(c["inference"] for c in wrapper.teacher.calls),
        "the teacher ran under torch.inference_mode(): use torch.no_grad(), the teacher's output is used in the "
        "loss and inference tensors cannot take part in a backward pass",
    )
    expect(
        not any(c["grad"] for c in wrapper.teacher.calls),
        "the teacher's forward ran with autograd on: wrap it in torch.no_grad()",
    )
    expect(
        all(c["grad"] for c in wrapper.student.calls),
        "the student's forward ran without autograd (under torch.no_grad()): "
        "it must build a graph for the backward pass",
    )
    want_student, want_teacher = (n_views * batch, 6), (n_global * batch, 6)
    if tuple(student_out.shape) == want_teacher and tuple(teacher_out.shape) == want_student and n_global != n_views:
        raise AssertionError(
            "forward returned (teacher_output, student_output): return (student_output, teacher_output)"
        )
    expect(
        tuple(student_out.shape) == want_student,
        f"student output should be (V·B, K) = {want_student}, got {tuple(student_out.shape)}",
    )
    expect(
        tuple(teacher_out.shape) == want_teacher,
        f"teacher output should be (n_global_views·B, K) = {want_teacher}, got {tuple(teacher_out.shape)}",
    )
    expect(
        student_out.requires_grad,
        "the student's output has no graph: do not detach it, the loss back-propagates through it",
    )
    expect(
        not teacher_out.requires_grad,
        "the teacher's output must not have a graph: run the teacher under torch.no_grad()",
    )
    # Outputs of a 48-input linear layer, values O(1): a different batching of the same rows
    # rounds differently by ≲ 48 ulps; the default float32 tolerance (rtol 1.3e-6, atol 1e-5) covers it.
    with torch.no_grad():
        expect_close(
            student_out,
            wrapper.student.linear(torch.cat(views).flatten(1)),
            "student output should be the student's output on all views, crop-major (view 0's batch first)",
        )
        expect_close(
            teacher_out,
            wrapper.teacher.linear(torch.cat(views[:n_global]).flatten(1)),
            "teacher output should be the teacher network's output on the global views, crop-major",
        )


@exercise("StudentTeacherWrapper.forward")
def test_wrapper_backward_reaches_student_only():
    torch.manual_seed(13)
    wrapper = st.StudentTeacherWrapper(ref.PerViewNetwork(nn.Flatten(), nn.Linear(48, 5)), epochs=1, steps_per_epoch=2)
    views = make_views(batch=3, n_views=4)
    result = wrapper(views)
    expect(
        isinstance(result, (tuple, list)) and len(result) == 2,
        f"forward should return the pair (student_output, teacher_output), got {type(result).__name__}",
    )
    student_out, teacher_out = result
    expect(
        isinstance(teacher_out, torch.Tensor) and tuple(teacher_out.shape) == (6, 5),
        "the teacher must see only the first n_global_views views (the global crops): teacher output should be "
        f"(2·B, K) = (6, 5), got {tuple(teacher_out.shape) if isinstance(teacher_out, torch.Tensor) else teacher_out}",
    )
    expect(
        isinstance(student_out, torch.Tensor) and tuple(student_out.shape) == (12, 5),
        "the student must see every view: student output should be (V·B, K) = (12, 5)",
    )
    expect(
        student_out.requires_grad,
        "the student's output has no graph: do not detach it, the loss back-propagates through it",
    )
    (student_out[:6] * teacher_out).sum().backward()
    expect(all(p.grad is not None for p in wrapper.student.parameters()), "the student received no gradients")
    expect(all(p.grad is None for p in wrapper.teacher.parameters()), "teacher parameters accumulated gradients")


@exercise("StudentTeacherWrapper.forward")
def test_wrapper_rejects_bad_views():
    wrapper, views = probe_wrapper(2, 0)
    wrapper(views)
    expect_raises(
        TypeError,
        "forward must reject a single tensor instead of a list of views (keep the given self._check_views call)",
        wrapper,
        torch.randn(2, 3, 4, 4),
    )
    expect_raises(
        ValueError,
        "forward must reject fewer views than n_global_views (keep the given self._check_views call)",
        wrapper,
        views[:1],
    )


UPDATE_BUFFER_HINT = (
    "update_teacher changed the teacher's buffers (e.g. BatchNorm running statistics): only the parameters are "
    "averaged; call ema_update(self.teacher, self.student, τ)"
)
# float(momentum_schedule[step]) is exact, so the momentum returned must be the schedule's value itself.
MOMENTUM_TOLERANCE = 1e-12


@exercise("StudentTeacherWrapper.update_teacher")
@pytest.mark.parametrize("step", [0, 3, 5])
def test_update_teacher_uses_the_scheduled_momentum(step):
    torch.manual_seed(14)
    wrapper = st.StudentTeacherWrapper(make_mlp_with_statistics(14), epochs=2, steps_per_epoch=3, momentum_teacher_end=1.0)
    with torch.no_grad():
        for p in wrapper.student.parameters():
            p.add_(torch.randn_like(p))
        for b in wrapper.teacher.buffers():
            b.add_(1)
    schedule = ref.momentum_schedule(2, 3, 0.996, 1.0)
    tau = float(schedule[step])
    teacher_before = copy.deepcopy(wrapper.teacher)
    student_before = {**parameters_of(wrapper.student), **buffers_of(wrapper.student)}
    used = wrapper.update_teacher(step)
    expect_type(used, tau, f"update_teacher({step})")
    neighbours = {step + d: float(schedule[step + d]) for d in (-1, 1) if 0 <= step + d < len(schedule)}
    if abs(used - tau) > MOMENTUM_TOLERANCE and any(abs(used - v) <= MOMENTUM_TOLERANCE for v in neighbours.values()):
        raise AssertionError(
            f"update_teacher({step}) used the momentum of a neighbouring step: steps count from 0, "
            "use τ = momentum_schedule[step]"
        )
    expect(
        abs(used - tau) <= MOMENTUM_TOLERANCE,
        f"update_teacher({step}) should return the momentum it used, momentum_schedule[{step}] = {tau!r}, got {used!r}",
    )
    expect(
        same_values(wrapper.student, student_before),
        "update_teacher changed the student: call ema_update(self.teacher, self.student, τ), teacher first",
    )
    expect(
        not same_values(wrapper.teacher, parameters_of(teacher_before)),
        "update_teacher left the teacher unchanged: call ema_update(self.teacher, self.student, τ)",
    )
    for name, p in wrapper.teacher.named_parameters():
        expect(
            not p.requires_grad and p.grad_fn is None,
            f"after update_teacher teacher {name!r} requires gradients: update it under torch.no_grad()",
        )
    expect(
        same_values(wrapper.teacher, buffers_of(teacher_before)),
        UPDATE_BUFFER_HINT,
    )
    expected, slip = copy.deepcopy(teacher_before), copy.deepcopy(teacher_before)
    ref.ema_update(expected, wrapper.student, tau)
    ref.ema_update(slip, wrapper.student, 1.0 - tau)
    student_parameters = dict(wrapper.student.named_parameters())
    for (name, got), want, wrong, old in zip(
        wrapper.teacher.named_parameters(), expected.parameters(), slip.parameters(), teacher_before.parameters()
    ):
        atol = ema_atol(old, student_parameters[name])
        hint = (
            f"after update_teacher({step}) teacher {name!r} is wrong: "
            "call ema_update(self.teacher, self.student, τ) with τ = momentum_schedule[step]"
        )
        if (got - wrong).abs().max() <= atol and not (got - want).abs().max() <= atol:
            hint = (
                f"after update_teacher({step}) the teacher moved by τ instead of 1 − τ: "
                "pass τ itself to ema_update, it computes 1 − τ"
            )
        expect_close(got, want, hint, rtol=0, atol=atol)


@exercise("StudentTeacherWrapper.update_teacher")
def test_update_teacher_rejects_bad_steps():
    wrapper = st.StudentTeacherWrapper(make_mlp(15), epochs=1, steps_per_epoch=4)
    wrapper.update_teacher(3)
    expect_raises(
        TypeError,
        "update_teacher(1.0) must raise TypeError: the step is an int (keep the given check)",
        wrapper.update_teacher,
        1.0,
    )
    for bad in (-1, 4):
        expect_raises(
            ValueError,
            f"update_teacher({bad}) must raise ValueError: the step is outside the schedule (keep the given check)",
            wrapper.update_teacher,
            bad,
        )


@exercise("StudentTeacherWrapper.update_teacher")
def test_training_loop_each_step_matches_reference():
    """Forward, backward, SGD step, then update_teacher: each EMA step is compared with the
    reference's from the very same teacher and student, so no rounding is carried across steps."""
    torch.manual_seed(16)
    network = ref.PerViewNetwork(  # small and quick: a linear backbone, a head with BatchNorm
        nn.Sequential(nn.Flatten(), nn.Linear(48, 16)),
        nn.Sequential(nn.Linear(16, 12), nn.BatchNorm1d(12), nn.GELU(), nn.Linear(12, 7)),
    )
    wrapper = st.StudentTeacherWrapper(network, epochs=2, steps_per_epoch=2, momentum_teacher=0.9, momentum_teacher_end=0.95)
    schedule = ref.momentum_schedule(2, 2, 0.9, 0.95)
    views = make_views(batch=2, n_views=4, seed=16)  # 2 global and 2 local views
    for step in range(len(schedule)):
        student_out, teacher_out = wrapper(views)
        loss = -(teacher_out.softmax(-1).repeat(2, 1) * student_out.log_softmax(-1)).sum(-1).mean()
        wrapper.student.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in wrapper.student.parameters():
                if p.grad is not None:
                    p.sub_(0.1 * p.grad)
        teacher_before = copy.deepcopy(wrapper.teacher)
        student_before = {**parameters_of(wrapper.student), **buffers_of(wrapper.student)}
        used = wrapper.update_teacher(step)
        expect_type(used, float(schedule[step]), f"update_teacher({step})")
        expect(
            abs(used - float(schedule[step])) <= MOMENTUM_TOLERANCE,
            f"update_teacher({step}) should use and return momentum_schedule[{step}]",
        )
        expect(
            same_values(wrapper.student, student_before), "update_teacher changed the student: only the teacher moves"
        )
        expect(
            same_values(wrapper.teacher, buffers_of(teacher_before)),
            UPDATE_BUFFER_HINT,
        )
        expected = copy.deepcopy(teacher_before)
        ref.ema_update(expected, wrapper.student, float(schedule[step]))
        student_parameters = dict(wrapper.student.named_parameters())
        for (name, got), want, old in zip(
            wrapper.teacher.named_parameters(), expected.parameters(), teacher_before.parameters()
        ):
            expect_close(
                got,
                want,
                f"after the training step {step}, update_teacher({step}) gave a wrong teacher {name!r}: "
                "call ema_update(self.teacher, self.student, momentum_schedule[step])",
                rtol=0,
                atol=ema_atol(old, student_parameters[name]),
            )


@exercise("StudentTeacherWrapper.update_teacher")
def test_wrapper_state_dict_round_trips():
    torch.manual_seed(17)
    wrapper = st.StudentTeacherWrapper(make_mlp(17), epochs=1, steps_per_epoch=3, momentum_teacher_end=1.0)
    with torch.no_grad():
        for p in wrapper.student.parameters():
            p.mul_(1.5)
    wrapper.update_teacher(1)
    restored = st.StudentTeacherWrapper(make_mlp(99), epochs=1, steps_per_epoch=3)
    restored.load_state_dict(wrapper.state_dict())
    for (name, a), b in zip(wrapper.state_dict().items(), restored.state_dict().values()):
        expect(torch.equal(a, b), f"{name!r} did not round-trip through state_dict/load_state_dict")
    expect(all(not p.requires_grad for p in restored.teacher.parameters()), "a restored teacher must still be frozen")


# ----------------------------------------------------------------------------- integration: your whole lesson


@exercise("StudentTeacherWrapper.update_teacher")
@pytest.mark.integration("build_teacher", "ema_update", "cosine_schedule", "StudentTeacherWrapper.forward")
def test_integration_your_lesson_3_1_keeps_a_teacher_through_training():
    """Integration check: the same training loop, with your wrapper built from your own build_teacher,
    momentum schedule (cosine_schedule), forward and ema_update. It runs only once each of those exercises
    passes its own checks."""
    test_training_loop_each_step_matches_reference()
