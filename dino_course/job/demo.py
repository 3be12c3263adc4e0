"""Given: a short, real DINO run for Lesson 4.4 on tiny random-crop data (seconds on a CPU).

Not the course's main training job (that is `dino-course train`): this runs a few dozen
iterations of *your* `train_step` (and loss, schedules, model) on scikit-learn's handwritten
digits, which ship with scikit-learn (no download), so the lesson can show the loss falling and
the teacher's outputs staying away from both collapses. The views are the train job's: Lesson
3.2's multi-crop data path (`dino_course.data.multicrop_pipeline`, your `sample_crop_box` and
`collate_multicrop`) with the job's augmentations (`dino_course.job.train.TRAIN_AUGMENTATIONS`:
no flips, blur or grey for digits) and the digits' normalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# The hyper-parameters' defaults, each from the lesson that teaches it (see `DemoConfig`).
from dino_course.centering import CENTER_MOMENTUM
from dino_course.data.datasets import DIGITS_MEAN, DIGITS_STD, load_digits
from dino_course.data.multicrop_pipeline import MultiCropAugmentation
from dino_course.heads import NORM_LAST_LAYER
from dino_course.job.settings import SettingError, check_settings
from dino_course.student_teacher import MOMENTUM_TEACHER_END
from dino_course.temperature import STUDENT_TEMP
from dino_course.training import CLIP_GRAD, FREEZE_LAST_LAYER


@dataclass(frozen=True)
class DemoConfig:
    """A run of ~20 s on 2 CPU cores. Every value that is not the paper's says so, and why; the
    paper's values are the lessons' constants (imported), never written here a second time."""

    steps: int = 60  # course choice: a few dozen iterations
    steps_per_epoch: int = 10  # course choice: short "epochs" so the warm-up and the last-layer freeze show
    batch_size: int = 64  # paper: 1024
    global_size: int = 16  # paper: 224 px (the digits are 8 px originals)
    local_size: int = 8  # paper: 96 px
    n_local: int = 2  # paper: 8
    global_scale: tuple[float, float] = (0.4, 1.0)  # paper
    local_scale: tuple[float, float] = (0.05, 0.4)  # paper
    flip_p: float = 0.0  # paper: 0.5; a mirrored 2, 3, 7 or 9 is not a digit (as in the train job)
    patch_size: int = 4  # paper: 16 px
    embed_dim: int = 32  # D; ViT-S: 384
    depth: int = 2  # ViT-S: 12
    num_heads: int = 2  # ViT-S: 6
    output_dim: int = 64  # K; paper: 65536
    hidden_dim: int = 64  # paper: 2048
    bottleneck_dim: int = 16  # paper: 256
    # The original's `use_bn_in_head` option (its ResNet recipe; ViTs use False). Without it, this tiny ViT at
    # random initialisation gives nearly the same output for every image, the center removes it, and within
    # ~20 iterations the teacher is uniform for every image (uniform collapse): the lesson shows both runs.
    use_bn_in_head: bool = True
    norm_last_layer: bool = NORM_LAST_LAYER
    base_lr: float = 2e-3  # course choice (paper 5e-4): peak lr 2e-3 * 64/256 = 5e-4, enough to move in 60 steps
    warmup_epochs: int = 1  # paper: 10 (of 100+)
    # τ_t 0.04 throughout, the original code's default: the paper's warm-up to 0.07 takes 30 epochs, and this
    # run has 6 (`temperature.py`)
    teacher_temp: float = 0.04
    student_temp: float = STUDENT_TEMP
    center_momentum: float = CENTER_MOMENTUM
    clip_grad: float = CLIP_GRAD
    freeze_last_layer: int = FREEZE_LAST_LAYER
    # course choice (paper 0.996): the teacher must follow within 60 steps; at 0.996 it remembers ~250
    momentum_teacher: float = 0.99
    momentum_teacher_end: float = MOMENTUM_TEACHER_END
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse a setting the demo cannot use, naming it (the train job's rules for the shared names)."""
        for name in ("steps", "steps_per_epoch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingError(name, value, "a positive integer")
        check_settings(self)


def teacher_entropies(teacher_output: torch.Tensor, center: torch.Tensor, teacher_temp: float) -> tuple[float, float]:
    """(mean entropy of the teacher's per-image distributions, entropy of their batch mean), in nats.

    Low / high is healthy; both near 0 is the one-hot collapse; the first near log K is the uniform one.
    Computed with your Lesson 4.2 `sharpen` and `entropy` (or the reference where 4.2 is switched on).
    """
    from dino_course import temperature  # at call time: the reference switch and your latest edits apply

    probs = temperature.sharpen(teacher_output.float() - center, teacher_temp)  # (n_global * B, K)
    return float(temperature.entropy(probs).mean()), float(temperature.entropy(probs.mean(0)))


def build_demo_augmentation(config: DemoConfig) -> MultiCropAugmentation:
    """The demo's multi-crop views: the train job's recipe at the demo's sizes."""
    from dino_course.job.train import TRAIN_AUGMENTATIONS

    return MultiCropAugmentation(
        global_size=config.global_size, local_size=config.local_size, n_local_crops=config.n_local,
        global_scale=config.global_scale, local_scale=config.local_scale, augmentations=TRAIN_AUGMENTATIONS,
        flip_p=config.flip_p, mean=DIGITS_MEAN, std=DIGITS_STD,
    )


def run_demo_training(config: DemoConfig = DemoConfig(), images: torch.Tensor | None = None, progress=None) -> list[dict]:
    """Train a tiny DINO for `config.steps` iterations with the course's exercises; one metrics dict per step.

    `images`: uint8 `(N, 3, global_size, global_size)`; default: the digits' training split
    (`dino_course.data.datasets.load_digits`).

    Uses (learner's or reference, by the switch) `dino_course.heads.DINOProjectionHead`,
    `dino_course.model.CompleteDINOModel`, `dino_course.loss.DINOLoss`,
    `dino_course.training.parameter_groups`, `TrainingSchedules.create`, `train_step`, Lesson 3.2's
    `sample_crop_box` and `collate_multicrop` (through the multi-crop pipeline) and Lesson 4.2's
    `sharpen` and `entropy` (`teacher_entropies`). Deterministic for a given seed.
    """
    from dino_course.heads import DINOProjectionHead
    from dino_course.loss import DINOLoss
    from dino_course.model import CompleteDINOModel
    from dino_course.networks.vit import ViTConfig, VisionTransformer
    from dino_course.training import TrainingSchedules, parameter_groups, train_step

    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    images = load_digits(config.global_size).train_images if images is None else images
    augment = build_demo_augmentation(config)
    epochs = math.ceil(config.steps / config.steps_per_epoch)
    backbone = VisionTransformer(ViTConfig(img_size=config.global_size, patch_size=config.patch_size,
                                           embed_dim=config.embed_dim, depth=config.depth, num_heads=config.num_heads))
    head = DINOProjectionHead(config.embed_dim, output_dim=config.output_dim, hidden_dim=config.hidden_dim,
                              bottleneck_dim=config.bottleneck_dim, use_bn=config.use_bn_in_head,
                              norm_last_layer=config.norm_last_layer)
    # the model owns the teacher-momentum schedule; train_step applies it through model.update_teacher(it)
    model = CompleteDINOModel(backbone, head, epochs=epochs, steps_per_epoch=config.steps_per_epoch,
                              momentum_teacher=config.momentum_teacher,
                              momentum_teacher_end=config.momentum_teacher_end)
    criterion = DINOLoss(
        config.output_dim, epochs=epochs, warmup_teacher_temp=config.teacher_temp, teacher_temp=config.teacher_temp,
        warmup_teacher_temp_epochs=0, student_temp=config.student_temp, center_momentum=config.center_momentum,
    )
    optimizer = torch.optim.AdamW(parameter_groups(model.student))
    schedules = TrainingSchedules.create(
        epochs, config.steps_per_epoch, config.batch_size, base_lr=config.base_lr,
        warmup_epochs=min(config.warmup_epochs, epochs),
    )
    history = []
    for it in range(config.steps):
        batch = images[torch.randint(0, len(images), (config.batch_size,), generator=generator)]
        views = augment.views_of_batch(batch, generator)
        center_before = criterion.center.clone()
        metrics = train_step(
            model, criterion, optimizer, views, it, it // config.steps_per_epoch, schedules,
            clip_grad=config.clip_grad, freeze_last_layer=config.freeze_last_layer,
        )
        with torch.no_grad():
            teacher_output = model.teacher(views[:2])
        per_image, of_mean = teacher_entropies(teacher_output, center_before, config.teacher_temp)
        history.append({"it": it, "loss": metrics["loss"], "lr": metrics["lr"], "entropy_per_image": per_image, "entropy_of_mean": of_mean})
        if progress is not None:
            progress(history[-1])
    return history
