"""Public checks of Lesson 4.4 (`dino_course/training.py`): no reference solution needed.

They run the docstring examples and check properties every correct implementation has. Passing
them does not mean the hidden checks pass: those also compare values with the reference.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from dino_course.instructor.public_checks import CourseModule, run_documented_examples

LESSON = "4.4"
tr = CourseModule("training")
EXAMPLES = [
    "parameter_groups", "clip_gradients", "gradient_norms_by_layer", "TrainingSchedules.create", "apply_schedules",
]


exercise = functools.partial(pytest.mark.exercise, LESSON)  # @exercise("name"): a check of that exercise of the lesson


@pytest.mark.parametrize("name", [pytest.param(n, marks=exercise(n), id=n) for n in EXAMPLES])
def test_documented_example(name):
    run_documented_examples(tr, f"{LESSON}/{name}")


def network() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 2, bias=False))
    model.register_parameter("token", nn.Parameter(torch.zeros(1, 1, 3)))
    return model


@exercise("parameter_groups")
def test_every_trainable_parameter_in_exactly_one_group():
    model = network()
    model[2].weight.requires_grad_(False)
    decayed, plain = tr.parameter_groups(model)
    assert decayed["param_names"] == ["token", "0.weight"], (
        f"decayed group: matrices and >1-D tensors, got {decayed['param_names']}"
    )
    assert plain["param_names"] == ["0.bias", "1.weight", "1.bias"], (
        f"non-decayed: biases and 1-D, got {plain['param_names']}"
    )
    assert plain["weight_decay"] == 0.0
    named = dict(model.named_parameters())
    for group in (decayed, plain):
        assert [id(p) for p in group["params"]] == [id(named[n]) for n in group["param_names"]], (
            "params must match param_names"
        )


@exercise("clip_gradients")
def test_each_tensor_is_clipped_on_its_own():
    model = network()
    grads = {
        "0.weight": torch.full((3, 4), 2.0), "0.bias": torch.tensor([0.1, 0.0, 0.0]), "token": torch.zeros(1, 1, 3),
    }
    for name, parameter in model.named_parameters():
        parameter.grad = grads[name].clone() if name in grads else None
    norms = tr.clip_gradients(model, clip=1.0)
    assert norms == pytest.approx([0.0, math.sqrt(48), 0.1]), (
        f"pre-clip norms of the parameters with a gradient, in order: {norms}"
    )
    assert all(type(n) is float for n in norms), "norms must be Python floats"
    clipped = float(torch.linalg.vector_norm(model[0].weight.grad))
    assert abs(clipped - 1.0) < 1e-4, f"a gradient of norm 6.9 must be scaled to norm ≈ 1, got {clipped:.4f}"
    torch.testing.assert_close(model[0].bias.grad, grads["0.bias"], msg="a gradient under the limit stays as it is")


@exercise("TrainingSchedules.create")
def test_schedule_lengths_and_landmarks():
    s = tr.TrainingSchedules.create(epochs=4, niter_per_ep=5, batch_size=512, warmup_epochs=2, base_lr=1e-3)
    for name in ("lr", "weight_decay"):
        values = getattr(s, name)
        assert isinstance(values, torch.Tensor) and values.shape == (20,) and values.dtype == torch.float64, (
            f"{name}: a float64 tensor with one value per iteration (20)"
        )
    assert float(s.lr[0]) == 0.0 and abs(float(s.lr[9]) - 2e-3) < 1e-15, (
        "lr warms up to base_lr · batch_size / 256 (2e-3)"
    )
    assert abs(float(s.weight_decay[0]) - 0.04) < 1e-15, "the weight decay starts at weight_decay (0.04)"
    assert s.niter_per_ep == 5


@exercise("apply_schedules")
def test_all_groups_get_the_lr_and_only_the_first_the_weight_decay():
    model = network()
    optimizer = torch.optim.AdamW(tr.parameter_groups(model))
    s = tr.TrainingSchedules.create(epochs=3, niter_per_ep=2, batch_size=256, warmup_epochs=1)
    result = tr.apply_schedules(optimizer, s, 3)
    assert isinstance(result, tuple) and all(type(v) is float for v in result), "return (lr, weight_decay) as floats"
    lr, wd = result
    assert lr == float(s.lr[3]) and wd == float(s.weight_decay[3])
    assert all(group["lr"] == lr for group in optimizer.param_groups), "every group gets the learning rate"
    assert optimizer.param_groups[0]["weight_decay"] == wd and optimizer.param_groups[1]["weight_decay"] == 0.0


class TinyStudentTeacher(nn.Module):
    """Stands in for a student-teacher wrapper: `model(views)`, `.student`, `.update_teacher(it)`."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.student = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
        self.teacher_updates: list[int] = []

    def forward(self, views):
        out = self.student(torch.cat(views))
        return out, out[: 2 * views[0].shape[0]].detach()

    def update_teacher(self, it: int) -> float:
        self.teacher_updates.append(it)
        return 0.9


