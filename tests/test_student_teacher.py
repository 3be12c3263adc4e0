"""Hidden checks for Lesson 3.1 (`dino_course/student_teacher.py`).

Each check compares the learner's code with the reference (`solutions/student_teacher.py`)
on seeded inputs and checks invariants that any correct implementation satisfies, so a
plain loop passes as well as the fused reference. Float32 tolerances: an EMA step of a
value of size ~1 differs by at most a few ulps (1.2e-7 each) between two correct orders
of operations, hence rtol 1e-6 / atol 1e-7.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

import solutions.student_teacher as ref
from dino_course.grading.hints import expect, expect_close
from dino_course.grading.learner import LearnerModule
from dino_course.vit import ViTConfig, VisionTransformer

st = LearnerModule("student_teacher")
GOLDEN_SCHEDULE_TOLERANCE = 1e-15  # golden/README: an independent float64 implementation agrees to 1.4e-20

EMA_TOL = dict(rtol=1e-6, atol=1e-7)


def exercise(name: str):
    return pytest.mark.exercise("3.1", name)


# ----------------------------------------------------------------------------- test networks


class BackboneWithHead(nn.Module):
    """A tiny ViT backbone plus a projection head, with a BatchNorm buffer: a DINO-shaped student."""

    def __init__(self, embed_dim: int = 24, out_dim: int = 10) -> None:
        super().__init__()
        self.backbone = VisionTransformer(ViTConfig(img_size=16, patch_size=4, embed_dim=embed_dim, depth=1, num_heads=2))
        self.head = nn.Sequential(nn.Linear(embed_dim, 16), nn.BatchNorm1d(16), nn.GELU(), nn.Linear(16, out_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def make_mlp(seed: int, width: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, width), nn.LayerNorm(width), nn.ReLU(), nn.Linear(width, 3))


NETWORKS = {
    "mlp": lambda seed: make_mlp(seed),
    "wide-mlp": lambda seed: make_mlp(seed, width=64),
    "vit+head": lambda seed: (torch.manual_seed(seed), BackboneWithHead())[1],
}


def randomised_pair(kind: str, seed: int) -> tuple[nn.Module, nn.Module]:
    """A student and a teacher of the same architecture with different random weights."""
    student = NETWORKS[kind](seed)
    teacher = NETWORKS[kind](seed + 100)
    teacher.requires_grad_(False)
    return student, teacher


def parameters_of(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def storages(module: nn.Module) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in itertools.chain(module.parameters(), module.buffers()) if t.numel()}


# ----------------------------------------------------------------------------- build_teacher


@exercise("build_teacher")
@pytest.mark.parametrize("kind", list(NETWORKS))
def test_build_teacher_is_an_exact_independent_frozen_copy(kind):
    student = NETWORKS[kind](0)
    student_before = copy.deepcopy(student.state_dict())
    teacher = st.build_teacher(student)
    expect(isinstance(teacher, nn.Module) and teacher is not student, "build_teacher must return a new nn.Module, not the student itself")
    expect(type(teacher) is type(student), f"the teacher should have the student's class {type(student).__name__}")
    expect(
        list(teacher.state_dict()) == list(student.state_dict()),
        "the teacher's state dict must have the same keys as the student's (backbone and head): copy the whole module",
    )
    for name, value in student.state_dict().items():
        expect(torch.equal(teacher.state_dict()[name], value), f"teacher tensor {name!r} differs from the student's: the teacher must start as an exact copy")
    expect(
        not storages(teacher) & storages(student),
        "teacher and student share tensors: use copy.deepcopy (or fresh tensors), otherwise every optimiser step moves the teacher too",
    )
    frozen = [name for name, p in teacher.named_parameters() if p.requires_grad]
    expect(not frozen, f"teacher parameters {frozen[:3]} still require gradients: call requires_grad_(False) on every teacher parameter")
    trainable = [name for name, p in student.named_parameters() if not p.requires_grad]
    expect(not trainable, f"student parameters {trainable[:3]} were frozen: freeze the teacher's copy, not the student")
    for name, value in student.state_dict().items():
        expect(torch.equal(value, student_before[name]), "build_teacher changed the student's weights")
    expect(teacher.training == student.training, "the teacher should be in the same train/eval mode as the student")


@exercise("build_teacher")
def test_teacher_is_independent_of_later_student_updates():
    student = make_mlp(1)
    teacher = st.build_teacher(student)
    before = parameters_of(teacher)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.5)
    student(torch.randn(4, 5)).square().sum().backward()
    optimizer.step()
    for name, value in teacher.named_parameters():
        expect(torch.equal(value, before[name]), "an optimiser step on the student changed the teacher: they share tensors")
        expect(value.grad is None, "the teacher received gradients from the student's backward pass")


@exercise("build_teacher")
def test_teacher_forward_builds_no_graph():
    student = make_mlp(2)
    teacher = st.build_teacher(student)
    out = teacher(torch.randn(3, 5))
    expect(not out.requires_grad, "the teacher's output requires grad: its parameters must not require gradients")


# ----------------------------------------------------------------------------- sync_teacher


@exercise("sync_teacher")
@pytest.mark.parametrize("kind", list(NETWORKS))
def test_sync_copies_student_in_place(kind):
    student, teacher = randomised_pair(kind, seed=3)
    if kind == "vit+head":  # give the buffers different values too
        student.train()(torch.randn(4, 3, 16, 16))
    pointers = {name: t.data_ptr() for name, t in teacher.state_dict().items()}
    objects = {name: id(p) for name, p in teacher.named_parameters()}
    st.sync_teacher(teacher, student)
    for name, value in student.state_dict().items():
        expect(torch.equal(teacher.state_dict()[name], value), f"after sync_teacher, teacher {name!r} differs from the student's (parameters and buffers must be copied)")
    for name, p in teacher.named_parameters():
        expect(id(p) == objects[name] and p.data_ptr() == pointers[name], "sync_teacher replaced a teacher tensor: copy into it in place (tensor.copy_)")
        expect(not p.requires_grad and p.grad_fn is None, "after sync_teacher the teacher requires gradients: copy under torch.no_grad()")
    expect(not storages(teacher) & storages(student), "after sync_teacher the teacher shares tensors with the student")


@exercise("sync_teacher")
def test_sync_rejects_a_different_architecture():
    student, teacher = randomised_pair("mlp", seed=4)
    st.sync_teacher(teacher, student)
    with pytest.raises(ValueError):
        st.sync_teacher(make_mlp(0, width=9), student)


# ----------------------------------------------------------------------------- ema_update


@exercise("ema_update")
@pytest.mark.parametrize("kind", list(NETWORKS))
@pytest.mark.parametrize("momentum", [0.0, 0.3, 0.996, 0.9999, 1.0])
def test_ema_matches_reference(kind, momentum):
    student, teacher = randomised_pair(kind, seed=5)
    expected = copy.deepcopy(teacher)
    ref.ema_update(expected, student, momentum)
    swapped = copy.deepcopy(teacher)
    ref.ema_update(swapped, student, 1.0 - momentum)  # the most common slip: τ and 1 − τ exchanged
    student_before = parameters_of(student)
    st.ema_update(teacher, student, momentum)
    for (name, got), want, slip in zip(teacher.named_parameters(), expected.parameters(), swapped.parameters()):
        hint = f"teacher {name!r} after ema_update(τ={momentum}) is wrong: expected τ·θ_t + (1−τ)·θ_s"
        if momentum != 0.5 and torch.allclose(got, slip, **EMA_TOL) and not torch.allclose(got, want, **EMA_TOL):
            hint += " (you computed (1−τ)·θ_t + τ·θ_s: τ weighs the teacher, not the student)"
        expect_close(got, want, hint, **EMA_TOL)
    for name, p in student.named_parameters():
        expect(torch.equal(p, student_before[name]), "ema_update changed the student: only the teacher moves")


@exercise("ema_update")
def test_ema_endpoints_are_exact():
    student, teacher = randomised_pair("vit+head", seed=6)
    before = parameters_of(teacher)
    st.ema_update(teacher, student, 1.0)
    for name, p in teacher.named_parameters():
        expect(torch.equal(p, before[name]), "τ = 1 must leave the teacher exactly unchanged")
    st.ema_update(teacher, student, 0.0)
    for (name, p), s in zip(teacher.named_parameters(), student.parameters()):
        expect(torch.equal(p, s), f"τ = 0 must copy the student exactly, {name!r} differs")


@exercise("ema_update")
def test_ema_is_in_place_and_outside_autograd():
    student, teacher = randomised_pair("mlp", seed=7)
    objects = {name: (id(p), p.data_ptr()) for name, p in teacher.named_parameters()}
    loss = student(torch.randn(4, 5)).square().sum()  # the student is mid-training, its graph alive
    st.ema_update(teacher, student, 0.9)
    for name, p in teacher.named_parameters():
        expect((id(p), p.data_ptr()) == objects[name], f"ema_update replaced teacher tensor {name!r}: update it in place")
        expect(
            not p.requires_grad and p.grad_fn is None,
            f"teacher {name!r} became part of the autograd graph: do the update under torch.no_grad() (or on .detach())",
        )
    loss.backward()
    expect(all(p.grad is None for p in teacher.parameters()), "teacher parameters accumulated gradients after a student backward")
    expect(all(p.grad is not None for p in student.parameters()), "the student's own gradients were lost")


@exercise("ema_update")
def test_ema_rejects_bad_input():
    student, teacher = randomised_pair("mlp", seed=8)
    st.ema_update(teacher, student, 0.5)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="momentum"):
            st.ema_update(teacher, student, bad)
    with pytest.raises(ValueError):
        st.ema_update(make_mlp(0, width=9).requires_grad_(False), student, 0.5)


@exercise("ema_update")
def test_repeated_ema_converges_geometrically():
    """After n steps towards a fixed student, the gap shrinks by exactly τⁿ."""
    student, teacher = randomised_pair("mlp", seed=9)
    gap_before = {n: (s - t).detach().clone() for (n, s), t in zip(student.named_parameters(), teacher.parameters())}
    for _ in range(10):
        st.ema_update(teacher, student, 0.8)
    for (name, s), t in zip(student.named_parameters(), teacher.parameters()):
        expect_close(s - t, gap_before[name] * 0.8**10, "ten EMA steps with τ = 0.8 should shrink the student-teacher gap by 0.8¹⁰", rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- cosine_schedule


@exercise("cosine_schedule")
@pytest.mark.parametrize("name", ["lr", "wd", "momentum", "momentum_0999"])
def test_cosine_schedule_matches_original(golden, name):
    config = golden["schedules"]["config"][name]
    got = st.cosine_schedule(**config)
    want = golden["schedules"][name]
    got = torch.as_tensor(got)
    expect(got.shape == want.shape, f"the schedule must have epochs*niter_per_ep = {len(want)} values, got shape {tuple(got.shape)}")
    expect(got.dtype == torch.float64, f"return float64 values (got {got.dtype}): float32 cannot reach the 1e-15 agreement")
    hint = "the schedule differs from the original DINO scheduler"
    if config.get("warmup_epochs", 0):
        hint += ": check the warm-up (linspace including both ends) and that the cosine starts after it"
    expect_close(got, want, hint, rtol=0, atol=GOLDEN_SCHEDULE_TOLERANCE)


@exercise("cosine_schedule")
@pytest.mark.parametrize("epochs,niter,warmup", [(1, 1, 0), (3, 5, 1), (7, 2, 7), (4, 3, 2)])
def test_cosine_schedule_matches_reference_on_a_grid(epochs, niter, warmup):
    args = dict(base_value=0.5, final_value=0.01, epochs=epochs, niter_per_ep=niter, warmup_epochs=warmup, start_warmup_value=0.1)
    got = torch.as_tensor(st.cosine_schedule(**args))
    expect_close(got, ref.cosine_schedule(**args), f"cosine_schedule({args}) differs from the reference", rtol=0, atol=1e-15)


@exercise("cosine_schedule")
def test_momentum_schedule_defaults_and_bad_input():
    schedule = torch.as_tensor(st.momentum_schedule(epochs=10, niter_per_ep=7))
    expect(abs(float(schedule[0]) - 0.996) < 1e-12, "the momentum schedule must start at 0.996")
    expect(bool((schedule[1:] >= schedule[:-1]).all()), "the momentum must never decrease during training")
    expect(0.9989 < float(schedule[-1]) <= 0.999, "the course's default schedule ends just below 0.999")
    with pytest.raises(ValueError):
        st.cosine_schedule(0.996, 1.0, epochs=0, niter_per_ep=7)
    with pytest.raises(ValueError):
        st.cosine_schedule(0.996, 1.0, epochs=2, niter_per_ep=7, warmup_epochs=3)
    with pytest.raises(ValueError):
        st.momentum_schedule(epochs=2, niter_per_ep=3, momentum_start=0.999, momentum_end=0.99)


# ----------------------------------------------------------------------------- parameter_divergence


@exercise("parameter_divergence")
@pytest.mark.parametrize("kind", list(NETWORKS))
def test_divergence_matches_reference(kind):
    student, teacher = randomised_pair(kind, seed=10)
    got = st.parameter_divergence(student, teacher)
    want = ref.parameter_divergence(student, teacher)
    expect(isinstance(got, dict), f"parameter_divergence must return a dict of name -> float, got {type(got).__name__}")
    expect(list(got) == list(want), f"keys must be the student's parameter names in order, e.g. {list(want)[:3]}")
    for name in want:
        expect_close(
            torch.tensor(float(got[name])),
            torch.tensor(want[name]),
            f"divergence of {name!r} is wrong: it should be ‖θ_s − θ_t‖ / ‖θ_s‖",
            rtol=1e-5,
            atol=1e-7,
        )


@exercise("parameter_divergence")
def test_divergence_of_identical_networks_is_zero():
    student = make_mlp(11)
    teacher = copy.deepcopy(student)
    got = st.parameter_divergence(student, teacher)
    expect(all(float(v) == 0.0 for v in got.values()), "identical networks must have divergence 0 everywhere")
    with torch.no_grad():
        teacher[0].weight.mul_(2.0)  # a relative distance of exactly 1 for this layer
    got = st.parameter_divergence(student, teacher)
    expect(abs(float(got["0.weight"]) - 1.0) < 1e-6, "doubling a teacher weight should give a relative divergence of 1.0 for that layer")


# ----------------------------------------------------------------------------- the wrapper


class GradModeProbe(nn.Module):
    """Records, per instance, how many images it saw and whether autograd was on."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 4 * 4, 6)
        self.calls: list[tuple[int, bool]] = []

    def forward(self, views):
        self.calls.append((sum(v.shape[0] for v in views), torch.is_grad_enabled()))
        return torch.cat([self.linear(v.flatten(1)) for v in views])


