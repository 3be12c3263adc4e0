"""Hidden checks for Lesson 4.4 (`dino_course/training.py`).

The centrepiece replays the golden `train` entry: four iterations of the original DINO step
on a tiny ViT, compared loss by loss, center by center and weight by weight with the
tolerances the golden README measured for an independent re-implementation (losses 1e-5,
centers 1e-6, grad norms 1e-4 relative, final student 5e-8 and teacher 5e-9 absolute, the
key-bias slices of `qkv.bias`, whose gradient is mathematically zero and pure rounding noise,
within 2·Σlr = 4.5e-5). The README's table shows every plausible mistake (global-norm
clipping, freeze as lr = 0, decay on biases, center before loss, ...) moves the final student
by ≥ 2e-7, far above 5e-8.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import solutions.centering as ref_centering
import solutions.loss as ref_loss
import solutions.temperature as ref_temperature
import solutions.training as ref
from solutions.heads import DINOProjectionHead
from solutions.student_teacher import cosine_schedule
from dino_course.grading.hints import expect, expect_close
from dino_course.grading.learner import LearnerModule
from dino_course.vit import ViTConfig, VisionTransformer

st = LearnerModule("training")
SCHEDULE_TOL = dict(rtol=0, atol=1e-15)  # float64 schedules; golden/README: 1.4e-20 observed
CLIP_TOL = dict(rtol=0, atol=1e-7)  # golden/README suggested tolerance for clip_gradients


def exercise(name: str):
    return pytest.mark.exercise("4.4", name)


# ----------------------------------------------------------------------------- the golden setting
# Everything but the exercise under test is built from the reference modules directly, so that a
# learner's unfinished Lesson 4.1-4.3 does not block the grading of Lesson 4.4.


class ReferenceCriterion(nn.Module):
    """DINOLoss built only from reference functions: loss with the current center, then the center update."""

    def __init__(self, out_dim, *, epochs, warmup_teacher_temp=0.04, teacher_temp=0.04, warmup_teacher_temp_epochs=0,
                 student_temp=0.1, center_momentum=0.9):
        super().__init__()
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.temps = ref_temperature.teacher_temperature_schedule(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, epochs)
        self.student_temp, self.center_momentum = student_temp, center_momentum

    def forward(self, student_output, teacher_output, epoch):
        loss = ref_loss.dino_loss(student_output, teacher_output, self.center, float(self.temps[epoch]), self.student_temp)
        self.center.copy_(ref_centering.update_center(self.center, teacher_output, self.center_momentum))
        return loss


DINOLoss = ReferenceCriterion


def reference_schedules(epochs, niter_per_ep, batch_size, *, base_lr=5e-4, min_lr=1e-6, warmup_epochs=0,
                        weight_decay=0.04, weight_decay_end=0.4, momentum_teacher=0.996, momentum_teacher_end=1.0):
    """TrainingSchedules from the reference cosine_schedule of Lesson 3.1."""
    return ref.TrainingSchedules(
        lr=cosine_schedule(base_lr * batch_size / 256.0, min_lr, epochs, niter_per_ep, warmup_epochs=warmup_epochs),
        weight_decay=cosine_schedule(weight_decay, weight_decay_end, epochs, niter_per_ep),
        momentum=cosine_schedule(momentum_teacher, momentum_teacher_end, epochs, niter_per_ep),
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
    """A student-teacher wrapper whose EMA uses the original's order of operations, so the teacher is bit-comparable."""

    def __init__(self, student: nn.Module, momentum_schedule: torch.Tensor, n_global_views: int = 2) -> None:
        super().__init__()
        self.student = student
        self.teacher = copy.deepcopy(student).requires_grad_(False)
        self.n_global_views = n_global_views
        self.register_buffer("momentum_schedule", momentum_schedule)
        self.ema_calls: list[int] = []

    def forward(self, views):
        student_output = self.student(views)
        with torch.no_grad():
            teacher_output = self.teacher(views[: self.n_global_views])
        return student_output, teacher_output

    def update_teacher(self, step: int) -> float:
        self.ema_calls.append(step)
        momentum = float(self.momentum_schedule[step])
        with torch.no_grad():
            for student_param, teacher_param in zip(self.student.parameters(), self.teacher.parameters()):
                teacher_param.mul_(momentum).add_((1 - momentum) * student_param.detach())
        return momentum


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
    model = OriginalOrderWrapper(student, cosine_schedule(config["momentum_teacher"], 1.0, config["epochs"], config["niter_per_ep"]))
    criterion = DINOLoss(config["out_dim"], epochs=config["epochs"], warmup_teacher_temp=config["warmup_teacher_temp"],
                         teacher_temp=config["teacher_temp"], warmup_teacher_temp_epochs=config["warmup_teacher_temp_epochs"],
                         student_temp=config["student_temp"], center_momentum=config["center_momentum"])
    optimizer = torch.optim.AdamW(ref.parameter_groups(student), betas=(0.9, 0.999), eps=1e-8)
    schedules = reference_schedules(config["epochs"], config["niter_per_ep"], config["batch"], base_lr=config["lr"],
                                             min_lr=config["min_lr"], warmup_epochs=config["warmup_epochs"],
                                             weight_decay=config["weight_decay"], weight_decay_end=config["weight_decay_end"],
                                             momentum_teacher=config["momentum_teacher"], momentum_teacher_end=1.0)
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


