"""Public checks of Lesson 3.1 (`dino_course/student_teacher.py`): no reference solution needed.

They run the docstring examples and check properties every correct implementation has. Passing
them does not mean the hidden checks pass: those also compare values with the reference.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from dino_course.instructor.public_checks import CourseModule, run_documented_examples

LESSON = "3.1"
st = CourseModule("student_teacher")
EXERCISES = [
    "build_teacher", "sync_teacher", "ema_update", "cosine_schedule", "parameter_divergence",
    "StudentTeacherWrapper.forward", "StudentTeacherWrapper.update_teacher",
]


exercise = functools.partial(pytest.mark.exercise, LESSON)  # @exercise("name"): a check of that exercise of the lesson


@pytest.mark.parametrize("name", [pytest.param(n, marks=exercise(n), id=n) for n in EXERCISES])
def test_documented_example(name):
    run_documented_examples(st, f"{LESSON}/{name}")


def small_network(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


@exercise("build_teacher")
def test_teacher_is_an_independent_frozen_copy():
    student = small_network().eval()
    teacher = st.build_teacher(student)
    assert isinstance(teacher, nn.Module), "build_teacher must return an nn.Module"
    assert teacher is not student, "build_teacher returned the student itself: make a copy (copy.deepcopy)"
    for (name, t), s in zip(teacher.state_dict().items(), student.state_dict().values()):
        assert torch.equal(t, s), f"teacher's {name} differs from the student's at the start"
        assert t.data_ptr() != s.data_ptr(), f"teacher's {name} shares memory with the student's: copy it"
    assert not any(p.requires_grad for p in teacher.parameters()), "every teacher parameter needs requires_grad=False"
    assert all(p.requires_grad for p in student.parameters()), "the student must keep requires_grad=True"
    assert teacher.training == student.training, "the teacher must be in the student's train/eval mode"


@exercise("sync_teacher")
def test_sync_copies_in_place():
    student, teacher = small_network(0), small_network(1).requires_grad_(False)
    tensors = [t for t in teacher.state_dict().values()]
    st.sync_teacher(teacher, student)
    for (name, t), s, before in zip(teacher.state_dict().items(), student.state_dict().values(), tensors):
        assert torch.equal(t, s), f"after sync_teacher the teacher's {name} differs from the student's"
        assert t.data_ptr() == before.data_ptr(), f"sync_teacher replaced the teacher's {name}: copy into it in place"
    assert not any(p.requires_grad for p in teacher.parameters()), "sync_teacher made the teacher require gradients"


@exercise("ema_update")
@pytest.mark.parametrize("momentum", [0.0, 0.5, 1.0])
def test_ema_is_a_weighted_average(momentum):
    student, teacher = small_network(0), small_network(1).requires_grad_(False)
    before = {n: p.detach().clone() for n, p in teacher.named_parameters()}
    student_before = {n: p.detach().clone() for n, p in student.named_parameters()}
    st.ema_update(teacher, student, momentum)
    for name, parameter in teacher.named_parameters():
        expected = momentum * before[name] + (1 - momentum) * student_before[name]
        hint = f"teacher {name} is not τ·θ_t + (1 − τ)·θ_s at τ = {momentum}"
        torch.testing.assert_close(parameter.detach(), expected, msg=hint)
        assert not parameter.requires_grad, "after ema_update the teacher requires gradients"
    for name, parameter in student.named_parameters():
        assert torch.equal(parameter.detach(), student_before[name]), "ema_update changed the student"


@exercise("cosine_schedule")
def test_schedule_shape_ends_and_monotony():
    schedule = st.cosine_schedule(0.5, 0.1, epochs=3, niter_per_ep=4, warmup_epochs=1, start_warmup_value=0.0)
    assert isinstance(schedule, torch.Tensor) and schedule.dtype == torch.float64, "return a float64 tensor"
    assert schedule.shape == (12,), f"expected one value per iteration, shape (12,), got {tuple(schedule.shape)}"
    assert float(schedule[0]) == 0.0 and abs(float(schedule[3]) - 0.5) < 1e-12, (
        "warm-up must go from start to base, ends included"
    )
    after = schedule[4:]
    assert abs(float(after[0]) - 0.5) < 1e-12, "the cosine part starts at base_value"
    assert bool((after[1:] <= after[:-1] + 1e-15).all()), "from base 0.5 to final 0.1 the cosine must not increase"
    assert float(after[-1]) > 0.1, "the last value approaches final_value without reaching it"


@exercise("parameter_divergence")
def test_divergence_names_and_values():
    student = small_network(0)
    teacher = small_network(0)
    result = st.parameter_divergence(student, teacher)
    assert isinstance(result, dict), "return a dict {parameter name: float}"
    assert list(result) == [n for n, _ in student.named_parameters()], "keys: the student's parameter names, in order"
    assert all(type(v) is float for v in result.values()), "values must be Python floats"
    assert all(v == 0.0 for v in result.values()), "identical networks must give 0 everywhere"
    with torch.no_grad():
        for p in teacher.parameters():
            p.zero_()
    ones = st.parameter_divergence(student, teacher)
    nonzero = [n for n, p in student.named_parameters() if bool(p.detach().abs().sum() > 0)]
    assert all(abs(ones[n] - 1.0) < 1e-6 for n in nonzero), "a zero teacher is at relative distance 1 from the student"


@exercise("StudentTeacherWrapper.forward")
def test_forward_shapes_and_gradients():
    torch.manual_seed(0)
    wrapper = st.StudentTeacherWrapper(st.PerViewNetwork(nn.Flatten(), nn.Linear(4, 3)), epochs=1, steps_per_epoch=1)
    views = [torch.randn(2, 1, 2, 2) for _ in range(4)]
    student_out, teacher_out = wrapper(views)
    assert student_out.shape == (8, 3), f"student output: expected (V * B, K) = (8, 3), got {tuple(student_out.shape)}"
    assert teacher_out.shape == (4, 3), (
        f"teacher output: global views only, expected (4, 3), got {tuple(teacher_out.shape)}"
    )
    assert student_out.requires_grad and not teacher_out.requires_grad, (
        "the teacher runs under torch.no_grad(), the student does not"
    )
    # at the start the teacher is a copy of the student, so it answers the same on the global views
    torch.testing.assert_close(teacher_out, student_out[:4].detach())


@exercise("StudentTeacherWrapper.update_teacher")
def test_update_teacher_uses_the_schedule():
    torch.manual_seed(0)
    wrapper = st.StudentTeacherWrapper(nn.Linear(3, 2), epochs=2, steps_per_epoch=3)
    with torch.no_grad():
        wrapper.student.weight.add_(1.0)
    teacher_before = wrapper.teacher.weight.detach().clone()
    student_weight = wrapper.student.weight.detach().clone()
    momentum = wrapper.update_teacher(4)
    assert type(momentum) is float, "return the momentum as a Python float"
    assert abs(momentum - float(wrapper.momentum_schedule[4])) < 1e-12, "use momentum_schedule[step]"
    expected = momentum * teacher_before + (1 - momentum) * student_weight
    torch.testing.assert_close(wrapper.teacher.weight.detach(), expected)
