"""The crop explorer and the crop pictures, without a browser (widget values set directly)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import os  # noqa: E402

from dino_course import use_reference  # noqa: E402
from dino_course.grading.reference_switch import ENV_VAR  # noqa: E402
from dino_course.data.sample_images import SAMPLE_PHOTOS, sample_photo  # noqa: E402


@pytest.fixture(autouse=True)
def restore_reference_switch():
    """These checks switch the reference on and off; give the rest of the run its own setting back."""
    previous = os.environ.get(ENV_VAR)
    yield
    use_reference(previous or None)


@pytest.fixture
def explorer():
    use_reference("3.2")  # the explorer runs on dino_course.multicrop: the reference here
    from dino_course.widgets.crop_explorer import CropExplorer

    made = CropExplorer(photo="coffee", n_local_crops=4, seed=0)
    yield made
    import matplotlib.pyplot as plt

    plt.close(made.figure)


def rectangles(figure):
    from matplotlib.patches import Rectangle

    return [p for p in figure.axes[0].patches if isinstance(p, Rectangle)]


@pytest.mark.parametrize("name", SAMPLE_PHOTOS)
def test_sample_photos_ship_with_packages(name):
    photo = sample_photo(name)
    assert isinstance(photo, Image.Image) and photo.mode == "RGB" and min(photo.size) >= 256
    with pytest.raises(ValueError, match="name must be one of"):
        sample_photo("lena")


def test_explorer_draws_one_box_and_one_view_per_crop(explorer):
    assert explorer.error is None
    assert len(explorer.sample.views) == 2 + 4
    assert len(rectangles(explorer.figure)) == 6
    assert len(explorer.figure.axes) == 1 + 6


def test_moving_sliders_changes_the_crops_drawn(explorer):
    before = list(explorer.sample.boxes)
    explorer.seed.value = 7
    assert explorer.sample.boxes != before, "a new seed must draw new crops"
    explorer.n_local_crops.value = 9
    assert len(explorer.sample.views) == 11 and len(rectangles(explorer.figure)) == 11
    explorer.local_scale.value = (0.01, 0.02)
    height, width = explorer.sample.image_size
    for (top, left, h, w), recipe in zip(explorer.sample.boxes, explorer.sample.recipes):
        if recipe.kind == "local":
            assert h * w / (height * width) < 0.03  # scale 0.02 plus rounding of a ~60 px box
    drawn = [(r.get_width() * r.get_height()) for r in rectangles(explorer.figure)[2:]]
    assert max(drawn) < 0.03 * height * width, "the boxes drawn must follow the local scale slider"
    explorer.global_scale.value = (1.0, 1.0)
    # coffee is 600 x 400 (ratio 1.5 > 4/3): a whole-image box does not fit, the fallback keeps 533 x 400
    assert all(h * w / (height * width) > 0.85 for _, _, h, w in explorer.sample.boxes[:2])


def test_toggles_switch_augmentations_off(explorer):
    for box in explorer.toggles.values():
        box.value = False
    sample = explorer.sample
    assert not any(sample.flipped + sample.jittered + sample.grayscaled + sample.solarized)
    assert all(s is None for s in sample.blur_sigma)
    explorer.toggles["blur"].value = True
    assert explorer.sample.blur_sigma[0] is not None, "the first global view is always blurred when blur is on"
    titles = [a.get_title() for a in explorer.figure.axes[1:]]
    assert "blur" in titles[0] and "crop only" in " ".join(titles[1:]) or "blur" in titles[1]


def test_photo_and_size_dropdowns(explorer):
    explorer.photo.value = "astronaut"
    assert explorer.sample.image_size == (512, 512)
    explorer.sizes.value = "cpu-32 (32/16 px)"
    assert tuple(explorer.sample.views[0].shape) == (3, 32, 32) and tuple(explorer.sample.views[-1].shape) == (3, 16, 16)


@pytest.mark.parametrize("exercise", ["view_recipes", "sample_crop_box"])
def test_explorer_reports_an_unfinished_exercise_instead_of_crashing(monkeypatch, exercise):
    """Each Lesson 3.2 exercise the explorer's views need, when not started, is named in its status
    (the other one is the reference, so the message can only come from the one not started)."""
    use_reference(None)
    import importlib

    # the module the pipeline looks up at every batch (sys.modules), not the package attribute,
    # which an earlier test's use_reference may have left pointing at another module object
    multicrop = importlib.import_module("dino_course.multicrop")
    from dino_course.widgets.crop_explorer import CropExplorer
    from dino_course.grading import ExerciseNotStarted
    from solutions import multicrop as reference

    def not_started(*args, **kwargs):
        raise ExerciseNotStarted("3.2", exercise)

    for name in ("view_recipes", "sample_crop_box"):
        monkeypatch.setattr(multicrop, name, not_started if name == exercise else getattr(reference, name))
    made = CropExplorer()
    assert made.sample is None and exercise in made.error and "cannot draw" in made.status.value
    import matplotlib.pyplot as plt

    plt.close(made.figure)


def test_plot_multicrop_accepts_tensors_and_titles_views():
    use_reference("3.2")
    from dino_course.widgets.crop_plots import plot_multicrop
    from dino_course.data.multicrop_pipeline import MultiCropAugmentation

    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    sample = MultiCropAugmentation.from_preset("cpu-32").sample(image, generator=torch.Generator().manual_seed(1))
    figure = plot_multicrop(image, sample)
    titles = [a.get_title() for a in figure.axes[1:]]
    assert titles[0].startswith("G1 32px") and titles[2].startswith("L1 16px")
    assert "blur" in titles[0]  # p = 1.0 on the first global view
    import matplotlib.pyplot as plt

    plt.close(figure)


def test_default_explorer_starts_where_every_toggle_changes_the_crops():
    """At its default state each toggle visibly matters: switching it off changes some view's pixels."""
    use_reference("3.2")
    from dino_course.widgets.crop_explorer import CropExplorer, fired_augmentations
    from dino_course.data.multicrop_pipeline import AUGMENTATIONS

    made = CropExplorer()
    assert made.error is None
    assert fired_augmentations(made.sample) == set(AUGMENTATIONS), (made.seed.value, fired_augmentations(made.sample))
    # the smallest such seed: every seed below it misses at least one augmentation
    for seed in range(made.seed.value):
        made.seed.value = seed
        assert fired_augmentations(made.sample) != set(AUGMENTATIONS)
    made.seed.value = made.first_seed_showing_every_augmentation()
    views = [v.clone() for v in made.sample.views]
    for name, box in made.toggles.items():
        box.value = False
        changed = [not torch.equal(a, b) for a, b in zip(views, made.sample.views)]
        assert any(changed), f"switching {name} off must change at least one view at the default seed"
        box.value = True
        assert all(torch.equal(a, b) for a, b in zip(views, made.sample.views)), "switching back restores the views"
    # an explicit seed is kept as given
    assert CropExplorer(seed=0).seed.value == 0


