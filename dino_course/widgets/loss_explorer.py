"""Pictures and widgets for Lessons 4.1-4.3: centering, sharpening and the two collapses.

    from dino_course.widgets.loss_explorer import CenteringExplorer, TemperatureExplorer
    CenteringExplorer().widget        # display it in JupyterLab

Everything here runs on *your* exercises (`update_center`, `sharpen`, `entropy`) unless the
reference is switched on for those lessons. The logic is plain functions and classes, tested
without a browser: setting a slider's `.value` redraws exactly as dragging it does.

The toy teacher used by the simulations: the head's outputs are cosines in [−1, 1] (the last
layer is weight-normalised, Lesson 3.3), so a teacher logit is modelled as an image-specific
part `signal · N(0, 1)` plus a part `bias` shared by every image on one "dominant" dimension,
which is what a network drifting towards collapse produces.
"""

from __future__ import annotations

import io

import math

import torch

from dino_course.widgets.slider_values import checkbox_start, slider_start

__all__ = [
    "toy_teacher_logits",
    "simulate_centering",
    "plot_centering",
    "CenteringExplorer",
    "sharpening_profile",
    "plot_sharpening",
    "TemperatureExplorer",
    "collapse_regimes",
    "plot_collapse_regimes",
    "pair_losses",
    "plot_pair_losses",
]


