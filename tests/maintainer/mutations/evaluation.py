"""Mutations of Lesson 4.5 (`solutions/evaluation.py`); see `../mutation_harness.py`."""

from mutation_harness import Alternative, Bug

KNN_CLASSIFY = [
    Bug(
        "knn_classify",
        "temperature forgotten: exp(s)",
        "weights = (top_similarity / temperature).exp()",
        "weights = top_similarity.exp()",
        r"the temperature is missing",
    ),
    Bug(
        "knn_classify",
        "temperature multiplies: exp(s · T)",
        "weights = (top_similarity / temperature).exp()",
        "weights = (top_similarity * temperature).exp()",
        r"the temperature multiplies",
    ),
    Bug(
        "knn_classify",
        "distance-style weight exp(-s / T)",
        "weights = (top_similarity / temperature).exp()",
        "weights = (-top_similarity / temperature).exp()",
        r"sign of the exponent",
    ),
    Bug(
        "knn_classify",
        "unweighted majority vote",
        "weights = (top_similarity / temperature).exp()",
        "weights = torch.ones_like(top_similarity)",
        r"each neighbour counts 1",
    ),
    Bug(
        "knn_classify",
        "k + 1 neighbours (off by one)",
        "similarity.topk(k, dim=1",
        "similarity.topk(k + 1, dim=1",
        r"k \+ 1 neighbours vote",
    ),
    Bug(
        "knn_classify",
        "k − 1 neighbours (off by one)",
        "similarity.topk(k, dim=1",
        "similarity.topk(k - 1, dim=1",
        r"k − 1 neighbours vote",
    ),
    Bug(
        "knn_classify",
        "the nearest neighbour skipped, as if it were the query itself",
        "top_similarity, top_index = similarity.topk(k, dim=1, largest=True, sorted=True)  # (chunk, k)",
        "top_similarity, top_index = similarity.topk(k + 1, dim=1, largest=True, sorted=True)\n"
        "        top_similarity, top_index = top_similarity[:, 1:], top_index[:, 1:]",
        r"the nearest neighbour does not vote",
    ),
    Bug(
        "knn_classify",
        "the k least similar samples vote",
        "largest=True",
        "largest=False",
        r"least\* similar",
    ),
    Bug(
        "knn_classify",
        "features not normalised",
        "train = F.normalize(train_features.float(), dim=1)\n    test = F.normalize(test_features.float(), dim=1)",
        "train = train_features.float()\n    test = test_features.float()",
        r"not L2-normalised",
    ),
    Bug(
        "knn_classify",
        "only the test features normalised",
        "train = F.normalize(train_features.float(), dim=1)",
        "train = train_features.float()",
        r"training features are not L2-normalised",
    ),
    Bug(
        "knn_classify",
        "votes normalised to sum 1 (a softmax over the neighbours)",
        "weights = (top_similarity / temperature).exp()",
        "weights = (top_similarity / temperature).softmax(dim=1)",
        r"normalised to sum 1",
    ),
    Bug(
        "knn_classify",
        "argmax over the wrong dimension",
        "return votes.argmax(dim=1), votes",
        "return votes.argmax(dim=0), votes",
        r"predictions must have shape \(N_test,\).*dim=1",
    ),
    Bug(
        "knn_classify",
        "argmin instead of argmax",
        "return votes.argmax(dim=1), votes",
        "return votes.argmin(dim=1), votes",
        r"fewest\* votes|argmax",
    ),
    Bug(
        "knn_classify",
        "num_classes ignored: width from the labels",
        "votes = torch.zeros(top_index.shape[0], num_classes)",
        "votes = torch.zeros(top_index.shape[0], int(labels.max()) + 1)",
        r"use num_classes for the width",
    ),
    Bug(
        "knn_classify",
        "returns (votes, predictions)",
        "return votes.argmax(dim=1), votes",
        "return votes, votes.argmax(dim=1)",
        r"swapped",
    ),
    Bug(
        "knn_classify",
        "training features normalised in place",
        "train = F.normalize(train_features.float(), dim=1)",
        "train_features /= train_features.norm(dim=1, keepdim=True)\n    train = train_features.float()",
        r"changed its input `train_features` in place",
    ),
    Bug(
        "knn_classify",
        "chunk slice ends at KNN_CHUNK instead of start + KNN_CHUNK",
        "test[start : start + KNN_CHUNK]",
        "test[start : KNN_CHUNK]",
        r"votes must have shape \(N_test, num_classes\)",
    ),
    Bug(
        "knn_classify",
        "float64 features not converted: float64 votes",
        "train = F.normalize(train_features.float(), dim=1)\n    test = F.normalize(test_features.float(), dim=1)",
        "train = F.normalize(train_features, dim=1)\n    test = F.normalize(test_features, dim=1)",
        r"float64 features.*\.float\(\)",
    ),
    Bug(
        "knn_classify",
        "votes in the dtype of the features (float64 in, float64 out)",
        "",
        """
        train = F.normalize(train_features, dim=1)
        test = F.normalize(test_features, dim=1)
        top_similarity, top_index = (test @ train.T).topk(k, dim=1)
        weights = (top_similarity / temperature).exp()
        votes = torch.zeros(test.shape[0], num_classes, dtype=weights.dtype)
        votes.scatter_add_(1, train_labels[top_index], weights)
        return votes.argmax(dim=1), votes
        """,
        r"votes must be float32",
    ),
    Alternative(
        "knn_classify",
        "the original DINO code: one-hot labels times the weights, no chunks",
        "",
        """
        train = train_features.float()
        train = train / train.norm(dim=1, keepdim=True)
        test = test_features.float()
        test = test / test.norm(dim=1, keepdim=True)
        distances, indices = (test @ train.T).topk(k, dim=1)
        one_hot = torch.zeros(test.shape[0] * k, num_classes)
        one_hot.scatter_(1, train_labels[indices].view(-1, 1).long(), 1)
        weights = distances.clone().div_(temperature).exp_()
        votes = (one_hot.view(test.shape[0], k, num_classes) * weights.view(test.shape[0], k, 1)).sum(1)
        return votes.argmax(1), votes
        """,
    ),
    Alternative(
        "knn_classify",
        "one test sample at a time, in float64, sort instead of topk",
        "",
        """
        train = F.normalize(train_features.double(), dim=1)
        test = F.normalize(test_features.double(), dim=1)
        votes = torch.zeros(test.shape[0], num_classes, dtype=torch.float64)
        for i in range(test.shape[0]):
            similarity = train @ test[i]
            nearest = similarity.sort(descending=True).indices[:k]
            votes[i].index_add_(0, train_labels[nearest].long(), torch.exp(similarity[nearest] / temperature))
        votes = votes.float()
        return votes.argmax(dim=1), votes
        """,
    ),
    Alternative(
        "knn_classify",
        "Euclidean distances of unit vectors (cdist): s = 1 - d² / 2",
        "",
        """
        train = F.normalize(train_features.float(), dim=1)
        test = F.normalize(test_features.float(), dim=1)
        distance, index = torch.cdist(test, train).topk(k, dim=1, largest=False)
        weights = torch.exp((1 - distance**2 / 2) / temperature)
        votes = torch.zeros(test.shape[0], num_classes).scatter_add_(1, train_labels.long()[index], weights)
        return votes.max(dim=1).indices, votes
        """,
    ),
]