def make_views(batch: int = 2, n_local: int = 3, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, 4, 4, generator=generator) for _ in range(2 + n_local)]


@exercise("StudentTeacherWrapper.forward")
def test_wrapper_forward_student_all_views_teacher_global_only():
    torch.manual_seed(12)
    wrapper = st.StudentTeacherWrapper(GradModeProbe(), epochs=2, steps_per_epoch=3)
    views = make_views(batch=2, n_local=3)
    student_out, teacher_out = wrapper(views)
    expect(tuple(student_out.shape) == (10, 6), f"student output should be (V*B, K) = (10, 6), got {tuple(student_out.shape)}")
    expect(tuple(teacher_out.shape) == (4, 6), f"teacher output should be (2*B, K) = (4, 6) for the 2 global views, got {tuple(teacher_out.shape)}")
    expect(wrapper.teacher.calls and wrapper.teacher.calls[-1][0] == 4, "the teacher must see only the global views (the first n_global_views)")
    expect(not wrapper.teacher.calls[-1][1], "the teacher's forward ran with autograd on: wrap it in torch.no_grad()")
    expect(wrapper.student.calls[-1] == (10, True), "the student must see every view, with autograd on")
    expect(student_out.requires_grad and not teacher_out.requires_grad, "student output needs a graph, teacher output must not have one")
    expect_close(student_out, wrapper.student.linear(torch.cat(views).flatten(1)), "student output should be the student's output on all views, crop-major")
    expect_close(teacher_out, wrapper.teacher.linear(torch.cat(views[:2]).flatten(1)), "teacher output should be the teacher's output on the global views, crop-major")


