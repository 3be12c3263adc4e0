"""An interactive crop explorer: sliders and toggles that redraw the multi-crop of a photo.

    from dino_course.widgets.crop_explorer import CropExplorer
    CropExplorer().widget          # display it in JupyterLab

The logic lives in `CropExplorer` (a plain class) and is tested without a browser: setting a
slider's `.value` triggers the same redraw as dragging it. The crops are made by
`dino_course.data.multicrop_pipeline.MultiCropAugmentation` (the course's one multi-crop data
path), i.e. by *your* `sample_crop_box` unless the reference is switched on for Lesson 3.2.
"""

from __future__ import annotations

import io

from dino_course.data.sample_images import SAMPLE_PHOTOS, sample_photo
from dino_course.widgets.slider_values import slider_start

__all__ = ["CropExplorer", "fired_augmentations", "recipe_caption"]

# which `MultiCropSample` field says that an augmentation fired on a view
_FIRED = {
    "flip": lambda sample: sample.flipped,
    "color_jitter": lambda sample: sample.jittered,
    "grayscale": lambda sample: sample.grayscaled,
    "blur": lambda sample: [sigma is not None for sigma in sample.blur_sigma],
    "solarize": lambda sample: sample.solarized,
}
_PROBABILITY_FIELD = {"flip": "flip_p", "color_jitter": "jitter_p", "grayscale": "grayscale_p", "blur": "blur_p", "solarize": "solarize_p"}
_SHORT = {"flip": "flip", "color_jitter": "jitter", "grayscale": "grey", "blur": "blur", "solarize": "solarise"}


def fired_augmentations(sample) -> set[str]:
    """The names (from `AUGMENTATIONS`) of the augmentations that fired on at least one view of `sample`."""
    return {name for name, fired in _FIRED.items() if any(fired(sample))}


def recipe_caption(augmentation) -> str:
    """One line with each augmentation's probability on G1 / G2 / local views, or 'off' when switched off.

    The explorer shows it above the crops, so a toggle always says what it changed, also when
    the current seed happens not to fire that augmentation on any view.
    """
    recipes = augmentation.recipes
    kinds = recipes[:2] + recipes[2:3]  # G1, G2 and (if any) one local recipe: all locals share it
    parts = []
    for name, field in _PROBABILITY_FIELD.items():
        if name not in augmentation.augmentations:
            parts.append(f"{_SHORT[name]} off")
            continue
        values = [getattr(r, field) for r in kinds]
        text = f"{values[0]:g}" if len(set(values)) == 1 else " / ".join(f"{v:g}" for v in values)
        parts.append(f"{_SHORT[name]} {text}")
    views = "G1 / G2 / local" if len(kinds) == 3 else "G1 / G2"
    return f"p per view ({views}):  " + "  ·  ".join(parts)


PRESET_SIZES = {"cpu-64 (64/28 px)": (64, 28), "paper (224/96 px)": (224, 96), "cpu-32 (32/16 px)": (32, 16)}


