"""Hidden checks for Lesson 4.4 (`dino_course/training.py`).

Tolerances, and why
-------------------
- Schedules are float64 and built by `cosine_schedule`; any correct order of `base_lr · B / 256`
  changes them by ~1e-21 (tests/dino_v1_golden.README.md measured 1.4e-20 for an independent
  implementation): atol 1e-15, while every mistake below moves a value by more than 1e-9.
- Gradient norms of tensors of ≤ 10⁴ float32 elements: a few ulps per summation level, so 2e-6
  relative (17 ulps); a clipped gradient g·clip/(n + 1e-6) inherits that relative error. The checks
  that must see the 1e-6 in the denominator or the strict `coef < 1` use gradients whose norm is
  exact (one non-zero element) and a clip of 1e-5, where both change the result by 5-10 %.
- `train_step` is compared with the reference *from identical states, one step at a time, with
  plain SGD*: the update lr·(g + wd·p) is linear in the gradient, so rounding is not amplified
  (AdamW divides by √v and turns noise in a near-zero gradient into a full ±lr step). A correct
  step calls the same functions on the same tensors, so the only freedom is rounding: 16 ulps of
  the largest value involved.
- The golden replay (four AdamW iterations of the original) uses dino_v1_golden.README.md's tolerances:
  losses 1e-5, centers 1e-6, grad norms 1e-4 relative, final student 5e-8 and teacher 5e-9 absolute
  (an independent re-implementation was off by 1.5e-8 / 2.9e-11, the reference is off by
  7.5e-9 / 4.7e-10; a step that calls the reference pieces in the documented order reproduces the
  reference bit for bit). The key-bias slices of `qkv.bias` have a mathematically zero gradient:
  AdamW's normalised step turns its rounding noise into steps of up to lr (|m̂/√v̂| ≤ 1 in these
  first steps), so two correct runs differ there by up to 2·Σlr = 4.5e-5.
"""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
from torch import nn

import solutions.centering as ref_centering
import solutions.loss as ref_loss
import solutions.temperature as ref_temperature
import solutions.training as ref
from dino_course.grading import ExerciseNotStarted
from dino_course.grading.hints import FLOAT32_EPS, expect, expect_close, expect_type
from dino_course.grading.learner import LearnerModule
from dino_course.networks.vit import ViTConfig, VisionTransformer
from solutions.heads import DINOProjectionHead
from solutions.student_teacher import cosine_schedule, momentum_schedule

st = LearnerModule("training")
U = FLOAT32_EPS
SCHEDULE_TOL = dict(rtol=0, atol=1e-15)  # float64 schedules; dino_v1_golden.README.md: 1.4e-20 observed
NORM_TOL = dict(rtol=2e-6, atol=0.0)  # 17 ulps: float32 norms and clipped gradients (see above)


exercise = functools.partial(pytest.mark.exercise, "4.4")  # @exercise("name"): a check of that exercise of the lesson


def is_float(value) -> bool:
    return isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool))


# ----------------------------------------------------------------------------- test rigs
# Everything but the exercise under test is built from the reference modules, so the check of one
# exercise depends on that exercise alone.


class ReferenceCriterion(nn.Module):
    """DINOLoss from reference functions (loss with the current center, then the center update); records its calls."""

    def __init__(self, out_dim, *, epochs, warmup_teacher_temp=0.04, teacher_temp=0.04, warmup_teacher_temp_epochs=0,
                 student_temp=0.1, center_momentum=0.9):
        super().__init__()
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.temps = ref_temperature.teacher_temperature_schedule(
            warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, epochs)
        self.student_temp, self.center_momentum = student_temp, center_momentum
        self.calls: list[dict] = []

    def forward(self, student_output, teacher_output, epoch):
        self.calls.append({"epoch": epoch, "autocast": torch.is_autocast_enabled("cpu"),
                           "autocast_dtype": torch.get_autocast_dtype("cpu")})
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < len(self.temps):
            raise AssertionError(
                f"the criterion got epoch={epoch!r}, outside the {len(self.temps)} epochs of training: "
                "criterion(student_output, teacher_output, epoch) takes the epoch, not the iteration")
        loss = ref_loss.dino_loss(student_output, teacher_output, self.center, float(self.temps[epoch]),
                                  self.student_temp)
        self.center.copy_(ref_centering.update_center(self.center, teacher_output, self.center_momentum))
        return loss


def reference_schedules(epochs, niter_per_ep, batch_size, *, base_lr=5e-4, min_lr=1e-6, warmup_epochs=0,
                        weight_decay=0.04, weight_decay_end=0.4):
    """TrainingSchedules from the reference cosine_schedule of Lesson 3.1 (the teacher momentum is the model's)."""
    return ref.TrainingSchedules(
        lr=cosine_schedule(base_lr * batch_size / 256.0, min_lr, epochs, niter_per_ep, warmup_epochs=warmup_epochs),
        weight_decay=cosine_schedule(weight_decay, weight_decay_end, epochs, niter_per_ep),
        niter_per_ep=niter_per_ep,
    )


