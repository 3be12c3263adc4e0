"""Lesson 3.4: feature-quality tools: is the representation healthy or has it collapsed?

Self-distillation has a trivial solution: a network that ignores its input. DINO's paper
(§3.1, §5.3 and Fig. 7) names the two ways it fails:

  - **one dimension dominates**: every image gets (nearly) the same output, whatever it shows.
    The features stop depending on the input: their spread across images and the number of
    directions they use (effective rank) drop to zero; the *mean* prediction over a batch
    puts all its mass on a few prototypes, so its entropy is far below log K;
  - **uniform output**: every prediction is the uniform distribution over the K prototypes,
    entropy log K for every image (too much centering, not enough sharpening).

This module measures what a learner needs to tell the cases apart:

    L2-norm consistency          ‖z‖ ≈ 1 for every normalised bottleneck row
    cosine-similarity histogram  all near 1: the images are not told apart
    dimension spread             per-dimension std of the normalised features, · √D (≈ 1 isotropic, 0 collapsed)
    effective rank               exp(entropy of the normalised singular values) (Roy & Vetterli 2007)
    entropies                    H(mean prediction) and mean H(prediction), against log K

The given `feature_quality_report` (`dino_course/widgets/feature_quality.py`) combines them
into a verdict a learner can read, and `plot_feature_quality` draws them for several models.

Exercises (each marked in its docstring):
    l2_norm_consistency, pairwise_cosine_similarities, dimension_spread, effective_rank,
    prediction_entropies
"""

from __future__ import annotations

import math

import torch

from dino_course.grading import ExerciseNotStarted  # noqa: F401  (the generated stubs raise it)

LESSON = "3.4"
LESSON_TITLE = "The complete DINO model and feature-quality diagnostics"
LESSON_NOTEBOOK = "lessons/module3/3.4_complete_model.ipynb"

STUDENT_TEMP = 0.1  # τ_s, owned by Lesson 4.2 (`temperature.STUDENT_TEMP`); repeated: lesson files import only earlier lessons
NORM_TOLERANCE = 1e-3  # |‖z‖ − 1| allowed for "L2-normalised"


def _check_matrix(name: str, x, min_rows: int = 1) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] < min_rows or x.shape[1] < 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 2-D tensor (N, D) with N >= {min_rows} rows, got {shape}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def l2_norm_consistency(features: torch.Tensor, tolerance: float = NORM_TOLERANCE) -> dict[str, float | bool]:
    """Exercise 3.4 · are the rows unit vectors? Statistics of the row norms ‖z_i‖₂.

    After the head's L2 normalisation every bottleneck row should have norm 1 (the paper's
    z / ‖z‖₂); a row far from 1 means the normalisation was skipped or sits in the wrong place.

    Args:
        features: `(N, D)`.
        tolerance: the largest |‖z_i‖ − 1| still counted as normalised.

    Returns:
        `{"mean", "std", "min", "max": statistics of the N row norms (floats; std unbiased,
        0 for N = 1), "max_deviation": max_i |‖z_i‖ − 1|, "consistent": max_deviation <= tolerance}`.

    Raises:
        ValueError: `features` is not `(N, D)`.

    Example:
        >>> stats = l2_norm_consistency(torch.tensor([[3.0, 4.0], [0.6, 0.8]]))
        >>> stats["max"], stats["max_deviation"], stats["consistent"]
        (5.0, 4.0, False)
    """
    _check_matrix("features", features)
    # BEGIN SOLUTION
    norms = torch.linalg.vector_norm(features.detach().double(), dim=1)
    deviation = float((norms - 1).abs().max())
    return {
        "mean": float(norms.mean()),
        "std": float(norms.std()) if len(norms) > 1 else 0.0,
        "min": float(norms.min()),
        "max": float(norms.max()),
        "max_deviation": deviation,
        "consistent": deviation <= tolerance,
    }
    # END SOLUTION


def pairwise_cosine_similarities(features: torch.Tensor) -> torch.Tensor:
    """Exercise 3.4 · the cosine similarity of every pair of different rows (for a histogram).

        cos(z_i, z_j) = z_i · z_j / (‖z_i‖ ‖z_j‖),   i < j

    A healthy representation spreads these over a wide range (different images, different
    directions); a collapsed one piles them up near 1. Rows are normalised first (an
    all-zero row counts as similarity 0, as with `l2_normalize`'s eps), so the input need not
    be normalised. Return each unordered pair once, without the diagonal (always 1).

    Args:
        features: `(N, D)`, N ≥ 2.

    Returns:
        `(N * (N − 1) / 2,)`, the upper triangle (i < j) in row-major order, values in [−1, 1].

    Raises:
        ValueError: fewer than 2 rows, or not 2-D.

    Example:
        >>> pairwise_cosine_similarities(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]]))
        tensor([1., 0., 0.])
    """
    _check_matrix("features", features, min_rows=2)
    # BEGIN SOLUTION
    unit = features.detach() / torch.linalg.vector_norm(features.detach(), dim=1, keepdim=True).clamp_min(1e-12)
    similarity = unit @ unit.T  # (N, N)
    rows, cols = torch.triu_indices(len(unit), len(unit), offset=1)
    return similarity[rows, cols].clamp(-1.0, 1.0)
    # END SOLUTION


