"""The loss explorer of Lessons 4.1-4.3 (`dino_course/widgets/loss_explorer.py`): its simulations
and widgets, without a browser (run with `pytest --reference --maintainer`)."""

from __future__ import annotations

import torch


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


def test_a_start_outside_a_slider_is_refused_not_clamped():
    """ipywidgets would clamp each of these to its slider's end and show another setting than asked."""
    import pytest

    from dino_course.widgets.loss_explorer import CenteringExplorer, TemperatureExplorer

    refused = [
        (CenteringExplorer, "bias", 5.0, r"a number in \[0, 1.5\]"),
        (CenteringExplorer, "momentum", 0.999, r"a number in \[0, 0.99\]"),
        (CenteringExplorer, "teacher_temp", 0.0, r"a number in \[0.00316228, 3.16228\]"),
        (CenteringExplorer, "teacher_temp", float("nan"), r"a number in \[0.00316228, 3.16228\]"),
        (TemperatureExplorer, "student_temp", 50.0, r"a number in \[0.00316228, 10\]"),
    ]
    for explorer, argument, value, expected in refused:
        with pytest.raises(ValueError, match=rf"^{argument} must be {expected} \(the slider's range\), got {value!r}$"):
            explorer(**{argument: value})
    with pytest.raises(ValueError, match=r"^use_centering must be True or False, got 'no'$"):
        CenteringExplorer(use_centering="no")
    for argument, value in [("k", 1), ("k", 4.0), ("seed", -1)]:
        with pytest.raises(ValueError, match=rf"^{argument} must be an integer >= \d"):
            TemperatureExplorer(**{argument: value})