@exercise("parameter_groups")
def test_parameter_groups_match_the_original(golden):
    model, *_ = golden_setup(golden)
    groups = st.parameter_groups(model.student)
    expect(isinstance(groups, list) and len(groups) == 2, "return a list of two dicts: the decayed group, then the non-decayed one")
    names = [list(group.get("param_names", [])) for group in groups]
    by_id = {id(p): n for n, p in model.student.named_parameters()}
    params = [[by_id.get(id(p), "?") for p in group["params"]] for group in groups]
    expect(names == params, "each group's 'param_names' must list the names of its 'params', in the same order")
    want = golden["train"]["param_groups"]
    if "head.last_layer.weight_g" in params[0] + params[1]:
        raise AssertionError("the frozen head.last_layer.weight_g (requires_grad=False) must not be given to the optimiser")
    if sorted(params[0]) == sorted(want["regularized"] + ["backbone.cls_token", "backbone.pos_embed"]) or any(
        n in params[1] for n in ("backbone.cls_token", "backbone.pos_embed")
    ):
        raise AssertionError("cls_token and pos_embed are 3-D, not biases: the original decays them (rule: 1-D or name ends in .bias)")
    expect(params[0] == want["regularized"], f"the decayed group differs from the original's (first difference among {sorted(set(params[0]) ^ set(want['regularized']))[:3]}): decay every tensor that is not 1-D and not a bias")
    expect(params[1] == want["not_regularized"], f"the non-decayed group differs from the original's (e.g. {sorted(set(params[1]) ^ set(want['not_regularized']))[:3]}): biases and 1-D tensors (norm weights)")
    expect(groups[1].get("weight_decay") == 0.0, "the second group must carry weight_decay=0.0")
    expect("weight_decay" not in groups[0] or groups[0]["weight_decay"] != 0.0, "the first group must be decayed: do not set its weight decay to 0")


@exercise("parameter_groups")
def test_parameter_groups_on_other_models():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2, bias=False), nn.LayerNorm(2))
    model[0].bias.requires_grad_(False)
    groups = st.parameter_groups(model)
    want = ref.parameter_groups(model)
    for got_group, want_group in zip(groups, want):
        expect([id(p) for p in got_group["params"]] == [id(p) for p in want_group["params"]], f"groups differ from the reference on a conv/BN/linear model: expected {want_group['param_names']}")
    optimizer = torch.optim.AdamW(groups)
    expect(len(optimizer.param_groups) == 2, "torch.optim.AdamW must accept the groups")


# ----------------------------------------------------------------------------- clip_gradients


def clip_model(golden) -> nn.Module:
    entry = golden["clip_gradients"]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 3))
    model.load_state_dict(entry["params"])
    ((model(entry["x"]) - entry["target"]).square().sum() / 16).backward()
    return model