def dimension_spread(features: torch.Tensor) -> float:
    """Exercise 3.4 · how much the normalised features vary across images, per dimension.

    L2-normalise every row, take the standard deviation of each of the D dimensions over
    the N rows (population std, divide by N), average over the dimensions and multiply by √D:

        spread = √D · (1/D) Σ_d std_i( z_id / ‖z_i‖ )

    Unit vectors spread evenly over the sphere have per-dimension std ≈ 1/√D, so the
    spread is ≈ 1 for an isotropic representation and exactly 0 when every image gets the
    same direction (collapse): a scale-free number to compare models of any width.

    Args:
        features: `(N, D)`, N ≥ 2.

    Returns:
        The spread as a float ≥ 0.

    Example:
        >>> dimension_spread(torch.ones(5, 3))
        0.0
        >>> round(dimension_spread(torch.eye(4)), 3)
        0.866
    """
    _check_matrix("features", features, min_rows=2)
    # BEGIN SOLUTION
    unit = features.detach().double()
    unit = unit / torch.linalg.vector_norm(unit, dim=1, keepdim=True).clamp_min(1e-12)
    per_dimension = unit.std(dim=0, unbiased=False)  # (D,)
    return float(per_dimension.mean() * math.sqrt(unit.shape[1]))
    # END SOLUTION


def effective_rank(features: torch.Tensor, eps: float = 1e-12) -> float:
    """Exercise 3.4 · the number of directions the features really use (Roy & Vetterli 2007).

    Centre the features (subtract the mean row: a shared offset is not information), take
    the singular values σ_1 … σ_r of the centred `(N, D)` matrix, normalise them to a
    distribution p_k = σ_k / Σ σ, and exponentiate its entropy:

        erank = exp( − Σ_k p_k log p_k )        (terms with p_k = 0 count as 0)

    1 ≤ erank ≤ min(N, D): 1 when every row lies on one line, min(N, D) when all directions
    are used equally. If every singular value is below `eps` (all rows identical) return 0.0:
    the features carry no information at all.

    Args:
        features: `(N, D)`, N ≥ 2.
        eps: singular values summing to less than this count as none.

    Returns:
        The effective rank as a float.

    Example:
        >>> round(effective_rank(torch.eye(4)), 3)  # centred: 3 equal directions
        3.0
        >>> effective_rank(torch.ones(6, 5))
        0.0
    """
    _check_matrix("features", features, min_rows=2)
    # BEGIN SOLUTION
    centred = features.detach().double()
    centred = centred - centred.mean(dim=0, keepdim=True)
    singular_values = torch.linalg.svdvals(centred)
    total = singular_values.sum()
    if total < eps:
        return 0.0
    p = singular_values / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))
    # END SOLUTION


def prediction_entropies(logits: torch.Tensor, temperature: float = STUDENT_TEMP) -> tuple[float, float]:
    """Exercise 3.4 · entropy of the mean prediction, and mean entropy of the predictions.

    With p_i = softmax(logits_i / τ) over the K prototypes and the batch mean p̄ = (1/N) Σ_i p_i:

        H(p̄)          = − Σ_k p̄_k log p̄_k               (how many prototypes the batch uses)
        (1/N) Σ_i H(p_i)                                   (how unsure each prediction is)

    Both lie in [0, log K] (natural log). Healthy: H(p̄) high (many prototypes in use),
    mean H(p_i) lower (each image picks a few). Uniform collapse: both = log K. Collapse to
    one prototype: H(p̄) ≈ 0. Use `log_softmax` for the log-probabilities so that
    probabilities that underflow to 0 give 0 · log 0 = 0, not NaN.

    Args:
        logits: `(N, K)` head outputs.
        temperature: τ > 0 (the student's 0.1 by default).

    Returns:
        `(entropy_of_mean, mean_entropy)` as floats, in nats.

    Raises:
        ValueError: `logits` not `(N, K)`, or τ ≤ 0.

    Example:
        >>> entropy_of_mean, mean_entropy = prediction_entropies(torch.zeros(3, 4))
        >>> round(entropy_of_mean, 4), round(mean_entropy, 4), round(math.log(4), 4)
        (1.3863, 1.3863, 1.3863)
    """
    _check_matrix("logits", logits)
    if not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    # BEGIN SOLUTION
    log_p = torch.log_softmax(logits.detach().double() / temperature, dim=-1)  # (N, K)
    p = log_p.exp()
    mean_entropy = float(-(p * log_p).sum(-1).mean())
    p_mean = p.mean(0)
    log_p_mean = torch.where(p_mean > 0, p_mean.log(), torch.zeros_like(p_mean))
    return float(-(p_mean * log_p_mean).sum()), mean_entropy
    # END SOLUTION
