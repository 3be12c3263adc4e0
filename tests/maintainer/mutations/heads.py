"""Mutations of Lesson 3.3's projection head (`solutions/heads.py`); see `../mutation_harness.py`."""

from mutation_harness import Alternative, Bug

BUILD_MLP_REFERENCE_LOOP = """
        layers.append(nn.Linear(width, hidden_dim))
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.GELU())
"""

MUTATIONS = [
    # ------------------------------------------------------------ build_mlp
    Bug(
        "build_mlp",
        "a GELU after the bottleneck Linear too",
        "    layers.append(nn.Linear(hidden_dim, bottleneck_dim))\n",
        "    layers.append(nn.Linear(hidden_dim, bottleneck_dim))\n    layers.append(nn.GELU())\n",
        r"must end with the bottleneck Linear, nothing after it",
    ),
    Bug(
        "build_mlp",
        "ReLU instead of GELU",
        "layers.append(nn.GELU())",
        "layers.append(nn.ReLU())",
        r"activation between the Linear layers is nn\.GELU\(\)",
    ),
    Bug(
        "build_mlp",
        "the tanh approximation of GELU",
        "layers.append(nn.GELU())",
        'layers.append(nn.GELU(approximate="tanh"))',
        r"exact GELU, nn\.GELU\(\)",
    ),
    Bug(
        "build_mlp",
        "BatchNorm after the GELU instead of before it",
        BUILD_MLP_REFERENCE_LOOP,
        """
        layers.append(nn.Linear(width, hidden_dim))
        layers.append(nn.GELU())
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden_dim))
""",
        r"Linear, \[BatchNorm1d\], GELU in this order",
    ),
    Bug(
        "build_mlp",
        "use_bn ignored",
        "        if use_bn:\n            layers.append(nn.BatchNorm1d(hidden_dim))\n",
        "",
        r"use_bn=True puts a BatchNorm1d\(hidden_dim\) after every hidden Linear",
    ),
    Bug(
        "build_mlp",
        "off by one: nlayers hidden layers plus the last one",
        "for _ in range(nlayers - 1):",
        "for _ in range(nlayers):",
        r"nlayers counts the Linear layers",
    ),
    Bug(
        "build_mlp",
        "nlayers ignored: always the paper's 3 layers",
        "for _ in range(nlayers - 1):",
        "for _ in range(2):",
        r"nlayers counts the Linear layers",
    ),
    Bug(
        "build_mlp",
        "nlayers = 1 not special-cased: the last Linear takes hidden_dim inputs",
        "    if nlayers == 1:\n        return nn.Sequential(nn.Linear(in_dim, bottleneck_dim))\n",
        "",
        r"nlayers=1 is a single Linear\(in_dim, bottleneck_dim\)",
    ),
    Bug(
        "build_mlp",
        "BatchNorm sized by the layer's input width",
        "            layers.append(nn.BatchNorm1d(hidden_dim))",
        "            layers.append(nn.BatchNorm1d(width))",
        r"each BatchNorm1d normalises the hidden width",
    ),
    Bug(
        "build_mlp",
        "Linear layers without bias",
        "layers.append(nn.Linear(width, hidden_dim))",
        "layers.append(nn.Linear(width, hidden_dim, bias=False))",
        r"Linear layers have a bias",
    ),
    Bug(
        "build_mlp",
        "returns the list of layers",
        "    return nn.Sequential(*layers)",
        "    return layers",
        r"must return an nn\.Sequential",
    ),
    Bug(
        "build_mlp",
        "BatchNorm after the single Linear of a 1-layer MLP",
        "        return nn.Sequential(nn.Linear(in_dim, bottleneck_dim))",
        "        bn = [nn.BatchNorm1d(bottleneck_dim)] if use_bn else []\n"
        "        return nn.Sequential(nn.Linear(in_dim, bottleneck_dim), *bn)",
        r"must end with the bottleneck Linear, nothing after it",
    ),
    Alternative(
        "build_mlp",
        "the original's layout: first layer, middle loop, last layer",
        "",
        """
        if nlayers == 1:
            return nn.Sequential(nn.Linear(in_dim, bottleneck_dim))
        layers = [nn.Linear(in_dim, hidden_dim)]
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.GELU())
        for _ in range(nlayers - 2):
            layers.append(nn.Linear(hidden_dim, hidden_dim))
            if use_bn:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.GELU())
        layers.append(nn.Linear(hidden_dim, bottleneck_dim))
        return nn.Sequential(*layers)
        """,
    ),
    Alternative(
        "build_mlp",
        "a list of widths, appended to an empty Sequential",
        "",
        """
        widths = [in_dim] + [hidden_dim] * (nlayers - 1) + [bottleneck_dim]
        mlp = nn.Sequential()
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            mlp.append(nn.Linear(a, b))
            if i < nlayers - 1:
                if use_bn:
                    mlp.append(nn.BatchNorm1d(b))
                mlp.append(nn.GELU(approximate="none"))
        return mlp
        """,
    ),
    # ------------------------------------------------------------ init_linear_weights
    Bug(
        "init_linear_weights",
        "0.02 passed positionally: it is the mean, std stays 1",
        "nn.init.trunc_normal_(module.weight, std=INIT_STD)",
        "nn.init.trunc_normal_(module.weight, INIT_STD)",
        r"passes 0\.02 as the \*mean\*",
    ),
    Bug(
        "init_linear_weights",
        "truncated at ±2 std instead of ±2",
        "nn.init.trunc_normal_(module.weight, std=INIT_STD)",
        "nn.init.trunc_normal_(module.weight, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD)",
        r"cut is at ±2 in absolute value",
    ),
    Bug(
        "init_linear_weights",
        "a uniform distribution",
        "nn.init.trunc_normal_(module.weight, std=INIT_STD)",
        "nn.init.uniform_(module.weight, -INIT_STD, INIT_STD)",
        r"as a uniform distribution does",
    ),
    Bug(
        "init_linear_weights",
        "std 0.2 (a typo)",
        "nn.init.trunc_normal_(module.weight, std=INIT_STD)",
        "nn.init.trunc_normal_(module.weight, std=0.2)",
        r"weight std is 0\.\d+, expected 0\.02",
    ),
    Bug(
        "init_linear_weights",
        "bias left at PyTorch's default",
        "        if module.bias is not None:\n            nn.init.zeros_(module.bias)\n",
        "",
        r"the bias must be set to zero",
    ),
    Bug(
        "init_linear_weights",
        "bias drawn like the weight",
        "nn.init.zeros_(module.bias)",
        "nn.init.trunc_normal_(module.bias, std=INIT_STD)",
        r"the bias must be set to zero",
    ),
    Bug(
        "init_linear_weights",
        "no check for a Linear without bias",
        "        if module.bias is not None:\n            nn.init.zeros_(module.bias)\n",
        "        nn.init.zeros_(module.bias)\n",
        r"zero the bias only `if module\.bias is not None`",
    ),
    Bug(
        "init_linear_weights",
        "every module with a weight, not only Linear",
        "    if isinstance(module, nn.Linear):",
        '    if getattr(module, "weight", None) is not None:',
        r"only nn\.Linear is initialised",
    ),
    Bug(
        "init_linear_weights",
        "in-place normal_ on the parameter without torch.no_grad()",
        "nn.init.trunc_normal_(module.weight, std=INIT_STD)",
        "module.weight.normal_(0.0, INIT_STD)",
        r"needs torch\.no_grad\(\)",
    ),
    Bug(
        "init_linear_weights",
        "initialises a new layer and returns it instead of changing the module",
        "",
        """
        if isinstance(module, nn.Linear):
            module = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
            nn.init.trunc_normal_(module.weight, std=INIT_STD)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        return module
        """,
        r"the weight was not changed: initialise the layer in place",
    ),
    Alternative(
        "init_linear_weights",
        "normal_ clamped to ±2 under torch.no_grad(), zero_()",
        "",
        """
        if isinstance(module, nn.Linear):
            with torch.no_grad():
                module.weight.normal_(0.0, INIT_STD).clamp_(-2.0, 2.0)
                if module.bias is not None:
                    module.bias.zero_()
        """,
    ),
    Alternative(
        "init_linear_weights",
        "every argument of trunc_normal_ spelled out, bias through .data",
        "",
        """
        if type(module) is nn.Linear:
            nn.init.trunc_normal_(module.weight, mean=0.0, std=0.02, a=-2.0, b=2.0)
            if module.bias is not None:
                module.bias.data.fill_(0.0)
        """,
    ),
    # ------------------------------------------------------------ l2_normalize
    Bug(
        "l2_normalize",
        "norm over the columns (dim=0)",
        "vector_norm(x, dim=-1, keepdim=True)",
        "vector_norm(x, dim=0, keepdim=True)",
        r"you divided by the norms of the columns",
    ),
    Bug(
        "l2_normalize",
        "dim=1 (right for a matrix, wrong for (..., D))",
        "vector_norm(x, dim=-1, keepdim=True)",
        "vector_norm(x, dim=1, keepdim=True)",
        r"over the last dimension \(dim=-1\), not dim=1",
    ),
    Bug(
        "l2_normalize",
        "keepdim forgotten",
        "vector_norm(x, dim=-1, keepdim=True)",
        "vector_norm(x, dim=-1)",
        r"keep the reduced dimension \(keepdim=True\)",
    ),
    Bug(
        "l2_normalize",
        "eps added instead of taken as a floor",
        "    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)",
        "    return x / (torch.linalg.vector_norm(x, dim=-1, keepdim=True) + eps)",
        r"max\(‖x‖, eps\), not ‖x‖ \+ eps",
    ),
    Bug(
        "l2_normalize",
        "eps argument ignored (the module constant instead)",
        ".clamp_min(eps)",
        ".clamp_min(L2_EPS)",
        r"use the eps argument",
    ),
    Bug(
        "l2_normalize",
        "no floor at all: an all-zero row becomes NaN",
        ".clamp_min(eps)",
        "",
        r"all-zero row must stay 0, not NaN",
    ),
    Bug(
        "l2_normalize",
        "eps floors the squared norm (rsqrt style)",
        "    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)",
        "    return x * torch.rsqrt((x * x).sum(-1, keepdim=True).clamp_min(eps))",
        r"not max\(‖x‖², eps\)",
    ),
    Bug(
        "l2_normalize",
        "divides by the sum of squares (no square root)",
        "    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)",
        "    return x / (x * x).sum(-1, keepdim=True).clamp_min(eps)",
        r"square root of the sum of squares",
    ),
    Bug(
        "l2_normalize",
        "L1 norm",
        "vector_norm(x, dim=-1, keepdim=True)",
        "vector_norm(x, ord=1, dim=-1, keepdim=True)",
        r"not the L1 norm",
    ),
    Bug(
        "l2_normalize",
        "one norm for the whole tensor",
        "vector_norm(x, dim=-1, keepdim=True)",
        "vector_norm(x)",
        r"not the whole tensor by one norm",
    ),
    Bug(
        "l2_normalize",
        "the norm detached from the graph",
        ".clamp_min(eps)",
        ".clamp_min(eps).detach()",
        r"gradient should be orthogonal to each row",
    ),
    Bug(
        "l2_normalize",
        "divides the input in place",
        "    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)",
        "    x /= torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)\n    return x",
        r"changed its input `x` in place",
    ),
    Alternative("l2_normalize", "F.normalize", "", "return F.normalize(x, p=2.0, dim=-1, eps=eps)"),
    Alternative(
        "l2_normalize",
        "x.norm with torch.maximum",
        "",
        """
        norm = x.norm(dim=-1, keepdim=True)
        return x / torch.maximum(norm, torch.full_like(norm, eps))
        """,
    ),
    Alternative(
        "l2_normalize",
        "float64 sum of squares by einsum, torch.where floor",
        "",
        """
        squares = torch.einsum("...d,...d->...", x.double(), x.double()).unsqueeze(-1)
        norm = squares.sqrt()
        return (x.double() / torch.where(norm > eps, norm, torch.full_like(norm, eps))).to(x.dtype)
        """,
    ),
    # ------------------------------------------------------------ effective_weight
    Bug(
        "WeightNormalizedLinear.effective_weight",
        "g ignored: unit rows",
        "self.weight_v * (self.weight_g / torch.linalg",
        "self.weight_v * (1.0 / torch.linalg",
        r"multiply by g",
    ),
    Bug(
        "WeightNormalizedLinear.effective_weight",
        "v not normalised",
        "",
        "return self.weight_g * self.weight_v",
        r"divide each row of v by its norm",
    ),
    Bug(
        "WeightNormalizedLinear.effective_weight",
        "norm over dim 0 (the columns)",
        "vector_norm(self.weight_v, dim=1, keepdim=True)",
        "vector_norm(self.weight_v, dim=0, keepdim=True)",
        r"over the input dimension \(dim=1\), not over the rows \(dim=0\)",
    ),
    Bug(
        "WeightNormalizedLinear.effective_weight",
        "norm of the whole matrix",
        "vector_norm(self.weight_v, dim=1, keepdim=True)",
        "vector_norm(self.weight_v)",
        r"not by the norm of the whole matrix",
    ),
    Bug(
        "WeightNormalizedLinear.effective_weight",
        "sum of squares without the square root",
        "torch.linalg.vector_norm(self.weight_v, dim=1, keepdim=True)",
        "self.weight_v.pow(2).sum(1, keepdim=True)",
        r"square root of the sum of squares",
    ),
    Bug(
        "WeightNormalizedLinear.effective_weight",
        "keepdim forgotten",
        "",
        "return self.weight_g.squeeze(1) * self.weight_v / torch.linalg.vector_norm(self.weight_v, dim=1)",
        r"keep the reduced dimension \(keepdim=True\)",
    ),
    Bug(
        "WeightNormalizedLinear.effective_weight",
        "v detached",
        "",
        "v = self.weight_v.detach()\nreturn v * (self.weight_g / torch.linalg.vector_norm(v, dim=1, keepdim=True))",
        r"no gradient reached weight_v",
    ),
    Bug(
        "WeightNormalizedLinear.effective_weight",
        "g read through .data",
        "self.weight_v * (self.weight_g / torch",
        "self.weight_v * (self.weight_g.data / torch",
        r"no gradient reached weight_g",
    ),
    Bug(
        "WeightNormalizedLinear.effective_weight",
        "the weight is computed once and cached",
        "",
        """
        if getattr(self, "_cached_weight", None) is None:
            norm = torch.linalg.vector_norm(self.weight_v, dim=1, keepdim=True)
            self._cached_weight = self.weight_v * (self.weight_g / norm)
        return self._cached_weight
        """,
        r"compute W from g and v on every call",
    ),
    Bug(
        "WeightNormalizedLinear.effective_weight",
        "v normalised in place",
        "",
        """
        with torch.no_grad():
            self.weight_v.div_(torch.linalg.vector_norm(self.weight_v, dim=1, keepdim=True))
        return self.weight_g * self.weight_v
        """,
        r"changed weight_v or weight_g in place",
    ),
    Bug(
        "WeightNormalizedLinear.effective_weight",
        "transposed (in_features, out_features)",
        "",
        "return (self.weight_v * (self.weight_g / torch.linalg.vector_norm(self.weight_v, dim=1, keepdim=True))).T",
        r"one row per output",
    ),
    Alternative(
        "WeightNormalizedLinear.effective_weight",
        "torch._weight_norm",
        "",
        "return torch._weight_norm(self.weight_v, self.weight_g, 0)",
    ),
    Alternative(
        "WeightNormalizedLinear.effective_weight",
        "F.normalize times g",
        "",
        "return self.weight_g * F.normalize(self.weight_v, dim=1)",
    ),
    Alternative(
        "WeightNormalizedLinear.effective_weight",
        "row by row in a loop, sqrt of a sum of squares",
        "",
        """
        rows = []
        for k in range(self.out_features):
            rows.append(self.weight_g[k] * self.weight_v[k] / torch.sqrt((self.weight_v[k] ** 2).sum()))
        return torch.stack(rows)
        """,
    ),
    Alternative(
        "WeightNormalizedLinear.effective_weight",
        "float64 norm by einsum",
        "",
        """
        v = self.weight_v
        norm = torch.einsum("kd,kd->k", v.double(), v.double()).sqrt().unsqueeze(1).to(v.dtype)
        return self.weight_g * v / norm
        """,
    ),
    # ------------------------------------------------------------ DINOProjectionHead.forward
    Bug(
        "DINOProjectionHead.forward",
        "no L2 normalisation",
        "return self.last_layer(l2_normalize(bottleneck))",
        "return self.last_layer(bottleneck)",
        r"L2-normalise the bottleneck before the last layer",
    ),
    Bug(
        "DINOProjectionHead.forward",
        "the scores normalised instead of the bottleneck",
        "return self.last_layer(l2_normalize(bottleneck))",
        "return l2_normalize(self.last_layer(bottleneck))",
        r"not the scores after it",
    ),
    Bug(
        "DINOProjectionHead.forward",
        "normalised over the batch (dim=0)",
        "return self.last_layer(l2_normalize(bottleneck))",
        "return self.last_layer(F.normalize(bottleneck, dim=0))",
        r"not each column \(dim=0\)",
    ),
    Bug(
        "DINOProjectionHead.forward",
        "the input normalised instead of the bottleneck",
        "",
        "return self.last_layer(self.mlp(l2_normalize(x)))",
        r"normalise the MLP's output, not its input x",
    ),
    Bug(
        "DINOProjectionHead.forward",
        "the input normalised as well as the bottleneck",
        "bottleneck = self.mlp(x)",
        "bottleneck = self.mlp(l2_normalize(x))",
        r"the backbone features x go into the MLP as they are",
    ),
    Bug(
        "DINOProjectionHead.forward",
        "a GELU on the bottleneck",
        "bottleneck = self.mlp(x)",
        "bottleneck = F.gelu(self.mlp(x))",
        r"no activation on the bottleneck",
    ),
    Bug(
        "DINOProjectionHead.forward",
        "multiplies by weight_v instead of the last layer",
        "return self.last_layer(l2_normalize(bottleneck))",
        "return l2_normalize(bottleneck) @ self.last_layer.weight_v.T",
        r"apply the last layer itself",
    ),
    Bug(
        "DINOProjectionHead.forward",
        "returns the normalised bottleneck",
        "return self.last_layer(l2_normalize(bottleneck))",
        "return l2_normalize(bottleneck)",
        r"forward returned the bottleneck",
    ),
    Bug(
        "DINOProjectionHead.forward",
        "the bottleneck detached",
        "bottleneck = self.mlp(x)",
        "bottleneck = self.mlp(x).detach()",
        r"mlp\.0\.weight received no gradient",
    ),
    Bug(
        "DINOProjectionHead.forward",
        "the norm computed under torch.no_grad()",
        "return self.last_layer(l2_normalize(bottleneck))",
        """with torch.no_grad():
            norm = bottleneck.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return self.last_layer(bottleneck / norm)""",
        r"must stay differentiable \(gradient of mlp\.",
    ),
    Bug(
        "DINOProjectionHead.forward",
        "the whole forward under torch.no_grad()",
        "",
        """
        with torch.no_grad():
            return self.last_layer(l2_normalize(self.mlp(x)))
        """,
        r"forward must stay differentiable",
    ),
    Bug(
        "DINOProjectionHead.forward",
        "the MLP run twice (once for the norm)",
        "",
        "return self.last_layer(self.mlp(x) / self.mlp(x).norm(dim=-1, keepdim=True).clamp_min(1e-12))",
        r"run the MLP exactly once per forward",
    ),
    Alternative(
        "DINOProjectionHead.forward", "F.normalize", "", "return self.last_layer(F.normalize(self.mlp(x), dim=-1))"
    ),
    Alternative(
        "DINOProjectionHead.forward",
        "the normalisation written out with clamp_min",
        "",
        """
        z = self.mlp(x)
        z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return self.last_layer(z)
        """,
    ),
    Alternative(
        "DINOProjectionHead.forward",
        "torch._weight_norm and a matmul",
        "",
        """
        z = l2_normalize(self.mlp(x))
        w = torch._weight_norm(self.last_layer.weight_v, self.last_layer.weight_g, 0)
        return z @ w.T
        """,
    ),
    Alternative(
        "DINOProjectionHead.forward",
        "einsum with g · v / ‖v‖ written out",
        "",
        """
        z = l2_normalize(self.mlp(x))
        v, g = self.last_layer.weight_v, self.last_layer.weight_g
        w = g * v / torch.sqrt((v * v).sum(dim=1, keepdim=True))
        return torch.einsum("bd,kd->bk", z, w)
        """,
    ),
    Alternative(
        "DINOProjectionHead.forward",
        "layer by layer, float64 norm",
        "",
        """
        h = x
        for layer in self.mlp:
            h = layer(h)
        norm = h.double().pow(2).sum(-1, keepdim=True).sqrt().clamp_min(1e-12).to(h.dtype)
        return self.last_layer(h / norm)
        """,
    ),
    Alternative(
        "DINOProjectionHead.forward",
        "through the given bottleneck method",
        "",
        "return self.last_layer(self.bottleneck(x))",
    ),
    # ------------------------------------------------------------ cancel_last_layer_gradients
    Bug(
        "cancel_last_layer_gradients",
        "gradients set to zeros instead of None",
        "parameter.grad = None",
        "parameter.grad = torch.zeros_like(parameter)",
        r"must be None, not zeros",
    ),
    Bug(
        "cancel_last_layer_gradients",
        "gradients zeroed in place",
        "parameter.grad = None",
        "parameter.grad.zero_()",
        r"do not change the gradient tensor, set parameter\.grad = None",
    ),
    Bug(
        "cancel_last_layer_gradients",
        "<= instead of <: one epoch too many",
        "if epoch >= freeze_last_layer:",
        "if epoch > freeze_last_layer:",
        r"epoch < freeze_last_layer \(strictly\)",
    ),
    Bug(
        "cancel_last_layer_gradients",
        "freeze_last_layer ignored: only epoch 0 is frozen",
        "if epoch >= freeze_last_layer:",
        "if epoch >= 1:",
        r"freeze_last_layer=3 freezes epochs 0, 1 and 2|freeze_last_layer=0 means no freeze",
    ),
    Bug(
        "cancel_last_layer_gradients",
        "the condition inverted",
        "if epoch >= freeze_last_layer:",
        "if epoch < freeze_last_layer:",
        r"the freeze lasts while epoch < freeze_last_layer",
    ),
    Bug(
        "cancel_last_layer_gradients",
        "names that start with last_layer only",
        'if "last_layer" in name:',
        'if name.startswith("last_layer"):',
        r"whose name \*contains\* 'last_layer'",
    ),
    Bug(
        "cancel_last_layer_gradients",
        "only weight_v",
        'if "last_layer" in name:',
        'if name.endswith("last_layer.weight_v"):',
        r"kept their gradient in the freeze epoch: drop every parameter whose name contains 'last_layer' \(weight_g",
    ),
    Bug(
        "cancel_last_layer_gradients",
        "every gradient dropped, not only the last layer's",
        'if "last_layer" in name:',
        "if True:",
        r"only parameters whose name contains 'last_layer' lose their gradient",
    ),
    Bug(
        "cancel_last_layer_gradients",
        "requires_grad switched off instead of dropping the gradient",
        "parameter.grad = None",
        "parameter.requires_grad_(False)",
        r"requires_grad changed",
    ),
    Bug(
        "cancel_last_layer_gradients",
        "the student's head reached by attribute",
        "",
        """
        if epoch < freeze_last_layer:
            for parameter in model.head.last_layer.parameters():
                parameter.grad = None
        """,
        r"find the last layer's parameters by name",
    ),
    Alternative(
        "cancel_last_layer_gradients",
        "through named_modules",
        "",
        """
        if epoch < freeze_last_layer:
            for name, module in model.named_modules():
                if "last_layer" in name:
                    for parameter in module.parameters(recurse=False):
                        parameter.grad = None
        """,
    ),
    Alternative(
        "cancel_last_layer_gradients",
        "del p.grad in one loop with the condition inside",
        "",
        """
        for name, parameter in model.named_parameters():
            if epoch < freeze_last_layer and "last_layer" in name and parameter.grad is not None:
                del parameter.grad
        """,
    ),
]
