"""Every hyper-parameter has one owner, and the public classes train with their defaults.

Each default is defined once, in the lesson that teaches it (momentum in `student_teacher.py`,
temperatures in `temperature.py`, ...); every class, config and job imports it. These checks build the
public classes with nothing but their defaults and run `train_step` with the reference code, so a
second, disagreeing default (as the teacher momentum once had: the wrapper's 0.996 → 0.999 against
the training schedules' 0.996 → 1, which stopped the first default run at iteration 1) cannot come back
unnoticed.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys

import pytest
import torch
from torch import nn

pytestmark = pytest.mark.maintainer

# The paper's warm-up of the learning rate is 10 epochs and `cosine_schedule` refuses a warm-up longer
# than training, so the shortest run with default schedules has 10 epochs; 1 iteration each keeps it small.
EPOCHS, STEPS_PER_EPOCH, BATCH = 10, 1, 2


def tiny_backbone() -> nn.Module:
    from dino_course.networks.vit import ViTConfig, VisionTransformer

    return VisionTransformer(ViTConfig(img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2))


def views(generator: torch.Generator) -> list[torch.Tensor]:
    """2 global views of 16 px, 2 local views of 8 px."""
    return [torch.randn(BATCH, 3, 16, 16, generator=generator) for _ in range(2)] + [
        torch.randn(BATCH, 3, 8, 8, generator=generator) for _ in range(2)
    ]


def default_model(kind: str):
    """A student-teacher model whose every setting but the backbone is its class's default (the paper's head)."""
    from dino_course.heads import DINOProjectionHead
    from dino_course.model import CompleteDINOModel
    from dino_course.student_teacher import PerViewNetwork, StudentTeacherWrapper

    backbone = tiny_backbone()
    head = DINOProjectionHead(backbone.embed_dim)
    if kind == "StudentTeacherWrapper":
        return StudentTeacherWrapper(PerViewNetwork(backbone, head), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH)
    return CompleteDINOModel(backbone, head, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH)


@pytest.mark.parametrize("kind", ["StudentTeacherWrapper", "CompleteDINOModel"])
def test_the_public_classes_train_with_their_defaults(kind, reference_on):
    from dino_course.heads import OUTPUT_DIM
    from dino_course.loss import DINOLoss
    from dino_course.student_teacher import momentum_schedule
    from dino_course.training import TrainingSchedules, parameter_groups, train_step

    torch.manual_seed(0)
    model = default_model(kind)
    criterion = DINOLoss(OUTPUT_DIM, epochs=EPOCHS)
    optimizer = torch.optim.AdamW(parameter_groups(model.student))
    schedules = TrainingSchedules.create(EPOCHS, STEPS_PER_EPOCH, BATCH)
    generator = torch.Generator().manual_seed(0)
    want_momentum = momentum_schedule(EPOCHS, STEPS_PER_EPOCH)  # the one default schedule: 0.996 → 1
    # iterations 0-2: the last-layer freeze (epoch 0), the iteration that used to raise (1), a step after it
    for it in range(3):
        metrics = train_step(model, criterion, optimizer, views(generator), it, it // STEPS_PER_EPOCH, schedules)
        assert math.isfinite(metrics["loss"]), f"iteration {it}: loss {metrics['loss']}"
        assert metrics["momentum"] == float(want_momentum[it]), (
            f"iteration {it}: the EMA used τ = {metrics['momentum']}, the default schedule says "
            f"{float(want_momentum[it])}"
        )
        assert metrics["lr"] == float(schedules.lr[it]) and metrics["weight_decay"] == float(schedules.weight_decay[it])


def test_the_training_schedules_hold_no_teacher_momentum(reference_on):
    """The teacher momentum's one owner is the model (Lesson 3.1); Lesson 4.4 schedules only the optimiser."""
    from dino_course.training import TrainingSchedules

    assert [field.name for field in dataclasses.fields(TrainingSchedules)] == ["lr", "weight_decay", "niter_per_ep"]
    assert not any("momentum" in name for name in inspect.signature(TrainingSchedules.create).parameters)


