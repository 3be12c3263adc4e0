"""Mutations of Lesson 3.2 (`solutions/multicrop.py`); see `../mutation_harness.py`."""

from mutation_harness import Alternative, Bug

ASPECT = "aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u_ratio)"
SIDES = ("crop_width = round(math.sqrt(target_area * aspect))\n"
         "        crop_height = round(math.sqrt(target_area / aspect))")
TOP = "top = int(torch.randint(0, height - crop_height + 1, (1,), generator=generator))"
LEFT = "left = int(torch.randint(0, width - crop_width + 1, (1,), generator=generator))"
FITS = "if 0 < crop_width <= width and 0 < crop_height <= height:"
CLIP = """    if image_ratio < ratio[0]:
        crop_width, crop_height = width, round(width / ratio[0])
    elif image_ratio > ratio[1]:
        crop_height, crop_width = height, round(height * ratio[1])
    else:
        crop_height, crop_width = height, width
"""
FALLBACK_RETURN = "return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width"

GROUP_IF = "if index == len(views) or views[index].shape[-2:] != views[start].shape[-2:]:"
GROUP_APPEND = "groups.append((start, index))"

STACK = "views = [torch.stack(same_view) for same_view in zip(*crops_per_image)]  # V tensors (B, C, H_v, W_v)"
LABELS = "labels = torch.tensor([int(label) for _, label in items], dtype=torch.int64)  # (B,)"

EVERY_VIEW = "every_view = dict(flip_p=flip_p, jitter_p=jitter_p, grayscale_p=0.2)"
GLOBAL_1 = 'global_1 = ViewRecipe("global", global_size, global_scale, blur_p=1.0, solarize_p=0.0, **every_view)'
GLOBAL_2 = 'global_2 = ViewRecipe("global", global_size, global_scale, blur_p=0.1, solarize_p=solarize_p, **every_view)'
LOCAL = 'local = ViewRecipe("local", local_size, local_scale, blur_p=0.5, solarize_p=0.0, **every_view)'
RECIPES_RETURN = "return [global_1, global_2] + [local] * n_local_crops"