class MultiCropStudent(nn.Module):
    """Backbone once per run of equal-resolution views, head once on all CLS features (as the original)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        features, start = [], 0
        while start < len(views):
            end = start
            while end < len(views) and views[end].shape[-2:] == views[start].shape[-2:]:
                end += 1
            features.append(self.backbone(torch.cat(views[start:end])))  # (n · B, D)
            start = end
        return self.head(torch.cat(features))  # (V · B, K)


class OriginalOrderWrapper(nn.Module):
    """A student-teacher wrapper whose EMA uses the original's order of operations (bit-comparable teacher).

    It records its forward passes (with the autocast state) and its EMA calls (with how many optimiser
    steps had been taken by then, when `optimizer` is set).
    """

    def __init__(self, student: nn.Module, momentum_schedule: torch.Tensor, n_global_views: int = 2) -> None:
        super().__init__()
        self.student = student
        self.teacher = copy.deepcopy(student).requires_grad_(False)
        self.n_global_views = n_global_views
        self.register_buffer("momentum_schedule", momentum_schedule)
        self.ema_calls: list[int] = []
        self.steps_at_ema: list[int] = []
        self.forward_autocast: list[tuple[bool, torch.dtype]] = []
        self.optimizer = None

    def forward(self, views):
        self.forward_autocast.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        student_output = self.student(views)
        with torch.no_grad():
            teacher_output = self.teacher(views[: self.n_global_views])
        return student_output, teacher_output

    def update_teacher(self, step: int) -> float:
        self.ema_calls.append(step)
        if self.optimizer is not None:
            self.steps_at_ema.append(len(self.optimizer.seen))
        momentum = float(self.momentum_schedule[step])
        with torch.no_grad():
            for student_param, teacher_param in zip(self.student.parameters(), self.teacher.parameters()):
                teacher_param.mul_(momentum).add_((1 - momentum) * student_param.detach())
        return momentum


class SpySGD(torch.optim.SGD):
    """Plain SGD that records, at each `step()`, the gradients, hyper-parameters and the teacher it finds."""

    def __init__(self, groups, model: OriginalOrderWrapper, **kwargs) -> None:
        super().__init__(groups, **kwargs)
        self.model = model
        self.seen: list[dict] = []
        model.optimizer = self

    def step(self, closure=None):
        self.seen.append({
            "grads": {n: None if p.grad is None else p.grad.detach().clone()
                      for n, p in self.model.student.named_parameters()},
            "lr": [group["lr"] for group in self.param_groups],
            "weight_decay": [group["weight_decay"] for group in self.param_groups],
            "teacher": {n: p.detach().clone() for n, p in self.model.teacher.named_parameters()},
        })
        return super().step(closure)


TINY_EPOCHS, TINY_NITER, TINY_BATCH, TINY_K = 3, 2, 3, 6


def tiny_setup(autocast: bool = False):
    """A small DINO student (flatten + projection head with a `last_layer`), its teacher, criterion, SpySGD and views.

    Two calls give bit-identical states. Every gradient starts as NaN, so a step that does not zero
    the gradients before backward shows it.
    """
    torch.manual_seed(7)
    if autocast:
        backbone = VisionTransformer(ViTConfig(img_size=8, patch_size=4, embed_dim=16, depth=1, num_heads=2))
        head = DINOProjectionHead(16, output_dim=TINY_K, hidden_dim=16, bottleneck_dim=8)
        views = [torch.randn(TINY_BATCH, 3, 8, 8) for _ in range(2)] + [torch.randn(TINY_BATCH, 3, 4, 4)]
    else:
        backbone = nn.Flatten()
        head = DINOProjectionHead(12, output_dim=TINY_K, hidden_dim=16, bottleneck_dim=8)
        views = [torch.randn(TINY_BATCH, 3, 2, 2) for _ in range(4)]
    student = MultiCropStudent(backbone, head)
    schedules = reference_schedules(TINY_EPOCHS, TINY_NITER, TINY_BATCH, base_lr=0.2 * 256 / TINY_BATCH, min_lr=0.01)
    model = OriginalOrderWrapper(student, momentum_schedule(TINY_EPOCHS, TINY_NITER))  # the paper's 0.996 → 1
    with torch.no_grad():  # a teacher a little apart from the student, so the EMA shows
        for p in model.teacher.parameters():
            p.add_(0.01 * torch.randn(p.shape))
    criterion = ReferenceCriterion(TINY_K, epochs=TINY_EPOCHS)
    criterion.center.copy_(0.1 * torch.randn(1, TINY_K))
    optimizer = SpySGD(ref.parameter_groups(student), model, lr=0.0)
    for p in student.parameters():
        if p.requires_grad:  # (the optimiser's zero_grad clears the parameters it holds)
            p.grad = torch.full_like(p, float("nan"))
    return model, criterion, optimizer, schedules, views


def golden_setup(golden):
    train = golden["train"]
    config = train["config"]
    backbone = VisionTransformer(
        ViTConfig(img_size=config["img_size"][0], patch_size=config["patch_size"], embed_dim=config["embed_dim"],
                  depth=config["depth"], num_heads=config["num_heads"], layernorm_eps=config["layernorm_eps"])
    )
    head = DINOProjectionHead(config["embed_dim"], output_dim=config["out_dim"], hidden_dim=config["hidden_dim"],
                              bottleneck_dim=config["bottleneck_dim"], nlayers=config["nlayers"])
    student = MultiCropStudent(backbone, head)
    student.load_state_dict(train["init_student"])
    model = OriginalOrderWrapper(
        student, cosine_schedule(config["momentum_teacher"], 1.0, config["epochs"], config["niter_per_ep"]))
    criterion = ReferenceCriterion(
        config["out_dim"], epochs=config["epochs"], warmup_teacher_temp=config["warmup_teacher_temp"],
        teacher_temp=config["teacher_temp"], warmup_teacher_temp_epochs=config["warmup_teacher_temp_epochs"],
        student_temp=config["student_temp"], center_momentum=config["center_momentum"])
    optimizer = torch.optim.AdamW(ref.parameter_groups(student), betas=(0.9, 0.999), eps=1e-8)
    schedules = reference_schedules(config["epochs"], config["niter_per_ep"], config["batch"], base_lr=config["lr"],
                                    min_lr=config["min_lr"], warmup_epochs=config["warmup_epochs"],
                                    weight_decay=config["weight_decay"], weight_decay_end=config["weight_decay_end"])
    return model, criterion, optimizer, schedules


def max_weight_difference(state: dict, want: dict) -> tuple[float, float, str]:
    """(max |diff| outside the key-bias slices, max |diff| inside them, the worst key)."""
    worst, key_bias, worst_key = 0.0, 0.0, ""
    for name, value in want.items():
        diff = (state[name].float() - value).abs()
        if name.endswith("attn.qkv.bias"):
            third = len(value) // 3
            key_bias = max(key_bias, diff[third : 2 * third].max().item())
            diff = torch.cat([diff[:third], diff[2 * third :]])
        if diff.numel() and diff.max().item() > worst:
            worst, worst_key = diff.max().item(), name
    return worst, key_bias, worst_key


# ----------------------------------------------------------------------------- parameter_groups


def group_names(groups, model) -> list[list[str]]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    return [[by_id.get(id(p), "<not a parameter of the model>") for p in group["params"]] for group in groups]


def check_group_structure(groups, model) -> list[list[str]]:
    """Type and structure of parameter_groups' result; returns the names of each group's params."""
    expect_type(groups, [], "parameter_groups")
    expect(isinstance(groups, list) and len(groups) == 2 and all(isinstance(g, dict) for g in groups),
           f"parameter_groups must return a list of two dicts (the decayed group, then the non-decayed one), got "
           f"{type(groups).__name__} of {len(groups) if hasattr(groups, '__len__') else '?'}")
    for index, group in enumerate(groups):
        expect("params" in group and "param_names" in group,
               f"group {index} must have the keys 'params' and 'param_names', got {sorted(group)}")
    names = group_names(groups, model)
    expect(all("<not a parameter of the model>" not in n for n in names),
           "put the model's parameters themselves in the groups (not copies, .data or .detach()): the optimiser must "
           "update the model's own tensors")
    expect([list(g["param_names"]) for g in groups] == names,
           "each group's 'param_names' must list the names of its 'params', in the same order")
    return names


@exercise("parameter_groups")
def test_parameter_groups_match_the_original(golden):
    model, *_ = golden_setup(golden)
    groups = st.parameter_groups(model.student)
    names = check_group_structure(groups, model.student)
    want = golden["train"]["param_groups"]
    decayed, plain = names
    if "head.last_layer.weight_g" in decayed + plain:
        raise AssertionError("the frozen head.last_layer.weight_g (requires_grad=False) must not be given to the "
                             "optimiser: skip parameters that do not require gradients")
    if sorted(decayed) == sorted(want["not_regularized"]) and sorted(plain) == sorted(want["regularized"]):
        raise AssertionError("the groups are swapped: the decayed group (weight matrices) comes first, the group with "
                             "weight_decay=0.0 (biases, 1-D tensors) second")
    if any(n in plain for n in ("backbone.cls_token", "backbone.pos_embed")):
        raise AssertionError("cls_token and pos_embed are 3-D, not biases: the original decays them (rule: no decay "
                             "only for a name ending in .bias or a 1-D tensor)")
    decayed_1d = [n for n in decayed if n in want["not_regularized"]]
    if decayed_1d:
        raise AssertionError(f"biases and 1-D tensors (LayerNorm weights) must not be decayed, but {decayed_1d[:2]} "
                             "are in the first group: a parameter goes to the second group when its name ends in "
                             "'.bias' or it is 1-D")
    if sorted(decayed) == sorted(want["regularized"]) and sorted(plain) == sorted(want["not_regularized"]):
        expect(decayed == want["regularized"] and plain == want["not_regularized"],
               "the groups hold the right parameters in another order: keep model.named_parameters() order")
    expect(decayed == want["regularized"], f"the decayed group differs from the original's (first differences: "
           f"{sorted(set(decayed) ^ set(want['regularized']))[:3]}): decay every trainable tensor that is not 1-D and "
           "not a bias")
    expect(plain == want["not_regularized"], f"the non-decayed group differs from the original's (e.g. "
           f"{sorted(set(plain) ^ set(want['not_regularized']))[:3]}): biases and 1-D tensors (norm weights)")
    expect(groups[1].get("weight_decay") == 0.0, "the second group must carry weight_decay=0.0 (else AdamW decays "
                                                 "biases and norms with its default 0.01)")
    expect(groups[0].get("weight_decay", None) != 0.0,
           "the first group must be decayed: do not set its weight decay to 0 (apply_schedules sets it each iteration)")


class ScaleShift(nn.Module):
    """A module with a 2-D parameter named `bias` and a 1-D one named `scale`."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4))
        self.bias = nn.Parameter(torch.zeros(1, 4))

    def forward(self, x):
        return x * self.scale + self.bias


@exercise("parameter_groups")
def test_parameter_groups_on_other_models():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2, bias=False),
                          nn.LayerNorm(2), ScaleShift())
    model[0].bias.requires_grad_(False)
    groups = st.parameter_groups(model)
    names = check_group_structure(groups, model)
    want = [group["param_names"] for group in ref.parameter_groups(model)]
    if "0.bias" in names[0] + names[1]:
        raise AssertionError("a parameter with requires_grad=False (here 0.bias) must not be given to the optimiser")
    if "5.bias" in names[0]:
        raise AssertionError("a parameter whose name ends in '.bias' is never decayed, whatever its shape (here a "
                             "(1, 4) bias): test the name as well as the number of dimensions")
    expect(names == want, f"on a conv/BatchNorm/linear model the groups should be {want}, got {names}")
    expect(groups[1].get("weight_decay") == 0.0, "the second group must carry weight_decay=0.0")
    optimizer = torch.optim.AdamW(groups)
    expect(len(optimizer.param_groups) == 2, "torch.optim.AdamW must accept the groups")


# ----------------------------------------------------------------------------- clip_gradients