def test_explorer_keeps_the_papers_probabilities_and_captions_them():
    use_reference("3.2")
    from dino_course.widgets.crop_explorer import CropExplorer

    made = CropExplorer(photo="coffee", n_local_crops=4)
    g1, g2, local = made.augmentation().recipes[:3]
    assert (g1.blur_p, g2.blur_p, local.blur_p) == (1.0, 0.1, 0.5)
    assert (g1.solarize_p, g2.solarize_p, local.solarize_p) == (0.0, 0.2, 0.0)
    assert {r.flip_p for r in (g1, g2, local)} == {0.5} and {r.jitter_p for r in (g1, g2, local)} == {0.8}
    assert {r.grayscale_p for r in (g1, g2, local)} == {0.2}
    caption = made.figure._suptitle.get_text()
    assert "solarise 0 / 0.2 / 0" in caption and "blur 1 / 0.1 / 0.5" in caption and "flip 0.5" in caption
    made.toggles["solarize"].value = False
    assert "solarise off" in made.figure._suptitle.get_text(), "a toggle always shows in the caption"


def test_widget_figures_are_not_left_open_in_pyplot():
    """The inline backend shows every open pyplot figure at the end of a cell: a frozen second copy."""
    import matplotlib.pyplot as plt

    use_reference("3.2")
    from dino_course.widgets.crop_explorer import CropExplorer
    from dino_course.widgets.loss_explorer import CenteringExplorer

    plt.close("all")
    CropExplorer(seed=0)
    CenteringExplorer()
    assert plt.get_fignums() == [], "a widget's figure must not be registered with pyplot"


@pytest.mark.parametrize(
    "argument, value, expected",
    [("n_local_crops", 50, r"an integer in \[0, 10\]"), ("n_local_crops", -1, r"an integer in \[0, 10\]"),
     ("n_local_crops", 2.5, r"an integer in \[0, 10\]"), ("seed", 100, r"an integer in \[0, 99\]"),
     ("seed", True, r"an integer in \[0, 99\]")],
)
def test_a_start_outside_a_slider_is_refused_not_clamped(argument, value, expected):
    """ipywidgets would clamp `n_local_crops=50` to 10 and show 10 crops without a word."""
    from dino_course.widgets.crop_explorer import CropExplorer

    with pytest.raises(ValueError, match=rf"^{argument} must be {expected} \(the slider's range\), got {value!r}$"):
        CropExplorer(**{argument: value})
