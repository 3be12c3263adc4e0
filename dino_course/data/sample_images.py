"""Real photos that ship inside installed packages, so the lessons never download anything.

scikit-image installs a few classic test photos with its package data (astronaut, cat,
coffee cup, rocket); matplotlib installs a portrait of Grace Hopper with its sample data.
"""

from __future__ import annotations

from PIL import Image

SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "grace_hopper")

__all__ = ["SAMPLE_PHOTOS", "sample_photo"]


def sample_photo(name: str = "chelsea") -> Image.Image:
    """An RGB `PIL.Image` of one of `SAMPLE_PHOTOS` (read from the installed package, no download)."""
    if name not in SAMPLE_PHOTOS:
        raise ValueError(f"name must be one of {SAMPLE_PHOTOS}, got {name!r}")
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
            return Image.open(handle).convert("RGB")
    try:
        import skimage.data
    except ImportError as exc:  # pragma: no cover - scikit-image is a dependency of the course
        raise ImportError(f"sample photo {name!r} needs scikit-image (pip install scikit-image)") from exc
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