TOP1_TOP5 = (
    "top1 = 100.0 * hits[:, :1].sum().item() / n_test\n"
    "    top5 = 100.0 * hits[:, : min(5, k)].sum().item() / n_test"
)
KNN_ACCURACY = [
    Bug(
        "knn_accuracy",
        "fractions instead of percentages",
        TOP1_TOP5,
        "top1 = hits[:, :1].sum().item() / n_test\n    top5 = hits[:, : min(5, k)].sum().item() / n_test",
        r"fractions: return percentages",
    ),
    Bug(
        "knn_accuracy",
        "top-5 always counts 5 classes",
        "hits[:, : min(5, k)]",
        "hits[:, :5]",
        r"min\(5, k\) best classes: with k < 5",
    ),
    Bug(
        "knn_accuracy",
        "top-5 counts the k best classes",
        "hits[:, : min(5, k)]",
        "hits[:, :k]",
        r"best classes, not k",
    ),
    Bug(
        "knn_accuracy",
        "tensors returned instead of Python floats",
        TOP1_TOP5,
        "top1 = 100.0 * hits[:, :1].sum() / n_test\n    top5 = 100.0 * hits[:, : min(5, k)].sum() / n_test",
        r"Python float.*item\(\)",
    ),
    Bug(
        "knn_accuracy",
        "integer division",
        TOP1_TOP5,
        "top1 = 100 * hits[:, :1].sum().item() // n_test\n    top5 = 100 * hits[:, : min(5, k)].sum().item() // n_test",
        r"use / \(not //\)",
    ),
    Bug(
        "knn_accuracy",
        "classes ranked ascending",
        "descending=True",
        "descending=False",
        r"fewest votes up",
    ),
    Bug(
        "knn_accuracy",
        "temperature not passed on",
        "knn_classify(train_features, train_labels, test_features, k, temperature, num_classes)",
        "knn_classify(train_features, train_labels, test_features, k, num_classes=num_classes)",
        r"T = 0\.07 whatever the temperature",
    ),
    Bug(
        "knn_accuracy",
        "k not passed on",
        "knn_classify(train_features, train_labels, test_features, k, temperature, num_classes)",
        "knn_classify(train_features, train_labels, test_features, temperature=temperature, num_classes=num_classes)",
        r"k = 20 whatever k",
    ),
    Bug(
        "knn_accuracy",
        "divided by the number of training samples",
        "n_test = test_labels.shape[0]",
        "n_test = train_labels.shape[0]",
        r"test\* samples, not of training",
    ),
    Bug(
        "knn_accuracy",
        "topk(min(5, k)) fails with fewer classes",
        "top5 = 100.0 * hits[:, : min(5, k)].sum().item() / n_test",
        "best = votes.topk(min(5, k), dim=1).indices\n"
        "    top5 = 100.0 * (best == test_labels.view(-1, 1)).any(dim=1).sum().item() / n_test",
        r"fewer classes than min\(5, k\)",
    ),
    Bug(
        "knn_accuracy",
        "returns (top5, top1)",
        "return top1, top5",
        "return top5, top1",
        r"swapped",
    ),
    Alternative(
        "knn_accuracy",
        "means of float32 hits (100 * hits.float().mean()), topk for top-5",
        "",
        """
        predictions, votes = knn_classify(train_features, train_labels, test_features, k, temperature, num_classes)
        top1 = (100 * (predictions == test_labels).float().mean()).item()
        best = votes.topk(min(5, k, votes.shape[1]), dim=1).indices
        top5 = (100 * (best == test_labels.view(-1, 1)).any(dim=1).float().mean()).item()
        return top1, top5
        """,
    ),
    Alternative(
        "knn_accuracy",
        "a Python loop over the test samples",
        "",
        """
        _, votes = knn_classify(train_features, train_labels, test_features, k, temperature, num_classes)
        correct1 = correct5 = 0
        for row, label in zip(votes.tolist(), test_labels.tolist()):
            ranking = sorted(range(len(row)), key=lambda c: -row[c])
            correct1 += ranking[0] == label
            correct5 += label in ranking[: min(5, k)]
        return 100.0 * correct1 / len(test_labels), 100.0 * correct5 / len(test_labels)
        """,
    ),
    Alternative(
        "knn_accuracy",
        "the label's rank (classes with more votes), float64 means",
        "",
        """
        _, votes = knn_classify(train_features, train_labels, test_features, k, temperature, num_classes)
        rank = (votes > votes.gather(1, test_labels.long().view(-1, 1))).sum(dim=1)
        return float((rank < 1).double().mean() * 100), float((rank < min(5, k)).double().mean() * 100)
        """,
    ),
]