def clip_model(golden) -> nn.Module:
    entry = golden["clip_gradients"]
    model = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 3))
    model.load_state_dict(entry["params"])
    ((model(entry["x"]) - entry["target"]).square().sum() / 16).backward()
    return model


def call_clip(model, clip):
    """The learner's clip_gradients, with a hint for a crash on a parameter that has no gradient."""
    try:
        return st.clip_gradients(model, clip)
    except ExerciseNotStarted:
        raise
    except (AttributeError, TypeError) as exc:
        if "NoneType" in str(exc) and any(p.grad is None for p in model.parameters()):
            raise AssertionError(f"clip_gradients crashed on a parameter without gradient ({exc}): skip parameters "
                                 "whose .grad is None") from None
        raise


def check_norms(norms, grads_before: list[torch.Tensor | None], clip: float) -> None:
    """The returned norms: a list of Python floats, one per gradient, the L2 norms before clipping."""
    expect_type(norms, [], "clip_gradients")
    expect(isinstance(norms, list), f"clip_gradients must return a list of Python floats, got {type(norms).__name__}")
    expect(not any(isinstance(n, torch.Tensor) for n in norms),
           "clip_gradients must return Python floats, not tensors: append norm.item() (or float(norm))")
    expect(all(is_float(n) for n in norms), f"clip_gradients must return a list of Python floats, got {norms!r:.80}")
    present = [g.double() for g in grads_before if g is not None]
    expect(len(norms) == len(present), f"return one norm per parameter that has a gradient ({len(present)}), skipping "
                                       f"those whose .grad is None; got {len(norms)}")
    got = torch.tensor(norms, dtype=torch.float64)
    want = torch.stack([g.norm() for g in present])
    if not torch.allclose(got, want, **NORM_TOL):
        for hint, wrong in (
            ("the returned norms are the norms *after* clipping: record each norm before scaling the gradient",
             torch.minimum(want, torch.tensor(clip, dtype=torch.float64))),
            ("the norms must be L2 norms ‖g‖₂ = sqrt(Σ g²), not the sum of squares", want**2),
            ("the norms must be L2 norms ‖g‖₂ = sqrt(Σ g²), not L1 norms Σ|g|",
             torch.stack([g.abs().sum() for g in present])),
        ):
            if not torch.allclose(wrong, want, rtol=1e-4) and torch.allclose(got, wrong, rtol=1e-5):
                raise AssertionError(hint)
    expect_close(got, want, "the returned norms must be each gradient's L2 norm before clipping, in "
                 "model.named_parameters() order", **NORM_TOL, what="clip_gradients")


def coef_of(grad, before, clip, norm) -> bool:
    """`grad` is `before` clipped with this `clip` (to 1e-5)."""
    return torch.allclose(grad.double(), before.double() * min(1.0, clip / (norm.item() + 1e-6)), rtol=1e-5, atol=0)


def check_clipped(model, grads_before: dict, clip: float, objects_before: dict) -> None:
    """The gradients after clipping: scaled in place by clip / (n + 1e-6) where that is < 1, else untouched."""
    norms = {n: g.double().norm() for n, g in grads_before.items() if g is not None}
    total = torch.stack(list(norms.values())).norm()
    for name, p in model.named_parameters():
        before = grads_before[name]
        if before is None:
            expect(p.grad is None, f"{name!r} had no gradient and must keep .grad = None")
            continue
        expect(p.grad is objects_before[name], f"the gradient of {name!r} was replaced by a new tensor: scale it in "
                                               "place (p.grad.mul_(coef)), as the docstring says")
        if clip != ref.CLIP_GRAD and coef_of(p.grad, before, ref.CLIP_GRAD, norms[name]) and not coef_of(
                p.grad, before, clip, norms[name]):
            raise AssertionError(f"clip_gradients ignores its clip argument (it clipped to {ref.CLIP_GRAD:g}, not "
                                 f"{clip:g}): coef = clip / (‖g‖ + 1e-6)")
        coef = min(1.0, (clip / (norms[name] + 1e-6)).item())
        want = before.double() * coef
        global_coef = min(1.0, clip / (total.item() + 1e-6))
        if norms[name] > 0 and abs(global_coef - coef) > 1e-3 * coef and torch.allclose(
                p.grad.double(), before.double() * global_coef, rtol=1e-5):
            raise AssertionError("this is one global-norm clip (all gradients scaled by the same factor): DINO clips "
                                 "each parameter tensor on its own, coef = clip / (‖g‖ + 1e-6)")
        if coef >= 1 and not torch.allclose(p.grad.double(), want, **NORM_TOL):
            raise AssertionError(f"the gradient of {name!r} has norm {norms[name].item():.4g} ≤ clip = {clip:g} and "
                                 "must stay unchanged: scale only when coef = clip / (‖g‖ + 1e-6) is < 1 (never scale "
                                 "up)")
        if coef < 1 and torch.allclose(p.grad.double(), before.double()):
            raise AssertionError(f"the gradient of {name!r} has norm {norms[name].item():.4g} > clip = {clip:g} and "
                                 "was not scaled: multiply it by coef = clip / (‖g‖ + 1e-6) when coef < 1")
        expect_close(p.grad.double(), want, f"the clipped gradient of {name!r} differs (clip = {clip:g}): scale by "
                     "coef = clip / (‖g‖ + 1e-6) when coef < 1", **NORM_TOL, what="clip_gradients")


def clip_and_check(model, clip):
    grads_before = {n: None if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters()}
    objects_before = {n: p.grad for n, p in model.named_parameters()}
    norms = call_clip(model, clip)
    check_norms(norms, list(grads_before.values()), clip)
    check_clipped(model, grads_before, clip, objects_before)
    return norms


@exercise("clip_gradients")
def test_clip_gradients_matches_the_original(golden):
    entry = golden["clip_gradients"]
    model = clip_model(golden)
    norms = clip_and_check(model, entry["config"]["clip"])
    expect_close(torch.tensor(norms, dtype=torch.float64), torch.tensor(entry["norms"], dtype=torch.float64),
                 "the returned norms differ from the original's", **NORM_TOL, what="clip_gradients")
    for name in entry["param_order"]:
        expect_close(dict(model.named_parameters())[name].grad, entry["grads_after"][name],
                     f"the gradient of {name!r} after clipping differs from the original's", rtol=NORM_TOL["rtol"],
                     atol=NORM_TOL["rtol"] * entry["grads_after"][name].abs().max().item(), what="clip_gradients")


@exercise("clip_gradients")
@pytest.mark.parametrize("clip", [0.01, 1.0, 3.0, 100.0])
def test_clip_gradients_on_a_model_with_missing_and_zero_gradients(clip):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 2), nn.Linear(2, 2), nn.Linear(2, 3))
    (model[:3](torch.randn(6, 5)) * 4).square().sum().backward()  # model[3] and model[4] get no gradient
    model[4].weight.grad = torch.zeros_like(model[4].weight)  # a zero gradient: coef = clip / 1e-6, never scaled
    clip_and_check(model, clip)
    expect(not any(p.grad is not None and not torch.isfinite(p.grad).all() for p in model.parameters()),
           "a zero gradient became NaN/inf: divide by (norm + 1e-6), never by the norm alone")


@exercise("clip_gradients")
def test_clip_gradients_uses_the_epsilon_and_a_strict_inequality():
    clip = float(torch.tensor(1e-5))  # the float32 value, so that ‖g‖ == clip exactly below
    model = nn.Linear(2, 2)
    # one non-zero element per tensor: ‖g‖ is exact, so only the 1e-6 and the comparison matter
    model.weight.grad = torch.tensor([[clip, 0.0], [0.0, 0.0]])  # ‖g‖ = clip: coef = 1e-5 / 1.1e-5 = 0.909 < 1
    model.bias.grad = torch.tensor([2 * clip, 0.0])  # ‖g‖ = 2·clip: coef = 1e-5 / 2.1e-5 = 0.476
    norms = call_clip(model, clip)
    check_norms(norms, [torch.tensor([clip]), torch.tensor([2 * clip])], clip)
    bias = model.bias.grad[0].item() / (2 * clip)
    expect(abs(bias - 0.5) > 1e-3, "coef = clip / (‖g‖ + 1e-6): the 1e-6 in the denominator is missing (it matters for "
                                   "tiny gradients; here ‖g‖ = 2e-5 must be scaled by 1e-5 / 2.1e-5, not by 1/2)")
    weight = model.weight.grad[0, 0].item() / clip
    expect(abs(weight - 1.0) > 1e-3, "a gradient whose norm equals clip must still be scaled by coef = clip / (‖g‖ + "
                                     "1e-6) < 1: compare coef < 1 (not ‖g‖ > clip)")
    expect_close(torch.tensor([weight, bias], dtype=torch.float64),
                 torch.tensor([1e-5 / 1.1e-5, 1e-5 / 2.1e-5], dtype=torch.float64),
                 "scale the gradient by coef = clip / (‖g‖ + 1e-6) when coef < 1", rtol=1e-5, atol=0,
                 what="clip_gradients")