@exercise("clip_gradients")
def test_clip_gradients_matches_the_original(golden):
    entry = golden["clip_gradients"]
    model = clip_model(golden)
    norms = st.clip_gradients(model, entry["config"]["clip"])
    expect(isinstance(norms, list) and all(isinstance(n, float) for n in norms), f"return a list of Python floats (the pre-clip norms), got {norms!r:.80}")
    expect_close(torch.tensor(norms), torch.tensor(entry["norms"]), "the returned norms must be each tensor's gradient norm *before* clipping, in parameter order", **CLIP_TOL)
    grads = dict((n, p.grad) for n, p in model.named_parameters())
    global_coef = entry["config"]["clip"] / (torch.tensor(entry["norms"]).norm() + 1e-6)
    if torch.allclose(grads["0.bias"], entry["grads_before"]["0.bias"] * global_coef, atol=1e-7):
        raise AssertionError("this is one global-norm clip: DINO clips each parameter tensor on its own (coef = clip / (‖g‖ + 1e-6))")
    for name in entry["param_order"]:
        hint = f"gradient of {name!r} after clipping differs from the original's"
        hint += " (it should have been scaled to norm ≈ clip)" if entry["clipped"][name] else " (its norm is below clip: leave it unchanged)"
        expect_close(grads[name], entry["grads_after"][name], hint, **CLIP_TOL)


