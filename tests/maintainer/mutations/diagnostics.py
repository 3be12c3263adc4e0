"""Mutations of Lesson 3.4's feature-quality tools (`solutions/diagnostics.py`); see `../mutation_harness.py`."""

from mutation_harness import Alternative, Bug

NORM_LINE = "norms = torch.linalg.vector_norm(features.detach().double(), dim=1)"
UNIT_LINE = (
    "unit = features.detach() / torch.linalg.vector_norm(features.detach(), dim=1, keepdim=True).clamp_min(1e-12)"
)
LOG_P_LINE = "log_p = torch.log_softmax(logits.detach().double() / temperature, dim=-1)  # (N, K)"
ENTROPY_RETURN = "return float(-(p_mean * log_p_mean).sum()), mean_entropy"

MUTATIONS = [
    # ------------------------------------------------------------------ l2_norm_consistency
    Bug(
        "l2_norm_consistency", "population std",
        "float(norms.std())",
        "float(norms.std(unbiased=False))",
        r"unbiased std \(divide by N − 1",
    ),
    Bug(
        "l2_norm_consistency", "deviation without abs",
        "(norms - 1).abs().max()",
        "(norms - 1).max()",
        r"rows shorter than 1 count too",
    ),
    Bug(
        "l2_norm_consistency", "deviation of the mean norm",
        "float((norms - 1).abs().max())",
        "float((norms.mean() - 1).abs())",
        r"not the deviation of the mean norm",
    ),
    Bug(
        "l2_norm_consistency", "norms of the columns",
        NORM_LINE,
        NORM_LINE.replace("dim=1", "dim=0"),
        r"norm of each row \(dim=1\)",
    ),
    Bug(
        "l2_norm_consistency", "squared norms",
        NORM_LINE,
        "norms = (features.detach().double() ** 2).sum(dim=1)",
        r"square root of the sum of squares",
    ),
    Bug(
        "l2_norm_consistency", "statistics as tensors",
        '"mean": float(norms.mean())',
        '"mean": norms.mean()',
        r"stats\['mean'\] should be a Python float.*\.item\(\)",
    ),
    Bug(
        "l2_norm_consistency", "consistent as a tensor",
        '"consistent": deviation <= tolerance', '"consistent": (norms - 1).abs().max() <= tolerance',
        r"'consistent'\] should be a Python bool",
    ),
    Bug("l2_norm_consistency", "strict threshold", "deviation <= tolerance", "deviation < tolerance", r"<=, not <"),
    Bug(
        "l2_norm_consistency", "tolerance ignored",
        "deviation <= tolerance",
        "deviation <= NORM_TOLERANCE",
        r"use the tolerance argument",
    ),
    Bug(
        "l2_norm_consistency", "NaN std for one row",
        "float(norms.std()) if len(norms) > 1 else 0.0",
        "float(norms.std())",
        r"one row.*not NaN",
    ),
    Bug(
        "l2_norm_consistency", "squares the input in place",
        NORM_LINE, "norms = features.detach().pow_(2).sum(dim=1).sqrt().double()",
        r"changed its input `features` in place",
    ),
    Alternative(
        "l2_norm_consistency",
        "float32 norms, statistics in plain Python",
        "",
        """
        values = [float(v) for v in (features.detach() ** 2).sum(dim=1).sqrt()]
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        deviation = max(abs(v - 1) for v in values)
        return {"mean": mean, "std": std, "min": min(values), "max": max(values), "max_deviation": deviation,
                "consistent": deviation <= tolerance}
        """,
    ),
    Alternative(
        "l2_norm_consistency",
        "torch.linalg.norm in float32, std_mean, nan_to_num for one row, .item() and bool(...)",
        "",
        """
        norms = torch.linalg.norm(features.detach(), dim=-1)
        std, mean = torch.std_mean(norms, correction=1) if len(norms) > 1 else (torch.zeros(()), norms.mean())
        deviation = (norms - 1).abs().max()
        return {"mean": mean.item(), "std": std.nan_to_num(0.0).item(), "min": norms.min().item(),
                "max": norms.max().item(), "max_deviation": deviation.item(),
                "consistent": bool(deviation <= tolerance)}
        """,
    ),
    # ------------------------------------------------------------------ pairwise_cosine_similarities
    Bug(
        "pairwise_cosine_similarities", "rows not normalised",
        UNIT_LINE,
        "unit = features.detach()",
        r"divide each row by its own length",
    ),
    Bug(
        "pairwise_cosine_similarities", "columns normalised",
        UNIT_LINE,
        UNIT_LINE.replace("dim=1", "dim=0"),
        r"divide each row by its own length",
    ),
    Bug("pairwise_cosine_similarities", "diagonal included", "offset=1", "offset=0", r"diagonal .* is included"),
    Bug(
        "pairwise_cosine_similarities", "the full matrix",
        "return similarity[rows, cols].clamp(-1.0, 1.0)",
        "return similarity.clamp(-1.0, 1.0)",
        r"not the \(N, N\) matrix",
    ),
    Bug(
        "pairwise_cosine_similarities", "both triangles",
        "return similarity[rows, cols].clamp(-1.0, 1.0)",
        "return similarity[~torch.eye(len(unit), dtype=torch.bool)].clamp(-1.0, 1.0)",
        r"each unordered pair once",
    ),
    Bug(
        "pairwise_cosine_similarities", "column-major order",
        "rows, cols = torch.triu_indices(len(unit), len(unit), offset=1)",
        "cols, rows = torch.tril_indices(len(unit), len(unit), offset=-1)",
        r"wrong order.*row-major",
    ),
    Bug(
        "pairwise_cosine_similarities", "no clamp to [-1, 1]",
        "similarity[rows, cols].clamp(-1.0, 1.0)",
        "similarity[rows, cols]",
        r"clamp the result",
    ),
    Bug("pairwise_cosine_similarities", "no eps for zero rows", ".clamp_min(1e-12)", "", r"all-zero row gave NaN"),
    Bug(
        "pairwise_cosine_similarities", "normalises the input in place",
        UNIT_LINE,
        "unit = features.detach().div_("
        "torch.linalg.vector_norm(features.detach(), dim=1, keepdim=True).clamp_min(1e-12))",
        r"changed its input `features` in place",
    ),
    Alternative(
        "pairwise_cosine_similarities",
        "F.cosine_similarity in a double loop",
        "",
        """
        values = []
        for i in range(len(features)):
            for j in range(i + 1, len(features)):
                values.append(torch.nn.functional.cosine_similarity(features[i], features[j], dim=0))
        return torch.stack(values).detach().clamp(-1, 1)
        """,
    ),
    Alternative(
        "pairwise_cosine_similarities",
        "F.normalize and a boolean upper-triangle mask",
        "",
        """
        unit = torch.nn.functional.normalize(features.detach(), dim=1)
        similarity = unit @ unit.T
        upper = torch.ones_like(similarity, dtype=torch.bool).triu(diagonal=1)
        return similarity[upper].clamp(min=-1, max=1)
        """,
    ),
    Alternative(
        "pairwise_cosine_similarities",
        "float64 intermediates and einsum, cast back to the input's dtype",
        "",
        """
        unit = features.detach().double()
        unit = unit / unit.norm(dim=1, keepdim=True).clamp_min(1e-12)
        similarity = torch.einsum("id,jd->ij", unit, unit)
        i, j = torch.triu_indices(len(unit), len(unit), 1)
        return torch.clamp(similarity[i, j], -1, 1).to(features.dtype)
        """,
    ),
    # ------------------------------------------------------------------ dimension_spread
    Bug("dimension_spread", "unbiased std", "unbiased=False", "unbiased=True", r"population std"),
    Bug(
        "dimension_spread", "without √D",
        " * math.sqrt(unit.shape[1]))",
        ")",
        r"multiply the mean per-dimension std by √D",
    ),
    Bug("dimension_spread", "times D", "math.sqrt(unit.shape[1])", "unit.shape[1]", r"√D, not by D"),
    Bug("dimension_spread", "sum over dimensions", "per_dimension.mean()", "per_dimension.sum()", r"mean, not sum"),
    Bug("dimension_spread", "std of each row", "unit.std(dim=0", "unit.std(dim=1", r"over the N rows \(dim=0\)"),
    Bug(
        "dimension_spread", "rows not normalised",
        "unit = unit / torch.linalg.vector_norm(unit, dim=1, keepdim=True).clamp_min(1e-12)", "",
        r"L2-normalise the rows .* before taking the stds",
    ),
    Bug(
        "dimension_spread", "columns normalised",
        "vector_norm(unit, dim=1",
        "vector_norm(unit, dim=0",
        r"L2-normalise each row \(norm over dim=1\), not each column",
    ),
    Bug(
        "dimension_spread", "returns a tensor",
        "return float(per_dimension.mean() * math.sqrt(unit.shape[1]))",
        "return per_dimension.mean() * math.sqrt(unit.shape[1])",
        r"should return a Python float.*\.item\(\)",
    ),
    Bug(
        "dimension_spread", "E[z²] − E[z]² without a clamp",
        "",
        """
        unit = features.detach() / features.detach().norm(dim=1, keepdim=True)
        per_dimension = ((unit**2).mean(0) - unit.mean(0) ** 2).sqrt()
        return float(per_dimension.mean() * math.sqrt(unit.shape[1]))
        """,
        r"gave NaN.*clamp the variance",
    ),
    Bug(
        "dimension_spread", "normalises the input in place",
        "",
        """
        features /= features.norm(dim=1, keepdim=True)
        return float(features.std(dim=0, unbiased=False).mean() * math.sqrt(features.shape[1]))
        """,
        r"changed its input `features` in place",
    ),
    Alternative(
        "dimension_spread",
        "float32, F.normalize, correction=0, .item()",
        "",
        """
        unit = torch.nn.functional.normalize(features.detach(), dim=1)
        return (unit.std(dim=0, correction=0).mean() * unit.shape[1] ** 0.5).item()
        """,
    ),
    Alternative(
        "dimension_spread",
        "a loop over the dimensions with the textbook population std",
        "",
        """
        unit = features.detach() / features.detach().norm(dim=1, keepdim=True)
        n, d = unit.shape
        stds = []
        for j in range(d):
            column = unit[:, j]
            stds.append(((column - column.mean()) ** 2).mean().sqrt())
        return float(sum(stds) / d) * math.sqrt(d)
        """,
    ),
    Alternative(
        "dimension_spread",
        "float32 E[z²] − E[z]², clamped at 0",
        "",
        """
        unit = features.detach() / features.detach().norm(dim=1, keepdim=True)
        variance = ((unit**2).mean(dim=0) - unit.mean(dim=0) ** 2).clamp_min(0)
        return float(variance.sqrt().mean()) * math.sqrt(unit.shape[1])
        """,
    ),
    # ------------------------------------------------------------------ effective_rank
    Bug(
        "effective_rank", "not centred",
        "centred = centred - centred.mean(dim=0, keepdim=True)",
        "",
        r"centre the features first",
    ),
    Bug(
        "effective_rank", "each row's own mean",
        "centred.mean(dim=0, keepdim=True)",
        "centred.mean(dim=1, keepdim=True)",
        r"not each row's own mean",
    ),
    Bug(
        "effective_rank", "squared singular values",
        "p = singular_values / total",
        "p = singular_values**2 / (singular_values**2).sum()",
        r"not their squares",
    ),
    Bug(
        "effective_rank", "softmax of the singular values",
        "p = singular_values / total",
        "p = torch.softmax(singular_values, 0)",
        r"not a softmax",
    ),
    Bug(
        "effective_rank", "entropy, not its exp",
        "return float(torch.exp(-(p * p.log()).sum()))",
        "return float(-(p * p.log()).sum())",
        r"exponentiate the entropy",
    ),
    Bug("effective_rank", "log2 with exp", "p.log()", "p.log2()", r"natural log"),
    Bug("effective_rank", "0 · log 0", "    p = p[p > 0]\n", "", r"returned NaN.*0 · log 0"),
    Bug("effective_rank", "eps ignored", "if total < eps:", "if total < 1e-12:", r"use the eps argument"),
    Bug(
        "effective_rank", "1.0 for identical rows",
        "return 0.0",
        "return 1.0",
        r"identical rows carry no information: return 0\.0",
    ),
    Bug(
        "effective_rank", "returns a tensor",
        "return float(torch.exp(-(p * p.log()).sum()))", "return torch.exp(-(p * p.log()).sum())",
        r"should return a Python float.*\.item\(\)",
    ),
    Bug(
        "effective_rank", "centres the input in place",
        "",
        """
        features -= features.mean(dim=0, keepdim=True)
        singular_values = torch.linalg.svdvals(features.detach())
        if singular_values.sum() < eps:
            return 0.0
        p = singular_values[singular_values > 0] / singular_values.sum()
        return float(torch.exp(-(p * p.log()).sum()))
        """,
        r"changed its input `features` in place",
    ),
    Alternative(
        "effective_rank",
        "float32 svdvals and torch.special.entr",
        "",
        """
        x = features.detach() - features.detach().mean(dim=0, keepdim=True)
        s = torch.linalg.svdvals(x)
        if s.sum() < eps:
            return 0.0
        return math.exp(torch.special.entr(s / s.sum()).sum().item())
        """,
    ),
    Alternative(
        "effective_rank",
        "eigenvalues of the smaller Gram matrix (float64), xlogy",
        "",
        """
        x = features.detach().double()
        x = x - x.mean(0)
        n, d = x.shape
        gram = x.T @ x if d <= n else x @ x.T
        s = torch.linalg.eigvalsh(gram).clamp_min(0).sqrt()
        total = s.sum()
        if total < eps:
            return 0.0
        p = s / total
        return float(torch.exp(-torch.special.xlogy(p, p).sum()))
        """,
    ),
    Alternative(
        "effective_rank",
        "float64 eigenvalues of the (D, D) covariance",
        "",
        """
        x = features.detach().double()
        x = x - x.mean(0)
        s = torch.linalg.eigvalsh(x.T @ x / (len(x) - 1)).clamp_min(0).sqrt() * math.sqrt(len(x) - 1)
        if s.sum() < eps:
            return 0.0
        p = s[s > 0] / s.sum()
        return math.exp(-sum(float(v) * math.log(float(v)) for v in p))
        """,
    ),
    Alternative(
        "effective_rank",
        "numpy SVD and 2 ** (entropy in bits)",
        "",
        """
        import numpy as np

        x = features.detach().cpu().double().numpy()
        s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
        if s.sum() < eps:
            return 0.0
        p = s[s > 0] / s.sum()
        return float(2 ** -(p * np.log2(p)).sum())
        """,
    ),
    # ------------------------------------------------------------------ prediction_entropies
    Bug(
        "prediction_entropies", "pair swapped",
        ENTROPY_RETURN,
        "return mean_entropy, float(-(p_mean * log_p_mean).sum())",
        r"the pair is swapped",
    ),
    Bug(
        "prediction_entropies", "temperature ignored",
        "logits.detach().double() / temperature",
        "logits.detach().double()",
        r"divide the logits by the temperature argument",
    ),
    Bug(
        "prediction_entropies", "fixed τ = 0.1",
        "/ temperature",
        "/ STUDENT_TEMP",
        r"use the temperature argument .* not a fixed 0\.1",
    ),
    Bug(
        "prediction_entropies", "multiplied by τ",
        "/ temperature",
        "* temperature",
        r"divide the logits by τ, not multiply",
    ),
    Bug(
        "prediction_entropies", "softmax over the images",
        "dim=-1)  # (N, K)",
        "dim=0)  # (N, K)",
        r"over the K prototypes of each image \(dim=-1\)",
    ),
    Bug(
        "prediction_entropies", "softmax of the mean logits", "p_mean = p.mean(0)",
        "p_mean = torch.softmax(logits.detach().double().mean(0) / temperature, dim=-1)",
        r"not the softmax of the mean logits",
    ),
    Bug(
        "prediction_entropies", "log of softmax", LOG_P_LINE,
        "log_p = torch.softmax(logits.detach().double() / temperature, dim=-1).log()",
        r"mean_entropy is NaN.*log_softmax",
    ),
    Bug(
        "prediction_entropies", "log of an unused prototype's p̄ = 0",
        "log_p_mean = torch.where(p_mean > 0, p_mean.log(), torch.zeros_like(p_mean))", "log_p_mean = p_mean.log()",
        r"entropy_of_mean is NaN",
    ),
    Bug(
        "prediction_entropies", "mean over the prototypes",
        "(p * log_p).sum(-1).mean()",
        "(p * log_p).mean()",
        r"sum −p log p over the K prototypes",
    ),
    Bug(
        "prediction_entropies", "no minus sign",
        "",
        """
        log_p = torch.log_softmax(logits.detach().double() / temperature, dim=-1)
        p = log_p.exp()
        p_mean = p.mean(0)
        return float(torch.special.xlogy(p_mean, p_mean).sum()), float((p * log_p).sum(-1).mean())
        """,
        r"mind the sign",
    ),
    Bug(
        "prediction_entropies", "log2",
        "",
        """
        log_p = torch.log_softmax(logits.detach().double() / temperature, dim=-1) / math.log(2)
        p = (log_p * math.log(2)).exp()
        p_mean = p.mean(0)
        return float(-(torch.special.xlogy(p_mean, p_mean) / math.log(2)).sum()), float(-(p * log_p).sum(-1).mean())
        """,
        r"natural log",
    ),
    Bug(
        "prediction_entropies", "returns tensors",
        ENTROPY_RETURN,
        "return -(p_mean * log_p_mean).sum(), torch.tensor(mean_entropy)",
        r"should return a Python float",
    ),
    Bug(
        "prediction_entropies", "scales the logits in place",
        LOG_P_LINE, "logits /= temperature\n    log_p = torch.log_softmax(logits.detach().double(), dim=-1)",
        r"changed its input `logits` in place",
    ),
    Alternative(
        "prediction_entropies",
        "float32 softmax and torch.special.entr (explicit p log p, zeros handled)",
        "",
        """
        p = torch.softmax(logits.detach() / temperature, dim=1)
        entropy_of_mean = torch.special.entr(p.mean(dim=0)).sum()
        mean_entropy = torch.special.entr(p).sum(dim=1).mean()
        return entropy_of_mean.item(), mean_entropy.item()
        """,
    ),
    Alternative(
        "prediction_entropies",
        "torch.distributions.Categorical",
        "",
        """
        from torch.distributions import Categorical

        scaled = logits.detach() / temperature
        mean_entropy = Categorical(logits=scaled).entropy().mean()
        entropy_of_mean = Categorical(probs=torch.softmax(scaled, dim=-1).mean(0)).entropy()
        return float(entropy_of_mean), float(mean_entropy)
        """,
    ),
    Alternative(
        "prediction_entropies",
        "log domain: log p̄ = logsumexp(log p, 0) − log N, a loop over the images for the mean entropy",
        "",
        """
        log_p = torch.log_softmax(logits.detach() / temperature, dim=-1)
        entropies = [-(row.exp() * row).sum() for row in log_p]
        log_p_mean = torch.logsumexp(log_p, dim=0) - math.log(len(log_p))
        terms = torch.where(torch.isinf(log_p_mean), torch.zeros_like(log_p_mean), log_p_mean.exp() * log_p_mean)
        return -float(terms.sum()), float(sum(entropies) / len(entropies))
        """,
    ),
]