class CropExplorer:
    """Widgets for global/local scale ranges, number of local crops, seed and each augmentation.

    Attributes:
        global_scale, local_scale: `FloatRangeSlider`s over (0, 1].
        n_local_crops, seed: `IntSlider`s.
        toggles: one `Checkbox` per name in `AUGMENTATIONS` (flip, color_jitter, grayscale, blur, solarize).
        photo, sizes: `Dropdown`s choosing the photo and the view sizes.
        sample: the `MultiCropSample` drawn last; `figure` the matplotlib figure it was drawn in
            (a plain `Figure`, not registered with pyplot, so the inline backend does not show a
            second, frozen copy of it under the explorer when the cell ends);
        error: the message of the last failure (e.g. an unfinished exercise), or None.
        widget: the whole explorer, to display.

    The default `seed=None` starts at the first seed (0, 1, ...) at which every augmentation
    fires on at least one view, found by drawing samples at construction: with the paper's
    probabilities solarisation (p 0.2, global view 2 only) misses at most seeds, and a toggle
    that changes nothing at the start looks broken. The search runs on the crop code in use
    (yours or the reference), since how many random numbers `sample_crop_box` draws shifts the
    stream. The caption above the crops lists each augmentation's probability per view, or
    "off", so a toggle always shows its effect on the recipe even where it fires on no view.
    """

    def __init__(self, photo: str = "chelsea", n_local_crops: int = 6, seed: int | None = None, sizes: str = "cpu-64 (64/28 px)") -> None:
        import ipywidgets as w
        from matplotlib.figure import Figure

        from dino_course.data.multicrop_pipeline import AUGMENTATIONS

        if photo not in SAMPLE_PHOTOS:
            raise ValueError(f"photo must be one of {SAMPLE_PHOTOS}, got {photo!r}")
        if sizes not in PRESET_SIZES:
            raise ValueError(f"sizes must be one of {list(PRESET_SIZES)}, got {sizes!r}")
        slider_start("n_local_crops", n_local_crops, 0, 10, integer=True)
        if seed is not None:
            slider_start("seed", seed, 0, 99, integer=True)
        style = {"description_width": "110px"}
        layout = w.Layout(width="420px")
        self.global_scale = w.FloatRangeSlider(value=(0.4, 1.0), min=0.01, max=1.0, step=0.01, description="global scale", style=style, layout=layout)
        self.local_scale = w.FloatRangeSlider(value=(0.05, 0.4), min=0.01, max=1.0, step=0.01, description="local scale", style=style, layout=layout)
        self.n_local_crops = w.IntSlider(value=n_local_crops, min=0, max=10, description="local crops", style=style, layout=layout)
        self.seed = w.IntSlider(value=0 if seed is None else seed, min=0, max=99, description="seed", style=style, layout=layout)
        self.photo = w.Dropdown(options=list(SAMPLE_PHOTOS), value=photo, description="photo", style=style)
        self.sizes = w.Dropdown(options=list(PRESET_SIZES), value=sizes, description="view sizes", style=style)
        self.toggles = {name: w.Checkbox(value=True, description=name.replace("_", " "), indent=False, layout=w.Layout(width="110px"))
                        for name in AUGMENTATIONS}
        self.status = w.HTML()
        self.output = w.Output()
        self._photos: dict = {}
        self.sample = None
        self.error: str | None = None
        self.figure = Figure(figsize=(13, 5.0))
        if seed is None:
            self.seed.value = self.first_seed_showing_every_augmentation()
        controls = [self.global_scale, self.local_scale, self.n_local_crops, self.seed, self.photo, self.sizes]
        for control in controls + list(self.toggles.values()):
            control.observe(self._on_change, names="value")
        self.widget = w.VBox([
            w.HBox([w.VBox(controls[:4]), w.VBox([self.photo, self.sizes, w.HBox(list(self.toggles.values())[:3]), w.HBox(list(self.toggles.values())[3:])])]),
            self.status,
            self.output,
        ])
        self.redraw()

    def first_seed_showing_every_augmentation(self) -> int:
        """The smallest seed on the slider at which every switched-on augmentation fires on some view.

        0 when there is none, or when the crops cannot be drawn (an unfinished exercise: the
        explorer then says so itself).
        """
        import torch

        try:
            augmentation = self.augmentation()
            wanted = set(augmentation.augmentations)
            for seed in range(self.seed.min, self.seed.max + 1):
                sample = augmentation.sample(self.image(), generator=torch.Generator().manual_seed(seed))
                if wanted <= fired_augmentations(sample):
                    return seed
        except Exception:  # noqa: BLE001  (redraw() reports the same failure in words)
            pass
        return 0

    def image(self):
        """The chosen photo (cached)."""
        name = self.photo.value
        if name not in self._photos:
            self._photos[name] = sample_photo(name)
        return self._photos[name]

    def augmentation(self):
        """A `MultiCropAugmentation` built from the current widget values (unnormalised views)."""
        from dino_course.data.multicrop_pipeline import MultiCropAugmentation

        global_size, local_size = PRESET_SIZES[self.sizes.value]
        return MultiCropAugmentation(
            global_size=global_size,
            local_size=local_size,
            n_local_crops=self.n_local_crops.value,
            global_scale=tuple(self.global_scale.value),
            local_scale=tuple(self.local_scale.value),
            augmentations=[name for name, box in self.toggles.items() if box.value],
            normalize=False,
        )

    def redraw(self) -> None:
        """Draw a fresh sample for the current values (called on every widget change)."""
        import torch

        from dino_course.widgets.crop_plots import plot_multicrop

        try:
            generator = torch.Generator().manual_seed(self.seed.value)
            self.sample = self.augmentation().sample(self.image(), generator=generator)
        except Exception as exc:  # an unfinished exercise or a bad value: say so, keep the explorer alive
            self.error = f"{type(exc).__name__}: {exc}"
            self.status.value = f"<b style='color:#b00'>cannot draw the crops</b>: {self.error}"
            return
        self.error = None
        plot_multicrop(self.image(), self.sample, normalized=False, figure=self.figure, columns=6)
        self.figure.suptitle(recipe_caption(self.augmentation()), fontsize=9)
        self.figure.tight_layout()
        self.status.value = (f"{len(self.sample.views)} views; areas of the image covered: "
                             + ", ".join(f"{h * w / (self.sample.image_size[0] * self.sample.image_size[1]):.2f}" for _, _, h, w in self.sample.boxes))
        self.output.clear_output(wait=True)
        with self.output:
            from IPython.display import Image, display

            # as PNG bytes, not the Figure: a plain Figure gets the inline backend's image formatter
            # only once pyplot is imported, and without it the cell shows "<Figure size ...>"
            buffer = io.BytesIO()
            self.figure.savefig(buffer, format="png", bbox_inches="tight")
            display(Image(data=buffer.getvalue(), format="png"))

    def _on_change(self, change) -> None:
        self.redraw()