def defaults(function) -> dict:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def test_every_default_is_the_owning_lessons_constant(reference_on):
    """Classes, configs and jobs take their defaults from the lessons' constants, under the same names."""
    from dino_course import centering, diagnostics, evaluation, heads, loss, model, student_teacher, temperature, training
    from dino_course.job.demo import DemoConfig
    from dino_course.job.train import PRESETS, TrainConfig

    owners = {
        "momentum_teacher": student_teacher.MOMENTUM_TEACHER,
        "momentum_teacher_end": student_teacher.MOMENTUM_TEACHER_END,
        "warmup_teacher_temp": temperature.WARMUP_TEACHER_TEMP,
        "teacher_temp": temperature.TEACHER_TEMP,
        "warmup_teacher_temp_epochs": temperature.WARMUP_TEACHER_TEMP_EPOCHS,
        "student_temp": temperature.STUDENT_TEMP,
        "center_momentum": centering.CENTER_MOMENTUM,
        "base_lr": training.BASE_LR,
        "min_lr": training.MIN_LR,
        "warmup_epochs": training.WARMUP_EPOCHS,
        "weight_decay": training.WEIGHT_DECAY,
        "weight_decay_end": training.WEIGHT_DECAY_END,
        "clip_grad": training.CLIP_GRAD,
        "freeze_last_layer": training.FREEZE_LAST_LAYER,
        "output_dim": heads.OUTPUT_DIM,
        "hidden_dim": heads.HIDDEN_DIM,
        "bottleneck_dim": heads.BOTTLENECK_DIM,
        "norm_last_layer": heads.NORM_LAST_LAYER,
        "use_bn_in_head": heads.USE_BN_IN_HEAD,
        "knn_k": evaluation.KNN_K,
        "knn_temperature": evaluation.KNN_TEMPERATURE,
    }
    config = TrainConfig()
    assert config == PRESETS["paper"]
    for name, value in owners.items():
        assert getattr(config, name) == value, f"TrainConfig.{name} = {getattr(config, name)}, its lesson says {value}"
    signatures = {
        "StudentTeacherWrapper": defaults(student_teacher.StudentTeacherWrapper.__init__),
        "momentum_schedule": defaults(student_teacher.momentum_schedule),
        "CompleteDINOModel": defaults(model.CompleteDINOModel.__init__),
        "DINOLoss": defaults(loss.DINOLoss.__init__),
        "TrainingSchedules.create": defaults(training.TrainingSchedules.create),
        "train_step": defaults(training.train_step),
        "update_center": {"center_momentum": defaults(centering.update_center)["momentum"]},
        "DINOProjectionHead": {
            "use_bn_in_head" if name == "use_bn" else name: value
            for name, value in defaults(heads.DINOProjectionHead.__init__).items()
        },
    }
    for owner, found in signatures.items():
        for name, value in found.items():
            if name in owners:
                assert value == owners[name], f"{owner}'s default {name} = {value}, its lesson says {owners[name]}"
    # Lesson 3.4 repeats τ_s (a lesson file imports only earlier lessons): it must be 4.2's value
    assert diagnostics.STUDENT_TEMP == temperature.STUDENT_TEMP
    assert defaults(diagnostics.prediction_entropies)["temperature"] == temperature.STUDENT_TEMP
    # the demo departs where it says so; everything else is the lessons' value
    demo = DemoConfig()
    for name in ("momentum_teacher_end", "student_temp", "center_momentum", "clip_grad", "freeze_last_layer",
                 "norm_last_layer"):
        assert getattr(demo, name) == owners[name], f"DemoConfig.{name} = {getattr(demo, name)}, not its lesson's"


def test_the_cli_survives_a_lesson_file_that_does_not_import(monkeypatch, capsys):
    """The job reads its defaults from the lesson files; one that fails to import stops `train` only."""
    from dino_course import cli

    monkeypatch.setitem(sys.modules, "dino_course.job.train", None)  # any import of it now raises ImportError
    parser = cli.build_parser()
    assert parser.parse_args(["check", "3.1"]).command == "check"
    args = parser.parse_args(["train", "--preset", "cpu-digits", "--help"])
    assert args.run(args) == 2
    assert "dino-course train cannot start" in capsys.readouterr().err