CLS_ATTENTION_MAPS = [
    Bug(
        "cls_attention_maps",
        "CLS column instead of CLS row",
        "cls_to_patches = attention[:, :, 0, 1:]",
        "cls_to_patches = attention[:, :, 1:, 0]",
        r"column 0 \(how much each patch attends to CLS\)",
    ),
    Bug(
        "cls_attention_maps",
        "heads averaged",
        "return cls_to_patches.reshape(*cls_to_patches.shape[:2], rows, cols)",
        "return cls_to_patches.reshape(*cls_to_patches.shape[:2], rows, cols).mean(dim=1)",
        r"one map per head",
    ),
    Bug(
        "cls_attention_maps",
        "rows and columns swapped",
        "rows, cols = images.shape[-2] // patch, images.shape[-1] // patch",
        "rows, cols = images.shape[-1] // patch, images.shape[-2] // patch",
        r"H/P rows and W/P columns",
    ),
    Bug(
        "cls_attention_maps",
        "column-major reshape",
        "return cls_to_patches.reshape(*cls_to_patches.shape[:2], rows, cols)",
        "return cls_to_patches.reshape(*cls_to_patches.shape[:2], cols, rows).transpose(-1, -2)",
        r"row-major",
    ),
    Bug(
        "cls_attention_maps",
        "no torch.no_grad()",
        "with torch.no_grad():\n        attention = backbone.last_attention(images)",
        "if True:\n        attention = backbone.last_attention(images)",
        r"torch\.no_grad",
    ),
    Bug(
        "cls_attention_maps",
        "the last patch dropped instead of CLS",
        "cls_to_patches = attention[:, :, 0, 1:]",
        "cls_to_patches = attention[:, :, 0, :-1]",
        r"not the last patch",
    ),
    Bug(
        "cls_attention_maps",
        "weights renormalised over the patches",
        "cls_to_patches = attention[:, :, 0, 1:]",
        "cls_to_patches = attention[:, :, 0, 1:]\n"
        "    cls_to_patches = cls_to_patches / cls_to_patches.sum(-1, keepdim=True)",
        r"do not renormalise",
    ),
    Bug(
        "cls_attention_maps",
        "softmax applied again",
        "cls_to_patches = attention[:, :, 0, 1:]",
        "cls_to_patches = attention[:, :, 0, 1:].softmax(dim=-1)",
        r"already probabilities",
    ),
    Bug(
        "cls_attention_maps",
        "not reshaped to the grid",
        "return cls_to_patches.reshape(*cls_to_patches.shape[:2], rows, cols)",
        "return cls_to_patches",
        r"reshape the patch weights to the grid",
    ),
    Alternative(
        "cls_attention_maps",
        "unflatten, inference_mode",
        "",
        """
        patch = backbone.cfg.patch_size
        with torch.inference_mode():
            attention = backbone.last_attention(images)
        return attention[:, :, 0, 1:].unflatten(-1, (images.shape[2] // patch, images.shape[3] // patch)).clone()
        """,
    ),
    Alternative(
        "cls_attention_maps",
        "detach, a loop over the heads, view",
        "",
        """
        batch, _, height, width = images.shape
        patch = backbone.cfg.patch_size
        attention = backbone.last_attention(images).detach()
        maps = [attention[:, head, 0, 1:].contiguous().view(batch, height // patch, width // patch)
                for head in range(attention.shape[1])]
        return torch.stack(maps, dim=1)
        """,
    ),
]