@exercise("clip_gradients")
@pytest.mark.parametrize("clip", [0.01, 1.0, 3.0, 100.0])
def test_clip_gradients_matches_reference_and_skips_missing_gradients(clip):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 2), nn.Linear(2, 2))
    (model[:3](torch.randn(6, 5)) * 4).square().sum().backward()  # model[3] gets no gradient
    expected = copy.deepcopy(model)  # deepcopy does not copy .grad: copy the gradients by hand
    for p, q in zip(model.parameters(), expected.parameters()):
        q.grad = None if p.grad is None else p.grad.clone()
    got = st.clip_gradients(model, clip)
    want = ref.clip_gradients(expected, clip)
    expect(len(got) == len(want), f"return one norm per parameter that has a gradient ({len(want)}), skipping those whose .grad is None; got {len(got)}")
    expect_close(torch.tensor(got), torch.tensor(want), "the pre-clip norms differ from the reference", rtol=1e-6, atol=1e-7)
    for (name, p), q in zip(model.named_parameters(), expected.parameters()):
        if q.grad is None:
            expect(p.grad is None, f"{name!r} had no gradient and must keep .grad = None")
        else:
            expect_close(p.grad, q.grad, f"clipped gradient of {name!r} differs (clip={clip})", rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- schedules


@exercise("TrainingSchedules.create")
def test_schedules_match_the_original(golden):
    train = golden["train"]
    config = train["config"]
    schedules = st.TrainingSchedules.create(
        config["epochs"], config["niter_per_ep"], config["batch"], base_lr=config["lr"], min_lr=config["min_lr"],
        warmup_epochs=config["warmup_epochs"], weight_decay=config["weight_decay"], weight_decay_end=config["weight_decay_end"],
        momentum_teacher=config["momentum_teacher"], momentum_teacher_end=1.0,
    )
    lr = torch.as_tensor(schedules.lr)
    if lr.shape == train["lr_schedule"].shape and torch.allclose(lr.max(), torch.tensor(config["lr"], dtype=torch.float64)):
        raise AssertionError("scale the base learning rate by the batch size: lr · batch_size / 256 (linear scaling rule)")
    expect_close(lr, train["lr_schedule"], "the lr schedule differs from the original: warm-up from 0 to lr·B/256, then cosine to min_lr", **SCHEDULE_TOL)
    expect_close(torch.as_tensor(schedules.weight_decay), train["wd_schedule"], "the weight-decay schedule differs: cosine from weight_decay to weight_decay_end, no warm-up", **SCHEDULE_TOL)
    expect_close(torch.as_tensor(schedules.momentum), train["momentum_schedule"], "the momentum schedule differs: cosine from momentum_teacher to momentum_teacher_end, no warm-up", **SCHEDULE_TOL)


@exercise("TrainingSchedules.create")
def test_schedules_lr_entry_of_the_original(golden):
    config = golden["schedules"]["config"]["lr"]
    schedules = st.TrainingSchedules.create(config["epochs"], config["niter_per_ep"], batch_size=64, base_lr=5e-4,
                                            min_lr=config["final_value"], warmup_epochs=config["warmup_epochs"])
    expect_close(torch.as_tensor(schedules.lr), golden["schedules"]["lr"], "lr with base 5e-4 and batch 64 must be the original's (peak 1.25e-4)", **SCHEDULE_TOL)
    expect(schedules.niter_per_ep == config["niter_per_ep"], "store niter_per_ep in the schedules")
    with pytest.raises(ValueError):
        st.TrainingSchedules.create(3, 2, 0)


# ----------------------------------------------------------------------------- apply_schedules


@exercise("apply_schedules")
def test_apply_schedules_sets_lr_everywhere_and_decay_on_the_first_group():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    optimizer = torch.optim.AdamW(ref.parameter_groups(model))
    schedules = reference_schedules(4, 3, 128, warmup_epochs=1)
    for it in (0, 2, 3, 11):
        got = st.apply_schedules(optimizer, schedules, it)
        want_lr, want_wd = float(schedules.lr[it]), float(schedules.weight_decay[it])
        expect(tuple(got) == (want_lr, want_wd), f"apply_schedules(it={it}) must return (lr, weight_decay) = {(want_lr, want_wd)}, got {got}")
        expect(all(g["lr"] == want_lr for g in optimizer.param_groups), "set the learning rate of every parameter group")
        expect(optimizer.param_groups[0]["weight_decay"] == want_wd, "set the first (regularised) group's weight decay from the schedule")
        expect(optimizer.param_groups[1]["weight_decay"] == 0.0, "the second group (biases, norms) must keep weight decay 0")
        expect(all(isinstance(g["lr"], float) for g in optimizer.param_groups), "store Python floats, not tensors, in the optimiser")


# ----------------------------------------------------------------------------- train_step


@exercise("train_step")
def test_train_step_reproduces_four_original_iterations(golden):
    torch.set_num_threads(1)  # the golden numbers were produced single-threaded; reductions then sum in the same order
    train = golden["train"]
    model, criterion, optimizer, schedules = golden_setup(golden)
    for it in range(train["config"]["n_iterations"]):
        epoch = it // train["config"]["niter_per_ep"]
        metrics = st.train_step(model, criterion, optimizer, train["inputs"][it], it, epoch, schedules,
                                clip_grad=train["config"]["clip_grad"], freeze_last_layer=train["config"]["freeze_last_layer"])
        expect(isinstance(metrics, dict), "train_step must return a dict of metrics")
        expect_close(torch.tensor(float(metrics["loss"])), torch.tensor(train["loss"][it]), f"iteration {it}: the loss differs from the original's", rtol=0, atol=1e-5)
        expect_close(criterion.center, train["center"][it], f"iteration {it}: the center differs: the criterion must be called once per step, with the teacher's output", rtol=0, atol=1e-6)
        for key, want in (("lr", train["lr"][it]), ("weight_decay", train["wd"][it]), ("momentum", train["momentum"][it])):
            expect(abs(float(metrics[key]) - want) <= 1e-15, f"iteration {it}: metrics[{key!r}] = {metrics[key]}, the original used {want}")
        got_norms = torch.tensor(metrics["grad_norms"])
        expect(got_norms.shape == train["grad_norms"][it].shape, f"iteration {it}: grad_norms must hold the pre-clip norm of all {len(train['grad_norms'][it])} trainable tensors: clip before cancelling the last layer's gradient")
        expect_close(got_norms, train["grad_norms"][it].float(), f"iteration {it}: pre-clip gradient norms differ", rtol=1e-4, atol=0)
    expect(model.ema_calls == [0, 1, 2, 3], f"call model.update_teacher(it) once per step, after the optimiser step; calls were {model.ema_calls}")
    steps = {name: int(optimizer.state[p]["step"]) for name, p in model.student.named_parameters() if p in optimizer.state}
    expect(steps.get("head.last_layer.weight_v") == 2, "the last layer must get no update in epoch 0: cancel its gradients (set .grad to None) after clipping, before optimizer.step()")
    expect(steps == train["adam_step_count"], "every other parameter must take one AdamW step per iteration")
    worst, key_bias, where = max_weight_difference(model.student.state_dict(), train["final_student"])
    expect(worst <= 5e-8, f"the final student differs from the original's by {worst:.2e} (at {where}): check the order clip → freeze → step, and the parameter groups")
    expect(key_bias <= 2 * sum(train["lr"]), f"the key-bias slices differ by {key_bias:.2e}, more than rounding noise allows")
    worst, _, where = max_weight_difference(model.teacher.state_dict(), train["final_teacher"])
    expect(worst <= 5e-9, f"the final teacher differs from the original's by {worst:.2e} (at {where}): update the teacher after the optimiser step, with momentum_schedule[it]")


@exercise("train_step")
def test_train_step_refuses_a_non_finite_loss():
    torch.manual_seed(3)
    student = MultiCropStudent(nn.Flatten(), nn.Linear(12, 5))
    model = OriginalOrderWrapper(student, cosine_schedule(0.996, 1.0, 1, 4))

    def nan_criterion(student_output, teacher_output, epoch):
        return student_output.sum() * float("nan")

    optimizer = torch.optim.AdamW(ref.parameter_groups(student))
    schedules = reference_schedules(1, 4, 256, warmup_epochs=0)
    before = copy.deepcopy(model.state_dict())
    views = [torch.randn(2, 3, 2, 2) for _ in range(3)]
    with pytest.raises(FloatingPointError) as info:
        st.train_step(model, nan_criterion, optimizer, views, 0, 0, schedules)
    expect(isinstance(info.value, st.NonFiniteLossError), "raise NonFiniteLossError for a NaN/inf loss")
    for name, value in model.state_dict().items():
        expect(torch.equal(value, before[name]), f"{name!r} changed although the loss was NaN: check the loss before backward/step/EMA")
    expect(not optimizer.state, "the optimiser took a step although the loss was NaN")


@exercise("train_step")
def test_train_step_with_bfloat16_autocast_learns_and_keeps_float32_weights():
    torch.manual_seed(4)
    backbone = VisionTransformer(ViTConfig(img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2))
    student = MultiCropStudent(backbone, DINOProjectionHead(16, output_dim=32, hidden_dim=24, bottleneck_dim=8))
    model = OriginalOrderWrapper(student, cosine_schedule(0.996, 1.0, 2, 2))
    criterion = DINOLoss(32, epochs=2, warmup_teacher_temp_epochs=0, teacher_temp=0.04)
    optimizer = torch.optim.AdamW(ref.parameter_groups(student))
    schedules = reference_schedules(2, 2, 256, warmup_epochs=0)
    views = [torch.randn(3, 3, 16, 16) for _ in range(2)] + [torch.randn(3, 3, 8, 8)]
    before = copy.deepcopy(student.state_dict())
    metrics = st.train_step(model, criterion, optimizer, views, 2, 1, schedules, autocast_dtype=torch.bfloat16)
    expect(torch.isfinite(torch.tensor(metrics["loss"])).item(), "the bf16 step gave a non-finite loss")
    expect(all(p.dtype == torch.float32 for p in student.parameters()), "autocast must leave the weights in float32")
    moved = [n for n, p in student.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    expect(len(moved) > 0, "no student weight moved in a bf16 step")
    expect(criterion.center.dtype == torch.float32, "the center must stay float32 under autocast")


@exercise("train_step")
def test_train_step_without_clipping():
    torch.manual_seed(5)
    student = MultiCropStudent(nn.Flatten(), nn.Linear(12, 6))
    model = OriginalOrderWrapper(student, cosine_schedule(0.996, 1.0, 1, 2))
    criterion = DINOLoss(6, epochs=1, warmup_teacher_temp_epochs=0)
    optimizer = torch.optim.AdamW(ref.parameter_groups(student))
    schedules = reference_schedules(1, 2, 256, warmup_epochs=0)
    views = [100 * torch.randn(2, 3, 2, 2) for _ in range(4)]
    metrics = st.train_step(model, criterion, optimizer, views, 1, 0, schedules, clip_grad=0)
    expect(metrics["grad_norms"] == [], "with clip_grad=0 clipping is off and grad_norms is an empty list")
    expect(max(p.grad.norm().item() for p in student.parameters() if p.grad is not None) > 0, "gradients must reach the student")
