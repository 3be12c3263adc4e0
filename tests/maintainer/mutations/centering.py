"""Mutations of Lesson 4.1 (`solutions/centering.py`); see `../mutation_harness.py`."""

from mutation_harness import Alternative, Bug

EMA = "return center.detach() * momentum + batch_center * (1 - momentum)"
SUM = "batch_sum = sum_across_processes(teacher_output.detach().float().sum(dim=0, keepdim=True))  # (1, K)"
DIVIDE = "batch_center = batch_sum / (len(teacher_output) * world_size())"

MUTATIONS = [
    Bug("update_center", "momentum and 1 − momentum swapped", EMA,
        "return center.detach() * (1 - momentum) + batch_center * momentum", r"the weights are swapped"),
    Bug("update_center", "mean over the K outputs (dim=1)", SUM,
        "batch_sum = sum_across_processes(teacher_output.detach().float().sum(dim=1, keepdim=True))",
        r"average over the rows \(dim 0\)"),
    Bug("update_center", "sum of the rows, never divided", DIVIDE, "batch_center = batch_sum",
        r"divide the sum of the rows by their number"),
    Bug("update_center", "divides by K instead of the number of rows", DIVIDE,
        "batch_center = batch_sum / teacher_output.shape[1]", r"not by the number of outputs K"),
    Bug("update_center", "no torch.no_grad / detach", "",
        """
        batch_sum = sum_across_processes(teacher_output.float().sum(dim=0, keepdim=True))
        batch_center = batch_sum / (len(teacher_output) * world_size())
        return center * momentum + batch_center * (1 - momentum)
        """, r"part of the autograd graph"),
    Bug("update_center", "updates the center in place", EMA,
        "center.mul_(momentum).add_(batch_center * (1 - momentum))\n        return center",
        r"changed its input `center` in place"),
    Bug("update_center", "centres the logits in place before averaging", "",
        """
        with torch.no_grad():
            teacher_output -= center
            batch_center = teacher_output.float().mean(dim=0, keepdim=True)
            return center * momentum + (batch_center + center) * (1 - momentum)
        """, r"changed its input `teacher_output` in place"),
    Bug("update_center", "averages the centred logits", SUM,
        "batch_sum = sum_across_processes((teacher_output.detach().float() - center).sum(dim=0, keepdim=True))",
        r"average the raw teacher logits, not the centred ones"),
    Bug("update_center", "averages in bfloat16", SUM,
        "batch_sum = sum_across_processes(teacher_output.detach().sum(dim=0, keepdim=True))",
        r"average the bfloat16 logits in float32"),
    Bug("update_center", "ignores world_size", DIVIDE, "batch_center = batch_sum / len(teacher_output)",
        r"divide it by len\(teacher_output\) \* world_size\(\), not by len\(teacher_output\) alone"),
    Bug("update_center", "no all-reduce across processes", SUM,
        "batch_sum = teacher_output.detach().float().sum(dim=0, keepdim=True)",
        r"must be summed over processes: use sum_across_processes"),
    Bug("update_center", "fixed momentum 0.9", EMA, "return center.detach() * 0.9 + batch_center * 0.1",
        r"use the `momentum` argument"),
    Bug("update_center", "keeps only the batch mean", EMA, "return batch_center",
        r"not only the batch mean"),
    Alternative("update_center", "lerp towards the batch mean", EMA,
                "return center.detach().lerp(batch_center, 1 - momentum)"),
    Alternative("update_center", "the paper's formula with mean(), all-reducing the mean", "",
                """
                local_mean = teacher_output.detach().float().mean(dim=0)
                batch_mean = sum_across_processes(local_mean) / world_size()
                return momentum * center.detach() + (1 - momentum) * batch_mean
                """),
    Alternative("update_center", "a loop over the rows in float64, cast back", "",
                """
                with torch.no_grad():
                    total = torch.zeros(1, teacher_output.shape[1], dtype=torch.float64)
                    for row in teacher_output:
                        total += row.double()
                    total = sum_across_processes(total)
                    mean = total / (teacher_output.shape[0] * world_size())
                    return (momentum * center.double() + (1 - momentum) * mean).float()
                """),
    Alternative("update_center", "c + (1 − m)·(mean − c)", "",
                """
                with torch.no_grad():
                    rows = teacher_output.detach().float()
                    batch_mean = sum_across_processes(rows.sum(0, keepdim=True)) / (rows.shape[0] * world_size())
                    return center + (1.0 - momentum) * (batch_mean - center)
                """),
]