class SquaredError(nn.Module):
    def forward(self, student_output, teacher_output, epoch):
        return (student_output[: len(teacher_output)] - teacher_output - 1).pow(2).mean() * self.scale

    scale = 1.0


@exercise("train_step")
def test_one_step_updates_the_student_and_calls_the_teacher_once():
    model, criterion = TinyStudentTeacher(), SquaredError()
    optimizer = torch.optim.AdamW(tr.parameter_groups(model.student))
    schedules = tr.TrainingSchedules.create(epochs=2, niter_per_ep=2, batch_size=256, warmup_epochs=0)
    views = [torch.randn(2, 3, 2, 2, generator=torch.Generator().manual_seed(v)) for v in range(3)]
    before = [p.detach().clone() for p in model.student.parameters()]
    stats = tr.train_step(model, criterion, optimizer, views, it=1, epoch=1, schedules=schedules, freeze_last_layer=0)
    assert isinstance(stats, dict) and {"loss", "lr", "weight_decay", "momentum", "grad_norms"} <= set(stats), (
        f"return a dict with loss, lr, weight_decay, momentum, grad_norms; got {stats!r:.120}"
    )
    assert type(stats["loss"]) is float and math.isfinite(stats["loss"]), "loss: a finite Python float"
    assert stats["lr"] == float(schedules.lr[1]), "lr of iteration `it`"
    assert stats["momentum"] == 0.9, "metrics['momentum'] is the τ that model.update_teacher(it) returned"
    assert model.teacher_updates == [1], (
        f"update_teacher(it) must be called once, after the step: calls {model.teacher_updates}"
    )
    moved = any(not torch.equal(p.detach(), b) for p, b in zip(model.student.parameters(), before))
    assert moved, "the student did not move"


@exercise("train_step")
def test_a_non_finite_loss_stops_before_the_weights_change():
    model, criterion = TinyStudentTeacher(), SquaredError()
    criterion.scale = float("nan")
    optimizer = torch.optim.AdamW(tr.parameter_groups(model.student))
    schedules = tr.TrainingSchedules.create(epochs=1, niter_per_ep=2, batch_size=256, warmup_epochs=0)
    before = [p.detach().clone() for p in model.student.parameters()]
    with pytest.raises(tr.NonFiniteLossError):
        tr.train_step(model, criterion, optimizer, [torch.randn(2, 3, 2, 2)] * 2, it=0, epoch=0, schedules=schedules)
    assert all(torch.equal(p.detach(), b) for p, b in zip(model.student.parameters(), before)), "no weight may change"
    assert model.teacher_updates == [], "the teacher must not be updated either"


@exercise("gradient_norms_by_layer")
def test_gradient_norms_group_layers_and_skip_missing_gradients():
    torch.manual_seed(0)
    model = nn.ModuleDict({"backbone": nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)), "head": nn.Linear(2, 2)})
    assert tr.gradient_norms_by_layer(model) == {}, "before backward() no parameter has a gradient: return {}"
    model["backbone"](torch.randn(5, 4)).square().sum().backward()  # the head gets no gradient
    norms = tr.gradient_norms_by_layer(model)
    assert list(norms) == ["backbone.0", "backbone.1"], "groups: the first two name components; none for the head"
    assert all(type(n) is float for n in norms.values()), "the norms are Python floats"
    first = model["backbone"][0]
    expected = math.sqrt(float(first.weight.grad.square().sum() + first.bias.grad.square().sum()))
    assert math.isclose(norms["backbone.0"], expected, rel_tol=1e-5), "a group's norm is sqrt(Σ_p ‖grad_p‖²)"
