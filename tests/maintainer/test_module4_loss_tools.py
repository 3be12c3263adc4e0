"""Given code of Lessons 4.1-4.4: docstring examples, the loss explorer's simulations and widgets,
and the short training demo (run with `pytest --reference --maintainer`)."""

from __future__ import annotations

import doctest
import importlib
import math

import pytest
import torch

MODULES = ["solutions.centering", "solutions.temperature", "solutions.loss", "solutions.training"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring examples"
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"


def test_centering_simulation_shows_the_dominant_dimension_cancelled():
    from dino_course.widgets.loss_explorer import simulate_centering

    with_center = simulate_centering(bias=1.0)
    without = simulate_centering(bias=1.0, use_centering=False)
    assert float(without["dominant_mass"][-1]) > 0.8  # one dimension dominates every image
    assert float(with_center["dominant_mass"][-1]) < 0.2  # the center learnt the shared bias
    assert float(with_center["center_dominant"][-1]) > 0.8  # ... about 1.0 after 40 steps of m = 0.9
    assert float(with_center["entropy_of_mean"][-1]) > 0.85 * with_center["log_k"]


def test_collapse_regimes_tell_the_two_collapses_apart():
    from dino_course.widgets.loss_explorer import collapse_regimes

    regimes = collapse_regimes()
    log_k = regimes["log_k"]
    per_image, of_mean = regimes["sharpening only"]
    assert per_image < 0.5 and of_mean < 1.0, "sharpening only must show the one-hot collapse"
    per_image, of_mean = regimes["centering only"]
    assert per_image > 0.95 * log_k, "centering only must show the uniform collapse"
    per_image, of_mean = regimes["both (DINO)"]
    assert per_image < 1.0 and of_mean > 0.9 * log_k, "both together must be confident and diverse"


def test_pair_losses_average_to_the_dino_loss(golden):
    from dino_course.loss import dino_loss
    from dino_course.widgets.loss_explorer import pair_losses

    call = golden["loss"]["calls"][2]
    table = pair_losses(call["student_output"], call["teacher_output"], call["center_before"], call["teacher_temp"])
    assert table.shape == (2, 6) and bool(table[0, 0].isnan()) and bool(table[1, 1].isnan())
    assert int(table.isnan().sum()) == 2
    torch.testing.assert_close(table[~table.isnan()].mean(), torch.tensor(call["loss"]), rtol=1e-6, atol=0)
    torch.testing.assert_close(dino_loss(call["student_output"], call["teacher_output"], call["center_before"], call["teacher_temp"]),
                               torch.tensor(call["loss"]), rtol=1e-6, atol=0)


def test_widgets_redraw_on_value_changes_without_a_browser():
    import matplotlib

    matplotlib.use("Agg")
    from dino_course.widgets.loss_explorer import CenteringExplorer, TemperatureExplorer

    explorer = CenteringExplorer()
    assert explorer.error is None
    before = float(explorer.result["dominant_mass"][-1])
    explorer.use_centering.value = False
    assert explorer.error is None and float(explorer.result["dominant_mass"][-1]) > before
    explorer.momentum.value = 0.0
    assert "dominant dimension" in explorer.status.value
    temperatures = TemperatureExplorer()
    sharp = float(temperatures.result["entropy"][0])
    temperatures.teacher_temp.value = 5.0
    assert float(temperatures.result["entropy"][0]) > sharp
    assert "entropy" in temperatures.status.value


def test_demo_crops_and_entropies():
    from dino_course.data.datasets import load_digits
    from dino_course.job.demo import DemoConfig, build_demo_augmentation, teacher_entropies

    images = load_digits(16).train_images[:4]
    augment = build_demo_augmentation(DemoConfig(global_size=16, local_size=8, n_local=3))
    views = augment.views_of_batch(images, torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(4, 3, 16, 16)] * 2 + [(4, 3, 8, 8)] * 3
    assert augment.recipes[0].flip_p == 0.0  # mirrored digits are not digits
    per_image, of_mean = teacher_entropies(torch.zeros(6, 8), torch.zeros(1, 8), 0.04)
    assert math.isclose(per_image, math.log(8), rel_tol=1e-5) and math.isclose(of_mean, math.log(8), rel_tol=1e-5)


def test_demo_training_runs_and_is_deterministic():
    from dino_course.data.datasets import load_digits
    from dino_course.job.demo import DemoConfig, run_demo_training

    config = DemoConfig(steps=3, steps_per_epoch=2, batch_size=8)
    images = load_digits(16).train_images[:40]
    first = run_demo_training(config, images)
    second = run_demo_training(config, images)
    assert len(first) == 3 and all(math.isfinite(r["loss"]) for r in first)
    assert [r["loss"] for r in first] == [r["loss"] for r in second]
    assert first[0]["lr"] == 0.0  # the warm-up starts at 0