@exercise("StudentTeacherWrapper.forward")
def test_wrapper_backward_reaches_student_only():
    torch.manual_seed(13)
    wrapper = st.StudentTeacherWrapper(ref.PerViewNetwork(nn.Flatten(), nn.Linear(48, 5)), epochs=1, steps_per_epoch=2)
    student_out, teacher_out = wrapper(make_views(batch=3, n_local=2))
    (student_out[:6] * teacher_out).sum().backward()
    expect(all(p.grad is not None for p in wrapper.student.parameters()), "the student received no gradients")
    expect(all(p.grad is None for p in wrapper.teacher.parameters()), "teacher parameters accumulated gradients")


@exercise("StudentTeacherWrapper.forward")
def test_wrapper_rejects_bad_views():
    wrapper = st.StudentTeacherWrapper(GradModeProbe(), epochs=1, steps_per_epoch=1)
    wrapper(make_views(n_local=0))
    with pytest.raises((TypeError, ValueError)):
        wrapper(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError):
        wrapper(make_views(n_local=0)[:1])


@exercise("StudentTeacherWrapper.update_teacher")
@pytest.mark.parametrize("step", [0, 3, 5])
def test_update_teacher_uses_the_scheduled_momentum(step):
    torch.manual_seed(14)
    wrapper = st.StudentTeacherWrapper(make_mlp(14), epochs=2, steps_per_epoch=3, momentum_end=1.0)
    with torch.no_grad():
        for p in wrapper.student.parameters():
            p.add_(torch.randn_like(p))
    expected = copy.deepcopy(wrapper.teacher)
    tau = float(ref.momentum_schedule(2, 3, 0.996, 1.0)[step])
    ref.ema_update(expected, wrapper.student, tau)
    used = wrapper.update_teacher(step)
    expect(isinstance(used, float) and abs(used - tau) < 1e-12, f"update_teacher({step}) should return the momentum it used, {tau!r}")
    for (name, got), want in zip(wrapper.teacher.named_parameters(), expected.parameters()):
        expect_close(got, want, f"after update_teacher({step}) teacher {name!r} is wrong: use τ = momentum_schedule[step]", **EMA_TOL)