# ----------------------------------------------------------------------------- gradient_norms_by_layer
#
# Truth: each group's norm in float64 from the gradients. A float32 norm of a group of m elements (a sum of
# m squares, then a square root; or per-parameter norms combined) is off by at most a relative (m + 2)·eps/2
# (recursive summation of non-negative terms, Higham 2002, §4.2, plus the square and the root): the checks
# allow (m + 4)·eps with m the group's size. Every mistake below moves some norm by far more (> 10 %).


def gradient_model(seed: int, depth: int = 2) -> nn.Module:
    """A small student (ViT + DINO head) in the layout of `MultiCropNetwork`: backbone.*, head.*."""
    torch.manual_seed(seed)
    backbone = VisionTransformer(ViTConfig(img_size=16, patch_size=4, embed_dim=16, depth=depth, num_heads=2))
    return MultiCropStudent(backbone, DINOProjectionHead(16, output_dim=32, hidden_dim=32, bottleneck_dim=8))


def backward_through(student: nn.Module, teacher: nn.Module, seed: int) -> None:
    """One DINO-like loss (teacher under no_grad, as in train_step) and its backward, into the student only."""
    generator = torch.Generator().manual_seed(seed)
    views = [torch.randn(4, 3, 16, 16, generator=generator) for _ in range(2)] + [
        torch.randn(4, 3, 8, 8, generator=generator) for _ in range(2)]
    with torch.no_grad():
        teacher_output = teacher(views[:2])
    loss = ref_loss.dino_loss(student(views), teacher_output, torch.zeros(1, 32), 0.04, 0.1)
    loss.backward()


def norms64(model: nn.Module, *, combine="l2", group=None, missing="skip", read="grad") -> dict[str, float]:
    """The groups' norms in float64 from the definition; the keywords make the usual mistakes."""
    group = group or ref.gradient_group
    per_group: dict[str, list[torch.Tensor]] = {}
    for name, parameter in model.named_parameters():
        if parameter.grad is None and missing == "skip":
            continue
        if read == "data":
            tensor = parameter.detach()
        else:
            tensor = torch.zeros_like(parameter) if parameter.grad is None else parameter.grad
        per_group.setdefault(group(name), []).append(tensor.detach().double().flatten())
    norms = {}
    for key, tensors in per_group.items():
        squares = [float(t.square().sum()) for t in tensors]
        norms[key] = {
            "l2": math.sqrt(sum(squares)),
            "squared": sum(squares),
            "max": max(math.sqrt(q) for q in squares),
            "sum": sum(math.sqrt(q) for q in squares),
            "mean": math.sqrt(sum(squares) / sum(t.numel() for t in tensors)),
        }[combine]
    return norms


def group_sizes(model: nn.Module) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for name, parameter in model.named_parameters():
        sizes[ref.gradient_group(name)] = sizes.get(ref.gradient_group(name), 0) + parameter.numel()
    return sizes


GRADIENT_NORM_MISTAKES = [
    (dict(combine="squared"), "the norms are squared: take the square root of the sum of squares (the L2 norm), "
                              "not the sum of squares itself"),
    (dict(combine="max"), "a group's norm is the largest of its parameters' norms: take the L2 norm of all its "
                          "gradients together, sqrt(Σ_p ‖grad_p‖²)"),
    (dict(combine="sum"), "a group's norm is the sum of its parameters' norms: take the L2 norm of all its "
                          "gradients together, sqrt(Σ_p ‖grad_p‖²), not Σ_p ‖grad_p‖"),
    (dict(combine="mean"), "the norm is divided by the number of elements (an RMS): take the plain L2 norm, "
                           "sqrt(Σ_p ‖grad_p‖²)"),
    (dict(read="data"), "these are the norms of the parameters' values: read parameter.grad, not parameter.data"),
    (dict(group=lambda name: name.split(".")[0]), "the groups are too coarse (backbone, head): group by "
                                                  "gradient_group(name), e.g. backbone.blocks.0, head.mlp"),
    (dict(group=lambda name: name.rpartition(".")[0]), "the groups are single modules (e.g. backbone.blocks.0.attn."
                                                       "qkv): group by gradient_group(name), e.g. backbone.blocks.0"),
    (dict(group=lambda name: ".".join(name.split(".")[:2])), "the transformer blocks share one group "
                                                             "(backbone.blocks): each block is its own group, "
                                                             "gradient_group(name) keeps its index"),
    (dict(group=lambda name: name), "each parameter is its own group: group them by gradient_group(name) and "
                                    "combine their norms, sqrt(Σ_p ‖grad_p‖²)"),
]


def call_gradient_norms(model: nn.Module):
    """The learner's norms, failing with a hint when a missing gradient crashes it or a gradient changes."""
    before = {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}
    try:
        norms = st.gradient_norms_by_layer(model)
    except ExerciseNotStarted:
        raise
    except (AttributeError, TypeError) as error:
        if "NoneType" not in str(error) and "None" not in str(error):
            raise
        raise AssertionError(
            f"a parameter with no gradient crashed the function ({type(error).__name__}: {error}): skip parameters "
            "whose .grad is None (the teacher's, a frozen one, the last layer while it is frozen)") from None
    for name, parameter in model.named_parameters():
        unchanged = (parameter.grad is None) == (before[name] is None) and (
            parameter.grad is None or torch.equal(parameter.grad, before[name]))
        expect(unchanged, f"the gradient of {name!r} changed: only read the gradients (e.g. g.norm(), never g.pow_() "
                          "or p.grad = ...)")
    return norms


def expect_gradient_norms(norms, model: nn.Module) -> None:
    """The learner's group norms against the float64 truth, naming the mistake."""
    truth = norms64(model)
    expect(norms is not None, "gradient_norms_by_layer returned None: did you forget `return norms`?")
    expect(isinstance(norms, dict), f"gradient_norms_by_layer must return a dict {{group: norm}}, got "
                                    f"{type(norms).__name__}")
    expect(all(isinstance(v, float) for v in norms.values()),
           "the norms must be Python floats, not tensors: convert with .item() or float(...)")
    if set(norms) != set(truth):
        with_zeros = norms64(model, missing="zeros")
        expect(not (set(norms) == set(with_zeros) and set(with_zeros) != set(truth)),
               "a group with no gradient at all appears: skip parameters whose .grad is None and leave out a group "
               "none of whose parameters has a gradient (the teacher gives {})")
        for keywords, hint in GRADIENT_NORM_MISTAKES:
            if "group" in keywords and set(norms) == set(norms64(model, **keywords)):
                raise AssertionError(hint)
        raise AssertionError(f"the groups differ: expected {sorted(truth)}, got {sorted(norms)}: group by "
                             "gradient_group(name)")
    expect(list(norms) == list(truth), "the groups must come in the order of model.named_parameters()")
    sizes = group_sizes(model)
    if all(abs(norms[k] - truth[k]) <= (sizes[k] + 4) * FLOAT32_EPS * truth[k] for k in truth):
        return
    for keywords, hint in GRADIENT_NORM_MISTAKES:
        wrong = norms64(model, **keywords)
        if set(wrong) == set(truth) and wrong != truth and all(
                math.isclose(norms[k], wrong[k], rel_tol=1e-3, abs_tol=1e-30) for k in truth):
            raise AssertionError(hint)
    expect_close(
        torch.tensor([norms[k] for k in truth], dtype=torch.float64),
        torch.tensor([truth[k] for k in truth], dtype=torch.float64),
        "the norms differ: each group's norm is sqrt(Σ_p ‖grad_p‖²) over its parameters that have a gradient",
        rtol=(max(sizes.values()) + 4) * FLOAT32_EPS, atol=0.0,
    )


@exercise("gradient_norms_by_layer")
def test_gradient_norms_of_the_student_after_one_backward():
    student = gradient_model(0)
    teacher = copy.deepcopy(student).requires_grad_(False)
    backward_through(student, teacher, 0)
    norms = call_gradient_norms(student)
    expect_gradient_norms(norms, student)
    expected_groups = ["backbone.cls_token", "backbone.pos_embed", "backbone.patch_embed", "backbone.blocks.0",
                       "backbone.blocks.1", "backbone.norm", "head.mlp", "head.last_layer"]
    assert list(norms64(student)) == expected_groups  # the documented grouping, by the reference's rule


