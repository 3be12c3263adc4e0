"""Mutations of Lesson 4.2 (`solutions/temperature.py`); see `../mutation_harness.py`."""

from mutation_harness import Alternative, Bug

SOFTMAX = "return torch.softmax(logits.float() / temperature, dim=-1)"
ENTR = "return torch.special.entr(probabilities).sum(dim=-1)"
LINSPACE = "warmup = torch.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs, dtype=torch.float64)"
CONSTANT = "constant = torch.full((epochs - warmup_epochs,), teacher_temp, dtype=torch.float64)"

MUTATIONS = [
    # ------------------------------------------------------------------ sharpen
    Bug("sharpen", "multiplies by τ", SOFTMAX, "return torch.softmax(logits.float() * temperature, dim=-1)",
        r"divide the logits by the temperature .* do not multiply"),
    Bug("sharpen", "temperature ignored", SOFTMAX, "return torch.softmax(logits.float(), dim=-1)",
        r"temperature was not applied"),
    Bug("sharpen", "exp without subtracting the maximum", SOFTMAX,
        "e = torch.exp(logits.float() / temperature)\n    return e / e.sum(dim=-1, keepdim=True)",
        r"subtract each row's maximum"),
    Bug("sharpen", "subtracts the maximum of the whole tensor", SOFTMAX,
        "z = logits.float() / temperature\n    e = torch.exp(z - z.max())\n    return e / e.sum(dim=-1, keepdim=True)",
        r"NaN in some rows only: subtract each row's own maximum"),
    Bug("sharpen", "softmax over the batch (dim=0)", SOFTMAX,
        "return torch.softmax(logits.float() / temperature, dim=0)",
        r"over the last dimension .*not over dim 0"),
    Bug("sharpen", "softmax over dim=1 (right for 2-D logits only)", SOFTMAX,
        "return torch.softmax(logits.float() / temperature, dim=1)", r"over the last dimension .*not over dim 1"),
    Bug("sharpen", "divides the logits in place", SOFTMAX,
        "logits /= temperature\n    return torch.softmax(logits.float(), dim=-1)",
        r"changed its input `logits` in place"),
    Bug("sharpen", "keeps half precision", SOFTMAX, "return torch.softmax(logits / temperature, dim=-1)",
        r"compute in float32 or wider"),
    Bug("sharpen", "divides in half precision, softmax in float32", SOFTMAX,
        "return torch.softmax(logits / temperature, dim=-1, dtype=torch.float32)", r"to float32 \*before\* dividing"),
    Bug("sharpen", "log_softmax", SOFTMAX, "return torch.log_softmax(logits.float() / temperature, dim=-1)",
        r"log-probabilities"),
    Bug("sharpen", "scales the probabilities instead of the logits", SOFTMAX,
        "return torch.softmax(logits.float(), dim=-1) / temperature", r"do not sum to 1"),
    Bug("sharpen", "forgets to return", SOFTMAX, "torch.softmax(logits.float() / temperature, dim=-1)",
        r"returned None"),
    Alternative("sharpen", "explicit row maximum, exp and normalisation", SOFTMAX,
                "z = logits.float() / temperature\n    e = torch.exp(z - z.amax(dim=-1, keepdim=True))\n"
                "    return e / e.sum(dim=-1, keepdim=True)"),
    Alternative("sharpen", "maximum subtracted before dividing, multiply by 1/τ", SOFTMAX,
                "x = logits.float()\n    z = (x - x.max(dim=-1, keepdim=True).values) * (1.0 / temperature)\n"
                "    return z.exp() / z.exp().sum(-1, keepdim=True)"),
    Alternative("sharpen", "float64 intermediates, via logsumexp", SOFTMAX,
                "z = logits.double() / temperature\n"
                "    return torch.exp(z - torch.logsumexp(z, dim=-1, keepdim=True)).float()"),
    Alternative("sharpen", "torch.nn.functional.softmax with dtype", SOFTMAX,
                "return torch.nn.functional.softmax(logits.float() / temperature, dim=logits.dim() - 1, "
                "dtype=torch.float32)"),
    # ------------------------------------------------------------------ entropy
    Bug("entropy", "sign flipped", ENTR, "return -torch.special.entr(probabilities).sum(dim=-1)", r"sign is flipped"),
    Bug("entropy", "plain p·log p: NaN at p = 0", ENTR, "return -(probabilities * probabilities.log()).sum(dim=-1)",
        r"NaN.*0 · log 0 is NaN"),
    Bug("entropy", "log2 (bits instead of nats)", ENTR,
        "return -(probabilities * torch.log2(probabilities.clamp_min(1e-12))).sum(dim=-1)", r"natural log.*not log2"),
    Bug("entropy", "mean instead of sum", ENTR, "return torch.special.entr(probabilities).mean(dim=-1)",
        r"do not average them"),
    Bug("entropy", "keepdim=True", ENTR, "return torch.special.entr(probabilities).sum(dim=-1, keepdim=True)",
        r"without keepdim"),
    Bug("entropy", "sums over the rows (dim=0)", ENTR, "return torch.special.entr(probabilities).sum(dim=0)",
        r"not over the rows"),
    Bug("entropy", "sums everything", ENTR, "return torch.special.entr(probabilities).sum()",
        r"one number for the whole tensor"),
    Bug("entropy", "clamps the input in place", ENTR,
        "p = probabilities.clamp_(min=1e-12)\n    return -(p * p.log()).sum(dim=-1)",
        r"changed its input `probabilities` in place"),
    Bug("entropy", "replaces zeros in the input in place", ENTR,
        "probabilities[probabilities == 0] = 1.0\n    return -(probabilities * probabilities.log()).sum(dim=-1)",
        r"changed its input `probabilities` in place"),
    Alternative("entropy", "xlogy", ENTR, "return -torch.xlogy(probabilities, probabilities).sum(dim=-1)"),
    Alternative("entropy", "log of an ε-clamp", ENTR,
                "return -(probabilities * probabilities.clamp_min(1e-12).log()).sum(dim=-1)"),
    Alternative("entropy", "torch.where around the terms", ENTR,
                "p = probabilities\n    terms = torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))\n"
                "    return -terms.sum(dim=-1)"),
    Alternative("entropy", "a loop over the K dimensions (sequential sum)", ENTR,
                "p = probabilities\n    total = torch.zeros(p.shape[:-1], dtype=p.dtype)\n"
                "    for k in range(p.shape[-1]):\n        total = total - torch.xlogy(p[..., k], p[..., k])\n"
                "    return total"),
    Alternative("entropy", "NaN terms replaced by 0", ENTR,
                "terms = probabilities * probabilities.log()\n"
                "    return -torch.nan_to_num(terms, nan=0.0).sum(dim=-1)"),
    # ------------------------------------------------------------------ teacher_temperature_schedule
    Bug("teacher_temperature_schedule", "warm-up without its last value (divides by W)", LINSPACE,
        "warmup = warmup_teacher_temp + (teacher_temp - warmup_teacher_temp) "
        "* torch.arange(warmup_epochs, dtype=torch.float64) / warmup_epochs",
        r"include both ends.*divide by W − 1"),
    Bug("teacher_temperature_schedule", "constant part at the warm-up temperature", CONSTANT,
        "constant = torch.full((epochs - warmup_epochs,), warmup_teacher_temp, dtype=torch.float64)",
        r"after the warm-up every epoch uses teacher_temp, not warmup_teacher_temp"),
    Bug("teacher_temperature_schedule", "linspace in float32 (cat promotes to float64)", LINSPACE,
        "warmup = torch.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs)", r"float32-rounded"),
    Bug("teacher_temperature_schedule", "everything in float32", "",
        """
        warmup = torch.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs)
        return torch.cat([warmup, torch.full((epochs - warmup_epochs,), teacher_temp)])
        """, r"work in float64"),
    Bug("teacher_temperature_schedule", "warm-up added on top of the training epochs", CONSTANT,
        "constant = torch.full((epochs,), teacher_temp, dtype=torch.float64)", r"warm-up epochs are part of training"),
    Bug("teacher_temperature_schedule", "warm-up only", "return torch.cat([warmup, constant])", "return warmup",
        r"epochs after the warm-up are missing"),
    Bug("teacher_temperature_schedule", "warm-up backwards", LINSPACE,
        "warmup = torch.linspace(teacher_temp, warmup_teacher_temp, warmup_epochs, dtype=torch.float64)",
        r"warm-up goes the wrong way"),
    Bug("teacher_temperature_schedule", "the formula literally: divides by W − 1 = 0 for one warm-up epoch", "",
        """
        W = warmup_epochs
        values = [warmup_teacher_temp + (teacher_temp - warmup_teacher_temp) * i / (W - 1) for i in range(W)]
        return torch.tensor(values + [teacher_temp] * (epochs - W), dtype=torch.float64)
        """, r"divided by zero: with warmup_epochs = 1"),
    Bug("teacher_temperature_schedule", "returns a numpy array", "",
        """
        import numpy as np
        return np.concatenate((np.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs),
                               np.ones(epochs - warmup_epochs) * teacher_temp))
        """, r"should return a torch\.Tensor, got a ndarray"),
    Bug("teacher_temperature_schedule", "returns a list", "return torch.cat([warmup, constant])",
        "return torch.cat([warmup, constant]).tolist()", r"should return a torch\.Tensor, got a list"),
    Alternative("teacher_temperature_schedule", "numpy, as the original, converted to a tensor", "",
                """
                import numpy as np
                schedule = np.concatenate((np.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs),
                                           np.ones(epochs - warmup_epochs) * teacher_temp))
                return torch.from_numpy(schedule)
                """),
    Alternative("teacher_temperature_schedule", "the formula per epoch, guarding W = 1", "",
                """
                a, b, W = warmup_teacher_temp, teacher_temp, warmup_epochs
                values = [a + (b - a) * i / max(W - 1, 1) if i < W else b for i in range(epochs)]
                return torch.tensor(values, dtype=torch.float64)
                """),
    Alternative("teacher_temperature_schedule", "torch.where with the interpolation a·(1 − t) + b·t", "",
                """
                epoch = torch.arange(epochs, dtype=torch.float64)
                t = epoch / max(warmup_epochs - 1, 1)
                warm = warmup_teacher_temp * (1 - t) + teacher_temp * t
                return torch.where(epoch < warmup_epochs, warm, torch.full_like(epoch, teacher_temp))
                """),
]