ATTENTION_MASS_MASK = [
    Bug(
        "attention_mass_mask",
        "inclusive threshold (<=)",
        "keep_sorted = mass_above < mass",
        "keep_sorted = mass_above <= mass",
        r"the inequality is strict",
    ),
    Bug(
        "attention_mass_mask",
        "cumulative mass including the patch itself",
        "mass_above = ordered.cumsum(dim=-1) - ordered",
        "mass_above = ordered.cumsum(dim=-1)",
        r"the patch that crosses `mass` must be kept",
    ),
    Bug(
        "attention_mass_mask",
        "cumulative mass over the unsorted patches",
        "ordered, order = flat.sort(dim=-1, descending=True)",
        "ordered, order = flat, torch.arange(flat.shape[-1]).expand_as(flat)",
        r"unsorted",
    ),
    Bug(
        "attention_mass_mask",
        "sorted ascending",
        "descending=True",
        "descending=False",
        r"from the lowest weight up",
    ),
    Bug(
        "attention_mass_mask",
        "mask left in sorted order",
        "keep = torch.empty_like(keep_sorted).scatter_(-1, order, keep_sorted)",
        "keep = keep_sorted",
        r"sorted order",
    ),
    Bug(
        "attention_mass_mask",
        "maps not normalised",
        "flat = flat / flat.sum(dim=-1, keepdim=True)",
        "flat = flat",
        r"not normalised",
    ),
    Bug(
        "attention_mass_mask",
        "all maps normalised together",
        "flat = flat / flat.sum(dim=-1, keepdim=True)",
        "flat = flat / flat.sum()",
        r"all maps were normalised together",
    ),
    Bug(
        "attention_mass_mask",
        "each row of a map normalised on its own",
        "flat = maps.flatten(-2).float()\n    flat = flat / flat.sum(dim=-1, keepdim=True)",
        "flat = (maps / maps.sum(dim=-1, keepdim=True)).flatten(-2).float()",
        r"each row of a map",
    ),
    Bug(
        "attention_mass_mask",
        "float mask",
        "return keep.view(maps.shape)",
        "return keep.view(maps.shape).float()",
        r"bool tensor",
    ),
    Bug(
        "attention_mass_mask",
        "mask left flat",
        "return keep.view(maps.shape)",
        "return keep",
        r"reshape it back",
    ),
    Bug(
        "attention_mass_mask",
        "maps normalised in place",
        "flat = flat / flat.sum(dim=-1, keepdim=True)",
        "flat /= flat.sum(dim=-1, keepdim=True)",
        r"changed its input `maps` in place",
    ),
    Alternative(
        "attention_mass_mask",
        "a Python loop over the maps, in float64",
        "",
        """
        flat = maps.reshape(-1, maps.shape[-2] * maps.shape[-1]).double()
        keep = torch.zeros(flat.shape, dtype=torch.bool)
        for i, row in enumerate(flat):
            row = row / row.sum()
            total = 0.0
            for j in row.argsort(descending=True).tolist():
                if total >= mass:
                    break
                keep[i, j] = True
                total += row[j].item()
        return keep.view(maps.shape)
        """,
    ),
    Alternative(
        "attention_mass_mask",
        "the weight of the crossing patch as a threshold",
        "",
        """
        flat = maps.flatten(-2)
        flat = flat / flat.sum(-1, keepdim=True)
        ordered = flat.sort(-1, descending=True).values
        above = torch.cat([torch.zeros_like(ordered[..., :1]), ordered.cumsum(-1)[..., :-1]], dim=-1)
        count = (above < mass).sum(-1, keepdim=True)
        return (flat >= ordered.gather(-1, count - 1)).view(maps.shape)
        """,
    ),
    Alternative(
        "attention_mass_mask",
        "argsort and gather back to patch order",
        "",
        """
        flat = maps.flatten(-2).double()
        flat = flat / flat.sum(dim=-1, keepdim=True)
        order = flat.argsort(dim=-1, descending=True)
        ordered = flat.gather(-1, order)
        keep_sorted = ordered.cumsum(-1) - ordered < mass
        return keep_sorted.gather(-1, order.argsort(dim=-1)).reshape(maps.shape)
        """,
    ),
]