@exercise("gradient_norms_by_layer")
def test_gradient_norms_of_the_teacher_are_absent():
    student = gradient_model(1)
    teacher = copy.deepcopy(student).requires_grad_(False)
    backward_through(student, teacher, 1)
    call_gradient_norms(student)  # a valid call first
    norms = call_gradient_norms(teacher)
    expect(norms == {}, f"the teacher received no gradient (no_grad, requires_grad=False): every .grad is None, so "
                        f"the result must be {{}}, got {norms!r:.120}")


@exercise("gradient_norms_by_layer")
def test_gradient_norms_before_backward_are_absent():
    student = gradient_model(2)
    norms = call_gradient_norms(student)
    expect(norms == {}, f"before backward() no parameter has a gradient, so the result must be {{}}, got "
                        f"{norms!r:.120}: skip parameters whose .grad is None (do not read .data, do not call "
                        "backward)")


@exercise("gradient_norms_by_layer")
@pytest.mark.parametrize("depth,seed", [(1, 3), (3, 4)])
def test_gradient_norms_with_the_last_layer_frozen(depth, seed):
    from solutions.heads import cancel_last_layer_gradients

    student = gradient_model(seed, depth=depth)
    teacher = copy.deepcopy(student).requires_grad_(False)
    backward_through(student, teacher, seed)
    cancel_last_layer_gradients(student, epoch=0, freeze_last_layer=1)  # the first epoch: grad = None
    norms = call_gradient_norms(student)
    expect_gradient_norms(norms, student)
    expect("head.last_layer" not in norms, "the frozen last layer has no gradient (.grad is None): leave its group out")


@exercise("gradient_norms_by_layer")
def test_gradient_norms_agree_with_clip_gradients_norms():
    student = gradient_model(5)
    teacher = copy.deepcopy(student).requires_grad_(False)
    backward_through(student, teacher, 5)
    norms = call_gradient_norms(student)
    expect_gradient_norms(norms, student)
    per_parameter = ref.clip_gradients(student, clip=1e9)  # a clip this large changes no gradient
    names = [name for name, p in student.named_parameters() if p.grad is not None]
    for group, norm in norms.items():
        squares = sum(n * n for name, n in zip(names, per_parameter) if ref.gradient_group(name) == group)
        expect(math.isclose(norm, math.sqrt(squares), rel_tol=(group_sizes(student)[group] + 4) * FLOAT32_EPS * 2),
               f"the norm of {group!r} must be sqrt of the sum of squares of clip_gradients' per-parameter norms")


# ----------------------------------------------------------------------------- schedules


SCHEDULE_DEFAULTS = dict(base_lr=5e-4, min_lr=1e-6, warmup_epochs=10, weight_decay=0.04, weight_decay_end=0.4)


def check_schedules(got, epochs, niter_per_ep, batch_size, **kwargs) -> None:
    """The learner's TrainingSchedules against the reference's, with a hint per recognised mistake."""
    settings = {**SCHEDULE_DEFAULTS, **kwargs}
    want = reference_schedules(epochs, niter_per_ep, batch_size, **settings)
    expect_type(got, want, "TrainingSchedules.create")
    expect(isinstance(got, ref.TrainingSchedules) or type(got).__name__ == "TrainingSchedules",
           f"TrainingSchedules.create must return a TrainingSchedules (cls(lr=..., weight_decay=..., niter_per_ep=...)), "
           f"got {type(got).__name__}")
    n = epochs * niter_per_ep
    for field in ("lr", "weight_decay"):
        value = getattr(got, field)
        expect(isinstance(value, torch.Tensor), f"schedules.{field} must be a tensor (cosine_schedule's result), got "
                                                f"{type(value).__name__}")
        if len(value) == epochs:
            raise AssertionError(f"schedules.{field} has {epochs} values, one per epoch: the schedules have one value "
                                 f"per iteration, epochs · niter_per_ep = {n}")
        expect(value.shape == (n,), f"schedules.{field} must have epochs · niter_per_ep = {n} values, got shape "
                                    f"{tuple(value.shape)}")
        expect(value.dtype == torch.float64, f"schedules.{field} must be float64 (as cosine_schedule returns it), got "
                                             f"{value.dtype}")
    expect(got.niter_per_ep == niter_per_ep, f"store niter_per_ep in the schedules (expected {niter_per_ep}, got "
                                             f"{got.niter_per_ep!r})")

    def same(a, b):
        return a.shape == b.shape and torch.allclose(a, b, rtol=0, atol=SCHEDULE_TOL["atol"])

    def ignored(field, argument):
        """The schedule `field` as it would be with `argument` left at its default."""
        changed = {**settings, argument: SCHEDULE_DEFAULTS[argument]}
        return getattr(reference_schedules(epochs, niter_per_ep, batch_size, **changed), field)

    peak = settings["base_lr"] * batch_size / 256
    warmup = settings["warmup_epochs"] * niter_per_ep
    lr = got.lr
    if not same(lr, want.lr):
        epochs_swapped = cosine_schedule(peak, settings["min_lr"], niter_per_ep, epochs, warmup_epochs=settings[
            "warmup_epochs"]) if settings["warmup_epochs"] <= niter_per_ep else want.lr
        lr_mistakes = [
            ("scale the base learning rate by the batch size: peak lr = base_lr · batch_size / 256 (linear scaling "
             "rule)", cosine_schedule(settings["base_lr"], settings["min_lr"], epochs, niter_per_ep,
                                      warmup_epochs=settings["warmup_epochs"])),
            ("the scaling is inverted: peak lr = base_lr · batch_size / 256", cosine_schedule(
                settings["base_lr"] * 256 / batch_size, settings["min_lr"], epochs, niter_per_ep,
                warmup_epochs=settings["warmup_epochs"])),
            ("the warm-up lasts warmup_epochs · niter_per_ep iterations: epochs and niter_per_ep are swapped in "
             "cosine_schedule(base, final, epochs, niter_per_ep, ...)", epochs_swapped),
            ("the learning rate ignores warmup_epochs: pass warmup_epochs=warmup_epochs to cosine_schedule",
             cosine_schedule(peak, settings["min_lr"], epochs, niter_per_ep)),
            ("the learning rate ignores its min_lr argument: the cosine decays towards min_lr",
             ignored("lr", "min_lr")),
            ("the learning rate ignores its base_lr argument", ignored("lr", "base_lr")),
        ]
        for hint, wrong in lr_mistakes:
            if not same(wrong, want.lr) and same(lr, wrong):
                raise AssertionError(hint)
        expect_close(lr[:warmup], want.lr[:warmup], f"the lr warm-up (first warmup_epochs · niter_per_ep = {warmup} "
                     f"values) differs: it rises linearly from 0 to base_lr · batch_size / 256 = {peak:g}",
                     **SCHEDULE_TOL, what="TrainingSchedules.create")
        expect_close(lr[warmup:], want.lr[warmup:], f"the lr cosine part (after the {warmup} warm-up values) differs: "
                     f"it falls from {peak:g} towards min_lr = {settings['min_lr']:g}", **SCHEDULE_TOL,
                     what="TrainingSchedules.create")
    for field, start, end, name in (("weight_decay", "weight_decay", "weight_decay_end", "weight-decay"),):
        value, expected = getattr(got, field), getattr(want, field)
        if same(value, expected):
            continue
        mistakes = [
            (f"the {name} schedule has no warm-up: cosine_schedule({start}, {end}, epochs, niter_per_ep) without "
             "warmup_epochs", cosine_schedule(settings[start], settings[end], epochs, niter_per_ep,
                                              warmup_epochs=settings["warmup_epochs"])),
            (f"the {name} schedule runs backwards: from {start} to {end}",
             cosine_schedule(settings[end], settings[start], epochs, niter_per_ep)),
            (f"the {name} schedule ignores its {end} argument", ignored(field, end)),
            (f"the {name} schedule ignores its {start} argument", ignored(field, start)),
            (f"the {name} schedule is the learning rate's: use {start} → {end}", want.lr),
        ]
        for hint, wrong in mistakes:
            if not same(wrong, expected) and same(value, wrong):
                raise AssertionError(hint)
        expect_close(value, expected, f"the {name} schedule differs: a cosine from {start} = {settings[start]:g} to "
                     f"{end} = {settings[end]:g}, no warm-up", **SCHEDULE_TOL, what="TrainingSchedules.create")