MUTATIONS = [
    # ------------------------------------------------------------------ view_recipes
    # (first: the train job solarises, so this one changes what it trains on)
    Bug("view_recipes", "solarisation on both global views", GLOBAL_1,
        GLOBAL_1.replace("solarize_p=0.0", "solarize_p=solarize_p"), r"only global view 2 is solarised"),
    Bug("view_recipes", "blur of the two global views swapped", GLOBAL_1 + "\n    " + GLOBAL_2,
        GLOBAL_1.replace("blur_p=1.0", "blur_p=0.1") + "\n    " + GLOBAL_2.replace("blur_p=0.1", "blur_p=1.0"),
        r"global view 1 is the one always blurred .* swapped"),
    Bug("view_recipes", "local views at the global size", LOCAL, LOCAL.replace("local_size", "global_size"),
        r"local views are local_size = \d+ px"),
    Bug("view_recipes", "local views with the global scale", LOCAL, LOCAL.replace("local_scale", "global_scale"),
        r"local views crop local_scale"),
    Bug("view_recipes", "n_local_crops taken as the number of all views", RECIPES_RETURN,
        "return [global_1, global_2] + [local] * (n_local_crops - 2)", r"n_local_crops is the number of \*local\* views"),
    Bug("view_recipes", "the global views left out", RECIPES_RETURN, "return [local] * n_local_crops",
        r"the 2 global views are missing"),
    Bug("view_recipes", "the paper's flip probability instead of the argument", EVERY_VIEW,
        "every_view = dict(flip_p=0.5, jitter_p=jitter_p, grayscale_p=0.2)", r"use the flip_p argument"),
    Bug("view_recipes", "the paper's jitter probability instead of the argument", EVERY_VIEW,
        "every_view = dict(flip_p=flip_p, jitter_p=0.8, grayscale_p=0.2)", r"use the jitter_p argument"),
    Bug("view_recipes", "the paper's solarisation probability instead of the argument", GLOBAL_2,
        GLOBAL_2.replace("solarize_p=solarize_p", "solarize_p=0.2"), r"solarised with the solarize_p argument"),
    Bug("view_recipes", "no random grayscale", EVERY_VIEW,
        "every_view = dict(flip_p=flip_p, jitter_p=jitter_p, grayscale_p=0.0)", r"turned grey with p = 0\.2"),
    Bug("view_recipes", "local views blurred like global view 2", LOCAL, LOCAL.replace("blur_p=0.5", "blur_p=0.1"),
        r"local views are blurred with p = 0\.5"),
    Bug("view_recipes", "local views labelled global", LOCAL, LOCAL.replace('"local"', '"global"'),
        r"2 \"global\" then the \"local\" ones"),
    Bug("view_recipes", "the scale kept as a list, shared by the views", EVERY_VIEW,
        EVERY_VIEW + "\n    global_scale, local_scale = list(global_scale), list(local_scale)",
        r"scale must be a \(min, max\) tuple"),
    Bug("view_recipes", "returns a tuple", RECIPES_RETURN, "return (global_1, global_2) + (local,) * n_local_crops",
        r"must return a list of ViewRecipe"),
    Bug("view_recipes", "recipes as plain dicts", "", """
        every_view = dict(flip_p=flip_p, jitter_p=jitter_p, grayscale_p=0.2)
        global_1 = dict(kind="global", size=global_size, scale=global_scale, blur_p=1.0, solarize_p=0.0, **every_view)
        global_2 = dict(kind="global", size=global_size, scale=global_scale, blur_p=0.1, solarize_p=solarize_p, **every_view)
        local = dict(kind="local", size=local_size, scale=local_scale, blur_p=0.5, solarize_p=0.0, **every_view)
        return [global_1, global_2] + [local] * n_local_crops
        """, r"must be a ViewRecipe"),
    Bug("view_recipes", "one list memoised and handed out to every caller", "", """
        cache = view_recipes.__dict__.setdefault("made", {})
        key = (global_size, local_size, n_local_crops, global_scale, local_scale, flip_p, jitter_p, solarize_p)
        if key not in cache:
            every_view = dict(flip_p=flip_p, jitter_p=jitter_p, grayscale_p=0.2)
            global_1 = ViewRecipe("global", global_size, global_scale, blur_p=1.0, solarize_p=0.0, **every_view)
            global_2 = ViewRecipe("global", global_size, global_scale, blur_p=0.1, solarize_p=solarize_p, **every_view)
            local = ViewRecipe("local", local_size, local_scale, blur_p=0.5, solarize_p=0.0, **every_view)
            cache[key] = [global_1, global_2] + [local] * n_local_crops
        return cache[key]
        """, r"two equal, separate lists|a new list on each call"),
    Alternative("view_recipes", "a base recipe changed with dataclasses.replace, in a loop", "", """
        import dataclasses

        first = ViewRecipe(kind="global", size=global_size, scale=global_scale, flip_p=flip_p, jitter_p=jitter_p,
                           grayscale_p=0.2, blur_p=1.0, solarize_p=0.0)
        recipes = [first, dataclasses.replace(first, blur_p=0.1, solarize_p=solarize_p)]
        for _ in range(n_local_crops):
            recipes.append(dataclasses.replace(first, kind="local", size=local_size, scale=local_scale, blur_p=0.5))
        return recipes
        """),
    Alternative("view_recipes", "a table of (kind, blur, solarise) and a list comprehension", "", """
        table = [("global", 1.0, 0.0), ("global", 0.1, solarize_p)] + [("local", 0.5, 0.0)] * n_local_crops
        return [
            ViewRecipe(
                kind=kind,
                size=global_size if kind == "global" else local_size,
                scale=global_scale if kind == "global" else local_scale,
                flip_p=flip_p, jitter_p=jitter_p, grayscale_p=0.2, blur_p=blur, solarize_p=solarize,
            )
            for kind, blur, solarize in table
        ]
        """),
    Alternative("view_recipes", "ViewRecipe's defaults for the paper's values, a fresh recipe per local view", "", """
        recipes = [
            ViewRecipe("global", global_size, tuple(global_scale), flip_p=flip_p, jitter_p=jitter_p, blur_p=1.0),
            ViewRecipe("global", global_size, tuple(global_scale), flip_p=flip_p, jitter_p=jitter_p, blur_p=0.1,
                       solarize_p=solarize_p),
        ]
        recipes += [ViewRecipe("local", local_size, tuple(local_scale), flip_p=flip_p, jitter_p=jitter_p)
                    for _ in range(n_local_crops)]
        return recipes
        """),
    # ------------------------------------------------------------------ sample_crop_box
    Bug("sample_crop_box", "aspect ratio uniform instead of log-uniform", ASPECT,
        "aspect = ratio[0] + (ratio[1] - ratio[0]) * u_ratio", r"draw log r\s+uniformly"),
    Bug("sample_crop_box", "torch.randint's exclusive upper bound", TOP + "\n            " + LEFT,
        "top = int(torch.randint(0, height - crop_height, (1,), generator=generator))\n"
        "            left = int(torch.randint(0, width - crop_width, (1,), generator=generator))",
        r"randint's upper bound is exclusive"),
    Bug("sample_crop_box", "r taken as h / w", SIDES,
        "crop_width = round(math.sqrt(target_area / aspect))\n"
        "        crop_height = round(math.sqrt(target_area * aspect))",
        r"the boxes are tall .*r = w / h"),
    Bug("sample_crop_box", "scale read as a fraction of the side",
        "target_area = area * (scale[0] + (scale[1] - scale[0]) * u_scale)",
        "target_area = area * (scale[0] + (scale[1] - scale[0]) * u_scale) ** 2",
        r"a fraction of the area, not of the side"),
    Bug("sample_crop_box", "ignores the ratio argument", "log_ratio = (math.log(ratio[0]), math.log(ratio[1]))",
        "log_ratio = (math.log(ASPECT_RATIO_RANGE[0]), math.log(ASPECT_RATIO_RANGE[1]))", r"use the `ratio` argument"),
    Bug("sample_crop_box", "a single attempt before the fallback",
        "for _ in range(CROP_ATTEMPTS):", "for _ in range(1):",
        r"draw again \(up to 10 attempts\)"),
    Bug("sample_crop_box", "a box must be strictly smaller than the image", FITS,
        "if 0 < crop_width < width and 0 < crop_height < height:", r"h <= H and w <= W, equality included"),
    Bug("sample_crop_box", "accepts a side rounded to 0", FITS, "if crop_width <= width and crop_height <= height:",
        r"rounded to 0 pixels .* 0 < h <= H"),
    Bug("sample_crop_box", "fallback: the whole image, not clipped to the ratio range", CLIP,
        "    crop_height, crop_width = height, width\n", r"don't return the whole image: clip it"),
    Bug("sample_crop_box", "fallback in the corner", FALLBACK_RETURN, "return 0, 0, crop_height, crop_width",
        r"centre the fallback box"),
    Bug("sample_crop_box", "fallback of a wide image clipped with ratio_min",
        "crop_height, crop_width = height, round(height * ratio[1])",
        "crop_height, crop_width = height, round(height * ratio[0])",
        r"a wide image .* keeps its height and gets w = round"),
    Bug("sample_crop_box", "ignores the generator", "", """
        area = height * width
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(CROP_ATTEMPTS):
            u_scale, u_ratio = torch.rand(2).tolist()
            target_area = area * (scale[0] + (scale[1] - scale[0]) * u_scale)
            aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u_ratio)
            crop_width = round(math.sqrt(target_area * aspect))
            crop_height = round(math.sqrt(target_area / aspect))
            if 0 < crop_width <= width and 0 < crop_height <= height:
                top = int(torch.randint(0, height - crop_height + 1, (1,)))
                left = int(torch.randint(0, width - crop_width + 1, (1,)))
                return top, left, crop_height, crop_width
        if width / height < ratio[0]:
            crop_width, crop_height = width, round(width / ratio[0])
        elif width / height > ratio[1]:
            crop_height, crop_width = height, round(height * ratio[1])
        else:
            crop_height, crop_width = height, width
        return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width
        """, r"generators with the same seed gave different boxes"),
    Bug("sample_crop_box", "a fresh Generator when none is given", "area = height * width",
        "area = height * width\n    if generator is None:\n        generator = torch.Generator()",
        r"with generator=None every call gave the same box"),
    Bug("sample_crop_box", "returns (left, top, width, height)", "return top, left, crop_height, crop_width",
        "return left, top, crop_width, crop_height", r"return \(top, left, height, width\)"),
    Bug("sample_crop_box", "top drawn from the width's range", TOP,
        "top = int(torch.randint(0, width - crop_width + 1, (1,), generator=generator))",
        r"top must be drawn from 0\.\.H - h"),
    Bug("sample_crop_box", "returns tensors", TOP + "\n            " + LEFT,
        "top = torch.randint(0, height - crop_height + 1, (1,), generator=generator)[0]\n"
        "            left = torch.randint(0, width - crop_width + 1, (1,), generator=generator)[0]",
        r"must hold Python ints"),
    Alternative("sample_crop_box", "torchvision's RandomResizedCrop.get_params, with the generator", "", """
        area = height * width
        for _ in range(10):
            target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
            log_r = torch.empty(1).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
            aspect = torch.exp(log_r).item()
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                i = torch.randint(0, height - h + 1, size=(1,), generator=generator).item()
                j = torch.randint(0, width - w + 1, size=(1,), generator=generator).item()
                return i, j, h, w
        in_ratio = float(width) / float(height)
        if in_ratio < min(ratio):
            w = width
            h = int(round(w / min(ratio)))
        elif in_ratio > max(ratio):
            h = height
            w = int(round(h * max(ratio)))
        else:
            w = width
            h = height
        return (height - h) // 2, (width - w) // 2, h, w
        """),
    Alternative("sample_crop_box", "r = min·(max/min)^u, positions from uniform floats, centre rounded up", "", """
        attempts = 0
        while attempts < CROP_ATTEMPTS:
            attempts += 1
            u = torch.rand(4, generator=generator, dtype=torch.float64)
            s = scale[0] + (scale[1] - scale[0]) * float(u[0])
            r = ratio[0] * (ratio[1] / ratio[0]) ** float(u[1])
            w = int(round((s * height * width * r) ** 0.5))
            h = int(round((s * height * width / r) ** 0.5))
            if 1 <= w <= width and 1 <= h <= height:
                top = min(int(float(u[2]) * (height - h + 1)), height - h)
                left = min(int(float(u[3]) * (width - w + 1)), width - w)
                return (top, left, h, w)
        if width / height < ratio[0]:
            w, h = width, min(height, round(width / ratio[0]))
        elif width / height > ratio[1]:
            w, h = min(width, round(height * ratio[1])), height
        else:
            w, h = width, height
        return (int((height - h) / 2 + 0.5), int((width - w) / 2 + 0.5), h, w)
        """),
    # ------------------------------------------------------------------ group_by_resolution
    Bug("group_by_resolution", "merges equal sizes that are not consecutive", "", """
        by_size = {}
        for index, view in enumerate(views):
            by_size.setdefault(tuple(view.shape[-2:]), []).append(index)
        return [(indices[0], indices[-1] + 1) for indices in by_size.values()]
        """, r"only \*consecutive\* views"),
    Bug("group_by_resolution", "compares the width only (as the original's shape[-1])", GROUP_IF,
        "if index == len(views) or views[index].shape[-1] != views[start].shape[-1]:", r"compare both H and W"),
    Bug("group_by_resolution", "compares the whole shape", GROUP_IF,
        "if index == len(views) or views[index].shape != views[start].shape:",
        r"only the resolution .* decides the groups"),
    Bug("group_by_resolution", "closed ranges (end = last index)", GROUP_APPEND, "groups.append((start, index - 1))",
        r"the ranges are half-open"),
    Bug("group_by_resolution", "(start, count) instead of (start, end)", GROUP_APPEND,
        "groups.append((start, index - start))",
        r"\(start, end\), not \(start, number of views\)"),
    Bug("group_by_resolution", "the last run is never closed", "", """
        groups = []
        start = 0
        for index in range(1, len(views)):
            if views[index].shape[-2:] != views[start].shape[-2:]:
                groups.append((start, index))
                start = index
        return groups
        """, r"the last run of views is missing"),
    Bug("group_by_resolution", "reads views[0] before checking for no views", "", """
        groups = []
        start, size = 0, views[0].shape[-2:]
        for index, view in enumerate(views):
            if view.shape[-2:] != size:
                groups.append((start, index))
                start, size = index, view.shape[-2:]
        groups.append((start, len(views)))
        return groups
        """, r"no views give no groups, return an empty list"),
    Bug("group_by_resolution", "returns a generator", "return groups", "return iter(groups)",
        r"must return a list of \(start, end\) tuples"),
    Alternative("group_by_resolution", "itertools.groupby", "", """
        import itertools

        groups, start = [], 0
        for _, run in itertools.groupby(view.shape[-2:] for view in views):
            end = start + len(list(run))
            groups.append((start, end))
            start = end
        return groups
        """),
    Alternative("group_by_resolution", "torch.unique_consecutive + cumsum, as the original (on H and W)", "", """
        if not views:
            return []
        sizes = torch.tensor([list(view.shape[-2:]) for view in views])
        counts = torch.unique_consecutive(sizes, dim=0, return_counts=True)[1]
        ends = torch.cumsum(counts, 0).tolist()
        return list(zip([0] + ends[:-1], ends))
        """),
    Alternative("group_by_resolution", "compares each view with the previous one", "", """
        groups = []
        for index, view in enumerate(views):
            previous = views[index - 1] if index > 0 else None
            if previous is not None and view.shape[-2] == previous.shape[-2] and view.shape[-1] == previous.shape[-1]:
                groups[-1] = (groups[-1][0], index + 1)
            else:
                groups.append((index, index + 1))
        return groups
        """),
    # ------------------------------------------------------------------ collate_multicrop
    Bug("collate_multicrop", "image-major: stacks the crops of one image", STACK,
        "views = [torch.stack(list(crops)) for crops in crops_per_image]", r"view-major"),
    Bug("collate_multicrop", "torch.cat instead of torch.stack", STACK,
        "views = [torch.cat(same_view) for same_view in zip(*crops_per_image)]", r"torch\.cat joins them"),
    Bug("collate_multicrop", "labels as a Python list", LABELS, "labels = [int(label) for _, label in items]",
        r"labels must be an int64 tensor of shape \(B,\), got a list"),
    Bug("collate_multicrop", "labels via torch.Tensor (float32)", LABELS,
        "labels = torch.Tensor([int(label) for _, label in items])",
        r"int64 tensor, got torch\.float32"),
    Bug("collate_multicrop", "torch.stack on int labels", LABELS, "labels = torch.stack([label for _, label in items])",
        r"torch\.stack cannot take"),
    Bug("collate_multicrop", "drops the labels", "return views, labels", "return views", r"the labels are missing"),
    Bug("collate_multicrop", "always a (views, labels) tuple", "", """
        crops_per_image = [crops for crops, _ in items]
        views = [torch.stack(same_view) for same_view in zip(*crops_per_image)]
        if items[0][1] is None:
            return views, None
        return views, torch.tensor([int(label) for _, label in items])
        """, r"items without labels must give a plain list"),
    Bug("collate_multicrop", "views as a tuple", STACK,
        "views = tuple(torch.stack(same_view) for same_view in zip(*crops_per_image))", r"a \*list\* of V tensors"),
    Alternative("collate_multicrop", "loops over views and images", "", """
        n_views = len(items[0][0])
        views = []
        for v in range(n_views):
            views.append(torch.stack([crops[v] for crops, _ in items], dim=0))
        if items[0][1] is None:
            return views
        return views, torch.as_tensor([int(label) for _, label in items], dtype=torch.long)
        """),
    Alternative("collate_multicrop", "default_collate per view, LongTensor labels", "", """
        from torch.utils.data import default_collate

        views = default_collate([list(crops) for crops, _ in items])
        if items[0][1] is None:
            return views
        return views, torch.LongTensor([int(label) for _, label in items])
        """),
]
