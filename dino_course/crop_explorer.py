"""An interactive crop explorer: sliders and toggles that redraw the multi-crop of a photo.

    from dino_course.crop_explorer import CropExplorer
    CropExplorer().widget          # display it in JupyterLab

The logic lives in `CropExplorer` (a plain class) and is tested without a browser: setting a
slider's `.value` triggers the same redraw as dragging it. The crops are made by
`dino_course.multicrop.MultiCropAugmentation`, i.e. by *your* `sample_crop_box` unless the
reference is switched on for Lesson 3.2.
"""

from __future__ import annotations

from dino_course.sample_images import SAMPLE_PHOTOS, sample_photo

__all__ = ["CropExplorer"]

PRESET_SIZES = {"cpu-64 (64/28 px)": (64, 28), "paper (224/96 px)": (224, 96), "cpu-32 (32/16 px)": (32, 16)}


class CropExplorer:
    """Widgets for global/local scale ranges, number of local crops, seed and each augmentation.

    Attributes:
        global_scale, local_scale: `FloatRangeSlider`s over (0, 1].
        n_local_crops, seed: `IntSlider`s.
        toggles: one `Checkbox` per name in `AUGMENTATIONS` (flip, color_jitter, grayscale, blur, solarize).
        photo, sizes: `Dropdown`s choosing the photo and the view sizes.
        sample: the `MultiCropSample` drawn last; `figure` the matplotlib figure it was drawn in;
        error: the message of the last failure (e.g. an unfinished exercise), or None.
        widget: the whole explorer, to display.
    """

    def __init__(self, photo: str = "chelsea", n_local_crops: int = 6, seed: int = 0, sizes: str = "cpu-64 (64/28 px)") -> None:
        import ipywidgets as w
        import matplotlib.pyplot as plt

        from dino_course.multicrop import AUGMENTATIONS

        if photo not in SAMPLE_PHOTOS:
            raise ValueError(f"photo must be one of {SAMPLE_PHOTOS}, got {photo!r}")
        if sizes not in PRESET_SIZES:
            raise ValueError(f"sizes must be one of {list(PRESET_SIZES)}, got {sizes!r}")
        style = {"description_width": "110px"}
        layout = w.Layout(width="420px")
        self.global_scale = w.FloatRangeSlider(value=(0.4, 1.0), min=0.01, max=1.0, step=0.01, description="global scale", style=style, layout=layout)
        self.local_scale = w.FloatRangeSlider(value=(0.05, 0.4), min=0.01, max=1.0, step=0.01, description="local scale", style=style, layout=layout)
        self.n_local_crops = w.IntSlider(value=n_local_crops, min=0, max=10, description="local crops", style=style, layout=layout)
        self.seed = w.IntSlider(value=seed, min=0, max=99, description="seed", style=style, layout=layout)
        self.photo = w.Dropdown(options=list(SAMPLE_PHOTOS), value=photo, description="photo", style=style)
        self.sizes = w.Dropdown(options=list(PRESET_SIZES), value=sizes, description="view sizes", style=style)
        self.toggles = {name: w.Checkbox(value=True, description=name.replace("_", " "), indent=False, layout=w.Layout(width="110px"))
                        for name in AUGMENTATIONS}
        self.status = w.HTML()
        self.output = w.Output()
        self._photos: dict = {}
        self.sample = None
        self.error: str | None = None
        with plt.ioff():
            self.figure = plt.figure(figsize=(13, 4.8))
        controls = [self.global_scale, self.local_scale, self.n_local_crops, self.seed, self.photo, self.sizes]
        for control in controls + list(self.toggles.values()):
            control.observe(self._on_change, names="value")
        self.widget = w.VBox([
            w.HBox([w.VBox(controls[:4]), w.VBox([self.photo, self.sizes, w.HBox(list(self.toggles.values())[:3]), w.HBox(list(self.toggles.values())[3:])])]),
            self.status,
            self.output,
        ])
        self.redraw()

    def image(self):
        """The chosen photo (cached)."""
        name = self.photo.value
        if name not in self._photos:
            self._photos[name] = sample_photo(name)
        return self._photos[name]

    def augmentation(self):
        """A `MultiCropAugmentation` built from the current widget values (unnormalised views)."""
        from dino_course.multicrop import MultiCropAugmentation

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

        from dino_course.crop_plots import plot_multicrop

        try:
            generator = torch.Generator().manual_seed(self.seed.value)
            self.sample = self.augmentation().sample(self.image(), generator=generator)
        except Exception as exc:  # an unfinished exercise or a bad value: say so, keep the explorer alive
            self.error = f"{type(exc).__name__}: {exc}"
            self.status.value = f"<b style='color:#b00'>cannot draw the crops</b>: {self.error}"
            return
        self.error = None
        plot_multicrop(self.image(), self.sample, normalized=False, figure=self.figure, columns=6)
        self.status.value = (f"{len(self.sample.views)} views; areas of the image covered: "
                             + ", ".join(f"{h * w / (self.sample.image_size[0] * self.sample.image_size[1]):.2f}" for _, _, h, w in self.sample.boxes))
        self.output.clear_output(wait=True)
        with self.output:
            from IPython.display import display

            display(self.figure)

    def _on_change(self, change) -> None:
        self.redraw()