@exercise("TrainingSchedules.create")
def test_schedules_match_the_original_training_run(golden):
    train = golden["train"]
    config = train["config"]
    kwargs = dict(base_lr=config["lr"], min_lr=config["min_lr"], warmup_epochs=config["warmup_epochs"],
                  weight_decay=config["weight_decay"], weight_decay_end=config["weight_decay_end"])
    got = st.TrainingSchedules.create(config["epochs"], config["niter_per_ep"], config["batch"], **kwargs)
    check_schedules(got, config["epochs"], config["niter_per_ep"], config["batch"], **kwargs)
    for field, key in (("lr", "lr_schedule"), ("weight_decay", "wd_schedule")):
        expect_close(getattr(got, field), train[key], f"schedules.{field} differs from the original's",
                     **SCHEDULE_TOL, what="TrainingSchedules.create")


@exercise("TrainingSchedules.create")
def test_schedules_match_the_original_scheduler_entry(golden):
    entry = golden["schedules"]
    lr_config, wd_config = entry["config"]["lr"], entry["config"]["wd"]
    epochs, niter = lr_config["epochs"], lr_config["niter_per_ep"]
    kwargs = dict(base_lr=5e-4, min_lr=lr_config["final_value"], warmup_epochs=lr_config["warmup_epochs"],
                  weight_decay=wd_config["base_value"], weight_decay_end=wd_config["final_value"])
    got = st.TrainingSchedules.create(epochs, niter, batch_size=64, **kwargs)
    check_schedules(got, epochs, niter, 64, **kwargs)
    expect_close(got.lr, entry["lr"], "lr with base 5e-4 and batch 64 must be the original's (peak 1.25e-4)",
                 **SCHEDULE_TOL, what="TrainingSchedules.create")
    expect_close(got.weight_decay, entry["wd"], "the weight decay differs from the original's", **SCHEDULE_TOL,
                 what="TrainingSchedules.create")


@exercise("TrainingSchedules.create")
def test_schedules_use_every_argument():
    kwargs = dict(base_lr=3e-3, min_lr=2e-5, warmup_epochs=2, weight_decay=0.1, weight_decay_end=0.3)
    got = st.TrainingSchedules.create(5, 4, 96, **kwargs)
    check_schedules(got, 5, 4, 96, **kwargs)


@exercise("TrainingSchedules.create")
def test_schedules_default_to_the_paper():
    got = st.TrainingSchedules.create(12, 3, 512)
    check_schedules(got, 12, 3, 512)
    with pytest.raises(ValueError):
        st.TrainingSchedules.create(3, 2, 0)


# ----------------------------------------------------------------------------- apply_schedules