PCA_PROJECT = [
    Bug("pca_project", "the features not centred", "centred = features - features.mean(dim=0, keepdim=True)",
        "centred = features", r"not centred"),
    Bug("pca_project", "Vᵀ read as V: projected onto the columns of vh", "directions = vh[:n_components]",
        "directions = vh[:, :n_components].T", r"columns of Vᵀ"),
    Bug("pca_project", "U's columns returned, without the singular values", "projected = centred @ directions.T",
        "projected = torch.linalg.svd(centred, full_matrices=False)[0][:, :n_components]", r"U's columns, unscaled"),
    Bug("pca_project", "the directions of smallest variance (eigh's ascending order)", "directions = vh[:n_components]",
        "directions = vh.flip(0)[:n_components]", r"\*smallest\* variance"),
    Bug("pca_project", "the top components in reverse order", "directions = vh[:n_components]",
        "directions = vh[:n_components].flip(0)", r"reverse order"),
    Bug("pca_project", "every component kept (n_components ignored)", "directions = vh[:n_components]",
        "directions = vh", r"keep only the first n_components"),
    Bug("pca_project", "one component too many", "directions = vh[:n_components]",
        "directions = vh[:n_components + 1]", r"must have shape \(N, n_components\)"),
    Bug("pca_project", "the rows L2-normalised first", "centred = features - features.mean(dim=0, keepdim=True)",
        "normalised = F.normalize(features, dim=1)\n    centred = normalised - normalised.mean(dim=0, keepdim=True)",
        r"L2-normalised first"),
    Bug("pca_project", "the columns standardised first", "centred = features - features.mean(dim=0, keepdim=True)",
        "centred = (features - features.mean(dim=0, keepdim=True)) / features.std(dim=0, keepdim=True)",
        r"scaled to unit variance"),
    Bug("pca_project", "the features centred in place", "centred = features - features.mean(dim=0, keepdim=True)",
        "centred = features.sub_(features.mean(dim=0, keepdim=True))", r"changed its input `features` in place"),
    Bug("pca_project", "numpy arrays returned", "", """
        import numpy as np

        x = features.numpy()
        centred = x - x.mean(axis=0)
        _, s, vh = np.linalg.svd(centred, full_matrices=False)
        return centred @ vh[:n_components].T, s[:n_components] ** 2 / (s**2).sum()
        """, r"no numpy"),
    Bug("pca_project", "the ratios sum to 1 over the kept directions",
        "return projected, variance[:n_components] / variance.sum()",
        "return projected, variance[:n_components] / variance[:n_components].sum()", r"kept directions only"),
    Bug("pca_project", "the ratio of singular values, not of variances", "variance = singular_values.square()",
        "variance = singular_values", r"uses the singular values"),
    Bug("pca_project", "the variances returned, not their shares",
        "return projected, variance[:n_components] / variance.sum()",
        "return projected, variance[:n_components] / (features.shape[0] - 1)", r"the variances themselves"),
    Alternative("pca_project", "eigh of the covariance matrix, flipped to descending order", "", """
        centred = features - features.mean(dim=0)
        eigenvalues, eigenvectors = torch.linalg.eigh(centred.T @ centred / (features.shape[0] - 1))
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)  # largest first
        return centred @ eigenvectors[:, :n_components], eigenvalues[:n_components] / eigenvalues.sum()
        """),
    Alternative("pca_project", "torch.pca_lowrank with every component", "", """
        _, s, v = torch.pca_lowrank(features, q=min(features.shape), center=True)
        centred = features - features.mean(dim=0)
        return centred @ v[:, :n_components], s[:n_components] ** 2 / (s**2).sum()
        """),
    Alternative("pca_project", "float64 SVD, coordinates as U·S, signs made positive, cast back", "", """
        x = features.double()
        u, s, _ = torch.linalg.svd(x - x.mean(dim=0), full_matrices=False)
        projected = u[:, :n_components] * s[:n_components]
        largest = projected.gather(0, projected.abs().argmax(dim=0, keepdim=True))
        projected = projected * torch.sign(largest)  # a sign convention: the largest coordinate positive
        return projected.to(features.dtype), (s[:n_components] ** 2 / (s**2).sum()).to(features.dtype)
        """),
]

MUTATIONS = KNN_CLASSIFY + KNN_ACCURACY + CLS_ATTENTION_MAPS + ATTENTION_MASS_MASK + PCA_PROJECT
