"""Checks of the given multi-crop pipeline (`dino_course/data/multicrop_pipeline.py`, reference crop sampling).

Random behaviour is checked by statistics over many seeded samples, detected from the pixels
where possible. Firing-rate tolerance: a rate estimated from n independent views lies within
4.5 standard errors sqrt(p (1 - p) / n) of p except with probability ~7e-6.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import solutions.multicrop as lesson
from dino_course.data import multicrop_pipeline as ref
from dino_course.data import normalization, photometric

SIGMAS = 4.5


def rate_ok(hits: int, n: int, p: float) -> bool:
    if p in (0.0, 1.0):
        return hits == n * p
    return abs(hits / n - p) <= SIGMAS * math.sqrt(p * (1 - p) / n)


def photo(height: int = 60, width: int = 80, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


# ----------------------------------------------------------------------------- shapes, inputs, errors


@pytest.mark.parametrize("preset", sorted(ref.MULTICROP_PRESETS))
def test_presets_give_the_promised_views(preset):
    sizes = ref.MULTICROP_PRESETS[preset]
    views = ref.MultiCropAugmentation.from_preset(preset)(photo())
    assert len(views) == 2 + sizes["n_local_crops"]
    g, loc = sizes["global_size"], sizes["local_size"]
    assert [tuple(v.shape) for v in views] == [(3, g, g)] * 2 + [(3, loc, loc)] * sizes["n_local_crops"]
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in views)


def test_paper_defaults():
    augment = ref.MultiCropAugmentation()
    assert (augment.global_size, augment.local_size, augment.n_local_crops) == (224, 96, 8)
    g1, g2, local = augment.recipes[0], augment.recipes[1], augment.recipes[2]
    assert g1.scale == g2.scale == (0.4, 1.0) and local.scale == (0.05, 0.4)
    assert (g1.blur_p, g2.blur_p, local.blur_p) == (1.0, 0.1, 0.5)
    assert (g1.solarize_p, g2.solarize_p, local.solarize_p) == (0.0, 0.2, 0.0)
    assert all(r.jitter_p == 0.8 and r.grayscale_p == 0.2 and r.flip_p == 0.5 for r in augment.recipes)
    assert ref.JITTER_STRENGTH == {"brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1}
    assert ref.MultiCropAugmentation.from_preset("paper", n_local_crops=2).n_local_crops == 2


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "1", "CMYK", "I"])
def test_any_pil_mode(mode):
    views = ref.MultiCropAugmentation.from_preset("cpu-32")(photo().convert(mode))
    assert [tuple(v.shape) for v in views[:3]] == [(3, 32, 32), (3, 32, 32), (3, 16, 16)]


@pytest.mark.parametrize("shape", [(3, 40, 50), (1, 40, 50), (3, 5, 7), (3, 1, 1), (3, 300, 20)])
def test_uint8_tensors_and_images_smaller_than_a_crop(shape):
    image = torch.randint(0, 256, shape, dtype=torch.uint8)
    views = ref.MultiCropAugmentation(global_size=64, local_size=28, n_local_crops=3)(image)
    assert [tuple(v.shape) for v in views] == [(3, 64, 64)] * 2 + [(3, 28, 28)] * 3
    assert all(torch.isfinite(v).all() for v in views)


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(global_size=0), ValueError, "global_size"),
    (dict(local_size=-3), ValueError, "local_size"),
    (dict(global_size=32.5), ValueError, "global_size"),
    (dict(n_local_crops=-1), ValueError, "n_local_crops"),
    (dict(global_scale=(0.0, 1.0)), ValueError, "global_scale"),
    (dict(global_scale=(0.5, 1.2)), ValueError, "global_scale"),
    (dict(local_scale=(0.4, 0.05)), ValueError, "min <= max"),
    (dict(local_scale=0.3), TypeError, "local_scale"),
    (dict(augmentations=("flip", "mixup")), ValueError, "mixup"),
    (dict(augmentations="flip"), TypeError, "augmentations"),
])
def test_invalid_configs_are_named(kwargs, error, words):
    with pytest.raises(error, match=words):
        ref.MultiCropAugmentation(**kwargs)


def test_invalid_images_and_presets_are_named():
    augment = ref.MultiCropAugmentation.from_preset("cpu-32")
    with pytest.raises(TypeError, match="uint8"):
        augment(torch.rand(3, 20, 20))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        augment(torch.zeros(20, 20, 3, dtype=torch.uint8))
    with pytest.raises(TypeError, match="PIL"):
        augment(np.zeros((20, 20, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="cpu-32"):
        ref.MultiCropAugmentation.from_preset("tiny")


# ----------------------------------------------------------------------------- normalisation


def test_normalisation_of_a_constant_image_is_exact():
    colour = (200, 30, 90)
    augment = ref.MultiCropAugmentation.from_preset("cpu-32", augmentations=())
    for view in augment(Image.new("RGB", (50, 40), colour)):
        expected = (torch.tensor(colour) / 255.0 - torch.tensor(normalization.IMAGENET_MEAN)) / torch.tensor(normalization.IMAGENET_STD)
        torch.testing.assert_close(view.mean(dim=(1, 2)), expected, rtol=0, atol=1e-5)  # float32 rounding
        torch.testing.assert_close(normalization.denormalize(view), torch.tensor(colour).view(3, 1, 1).expand_as(view) / 255.0, rtol=0, atol=1e-6)


def test_normalised_statistics_of_a_photo():
    skimage_data = pytest.importorskip("skimage.data")
    image = Image.fromarray(skimage_data.chelsea())
    views = torch.stack(ref.MultiCropAugmentation.from_preset("cpu-32", n_local_crops=0)(image) * 1)
    # a natural photo normalised with ImageNet statistics: per-channel means within ~1 of 0, std of order 1
    assert views.mean(dim=(0, 2, 3)).abs().max() < 1.5
    assert 0.2 < views.std() < 2.0


# ----------------------------------------------------------------------------- firing rates (from pixels)


def many_samples(augment, image, n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [augment.sample(image, generator=generator) for _ in range(n)]


def test_flip_rate_from_a_coordinate_image():
    columns = torch.arange(120).view(1, 1, -1).expand(3, 100, 120).to(torch.uint8)
    augment = ref.MultiCropAugmentation(global_size=32, local_size=16, n_local_crops=6, augmentations=("flip",), normalize=False)
    samples = many_samples(augment, columns, 300)
    flipped = [bool(v[0, :, -1].mean() < v[0, :, 0].mean()) for s in samples for v in s.views]  # red falls left to right
    recorded = [f for s in samples for f in s.flipped]
    assert flipped == recorded
    assert rate_ok(sum(flipped), len(flipped), 0.5)


def test_grayscale_rate_from_pixels():
    augment = ref.MultiCropAugmentation(global_size=32, local_size=16, n_local_crops=6, augmentations=("grayscale",), normalize=False)
    samples = many_samples(augment, Image.new("RGB", (60, 50), (220, 40, 90)), 300)
    grey = [bool((v[0] - v[1]).abs().max() < 1e-6 and (v[1] - v[2]).abs().max() < 1e-6) for s in samples for v in s.views]
    assert grey == [g for s in samples for g in s.grayscaled]
    assert rate_ok(sum(grey), len(grey), 0.2)


def test_colour_jitter_rate_from_pixels():
    colour = torch.tensor((150, 90, 60)) / 255.0
    augment = ref.MultiCropAugmentation(global_size=16, local_size=8, n_local_crops=6, augmentations=("color_jitter",), normalize=False)
    samples = many_samples(augment, Image.new("RGB", (40, 40), (150, 90, 60)), 300)
    # all four factors equal to their identity has probability 0: a jittered view changes colour
    changed = [bool((v.mean(dim=(1, 2)) - colour).abs().max() > 1e-4) for s in samples for v in s.views]
    assert changed == [j for s in samples for j in s.jittered]
    assert rate_ok(sum(changed), len(changed), 0.8)


def test_solarisation_only_on_the_second_global_view():
    augment = ref.MultiCropAugmentation(global_size=16, local_size=8, n_local_crops=6, augmentations=("solarize",), normalize=False)
    samples = many_samples(augment, Image.new("RGB", (40, 40), (230, 200, 180)), 800)
    solarised = [[bool(v.mean() < 0.5) for v in s.views] for s in samples]  # a bright image turns dark
    assert not any(views[0] for views in solarised), "solarisation touched the first global view"
    assert not any(any(views[2:]) for views in solarised), "solarisation touched a local view"
    second = sum(views[1] for views in solarised)
    assert rate_ok(second, len(samples), 0.2)
    assert solarised == [s.solarized for s in samples]


def test_blur_rates_per_view_and_that_records_match_pixels():
    rng = np.random.default_rng(1)
    noise = torch.from_numpy(rng.integers(0, 256, (3, 24, 24), dtype=np.uint8))
    # global views of the whole image at its own size (scale 1): an unblurred view is the image itself
    augment = ref.MultiCropAugmentation(global_size=24, local_size=24, n_local_crops=6, global_scale=(1.0, 1.0),
                                        local_scale=(1.0, 1.0), augmentations=("blur",), normalize=False)
    samples = many_samples(augment, noise, 250)
    image = noise.float() / 255.0
    for s in samples:
        for view, sigma in zip(s.views, s.blur_sigma):
            if sigma is None:
                assert torch.allclose(view, image, atol=1e-6), "an unblurred view differs from the image"
            else:
                assert 0.1 <= sigma <= 2.0
                if sigma >= 0.5:
                    assert view.std() < 0.9 * image.std(), "a view recorded as blurred is not smoother"
    blurred = [[sigma is not None for sigma in s.blur_sigma] for s in samples]
    assert all(b[0] for b in blurred), "the first global view must always be blurred (p = 1.0)"
    assert rate_ok(sum(b[1] for b in blurred), len(samples), 0.1)
    locals_ = [x for b in blurred for x in b[2:]]
    assert rate_ok(sum(locals_), len(locals_), 0.5)
    sigmas = [sigma for s in samples for sigma in s.blur_sigma if sigma is not None]
    assert abs(np.mean(sigmas) - 1.05) <= SIGMAS * (1.9 / math.sqrt(12)) / math.sqrt(len(sigmas))  # σ ~ U(0.1, 2)


def test_switched_off_augmentations_never_fire():
    augment = ref.MultiCropAugmentation.from_preset("cpu-32", augmentations=())
    samples = many_samples(augment, photo(), 50)
    assert not any(any(s.flipped) or any(s.jittered) or any(s.grayscaled) or any(s.solarized) for s in samples)
    assert all(sigma is None for s in samples for sigma in s.blur_sigma)


# ----------------------------------------------------------------------------- photometric ops vs torchvision


def test_batched_photometric_ops_match_torchvision():
    tf = pytest.importorskip("torchvision.transforms.v2.functional")
    torch.manual_seed(0)
    crops = torch.randint(0, 256, (6, 3, 12, 12)).float() / 255.0  # uint8 levels: many exact channel ties
    hue = torch.linspace(-0.5, 0.5, 6)
    factor = torch.linspace(0.6, 1.4, 6)
    for ours, theirs, f in [
        (photometric.adjust_hue, tf.adjust_hue, hue),
        (photometric.adjust_brightness, tf.adjust_brightness, factor),
        (photometric.adjust_contrast, tf.adjust_contrast, factor),
        (photometric.adjust_saturation, tf.adjust_saturation, factor),
    ]:
        expected = torch.stack([theirs(crops[i], float(f[i])) for i in range(6)])
        # different but equivalent float32 formulas; torchvision's contrast/saturation grey uses
        # its own rounding of the luma weights, hence 1e-4
        torch.testing.assert_close(ours(crops, f), expected, rtol=0, atol=1e-4)
    sigma = torch.tensor([0.3, 0.8, 1.2, 2.0, 0.1, 1.6])
    blurred = photometric.gaussian_blur(crops, sigma)
    for i in range(6):  # both kernels truncate at 6 px (3σ of σ = 2); compare interior pixels only, since
        # the edges differ (replicate padding here, reflect in torchvision)
        expected = tf.gaussian_blur(crops[i], [13, 13], [float(sigma[i])] * 2)
        torch.testing.assert_close(blurred[i, :, 6:-6, 6:-6], expected[:, 6:-6, 6:-6], rtol=0, atol=1e-5)


def test_dataloader_with_collation():
    class Photos(torch.utils.data.Dataset):
        def __init__(self):
            self.augment = ref.MultiCropAugmentation.from_preset("cpu-32")

        def __len__(self):
            return 4

        def __getitem__(self, index):
            return self.augment(photo(seed=index)), index

    views, labels = next(iter(torch.utils.data.DataLoader(Photos(), batch_size=4, collate_fn=lesson.collate_multicrop)))
    assert [tuple(v.shape) for v in views] == [(4, 3, 32, 32)] * 2 + [(4, 3, 16, 16)] * 6
    assert labels.tolist() == [0, 1, 2, 3]
    assert lesson.group_by_resolution(views) == [(0, 2), (2, 8)]


def test_batched_colour_jitter_is_torchvision_ops_in_each_crops_own_order():
    tf = pytest.importorskip("torchvision.transforms.v2.functional")
    generator = torch.Generator().manual_seed(3)
    n = 24
    crops = torch.randint(0, 256, (n, 3, 10, 10), generator=generator).float() / 255.0
    factors = {
        "brightness": 0.6 + 0.8 * torch.rand(n, generator=generator),
        "contrast": 0.6 + 0.8 * torch.rand(n, generator=generator),
        "saturation": 0.8 + 0.4 * torch.rand(n, generator=generator),
        "hue": -0.1 + 0.2 * torch.rand(n, generator=generator),
    }
    order = torch.argsort(torch.rand(n, 4, generator=generator), dim=1)
    apply = torch.rand(n, generator=generator) < 0.8
    ours = photometric.color_jitter(crops, factors, order, apply)
    ops = [tf.adjust_brightness, tf.adjust_contrast, tf.adjust_saturation, tf.adjust_hue]
    names = ["brightness", "contrast", "saturation", "hue"]
    for i in range(n):
        expected = crops[i]
        if apply[i]:
            for k in order[i].tolist():
                expected = ops[k](expected, float(factors[names[k]][i]))
        # float32, four chained operations each within 1e-4 of torchvision (see above)
        torch.testing.assert_close(ours[i], expected, rtol=0, atol=3e-4)


def test_blur_by_matrix_products_equals_blur_by_convolution(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    crops = torch.rand(4, 3, 20, 28, generator=generator)
    sigma = torch.tensor([0.2, 0.9, 2.0, 1.4])
    by_matrices = photometric.gaussian_blur(crops, sigma)
    monkeypatch.setattr(photometric, "MATMUL_BLUR_MAX_SIZE", 0)
    by_convolution = photometric.gaussian_blur(crops, sigma)
    torch.testing.assert_close(by_matrices, by_convolution, rtol=0, atol=1e-6)  # same sums, other order


def test_hue_rotation_at_ties_and_grey_matches_torchvision():
    tf = pytest.importorskip("torchvision.transforms.v2.functional")
    # every kind of tie for the maximum and the minimum (R=G, R=B, G=B, all equal), at uint8 levels
    pixels = torch.tensor([
        [200, 200, 50], [200, 50, 200], [50, 200, 200], [90, 90, 90], [0, 0, 0], [255, 255, 255],
        [200, 50, 50], [50, 200, 50], [50, 50, 200], [255, 0, 0], [0, 255, 255], [10, 11, 10],
    ], dtype=torch.float32).T.reshape(1, 3, 3, 4) / 255.0
    for factor in (-0.5, -0.3, -0.1, 0.0, 0.05, 0.1, 0.25, 0.5):
        expected = tf.adjust_hue(pixels[0], factor)
        torch.testing.assert_close(photometric.adjust_hue(pixels, torch.tensor([factor]))[0], expected, rtol=0, atol=1e-4)


def test_crops_of_several_sizes_on_one_canvas_are_augmented_as_if_alone():
    # small presets augment every view of an image on one canvas (locals in the top-left corner
    # of a global-size slot): colour jitter and blur must see only each crop's own pixels
    generator = torch.Generator().manual_seed(5)
    sizes = [12, 12, 7, 7, 7]
    crops = [torch.randint(0, 256, (3, s, s), generator=generator).float() / 255.0 for s in sizes]
    canvas = torch.zeros(len(sizes), 3, 12, 12)
    for i, crop in enumerate(crops):
        canvas[i, :, : sizes[i], : sizes[i]] = crop
    n = len(sizes)
    values = {
        "brightness": (0.6 + 0.8 * torch.rand(n, generator=generator)).tolist(),
        "contrast": (0.6 + 0.8 * torch.rand(n, generator=generator)).tolist(),
        "saturation": (0.8 + 0.4 * torch.rand(n, generator=generator)).tolist(),
        "hue": (-0.1 + 0.2 * torch.rand(n, generator=generator)).tolist(),
    }
    order = [[1, 0, 3, 2], [3, 2, 1, 0], [0, 1, 2, 3], [2, 3, 0, 1], [1, 3, 0, 2]]  # contrast before and after hue
    apply = [True, True, True, False, True]
    jittered = photometric.color_jitter_from_lists(canvas, values, order, apply, sizes)
    sigma = torch.tensor([1.7, 2.0, 1.8, 1.9, 1.75])  # all truncated at the same radius, ceil(3σ) = 6
    blurred = photometric.gaussian_blur(jittered, sigma, sizes=sizes)
    for i, crop in enumerate(crops):
        alone = photometric.color_jitter_from_lists(
            crop[None], {k: v[i : i + 1] for k, v in values.items()}, order[i : i + 1], apply[i : i + 1])
        s = sizes[i]
        torch.testing.assert_close(jittered[i, :, :s, :s], alone[0], rtol=0, atol=1e-6)  # same operations, float rounding
        torch.testing.assert_close(blurred[i, :, :s, :s], photometric.gaussian_blur(alone, sigma[i : i + 1])[0], rtol=0, atol=1e-6)


def test_colour_jitter_results_do_not_depend_on_buffer_reuse():
    # `overwrite` and `out=` only change which memory is written, never the values
    generator = torch.Generator().manual_seed(7)
    n = 10
    crops = torch.rand(n, 3, 9, 9, generator=generator)
    values = {
        "brightness": (0.6 + 0.8 * torch.rand(n, generator=generator)).tolist(),
        "contrast": (0.6 + 0.8 * torch.rand(n, generator=generator)).tolist(),
        "saturation": (0.8 + 0.4 * torch.rand(n, generator=generator)).tolist(),
        "hue": (-0.1 + 0.2 * torch.rand(n, generator=generator)).tolist(),
    }
    order = torch.argsort(torch.rand(n, 4, generator=generator), dim=1).tolist()
    for apply in ([True] * n, [i % 3 != 0 for i in range(n)], [False] * n):
        kept = crops.clone()
        expected = photometric.color_jitter_from_lists(crops, values, order, apply)
        assert torch.equal(crops, kept), "color_jitter modified its input"
        torch.testing.assert_close(photometric.color_jitter_from_lists(crops.clone(), values, order, apply, overwrite=True),
                                   expected, rtol=0, atol=0)
    hue = torch.linspace(-0.5, 0.5, n)
    torch.testing.assert_close(photometric.adjust_hue(crops, hue, out=torch.empty_like(crops)), photometric.adjust_hue(crops, hue),
                               rtol=0, atol=0)


def test_views_are_not_overwritten_by_later_calls():
    # the pipeline keeps a scratch buffer between calls: views it returned must stay as they were
    augment = ref.MultiCropAugmentation(global_size=72, local_size=20, n_local_crops=4)
    generator = torch.Generator().manual_seed(0)
    views, kept = [], []
    for seed in range(12):
        views.append(augment.sample(photo(90, 120, seed=seed), generator=generator).views)
        kept.append([v.clone() for v in views[-1]])
    assert all(torch.equal(v, k) for vs, ks in zip(views, kept) for v, k in zip(vs, ks))


# ----------------------------------------------------------------------------- several images at once (MultiCropDataset)
# `sample_batch` augments the crops of several images as one batch; everything above must still
# hold image by image. Batches of 16 (the benchmark's DataLoader batch) and of 3 (one canvas per
# batch at the small presets, below `CANVAS_MIN_IMAGES_SPLIT`).


def many_batched_samples(augment, images, n_batches, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [s for _ in range(n_batches) for s in augment.sample_batch(images, generator=generator)]


@pytest.mark.parametrize("preset", sorted(ref.MULTICROP_PRESETS))
@pytest.mark.parametrize("n_images", [1, 3, 5])  # 5: split into batches per size / 2+2+1 images at the paper's sizes
def test_getitems_gives_one_view_list_per_index(preset, n_images):
    sizes = ref.MULTICROP_PRESETS[preset]
    g, loc = sizes["global_size"], sizes["local_size"]
    dataset = ref.MultiCropDataset([photo(seed=i) for i in range(7)], ref.MultiCropAugmentation.from_preset(preset))
    indices = [6, 0, 3, 1, 2][:n_images]
    items = dataset.__getitems__(indices)
    assert isinstance(items, list) and len(items) == n_images
    for views in items:
        assert [tuple(v.shape) for v in views] == [(3, g, g)] * 2 + [(3, loc, loc)] * sizes["n_local_crops"]
        assert all(v.dtype == torch.float32 and v.is_contiguous() and torch.isfinite(v).all() for v in views)
    assert [tuple(v.shape) for v in dataset[4]] == [tuple(v.shape) for v in items[0]]
    assert len(dataset) == 7 and dataset.__getitems__([]) == []


def test_each_image_of_a_batch_gets_views_of_itself_in_order():
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (120, 120, 120), (250, 250, 0)]
    for preset in ("cpu-32", "paper"):
        augment = ref.MultiCropAugmentation.from_preset(preset, augmentations=(), normalize=False)
        for n_images in (2, 5):
            images = [Image.new("RGB", (40 + 7 * i, 30 + 5 * i), colours[i]) for i in range(n_images)]
            for sample, colour in zip(augment.sample_batch(images), colours):
                expected = torch.tensor(colour, dtype=torch.float32).view(3, 1, 1) / 255.0
                for view in sample.views:
                    torch.testing.assert_close(view, expected.expand_as(view), rtol=0, atol=1e-6)
            assert [s.image_size for s in augment.sample_batch(images)] == [(30 + 5 * i, 40 + 7 * i) for i in range(n_images)]


def test_one_image_batch_is_exactly_sample():
    for preset in ("cpu-32", "paper"):
        augment = ref.MultiCropAugmentation.from_preset(preset)
        alone = augment.sample(photo(90, 70), generator=torch.Generator().manual_seed(5))
        batched = augment.sample_batch([photo(90, 70)], generator=torch.Generator().manual_seed(5))[0]
        assert alone.boxes == batched.boxes and alone.blur_sigma == batched.blur_sigma
        assert all(torch.equal(a, b) for a, b in zip(alone.views, batched.views))


def test_batched_normalisation_of_constant_images_is_exact():
    colours = [(200, 30, 90), (10, 240, 128), (0, 0, 0), (255, 255, 255)]
    augment = ref.MultiCropAugmentation.from_preset("cpu-32", augmentations=())
    dataset = ref.MultiCropDataset([Image.new("RGB", (50, 40), c) for c in colours], augment)
    for views, colour in zip(dataset.__getitems__([0, 1, 2, 3]), colours):
        expected = (torch.tensor(colour) / 255.0 - torch.tensor(normalization.IMAGENET_MEAN)) / torch.tensor(normalization.IMAGENET_STD)
        for view in views:
            torch.testing.assert_close(view.mean(dim=(1, 2)), expected, rtol=0, atol=1e-5)
            torch.testing.assert_close(view.std(dim=(1, 2)), torch.zeros(3), rtol=0, atol=1e-5)


def test_batched_normalised_statistics_of_photos():
    skimage_data = pytest.importorskip("skimage.data")
    images = [Image.fromarray(skimage_data.chelsea()), Image.fromarray(skimage_data.astronaut()), Image.fromarray(skimage_data.coffee())] * 2
    items = ref.MultiCropAugmentation.from_preset("cpu-32").augment_batch(images)
    for size in (32, 16):
        views = torch.stack([v for views in items for v in views if v.shape[-1] == size])
        assert views.mean(dim=(0, 2, 3)).abs().max() < 1.5
        assert 0.2 < views.std() < 2.0


@pytest.mark.parametrize("batch", [3, 16])
def test_batched_flip_grayscale_and_jitter_rates_from_pixels(batch):
    n_batches = 320 // batch
    columns = torch.arange(120).view(1, 1, -1).expand(3, 100, 120).to(torch.uint8)
    augment = ref.MultiCropAugmentation(global_size=32, local_size=16, n_local_crops=6, augmentations=("flip",), normalize=False)
    samples = many_batched_samples(augment, [columns] * batch, n_batches)
    flipped = [bool(v[0, :, -1].mean() < v[0, :, 0].mean()) for s in samples for v in s.views]
    assert flipped == [f for s in samples for f in s.flipped]
    assert rate_ok(sum(flipped), len(flipped), 0.5)

    augment = ref.MultiCropAugmentation(global_size=32, local_size=16, n_local_crops=6, augmentations=("grayscale",), normalize=False)
    samples = many_batched_samples(augment, [Image.new("RGB", (60, 50), (220, 40, 90))] * batch, n_batches)
    grey = [bool((v[0] - v[1]).abs().max() < 1e-6 and (v[1] - v[2]).abs().max() < 1e-6) for s in samples for v in s.views]
    assert grey == [g for s in samples for g in s.grayscaled]
    assert rate_ok(sum(grey), len(grey), 0.2)

    colour = torch.tensor((150, 90, 60)) / 255.0
    augment = ref.MultiCropAugmentation(global_size=16, local_size=8, n_local_crops=6, augmentations=("color_jitter",), normalize=False)
    samples = many_batched_samples(augment, [Image.new("RGB", (40, 40), (150, 90, 60))] * batch, n_batches)
    changed = [bool((v.mean(dim=(1, 2)) - colour).abs().max() > 1e-4) for s in samples for v in s.views]
    assert changed == [j for s in samples for j in s.jittered]
    assert rate_ok(sum(changed), len(changed), 0.8)


@pytest.mark.parametrize("batch", [3, 16])
def test_batched_solarisation_only_on_the_second_global_view(batch):
    augment = ref.MultiCropAugmentation(global_size=16, local_size=8, n_local_crops=6, augmentations=("solarize",), normalize=False)
    samples = many_batched_samples(augment, [Image.new("RGB", (40, 40), (230, 200, 180))] * batch, 800 // batch)
    solarised = [[bool(v.mean() < 0.5) for v in s.views] for s in samples]
    assert not any(views[0] for views in solarised), "solarisation touched the first global view"
    assert not any(any(views[2:]) for views in solarised), "solarisation touched a local view"
    assert rate_ok(sum(views[1] for views in solarised), len(samples), 0.2)
    assert solarised == [s.solarized for s in samples]


@pytest.mark.parametrize("batch", [3, 16])
def test_batched_blur_rates_per_view_and_that_records_match_pixels(batch):
    rng = np.random.default_rng(1)
    noise = torch.from_numpy(rng.integers(0, 256, (3, 24, 24), dtype=np.uint8))
    augment = ref.MultiCropAugmentation(global_size=24, local_size=24, n_local_crops=6, global_scale=(1.0, 1.0),
                                        local_scale=(1.0, 1.0), augmentations=("blur",), normalize=False)
    samples = many_batched_samples(augment, [noise] * batch, 256 // batch)
    image = noise.float() / 255.0
    for s in samples:
        for view, sigma in zip(s.views, s.blur_sigma):
            if sigma is None:
                assert torch.allclose(view, image, atol=1e-6), "an unblurred view differs from the image"
            elif sigma >= 0.5:
                assert view.std() < 0.9 * image.std(), "a view recorded as blurred is not smoother"
    blurred = [[sigma is not None for sigma in s.blur_sigma] for s in samples]
    assert all(b[0] for b in blurred), "the first global view must always be blurred (p = 1.0)"
    assert rate_ok(sum(b[1] for b in blurred), len(samples), 0.1)
    locals_ = [x for b in blurred for x in b[2:]]
    assert rate_ok(sum(locals_), len(locals_), 0.5)


def test_batched_crops_of_small_views_match_a_blur_free_single_image_path():
    """Crop, resize, flip and colour ops of a batch give, per image, what one image alone gives
    with the same boxes and parameters: checked with jitter and blur off (grayscale and flip on),
    where no parameter depends on the other crops of the batch."""
    augment = ref.MultiCropAugmentation.from_preset("cpu-32", augmentations=("flip", "grayscale"))
    images = [photo(70 + i, 90 - i, seed=i) for i in range(5)]
    for sample, image in zip(augment.sample_batch(images, generator=torch.Generator().manual_seed(2)), images):
        pixels = ref.image_to_uint8_tensor(image)
        for view, (top, left, h, w), flip, grey, recipe in zip(sample.views, sample.boxes, sample.flipped, sample.grayscaled, sample.recipes):
            crop = torch.nn.functional.interpolate(pixels[None, :, top : top + h, left : left + w], size=(recipe.size,) * 2,
                                                   mode="bicubic", antialias=True)[0].float() / 255.0
            crop = crop.flip(-1) if flip else crop
            crop = photometric.to_grayscale(crop[None])[0].expand(3, -1, -1) if grey else crop
            expected = (crop - torch.tensor(normalization.IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(normalization.IMAGENET_STD).view(3, 1, 1)
            torch.testing.assert_close(view, expected, rtol=0, atol=1e-5)


class LabelledPhotos(torch.utils.data.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, index):
        return photo(50 + index, 60, seed=index), index


@pytest.mark.parametrize("workers", [0, 2])
def test_multicrop_dataset_in_a_dataloader(workers):
    dataset = ref.MultiCropDataset(LabelledPhotos(), ref.MultiCropAugmentation.from_preset("cpu-32"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=workers, collate_fn=lesson.collate_multicrop)
    batches = list(loader)
    assert [labels.tolist() for _, labels in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    for views, labels in batches:
        assert [tuple(v.shape) for v in views] == [(len(labels), 3, 32, 32)] * 2 + [(len(labels), 3, 16, 16)] * 6
        assert all(torch.isfinite(v).all() for v in views)
    unlabelled = ref.MultiCropDataset([photo(seed=i) for i in range(5)], ref.MultiCropAugmentation.from_preset("cpu-32"))
    views = next(iter(torch.utils.data.DataLoader(unlabelled, batch_size=5, num_workers=workers, collate_fn=lesson.collate_multicrop)))
    assert [tuple(v.shape) for v in views] == [(5, 3, 32, 32)] * 2 + [(5, 3, 16, 16)] * 6


def test_multicrop_dataset_and_sample_batch_name_bad_arguments():
    augment = ref.MultiCropAugmentation.from_preset("cpu-32")
    with pytest.raises(TypeError, match="images"):
        ref.MultiCropDataset(5, augment)
    with pytest.raises(TypeError, match="augment"):
        ref.MultiCropDataset([photo()], lambda image: [image])
    with pytest.raises(ValueError, match="images"):
        augment.sample_batch([])
    with pytest.raises(ValueError, match="images"):
        augment.sample_batch(photo())
    with pytest.raises(TypeError, match="image must be"):
        ref.MultiCropDataset([photo(), "not an image"], augment).__getitems__([0, 1])


def test_the_pipelines_docstring_examples_run():
    import doctest

    result = doctest.testmod(ref, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0