@exercise("StudentTeacherWrapper.update_teacher")
def test_update_teacher_rejects_bad_steps():
    wrapper = st.StudentTeacherWrapper(make_mlp(15), epochs=1, steps_per_epoch=4)
    wrapper.update_teacher(3)
    for bad in (-1, 4):
        with pytest.raises(ValueError, match="step"):
            wrapper.update_teacher(bad)


@exercise("StudentTeacherWrapper.update_teacher")
def test_one_training_step_matches_reference():
    """Student and teacher after forward, backward, optimiser step and EMA, learner vs reference."""

    def run(module):
        torch.manual_seed(16)
        network = ref.PerViewNetwork(VisionTransformer(ViTConfig(img_size=8, patch_size=4, embed_dim=16, depth=1, num_heads=2)), nn.Linear(16, 7))
        wrapper = module.StudentTeacherWrapper(network, epochs=1, steps_per_epoch=2, momentum_start=0.9, momentum_end=0.95)
        optimizer = torch.optim.AdamW(wrapper.student.parameters(), lr=1e-2)
        views = [torch.randn(2, 3, 8, 8) for _ in range(2)] + [torch.randn(2, 3, 4, 4) for _ in range(2)]
        for step in range(2):
            student_out, teacher_out = wrapper(views)
            targets = teacher_out.softmax(-1)
            loss = -(targets.repeat(2, 1) * student_out.log_softmax(-1)).sum(-1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            wrapper.update_teacher(step)
        return wrapper

    got, want = run(st), run(ref)
    for (name, g), w in zip(got.state_dict().items(), want.state_dict().values()):
        expect_close(g, w, f"after two training steps {name!r} differs from the reference", rtol=1e-5, atol=1e-6)


@exercise("StudentTeacherWrapper.update_teacher")
def test_wrapper_state_dict_round_trips():
    torch.manual_seed(17)
    wrapper = st.StudentTeacherWrapper(make_mlp(17), epochs=1, steps_per_epoch=3, momentum_end=1.0)
    with torch.no_grad():
        for p in wrapper.student.parameters():
            p.mul_(1.5)
    wrapper.update_teacher(1)
    restored = st.StudentTeacherWrapper(make_mlp(99), epochs=1, steps_per_epoch=3)
    restored.load_state_dict(wrapper.state_dict())
    for (name, a), b in zip(wrapper.state_dict().items(), restored.state_dict().values()):
        expect(torch.equal(a, b), f"{name!r} did not round-trip through state_dict/load_state_dict")
    expect(all(not p.requires_grad for p in restored.teacher.parameters()), "a restored teacher must still be frozen")
