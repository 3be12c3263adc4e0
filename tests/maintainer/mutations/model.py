"""Mutations of Lesson 3.3's complete model (`solutions/model.py`); see `../mutation_harness.py`."""

from mutation_harness import Alternative, Bug

MUTATIONS = [
    # ------------------------------------------------------------ MultiCropNetwork.forward
    Bug(
        "MultiCropNetwork.forward",
        "one backbone pass per view",
        "",
        "return self.head(torch.cat([self.backbone(view) for view in views]))",
        r"the backbone ran once per view",
    ),
    Bug(
        "MultiCropNetwork.forward",
        "the head run once per group",
        "",
        """
        groups = group_by_resolution(list(views))
        outputs = [self.head(self.backbone(torch.cat(views[start:end]))) for start, end in groups]
        return torch.cat(outputs)
        """,
        r"the head should run once, on all V\*B = 18 features",
    ),
    Bug(
        "MultiCropNetwork.forward",
        "features of the groups stacked instead of concatenated",
        "return self.head(torch.cat(features))",
        "return self.head(torch.stack(features))",
        r"concatenate the backbone's outputs along dim 0",
    ),
    Bug(
        "MultiCropNetwork.forward",
        "rows interleaved image by image (batch-major)",
        "return self.head(torch.cat(features))",
        """batch = views[0].shape[0]
        stacked = torch.cat(features).reshape(len(views), batch, -1).transpose(0, 1).reshape(len(views) * batch, -1)
        return self.head(stacked)""",
        r"must be crop-major",
    ),
    Bug(
        "MultiCropNetwork.forward",
        "views grouped by size over the whole list (a dict)",
        "",
        """
        groups = {}
        for view in views:
            groups.setdefault(tuple(view.shape[-2:]), []).append(view)
        return self.head(torch.cat([self.backbone(torch.cat(group)) for group in groups.values()]))
        """,
        r"group only \*consecutive\* views of equal size .*do not gather or sort the views by size",
    ),
    Bug(
        "MultiCropNetwork.forward",
        "views sorted by size first",
        "",
        """
        ordered = sorted(views, key=lambda view: -view.shape[-1])
        features = [self.backbone(torch.cat(ordered[start:end])) for start, end in group_by_resolution(ordered)]
        return self.head(torch.cat(features))
        """,
        r"group only \*consecutive\* views of equal size .*do not gather or sort the views by size",
    ),
    Bug(
        "MultiCropNetwork.forward",
        "end taken as inclusive",
        "torch.cat(views[start:end])",
        "torch.cat(views[start:end + 1])",
        r"end-exclusive, like a slice",
    ),
    Bug(
        "MultiCropNetwork.forward",
        "only the first view of each group",
        "torch.cat(views[start:end])",
        "views[start]",
        r"every view of every group must be used",
    ),
    Bug(
        "MultiCropNetwork.forward",
        "the backbone run under torch.no_grad()",
        "",
        """
        with torch.no_grad():
            features = [self.backbone(torch.cat(views[start:end])) for start, end in group_by_resolution(list(views))]
        return self.head(torch.cat(features))
        """,
        r"backbone\.vit\.\S+ received no gradient",
    ),
    Bug(
        "MultiCropNetwork.forward",
        "the head forgotten",
        "return self.head(torch.cat(features))  # (V * B, D) -> (V * B, K)",
        "return torch.cat(features)",
        r"run self\.head on the features",
    ),
    Bug(
        "MultiCropNetwork.forward",
        "the whole forward under torch.no_grad() (as for the teacher)",
        "",
        """
        with torch.no_grad():
            features = [self.backbone(torch.cat(views[start:end])) for start, end in group_by_resolution(list(views))]
            return self.head(torch.cat(features))
        """,
        r"output must require grad",
    ),
    Alternative(
        "MultiCropNetwork.forward",
        "the original's unique_consecutive / cumsum loop",
        "",
        """
        idx_crops = torch.cumsum(
            torch.unique_consecutive(torch.tensor([inp.shape[-1] for inp in views]), return_counts=True)[1], 0
        )
        start_idx, output = 0, torch.empty(0).to(views[0].device)
        for end_idx in idx_crops:
            _out = self.backbone(torch.cat(views[start_idx:end_idx]))
            output = torch.cat((output, _out))
            start_idx = end_idx
        return self.head(output)
        """,
    ),
    Alternative(
        "MultiCropNetwork.forward",
        "itertools.groupby over consecutive sizes",
        "",
        """
        import itertools

        features = []
        for _, group in itertools.groupby(views, key=lambda view: tuple(view.shape[-2:])):
            features.append(self.backbone(torch.cat(list(group), dim=0)))
        return self.head(torch.cat(features, dim=0))
        """,
    ),
    Alternative(
        "MultiCropNetwork.forward",
        "an explicit loop over the groups",
        "",
        """
        features = []
        for start, end in group_by_resolution(list(views)):
            batch = torch.cat([views[i] for i in range(start, end)])
            features.append(self.backbone(batch))
        all_features = torch.cat(features)
        return self.head(all_features)
        """,
    ),
    # ------------------------------------------------------------ adaptive_head_dims
    Bug(
        "adaptive_head_dims",
        "no rounding to a power of two",
        "",
        """
        hidden = min(expansion * embed_dim, max_hidden_dim)
        return hidden, max(1, hidden // bottleneck_ratio)
        """,
        r"round expansion·D up to a power of two \(4·96",
    ),
    Bug(
        "adaptive_head_dims",
        "rounded down to a power of two",
        "",
        """
        hidden = 1 << ((expansion * embed_dim).bit_length() - 1)
        hidden = min(hidden, max_hidden_dim)
        return hidden, max(1, hidden // bottleneck_ratio)
        """,
        r"\*up\* to a power of two, not down",
    ),
    Bug(
        "adaptive_head_dims",
        "rounded to the nearest power of two",
        "",
        """
        import math

        hidden = min(2 ** round(math.log2(expansion * embed_dim)), max_hidden_dim)
        return hidden, max(1, hidden // bottleneck_ratio)
        """,
        r"not to the nearest",
    ),
    Bug(
        "adaptive_head_dims",
        "> instead of ≥: a power of two is doubled",
        "while hidden < expansion * embed_dim:",
        "while hidden <= expansion * embed_dim:",
        r"≥ expansion·D \(not >\)",
    ),
    Bug(
        "adaptive_head_dims",
        "no cap",
        "    hidden = min(hidden, max_hidden_dim)\n",
        "",
        r"cap the hidden width at max_hidden_dim",
    ),
    Bug(
        "adaptive_head_dims",
        "max instead of min for the cap",
        "hidden = min(hidden, max_hidden_dim)",
        "hidden = max(hidden, max_hidden_dim)",
        r"with min\(max_hidden_dim, \.\.\.\), not max",
    ),
    Bug(
        "adaptive_head_dims",
        "a float bottleneck (/ instead of //)",
        "return hidden, max(1, hidden // bottleneck_ratio)",
        "return hidden, max(1, hidden / bottleneck_ratio)",
        r"must return two Python ints",
    ),
    Bug(
        "adaptive_head_dims",
        "no floor of 1 for the bottleneck",
        "return hidden, max(1, hidden // bottleneck_ratio)",
        "return hidden, hidden // bottleneck_ratio",
        r"the bottleneck is at least 1",
    ),
    Bug(
        "adaptive_head_dims",
        "expansion ignored (always 4)",
        "while hidden < expansion * embed_dim:",
        "while hidden < 4 * embed_dim:",
        r"use the expansion argument",
    ),
    Bug(
        "adaptive_head_dims",
        "bottleneck_ratio ignored (always 8)",
        "return hidden, max(1, hidden // bottleneck_ratio)",
        "return hidden, max(1, hidden // 8)",
        r"use the bottleneck_ratio argument",
    ),
    Bug(
        "adaptive_head_dims",
        "max_hidden_dim ignored (always 2048)",
        "hidden = min(hidden, max_hidden_dim)",
        "hidden = min(hidden, 2048)",
        r"use the max_hidden_dim argument as the cap",
    ),
    Bug(
        "adaptive_head_dims",
        "(bottleneck, hidden) swapped",
        "return hidden, max(1, hidden // bottleneck_ratio)",
        "return max(1, hidden // bottleneck_ratio), hidden",
        r"return \(hidden_dim, bottleneck_dim\) in this order",
    ),
    Bug(
        "adaptive_head_dims",
        "a list instead of a tuple",
        "return hidden, max(1, hidden // bottleneck_ratio)",
        "return [hidden, max(1, hidden // bottleneck_ratio)]",
        r"must return a tuple",
    ),
    Alternative(
        "adaptive_head_dims",
        "math.ceil(math.log2(...))",
        "",
        """
        import math

        hidden = min(max_hidden_dim, 2 ** math.ceil(math.log2(expansion * embed_dim)))
        return hidden, max(1, hidden // bottleneck_ratio)
        """,
    ),
    Alternative(
        "adaptive_head_dims",
        "bit_length",
        "",
        """
        target = expansion * embed_dim
        hidden = min(1 << (target - 1).bit_length(), max_hidden_dim)
        bottleneck = hidden // bottleneck_ratio
        return (hidden, bottleneck if bottleneck > 0 else 1)
        """,
    ),
]
