"""Lesson 4.2: temperature sharpening, and why it must balance centering.

Both networks turn their K logits into a probability distribution with a softmax at a
temperature τ:

    P(x)^(k) = exp(g(x)^(k) / τ) / Σ_k' exp(g(x)^(k') / τ)        (Caron et al. 2021, Eq. 1)

A small τ *sharpens* the distribution (τ → 0 gives a one-hot on the largest logit), a large
τ flattens it (τ → ∞ gives the uniform distribution). DINO uses a low temperature for the
teacher, τ_t = 0.04 → 0.07, and a higher one for the student, τ_s = 0.1: the student learns
to match confident teacher targets.

Centering and sharpening pull in opposite directions:
  - centering alone makes every teacher output close to uniform (entropy log K): collapse;
  - sharpening alone lets one dimension win for every image (entropy 0): collapse;
  - together the teacher's outputs stay confident per image but different across images.

The teacher temperature warms up linearly from 0.04 to its final value over the first
epochs; the schedule is indexed by *epoch*, as in the original (not by iteration).

Two sources, two recipes. The paper trains with τ_t warmed up from 0.04 to 0.07 over the first
30 epochs (Section 3.2), and reports that without a warm-up a τ_t above 0.06 collapses to the
uniform output (the loss sits at log K; appendix, teacher temperature). The original code's
defaults are 0.04 throughout (`--teacher_temp 0.04`, `--warmup_teacher_temp_epochs 0`, although
that option's help text says "Default: 30"); its help text calls anything above 0.07 unstable,
recommends starting at 0.04, and its README lists 0.07 with a 30-epoch warm-up as the setting that
improves on that default run. The course's defaults below are the paper's; a run that cannot
afford a 30-epoch warm-up names 0.04 throughout as its departure (the main job's presets do).

Exercises: sharpen, entropy, teacher_temperature_schedule
"""

from __future__ import annotations

import torch

from dino_course.grading import ExerciseNotStarted  # noqa: F401  (the generated stubs raise it)

LESSON = "4.2"
LESSON_TITLE = "Temperature sharpening"
LESSON_NOTEBOOK = "lessons/module4/4.2_temperature.ipynb"

# The temperatures of the course: every class and job takes its defaults from here.
# τ_s, the student's temperature (paper, Section 3.2; the original's default): higher than the teacher's,
# so the student is asked to match confident targets.
STUDENT_TEMP = 0.1
# τ_t at epoch 0 (paper; the original's --warmup_teacher_temp default, whose help text says 0.04 works
# in most cases and to try a lower value if the training loss does not decrease).
WARMUP_TEACHER_TEMP = 0.04
# τ_t after the warm-up (paper, Section 3.2). The original's help text: anything above 0.07 is unstable
# for most experiments. Its own default is 0.04 (no warm-up needed), the safer start for a new setting.
TEACHER_TEMP = 0.07
# Epochs of linear warm-up from WARMUP_TEACHER_TEMP to TEACHER_TEMP (paper, Section 3.2): above 0.06 the
# teacher needs it, or training collapses to the uniform output (paper, appendix).
WARMUP_TEACHER_TEMP_EPOCHS = 30


def _check_positive(name: str, value) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def sharpen(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Exercise 4.2 · softmax at a temperature: P^(k) = exp(g^(k)/τ) / Σ_k' exp(g^(k')/τ), over the last dim.

    Must be numerically stable: logits of size 1000 at τ = 0.04 (exponents of 25 000) give
    finite probabilities. Subtract the row maximum before exponentiating, or use
    `torch.softmax`, which does.

    Args:
        logits: `(..., K)`, e.g. `(2B, K)` teacher logits (after centering).
        temperature: τ > 0.

    Returns:
        Probabilities of the same shape, each row summing to 1, computed in float32 or wider.

    Raises:
        ValueError: a non-positive temperature.

    Example:
        >>> sharpen(torch.tensor([[1.0, 0.0]]), temperature=1.0)
        tensor([[0.7311, 0.2689]])
        >>> sharpen(torch.tensor([[1.0, 0.0]]), temperature=0.1)
        tensor([[9.9995e-01, 4.5398e-05]])
    """
    temperature = _check_positive("temperature", temperature)
    # BEGIN SOLUTION
    return torch.softmax(logits.float() / temperature, dim=-1)
    # END SOLUTION


def entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Exercise 4.2 · Shannon entropy in nats of each distribution: H(P) = −Σ_k P^(k) log P^(k).

    Takes the convention 0 · log 0 = 0, so a one-hot row has entropy exactly 0 (not NaN).
    H ranges from 0 (one-hot: one dimension dominates) to log K (uniform).

    Args:
        probabilities: `(..., K)`, non-negative rows summing to 1.

    Returns:
        `(...)`, one entropy per row.

    Example:
        >>> entropy(torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
        tensor([0.6931, 0.0000])
    """
    # BEGIN SOLUTION
    # entr(p) = −p·log p, defined as 0 at p = 0 (a plain p·log p would give 0·(−inf) = NaN there)
    return torch.special.entr(probabilities).sum(dim=-1)
    # END SOLUTION


def teacher_temperature_schedule(
    warmup_teacher_temp: float = WARMUP_TEACHER_TEMP,
    teacher_temp: float = TEACHER_TEMP,
    warmup_epochs: int = WARMUP_TEACHER_TEMP_EPOCHS,
    epochs: int = 100,
) -> torch.Tensor:
    """Exercise 4.2 · the teacher temperature τ_t of every epoch: linear warm-up, then constant.

    The first `warmup_epochs` values go linearly from `warmup_teacher_temp` to `teacher_temp`,
    both ends included (τ_i = a + (b − a)·i/(W − 1)); every later epoch uses `teacher_temp`.
    One value per *epoch* (the original indexes it by epoch, not by iteration). Work in float64.

    Args:
        warmup_teacher_temp: a, τ_t at epoch 0 (0.04 in the paper).
        teacher_temp: b, τ_t after warm-up (0.04–0.07 in the paper).
        warmup_epochs: W, 0 ≤ W ≤ epochs (30 in the paper).
        epochs: length of training, > 0.

    Returns:
        float64 tensor `(epochs,)`.

    Raises:
        ValueError: non-positive temperatures or epochs, or a warm-up longer than training.

    Example:
        >>> teacher_temperature_schedule(0.04, 0.07, warmup_epochs=3, epochs=5)
        tensor([0.0400, 0.0550, 0.0700, 0.0700, 0.0700], dtype=torch.float64)
    """
    _check_positive("warmup_teacher_temp", warmup_teacher_temp)
    _check_positive("teacher_temp", teacher_temp)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"warmup_epochs must be an int in [0, epochs={epochs}], got {warmup_epochs!r}")
    # BEGIN SOLUTION
    warmup = torch.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs, dtype=torch.float64)
    constant = torch.full((epochs - warmup_epochs,), teacher_temp, dtype=torch.float64)
    return torch.cat([warmup, constant])
    # END SOLUTION
