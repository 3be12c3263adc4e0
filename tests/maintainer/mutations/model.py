"""Mutations of Lesson 3.4's complete model (`solutions/model.py`); see `../mutation_harness.py`."""

from mutation_harness import Alternative, Bug

NO_GRAD = "with torch.no_grad():"
RESTORE = "    finally:\n        network.train(was_training)\n"
WARM_UP = "forward()  # warm-up, not timed"
PER_VIEW = "return network.head(torch.cat([network.backbone(view) for view in views]))"
MEDIAN = "seconds=statistics.median(times)"
PEAK = "peak = max(peak, level)"
LEVEL = "level += event.self_cpu_memory_usage"
TIMED = """                start = time.perf_counter()
                output = forward()
                times.append(time.perf_counter() - start)
"""

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
    # ------------------------------------------------------------ measure_forward
    Bug("measure_forward", "autograd left on", NO_GRAD, "if True:", r"torch\.no_grad\(\)"),
    Bug("measure_forward", "the network left in evaluation mode", RESTORE, "    finally:\n        pass\n",
        r"leave the network in the mode it was in"),
    Bug("measure_forward", "the mode restored only when nothing fails", RESTORE,
        "    except RuntimeError:\n        raise\n    network.train(was_training)\n", r"`finally:` block"),
    Bug("measure_forward", "measured in training mode", "    network.eval()\n", "", r"evaluation mode"),
    Bug("measure_forward", "grouped ignored: always network(views)", "if grouped:\n            return network(views)\n        " + PER_VIEW,
        "return network(views)", r"grouped=False must run the backbone once per view"),
    Bug("measure_forward", "the per-view forward without the head", PER_VIEW,
        "return torch.cat([network.backbone(view) for view in views])", r"the output must be the network's output"),
    Bug("measure_forward", "the mean instead of the median", MEDIAN, "seconds=statistics.mean(times)",
        r"must be the median of the 9 timed forwards"),
    Bug("measure_forward", "the sum of the repeats", MEDIAN, "seconds=float(sum(times))", r"must be the median"),
    Bug("measure_forward", "milliseconds", MEDIAN, "seconds=1000 * statistics.median(times)", r"milliseconds\?"),
    Bug("measure_forward", "one start time for every repeat", "for _ in range(repeats):\n" + TIMED,
        """start = time.perf_counter()
            for _ in range(repeats):
                output = forward()
                times.append(time.perf_counter() - start)
""", r"must be the median|before and after the same forward"),
    Bug("measure_forward", "a fixed number of repeats", "for _ in range(repeats):", "for _ in range(5):",
        r"`repeats` is the number of timed forwards"),
    Bug("measure_forward", "no warm-up", "            " + WARM_UP + "\n", "", r"one untimed warm-up forward"),
    Bug("measure_forward", "the final level instead of the peak", PEAK, "peak = level",
        r"not its final value|below the output's own"),
    Bug("measure_forward", "the sum of all allocations", LEVEL, "level += max(0, event.self_cpu_memory_usage)",
        r"not the sum of all allocations"),
    Bug("measure_forward", "the peak in MiB", "peak_bytes=int(peak)", "peak_bytes=peak / 2**20",
        r"int number of bytes"),
    Bug("measure_forward", "the profiled forward outside the profiler",
        "with torch.autograd.profiler.profile(profile_memory=True) as prof:\n                forward()",
        "forward()\n            with torch.autograd.profiler.profile(profile_memory=True) as prof:\n                pass",
        r"below the output's own|far below this forward's peak"),
    Alternative("measure_forward", "torch.profiler with prof.events(), inference_mode, accumulate", "", """
        import itertools

        from torch.profiler import ProfilerActivity, profile

        def run():
            if not grouped:
                return network.head(torch.cat([network.backbone(v) for v in views]))
            return network(views)

        mode = network.training
        network.train(False)
        try:
            with torch.inference_mode():
                run()
                durations = []
                for _ in range(repeats):
                    t0 = time.perf_counter_ns()
                    result = run()
                    durations.append((time.perf_counter_ns() - t0) / 1e9)
                with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                    run()
        finally:
            network.train(mode)
        events = sorted(prof.events(), key=lambda e: e.time_range.start)
        levels = itertools.accumulate(e.self_cpu_memory_usage for e in events)
        peak = max(0, max(levels, default=0))
        return ForwardCost(seconds=float(statistics.median(durations)), peak_bytes=peak, output=result)
        """),
    Alternative("measure_forward", "Lesson 3.1's PerViewNetwork, a hand-written median, mode per module", "", """
        from dino_course.student_teacher import PerViewNetwork

        run = network if grouped else PerViewNetwork(network.backbone, network.head)
        modes = {module: module.training for module in network.modules()}
        network.eval()
        try:
            with torch.no_grad():
                run(views)
                times = []
                for _ in range(repeats):
                    before = time.perf_counter()
                    output = run(views)
                    after = time.perf_counter()
                    times.append(after - before)
                with torch.autograd.profiler.profile(profile_memory=True) as prof:
                    run(views)
        finally:
            for module, mode in modes.items():
                module.training = mode
        times.sort()
        middle = len(times) // 2
        seconds = times[middle] if len(times) % 2 else (times[middle - 1] + times[middle]) / 2
        live, highest = 0, 0
        for event in sorted(prof.function_events, key=lambda e: e.time_range.start):
            live = live + event.self_cpu_memory_usage
            if live > highest:
                highest = live
        return ForwardCost(seconds, int(highest), output)
        """),
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