def toy_teacher_logits(batch: int, k: int, *, signal: float = 0.3, bias: float = 0.5, dominant: int = 0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """`(batch, k)` logits: `signal · N(0, 1)` per image plus `bias` on dimension `dominant` for every image."""
    logits = signal * torch.randn(batch, k, generator=generator)
    logits[:, dominant] += bias
    return logits


# --------------------------------------------------------------------------------------------
# 4.1 centering
# --------------------------------------------------------------------------------------------


def simulate_centering(steps: int = 40, k: int = 16, batch: int = 32, *, bias: float = 1.0, signal: float = 0.3,
                       momentum: float = 0.9, teacher_temp: float = 0.04, use_centering: bool = True, seed: int = 0) -> dict:
    """Feed `steps` batches of toy teacher logits through the running center (your `update_center`).

    Returns a dict of float tensors `(steps,)`: `center_dominant` (the center on the dominant
    dimension, used by that step), `dominant_mass` (mean teacher probability on it),
    `entropy_per_image` and `entropy_of_mean` (nats), plus `log_k`.
    """
    from dino_course.centering import update_center
    from dino_course.temperature import entropy, sharpen

    generator = torch.Generator().manual_seed(seed)
    center = torch.zeros(1, k)
    history = {name: [] for name in ("center_dominant", "dominant_mass", "entropy_per_image", "entropy_of_mean")}
    for _ in range(steps):
        logits = toy_teacher_logits(batch, k, signal=signal, bias=bias, generator=generator)
        used = center if use_centering else torch.zeros_like(center)
        probs = sharpen(logits - used, teacher_temp)  # (batch, k)
        history["center_dominant"].append(float(used[0, 0]))
        history["dominant_mass"].append(float(probs[:, 0].mean()))
        history["entropy_per_image"].append(float(entropy(probs).mean()))
        history["entropy_of_mean"].append(float(entropy(probs.mean(0))))
        center = update_center(center, logits, momentum)  # after the "loss", as in DINO
    result = {name: torch.tensor(values) for name, values in history.items()}
    result["log_k"] = math.log(k)
    return result


def plot_centering(history: dict, figure=None, title: str = ""):
    """Two panels: the center and the dominant dimension's probability; the two entropies."""
    import matplotlib.pyplot as plt

    figure = figure or plt.figure(figsize=(11, 3.6))
    figure.clf()
    left, right = figure.subplots(1, 2)
    steps = range(len(history["dominant_mass"]))
    left.plot(steps, history["dominant_mass"], label="teacher probability on the dominant dimension")
    left.plot(steps, history["center_dominant"], label="center on the dominant dimension", linestyle="--")
    left.set_xlabel("iteration")
    left.set_ylim(-0.05, 1.05)
    left.legend(fontsize=9)
    right.plot(steps, history["entropy_per_image"], label="mean entropy per image (confidence)")
    right.plot(steps, history["entropy_of_mean"], label="entropy of the batch mean (diversity)")
    right.axhline(history["log_k"], color="grey", linestyle=":", label="log K (uniform)")
    right.set_xlabel("iteration")
    right.set_ylabel("nats")
    right.legend(fontsize=9)
    figure.suptitle(title or "the running center removes what all images share")
    figure.tight_layout()
    return figure


class _Explorer:
    """Shared widget plumbing: sliders → `compute()` → `draw()` into one figure, errors shown in words."""

    def _setup(self, controls: list, figsize: tuple[float, float]) -> None:
        import ipywidgets as w
        from matplotlib.figure import Figure

        self.status = w.HTML()
        self.output = w.Output()
        self.error: str | None = None
        # a plain Figure, not pyplot's: the inline backend shows every open pyplot figure again
        # when the cell ends, which left a frozen copy of the first drawing under the widget
        self.figure = Figure(figsize=figsize)
        for control in controls:
            control.observe(lambda change: self.redraw(), names="value")
        self.widget = w.VBox([w.HBox(controls[: (len(controls) + 1) // 2]), w.HBox(controls[(len(controls) + 1) // 2 :]), self.status, self.output])
        self.redraw()

    def redraw(self) -> None:
        try:
            self.result = self.compute()
        except Exception as exc:  # an unfinished exercise or a bad value: say so, keep the widget alive
            self.error = f"{type(exc).__name__}: {exc}"
            self.status.value = f"<b style='color:#b00'>cannot draw</b>: {self.error}"
            return
        self.error = None
        self.status.value = self.describe()
        self.draw()
        self.output.clear_output(wait=True)
        with self.output:
            from IPython.display import Image, display

            # as PNG bytes, not the Figure: a plain Figure gets the inline backend's image formatter
            # only once pyplot is imported, and without it the cell shows "<Figure size ...>"
            buffer = io.BytesIO()
            self.figure.savefig(buffer, format="png", bbox_inches="tight")
            display(Image(data=buffer.getvalue(), format="png"))


class CenteringExplorer(_Explorer):
    """Sliders for the shared bias, the center momentum and τ_t, and a centering on/off switch."""

    def __init__(self, bias: float = 1.0, momentum: float = 0.9, teacher_temp: float = 0.04, use_centering: bool = True) -> None:
        import ipywidgets as w

        slider_start("bias", bias, 0.0, 1.5)
        slider_start("momentum", momentum, 0.0, 0.99)
        slider_start("teacher_temp", teacher_temp, 10**-2.5, 10**0.5)
        checkbox_start("use_centering", use_centering)
        style = {"description_width": "120px"}
        self.bias = w.FloatSlider(value=bias, min=0.0, max=1.5, step=0.05, description="shared bias", style=style)
        self.momentum = w.FloatSlider(value=momentum, min=0.0, max=0.99, step=0.01, description="center momentum m", style=style)
        self.teacher_temp = w.FloatLogSlider(value=teacher_temp, base=10, min=-2.5, max=0.5, step=0.05, description="teacher τ_t", style=style)
        self.use_centering = w.Checkbox(value=use_centering, description="centering on")
        self._setup([self.bias, self.momentum, self.teacher_temp, self.use_centering], (11, 3.6))

    def compute(self) -> dict:
        return simulate_centering(bias=self.bias.value, momentum=self.momentum.value, teacher_temp=self.teacher_temp.value,
                                  use_centering=self.use_centering.value)

    def describe(self) -> str:
        mass = float(self.result["dominant_mass"][-1])
        return f"after 40 iterations the dominant dimension holds {mass:.0%} of the teacher's probability"

    def draw(self) -> None:
        plot_centering(self.result, self.figure)


# --------------------------------------------------------------------------------------------
# 4.2 sharpening
# --------------------------------------------------------------------------------------------


def sharpening_profile(logits: torch.Tensor, temperatures) -> dict:
    """Your `sharpen` and `entropy` over a range of temperatures.

    Args:
        logits: `(B, K)` logits.
        temperatures: a sequence of τ > 0.

    Returns:
        `{"temperatures": (T,), "probs": (T, B, K), "entropy": (T,) mean entropy per row, "log_k": float}`.
    """
    from dino_course.temperature import entropy, sharpen

    temperatures = torch.as_tensor(list(temperatures), dtype=torch.float64)
    probs = torch.stack([sharpen(logits, float(t)) for t in temperatures])
    return {"temperatures": temperatures, "probs": probs, "entropy": torch.stack([entropy(p).mean() for p in probs]),
            "log_k": math.log(logits.shape[-1])}


def plot_sharpening(logits_row: torch.Tensor, show: tuple[float, ...] = (1.0, 0.1, 0.04), figure=None):
    """Bars of one row's distribution at a few temperatures, and the entropy against τ."""
    import matplotlib.pyplot as plt

    figure = figure or plt.figure(figsize=(12, 3.4))
    figure.clf()
    axes = figure.subplots(1, len(show) + 1)
    bars = sharpening_profile(logits_row[None], show)
    for axis, temperature, probs in zip(axes, show, bars["probs"]):
        axis.bar(range(probs.shape[-1]), probs[0].tolist(), color="tab:blue")
        axis.set_ylim(0, 1)
        axis.set_title(f"τ = {temperature:g}: H = {float(bars['entropy'][list(show).index(temperature)]):.2f} nats", fontsize=9)
        axis.set_xlabel("dimension k")
    curve = sharpening_profile(logits_row[None], torch.logspace(-2.5, 1, 60).tolist())
    axes[-1].semilogx(curve["temperatures"], curve["entropy"])
    axes[-1].axhline(curve["log_k"], color="grey", linestyle=":", label="log K")
    for temperature in (0.04, 0.07, 0.1):  # the teacher's range and the student's temperature
        axes[-1].axvline(temperature, color="tab:red", alpha=0.4, linestyle="--")
    axes[-1].set_xlabel("temperature τ")
    axes[-1].set_ylabel("entropy (nats)")
    axes[-1].legend(fontsize=9)
    figure.tight_layout()
    return figure


class TemperatureExplorer(_Explorer):
    """Sliders for τ_t and τ_s: the teacher's and the student's distributions of the same logits."""

    def __init__(self, teacher_temp: float = 0.04, student_temp: float = 0.1, k: int = 16, seed: int = 0) -> None:
        import ipywidgets as w

        slider_start("teacher_temp", teacher_temp, 10**-2.5, 10.0)
        slider_start("student_temp", student_temp, 10**-2.5, 10.0)
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"k must be an integer >= 2 (the number of outputs), got {k!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        style = {"description_width": "90px"}
        self.logits = toy_teacher_logits(1, k, bias=0.0, generator=torch.Generator().manual_seed(seed))
        self.teacher_temp = w.FloatLogSlider(value=teacher_temp, base=10, min=-2.5, max=1, step=0.05, description="teacher τ_t", style=style)
        self.student_temp = w.FloatLogSlider(value=student_temp, base=10, min=-2.5, max=1, step=0.05, description="student τ_s", style=style)
        self._setup([self.teacher_temp, self.student_temp], (10, 3.2))

    def compute(self) -> dict:
        return sharpening_profile(self.logits, [self.teacher_temp.value, self.student_temp.value])

    def describe(self) -> str:
        teacher, student = (float(h) for h in self.result["entropy"])
        return f"entropy: teacher {teacher:.2f}, student {student:.2f} nats (uniform: {self.result['log_k']:.2f})"

    def draw(self) -> None:
        self.figure.clf()
        axes = self.figure.subplots(1, 2, sharey=True)
        for axis, name, probs in zip(axes, ("teacher", "student"), self.result["probs"]):
            axis.bar(range(probs.shape[-1]), probs[0].tolist(), color="tab:orange" if name == "teacher" else "tab:blue")
            axis.set_title(name)
            axis.set_xlabel("dimension k")
        axes[0].set_ylim(0, 1)
        self.figure.tight_layout()


# --------------------------------------------------------------------------------------------
# 4.2 the balance: uniform vs one-hot collapse
# --------------------------------------------------------------------------------------------


def collapse_regimes(k: int = 64, batch: int = 256, *, bias: float = 1.2, signal: float = 0.3, seed: int = 0) -> dict:
    """Teacher targets under four recipes, summarised by two entropies (nats).

    For each of "neither", "sharpening only" (τ_t = 0.04, no center), "centering only" (the batch
    mean removed, τ_t = 1), "both" (DINO): `(mean entropy per image, entropy of the batch mean)`.
    The center is the batch mean, i.e. your `update_center` with momentum 0 from a zero center.
    """
    from dino_course.centering import update_center
    from dino_course.temperature import entropy, sharpen

    logits = toy_teacher_logits(batch, k, signal=signal, bias=bias, generator=torch.Generator().manual_seed(seed))
    center = update_center(torch.zeros(1, k), logits, momentum=0.0)
    recipes = {"neither": (False, 1.0), "sharpening only": (False, 0.04), "centering only": (True, 1.0), "both (DINO)": (True, 0.04)}
    result = {}
    for name, (centred, temperature) in recipes.items():
        probs = sharpen(logits - center if centred else logits, temperature)
        result[name] = (float(entropy(probs).mean()), float(entropy(probs.mean(0))))
    result["log_k"] = math.log(k)
    return result


def plot_collapse_regimes(regimes: dict, figure=None):
    """Grouped bars of the two entropies per recipe, with log K marked."""
    import matplotlib.pyplot as plt

    figure = figure or plt.figure(figsize=(8, 3.4))
    figure.clf()
    axis = figure.subplots()
    names = [name for name in regimes if name != "log_k"]
    positions = torch.arange(len(names), dtype=torch.float64)
    axis.bar(positions - 0.2, [regimes[n][0] for n in names], width=0.4, label="mean entropy per image (low = confident)")
    axis.bar(positions + 0.2, [regimes[n][1] for n in names], width=0.4, label="entropy of the batch mean (high = diverse)")
    axis.axhline(regimes["log_k"], color="grey", linestyle=":", label="log K")
    axis.set_xticks(positions.tolist(), names)
    axis.set_ylabel("nats")
    figure.legend(fontsize=9, loc="lower center", ncol=3)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    return figure


# --------------------------------------------------------------------------------------------
# 4.3 the loss, pair by pair
# --------------------------------------------------------------------------------------------


def pair_losses(student_output: torch.Tensor, teacher_output: torch.Tensor, center: torch.Tensor, teacher_temp: float,
                student_temp: float = 0.1, n_global_views: int = 2) -> torch.Tensor:
    """`(n_global, V)` cross-entropy of every (teacher view, student view) pair, NaN where s = t (skipped).

    Each entry is your `dino_loss` restricted to one pair (student view s against teacher view t,
    computed as the loss of a 2-view problem), so the mean of the finite entries is the DINO loss.
    """
    from dino_course.temperature import sharpen

    batch = teacher_output.shape[0] // n_global_views
    n_views = student_output.shape[0] // batch
    teacher = sharpen(teacher_output - center, teacher_temp).view(n_global_views, batch, -1)
    student = torch.log_softmax(student_output / student_temp, dim=-1).view(n_views, batch, -1)
    matrix = torch.full((n_global_views, n_views), float("nan"))
    for t in range(n_global_views):
        for s in range(n_views):
            if s != t:
                matrix[t, s] = float(-(teacher[t] * student[s]).sum(-1).mean())
    return matrix


def plot_pair_losses(matrix: torch.Tensor, figure=None):
    """Heat map of `pair_losses`: rows teacher views, columns student views; skipped pairs blank."""
    import matplotlib.pyplot as plt

    figure = figure or plt.figure(figsize=(1.1 * matrix.shape[1] + 2, 2.6))
    figure.clf()
    axis = figure.subplots()
    image = axis.imshow(matrix.numpy(), cmap="viridis")
    for (t, s), value in _ndenumerate(matrix):
        axis.text(s, t, "skip" if math.isnan(value) else f"{value:.2f}", ha="center", va="center", color="w", fontsize=9)
    axis.set_xticks(range(matrix.shape[1]), [f"{'global' if s < matrix.shape[0] else 'local'} {s}" for s in range(matrix.shape[1])], fontsize=9)
    axis.set_yticks(range(matrix.shape[0]), [f"teacher {t}" for t in range(matrix.shape[0])], fontsize=9)
    axis.set_xlabel("student view")
    figure.colorbar(image, ax=axis, label="cross-entropy (nats)")
    figure.tight_layout()
    return figure


def _ndenumerate(matrix: torch.Tensor):
    for t in range(matrix.shape[0]):
        for s in range(matrix.shape[1]):
            yield (t, s), float(matrix[t, s])