@exercise("apply_schedules")
@pytest.mark.parametrize("it", [0, 2, 7, 11])
def test_apply_schedules_sets_lr_everywhere_and_decay_on_the_first_group(it):
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    groups = ref.parameter_groups(model)
    groups.append({"params": groups[0]["params"][1:], "param_names": groups[0]["param_names"][1:],
                   "weight_decay": 0.05})
    groups[0]["params"], groups[0]["param_names"] = groups[0]["params"][:1], groups[0]["param_names"][:1]
    optimizer = torch.optim.AdamW(groups)
    schedules = reference_schedules(4, 3, 128, warmup_epochs=1)
    got = st.apply_schedules(optimizer, schedules, it)
    want_lr, want_wd = float(schedules.lr[it]), float(schedules.weight_decay[it])
    expect_type(got, (want_lr, want_wd), "apply_schedules")
    expect(isinstance(got, (tuple, list)) and len(got) == 2,
           f"apply_schedules must return the pair (lr, weight_decay), got {got!r:.80}")
    expect(all(is_float(v) for v in got), f"apply_schedules must return Python floats (float(schedules.lr[it])), got "
                                          f"{[type(v).__name__ for v in got]}")
    if tuple(got) == (want_wd, want_lr):
        raise AssertionError("apply_schedules returned (weight_decay, lr): return (lr, weight_decay)")
    for neighbour in (it - 1, it + 1, it // schedules.niter_per_ep):
        if neighbour != it and 0 <= neighbour < len(schedules) and schedules.lr[neighbour] != schedules.lr[it] and (
                got[0] == float(schedules.lr[neighbour])):
            raise AssertionError(f"apply_schedules(it={it}) used the values of index {neighbour}: index the schedules "
                                 "with `it` itself (schedules.lr[it], 0-based global iteration)")
    expect(tuple(got) == (want_lr, want_wd), f"apply_schedules(it={it}) must return (lr, weight_decay) = "
                                             f"{(want_lr, want_wd)}, got {tuple(got)}")
    stored = [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups]
    expect(all(is_float(lr) and is_float(wd) for lr, wd in stored),
           "store Python floats in the optimiser's groups, not tensors (float(schedules.lr[it]))")
    expect(all(lr == want_lr for lr, _ in stored),
           "set the learning rate of every parameter group (the non-decayed ones too)")
    expect(stored[0][1] == want_wd, "set the first (regularised) group's weight decay from the schedule")
    expect(stored[1][1] == 0.0,
           "the second group (biases, norms) must keep weight decay 0: only the first group is decayed")
    expect(stored[2][1] == 0.05,
           "leave the weight decay of every group but the first as it is (here a third group's 0.05)")


@exercise("apply_schedules")
def test_apply_schedules_rejects_an_iteration_outside_the_schedules():
    optimizer = torch.optim.AdamW(ref.parameter_groups(nn.Linear(2, 2)))
    schedules = reference_schedules(2, 2, 256)
    st.apply_schedules(optimizer, schedules, 3)  # a valid call first
    with pytest.raises(ValueError):
        st.apply_schedules(optimizer, schedules, 4)


# ----------------------------------------------------------------------------- train_step


def run_reference_step(it, epoch, clip_grad, freeze_last_layer):
    model, criterion, optimizer, schedules, views = tiny_setup()
    metrics = ref.train_step(model, criterion, optimizer, views, it, epoch, schedules, clip_grad=clip_grad,
                             freeze_last_layer=freeze_last_layer)
    return model, criterion, optimizer, metrics


def state_tolerance(before: torch.Tensor, lr: float, grad_scale: float) -> dict:
    """One SGD step p − lr·(g + wd·p): 16 ulps of the largest |p| and of lr·|g| (see the module docstring)."""
    return dict(rtol=16 * U, atol=16 * U * (before.abs().max().item() + lr * grad_scale))


def check_step_order(model, criterion, optimizer, schedules, metrics, it, epoch, clip_grad, freeze_last_layer,
                     reference) -> None:
    """What the spies saw during one learner step, from the most specific mistake to the least."""
    want_model, want_criterion, want_optimizer, want_metrics = reference
    expect_type(metrics, {}, "train_step")
    expect(isinstance(metrics, dict), f"train_step must return a dict of metrics, got {type(metrics).__name__}")
    missing = sorted({"loss", "lr", "weight_decay", "momentum", "grad_norms"} - set(metrics))
    expect(not missing, f"the metrics dict lacks {missing}: return loss, lr, weight_decay, momentum and grad_norms")
    # the criterion: once, with the epoch
    expect(len(criterion.calls) == 1, f"call the criterion once per step (it was called {len(criterion.calls)} times)")
    if criterion.calls[0]["epoch"] != epoch:
        raise AssertionError(f"the criterion got {criterion.calls[0]['epoch']!r} instead of the epoch ({epoch}): "
                             "criterion(student_output, teacher_output, epoch), since τ_t is scheduled per epoch")
    # the optimiser: one step, with this iteration's hyper-parameters and the right gradients
    expect(len(optimizer.seen) == 1,
           f"call optimizer.step() exactly once per step (it was called {len(optimizer.seen)} times)")
    seen = optimizer.seen[0]
    grads = seen["grads"]
    trainable = {n for n, p in model.student.named_parameters() if p.requires_grad}
    if any(g is not None and not torch.isfinite(g).all() for g in grads.values()):
        raise AssertionError("the optimiser saw the previous step's gradients added to this one's (here NaN): call "
                             "optimizer.zero_grad() before loss.backward()")
    if all(grads[n] is None or not grads[n].any() for n in trainable):
        raise AssertionError("the optimiser saw no gradients: call optimizer.zero_grad(), then loss.backward(), before "
                             "clipping and optimizer.step() (zero_grad after backward erases this step's gradients)")
    last_layer = [n for n in trainable if "last_layer" in n]
    if epoch < freeze_last_layer:
        for name in last_layer:
            if grads[name] is not None and not grads[name].any():
                raise AssertionError("the last layer's gradient was set to zero: set it to None "
                                     "(cancel_last_layer_gradients), since AdamW still moves a parameter whose "
                                     "gradient is zero (moments, weight decay)")
            expect(grads[name] is None, f"epoch {epoch} < freeze_last_layer = {freeze_last_layer}: the last layer must "
                                        "get no update: call cancel_last_layer_gradients(model.student, epoch, "
                                        "freeze_last_layer) after clipping, before optimizer.step()")
    else:
        for name in last_layer:
            expect(grads[name] is not None, f"epoch {epoch} ≥ freeze_last_layer = {freeze_last_layer}, yet the last "
                                            "layer got no gradient: pass epoch and freeze_last_layer to "
                                            "cancel_last_layer_gradients")
    step_norms = {n: g.double().norm().item() for n, g in grads.items() if g is not None}
    final_norms = {n: p.grad.double().norm().item() for n, p in model.student.named_parameters() if p.grad is not None}
    reference_grads = want_optimizer.seen[0]["grads"]
    if clip_grad > 0 and any(v > clip_grad * (1 + 1e-5) for v in step_norms.values()):
        if all(final_norms.get(n, 0.0) <= clip_grad * (1 + 1e-5) for n in step_norms):
            raise AssertionError("the gradients were clipped after optimizer.step(): clip them before the step, so "
                                 "that the optimiser uses the clipped gradients")
        if all(v <= ref.CLIP_GRAD * (1 + 1e-5) for v in step_norms.values()):
            raise AssertionError(f"the gradients were clipped to {ref.CLIP_GRAD:g}, not to clip_grad = "
                                 f"{clip_grad:g}: pass clip_grad to clip_gradients")
        raise AssertionError(f"the optimiser saw gradients with norms above clip_grad = {clip_grad:g}: call "
                             "clip_gradients(model.student, clip_grad) after backward, before optimizer.step()")
    if clip_grad == 0:
        unclipped = {n: g.double().norm().item() for n, g in reference_grads.items() if g is not None}
        expect(all(abs(step_norms.get(n, 0.0) - v) <= 1e-5 * v for n, v in unclipped.items()),
               "clip_grad = 0 switches clipping off: the optimiser must see the gradients as backward left them")
    scale = max(g.abs().max().item() for g in reference_grads.values() if g is not None)
    for name, want in reference_grads.items():
        if want is not None and grads[name] is not None:
            expect_close(grads[name], want, f"the gradient of {name!r} the optimiser used differs from the reference: "
                         "zero_grad → backward → clip → cancel the last layer → step", rtol=16 * U, atol=16 * U * scale,
                         what="train_step")
    # this iteration's hyper-parameters
    want_lr, want_wd = want_optimizer.seen[0]["lr"], want_optimizer.seen[0]["weight_decay"]
    if seen["lr"] != want_lr:
        if epoch != it and seen["lr"][0] == float(schedules.lr[epoch]):
            raise AssertionError("the learning rate came from schedules.lr[epoch]: the schedules have one value per "
                                 "iteration, apply_schedules(optimizer, schedules, it)")
        raise AssertionError(f"the optimiser stepped with lr {seen['lr']}, expected {want_lr}: call "
                             "apply_schedules(optimizer, schedules, it) before the step")
    expect(seen["weight_decay"] == want_wd, f"the optimiser stepped with weight decay {seen['weight_decay']}, expected "
                                            f"{want_wd}: apply_schedules(optimizer, schedules, it)")
    # the teacher: once, after the step, with the iteration
    expect(len(model.ema_calls) == 1, f"call model.update_teacher(it) once per step (it was called "
                                      f"{len(model.ema_calls)} times)")
    if model.ema_calls[0] != it:
        raise AssertionError(f"model.update_teacher got {model.ema_calls[0]!r}: pass the global iteration it = {it} "
                             "(the momentum is scheduled per iteration)")
    if model.steps_at_ema[0] == 0:
        raise AssertionError("the teacher was updated before optimizer.step(): update it after the step, so that it "
                             "follows the student's new weights")
    # the metrics
    expect(not isinstance(metrics["loss"], torch.Tensor), "metrics['loss'] must be a Python float: loss.item()")
    for key in ("loss", "lr", "weight_decay", "momentum"):
        expect(is_float(metrics[key]), f"metrics[{key!r}] must be a Python float, got {type(metrics[key]).__name__}")
    expect_close(torch.tensor(metrics["loss"], dtype=torch.float64),
                 torch.tensor(want_metrics["loss"], dtype=torch.float64),
                 "metrics['loss'] differs from the step's loss", rtol=16 * U, atol=0, what="train_step")
    for key in ("lr", "weight_decay", "momentum"):
        expect(metrics[key] == want_metrics[key], f"metrics[{key!r}] = {metrics[key]}, expected {want_metrics[key]} "
                                                  "(this iteration's value)")
    norms = metrics["grad_norms"]
    expect(isinstance(norms, list) and all(is_float(n) for n in norms),
           f"metrics['grad_norms'] must be the list of floats clip_gradients returned, got {norms!r:.80}")
    if clip_grad == 0:
        expect(norms == [], "with clip_grad = 0 clipping is off and metrics['grad_norms'] is an empty list")
    else:
        want_norms = want_metrics["grad_norms"]
        expect(len(norms) == len(want_norms),
               f"metrics['grad_norms'] holds {len(norms)} norms, expected {len(want_norms)} (every parameter with a "
               "gradient): clip before cancelling the last layer's gradients")
        expect_close(torch.tensor(norms, dtype=torch.float64), torch.tensor(want_norms, dtype=torch.float64),
                     "metrics['grad_norms'] differ from the pre-clip norms", **NORM_TOL, what="train_step")
    # the states after the step, against the reference's (identical start, plain SGD)
    start_model, *_ = tiny_setup()
    for which in ("student", "teacher"):
        want_state = dict(getattr(want_model, which).named_parameters())
        for name, p in getattr(model, which).named_parameters():
            start = dict(getattr(start_model, which).named_parameters())[name]
            expect_close(p.detach(), want_state[name].detach(),
                         f"after the step the {which}'s {name!r} differs from the reference",
                         **state_tolerance(start, max(want_lr), scale), what="train_step")
    expect_close(criterion.center, want_criterion.center, "the center differs from the reference's after the step: "
                 "call the criterion once, with the teacher's output", rtol=16 * U, atol=16 * U, what="train_step")


STEP_CASES = {  # (it, epoch, clip_grad, freeze_last_layer)
    "epoch 1, last layer free": (3, 1, 0.05, 1),
    "epoch 0, last layer frozen": (1, 0, 0.05, 1),
    "freeze_last_layer=2 at epoch 1": (2, 1, 0.05, 2),
    "freeze_last_layer=0 at epoch 0": (1, 0, 0.05, 0),
    "clip_grad=0 (no clipping)": (4, 2, 0, 1),
    "clip_grad=0.2": (5, 2, 0.2, 1),
}


@exercise("train_step")
@pytest.mark.parametrize("case", list(STEP_CASES))
def test_train_step_runs_the_phases_in_order(case):
    it, epoch, clip_grad, freeze_last_layer = STEP_CASES[case]
    reference = run_reference_step(it, epoch, clip_grad, freeze_last_layer)
    model, criterion, optimizer, schedules, views = tiny_setup()
    try:
        metrics = st.train_step(model, criterion, optimizer, views, it, epoch, schedules, clip_grad=clip_grad,
                                freeze_last_layer=freeze_last_layer)
    except ExerciseNotStarted:
        raise
    except ValueError as exc:
        if clip_grad == 0 and "clip" in str(exc):
            raise AssertionError(f"clip_grad = 0 switches clipping off: do not call clip_gradients then (grad_norms is "
                                 f"an empty list) ({exc})") from None
        raise
    check_step_order(model, criterion, optimizer, schedules, metrics, it, epoch, clip_grad, freeze_last_layer,
                     reference)


@exercise("train_step")
@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_train_step_refuses_a_non_finite_loss(bad):
    model, _, optimizer, schedules, views = tiny_setup()
    for p in model.student.parameters():
        p.grad = None

    def bad_criterion(student_output, teacher_output, epoch):
        return student_output.sum() * float(bad)

    before = copy.deepcopy(model.state_dict())
    try:
        st.train_step(model, bad_criterion, optimizer, views, 0, 0, schedules)
    except FloatingPointError as exc:
        expect(isinstance(exc, st.NonFiniteLossError), f"raise NonFiniteLossError for a {bad} loss, got "
                                                       f"{type(exc).__name__}")
    else:
        raise AssertionError(f"a {bad} loss must stop the step: check math.isfinite(loss.item()) right after the loss "
                             "and raise NonFiniteLossError before backward, the optimiser step and the EMA")
    for name, value in model.state_dict().items():
        expect(torch.equal(value, before[name]), f"{name!r} changed although the loss was {bad}: check the loss before "
                                                 "backward, the optimiser step and the EMA")
    expect(not optimizer.seen, f"the optimiser took a step although the loss was {bad}")
    expect(not model.ema_calls, f"the teacher was updated although the loss was {bad}")


@exercise("train_step")
@pytest.mark.parametrize("autocast_dtype", [torch.bfloat16, None])
def test_train_step_runs_forward_and_loss_under_autocast_when_asked(autocast_dtype):
    model, criterion, optimizer, schedules, views = tiny_setup(autocast=True)
    before = copy.deepcopy(model.student.state_dict())
    metrics = st.train_step(model, criterion, optimizer, views, 2, 1, schedules, autocast_dtype=autocast_dtype)
    expect(isinstance(metrics, dict), f"train_step must return a dict of metrics, got {type(metrics).__name__}")
    expect(len(model.forward_autocast) == 1 and len(criterion.calls) == 1,
           "call model(views) and the criterion once per step")
    states = {"model(views)": model.forward_autocast[0], "the criterion": (criterion.calls[0]["autocast"],
                                                                          criterion.calls[0]["autocast_dtype"])}
    for what, (enabled, dtype) in states.items():
        if autocast_dtype is None:
            expect(not enabled, f"{what} ran under autocast although autocast_dtype is None: float32 by default")
        else:
            expect(enabled and dtype == autocast_dtype, f"{what} must run inside torch.autocast(device_type=views[0]."
                   f"device.type, dtype=autocast_dtype) when autocast_dtype={autocast_dtype}, it ran with "
                   f"{'autocast ' + str(dtype) if enabled else 'autocast off'}")
    expect(math.isfinite(float(metrics["loss"])), "the step gave a non-finite loss")
    expect(all(p.dtype == torch.float32 for p in model.student.parameters()), "the weights must stay float32")
    moved = [n for n, p in model.student.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    expect(len(moved) > 0, "no student weight moved")
    expect(criterion.center.dtype == torch.float32, "the center must stay float32 under autocast")


@exercise("train_step")
def test_train_step_reproduces_four_original_iterations(golden):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the golden numbers were produced single-threaded; reductions then sum in the same order
    try:
        replay_golden_iterations(golden)
    finally:
        torch.set_num_threads(threads)


def replay_golden_iterations(golden, setup=None):
    train = golden["train"]
    model, criterion, optimizer, schedules = (setup or golden_setup)(golden)
    for it in range(train["config"]["n_iterations"]):
        epoch = it // train["config"]["niter_per_ep"]
        views = [view.clone() for view in train["inputs"][it]]  # clones: the golden data stay intact
        metrics = st.train_step(model, criterion, optimizer, views, it, epoch, schedules,
                                clip_grad=train["config"]["clip_grad"],
                                freeze_last_layer=train["config"]["freeze_last_layer"])
        expect(isinstance(metrics, dict), "train_step must return a dict of metrics")
        if epoch < train["config"]["freeze_last_layer"]:
            expect(
                torch.equal(model.student.head.last_layer.weight_v.detach(),
                            train["init_student"]["head.last_layer.weight_v"]),
                f"iteration {it} (epoch {epoch}): the last layer moved during the freeze: call "
                "cancel_last_layer_gradients(model.student, epoch, freeze_last_layer) after backward, before "
                "optimizer.step()",
            )
        expect_close(torch.tensor(float(metrics["loss"])), torch.tensor(train["loss"][it]),
                     f"iteration {it}: the loss differs from the original's", rtol=0, atol=1e-5, what="train_step")
        expect_close(criterion.center, train["center"][it], f"iteration {it}: the center differs: the criterion must "
                     "be called once per step, with the teacher's output", rtol=0, atol=1e-6, what="train_step")
        for key, want in (("lr", train["lr"][it]), ("weight_decay", train["wd"][it]),
                          ("momentum", train["momentum"][it])):
            expect(abs(float(metrics[key]) - want) <= 1e-15, f"iteration {it}: metrics[{key!r}] = {metrics[key]}, the "
                                                             f"original used {want}")
        got_norms = torch.tensor(metrics["grad_norms"])
        expect(got_norms.shape == train["grad_norms"][it].shape,
               f"iteration {it}: grad_norms must hold the pre-clip norm of all {len(train['grad_norms'][it])} "
               "trainable tensors: clip before cancelling the last layer's gradient")
        expect_close(got_norms, train["grad_norms"][it].float(), f"iteration {it}: pre-clip gradient norms differ",
                     rtol=1e-4, atol=0, what="train_step")
    expect(model.ema_calls == [0, 1, 2, 3], f"call model.update_teacher(it) once per step, after the optimiser step; "
                                            f"calls were {model.ema_calls}")
    steps = {name: int(optimizer.state[p]["step"])
             for name, p in model.student.named_parameters() if p in optimizer.state}
    expect(steps.get("head.last_layer.weight_v") == 2, "the last layer must get no update in epoch 0: cancel its "
                                                       "gradients (set .grad to None) after clipping, before "
                                                       "optimizer.step()")
    expect(steps == train["adam_step_count"], "every other parameter must take one AdamW step per iteration")
    worst, key_bias, where = max_weight_difference(model.student.state_dict(), train["final_student"])
    expect(worst <= 5e-8, f"the final student differs from the original's by {worst:.2e} (at {where}): check the order "
                          "clip → freeze → step, and the parameter groups")
    expect(key_bias <= 2 * sum(train["lr"]), f"the key-bias slices differ by {key_bias:.2e}, more than rounding noise "
                                             "allows (2·Σlr)")
    worst, _, where = max_weight_difference(model.teacher.state_dict(), train["final_teacher"])
    expect(worst <= 5e-9, f"the final teacher differs from the original's by {worst:.2e} (at {where}): update the "
                          "teacher after the optimiser step, with momentum_schedule[it]")


# ----------------------------------------------------------------------------- integration: your whole chain


def your_chain_setup(golden):
    """`golden_setup` with the learner's Lesson 3.1/4.3/4.4 pieces in place of the test's reference ones: the
    DINOLoss criterion, the parameter groups, TrainingSchedules.create and the model's teacher-momentum schedule
    (both from Lesson 3.1's cosine_schedule, the latter through momentum_schedule, the schedule's one owner). The
    EMA stays the original's order of operations, so the teacher stays bit-comparable."""
    model, _, _, _ = golden_setup(golden)
    config = golden["train"]["config"]
    model.momentum_schedule.copy_(LearnerModule("student_teacher").momentum_schedule(
        config["epochs"], config["niter_per_ep"], config["momentum_teacher"], 1.0))
    criterion = LearnerModule("loss").DINOLoss(
        config["out_dim"], epochs=config["epochs"], warmup_teacher_temp=config["warmup_teacher_temp"],
        teacher_temp=config["teacher_temp"], warmup_teacher_temp_epochs=config["warmup_teacher_temp_epochs"],
        student_temp=config["student_temp"], center_momentum=config["center_momentum"])
    optimizer = torch.optim.AdamW(st.parameter_groups(model.student), betas=(0.9, 0.999), eps=1e-8)
    schedules = st.TrainingSchedules.create(
        config["epochs"], config["niter_per_ep"], config["batch"], base_lr=config["lr"], min_lr=config["min_lr"],
        warmup_epochs=config["warmup_epochs"], weight_decay=config["weight_decay"],
        weight_decay_end=config["weight_decay_end"])
    return model, criterion, optimizer, schedules


@exercise("train_step")
@pytest.mark.integration(
    "parameter_groups", "clip_gradients", "TrainingSchedules.create", "apply_schedules", "3.1/cosine_schedule",
    "3.3/cancel_last_layer_gradients", "4.1/update_center", "4.2/teacher_temperature_schedule", "4.3/dino_loss",
    "4.3/DINOLoss.forward",
)
def test_integration_your_training_chain_reproduces_four_original_iterations(golden):
    """Integration check: your train_step with your own parameter groups, clipping, schedules, last-layer freeze
    and loss (Lessons 3.1-4.4) reproduces the original's four iterations. It runs only once each of those
    exercises passes its own checks."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the golden numbers were produced single-threaded
    try:
        replay_golden_iterations(golden, your_chain_setup)
    finally:
        torch.set_num_threads(threads)
