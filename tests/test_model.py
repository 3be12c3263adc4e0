"""Hidden checks for Lesson 3.3, the complete model (`dino_course/model.py`).

The grouped multi-crop forward is checked against its definition (one backbone + head pass
per view, stacked crop-major), against the reference, by counting backbone calls, and against
the original DINO implementation's first training-iteration outputs (golden `train`).

Tolerances (float32): grouping changes only the batch size of the same matrix products, so
the results differ by BLAS blocking order only: a few ulps on values of size ≤ 1 (the head
outputs are cosines); rtol 1e-5 / atol 1e-6. Golden `train` outputs: the README measured
2.7e-7 for an independent implementation and suggests 1e-5.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import solutions.heads as ref_heads
import solutions.model as ref
from dino_course.grading.hints import expect, expect_close
from dino_course.grading.learner import LearnerModule
from dino_course.vit import ViTConfig, VisionTransformer

md = LearnerModule("model")
hd = LearnerModule("heads")

GROUPING_TOL = dict(rtol=1e-5, atol=1e-6)
GOLDEN_TRAIN_TOL = dict(rtol=0.0, atol=1e-5)  # golden README: 2.7e-7 observed, 1e-5 suggested


def exercise(name: str):
    return pytest.mark.exercise("3.3", name)


class CountingBackbone(nn.Module):
    """A small ViT that records the batch size and resolution of every call."""

    def __init__(self, seed: int = 0, embed_dim: int = 16) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.vit = VisionTransformer(ViTConfig(img_size=16, patch_size=4, embed_dim=embed_dim, depth=1, num_heads=2))
        self.embed_dim = embed_dim
        self.calls: list[tuple[int, int]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls.append((images.shape[0], images.shape[-1]))
        return self.vit(images)


class CountingHead(nn.Module):
    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head
        self.calls: list[int] = []

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.calls.append(features.shape[0])
        return self.head(features)


def small_head(seed: int = 1, in_dim: int = 16, output_dim: int = 12) -> nn.Module:
    torch.manual_seed(seed)
    return ref_heads.DINOProjectionHead(in_dim, output_dim=output_dim, hidden_dim=24, bottleneck_dim=8)


def views_of_sizes(sizes: list[int], batch: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, s, s, generator=generator) for s in sizes]


LAYOUTS = [
    [16, 16, 8, 8, 8, 8],  # 2 global + 4 local, CPU-like
    [16, 16],  # global views only (what the teacher sees)
    [16, 16, 8, 8, 16],  # a size that comes back: three groups
    [8, 16, 8],  # alternating
    [12, 12, 12, 4, 4],  # other sizes
]


# ----------------------------------------------------------------------------- MultiCropNetwork.forward


@exercise("MultiCropNetwork.forward")
def test_grouped_forward_runs_backbone_once_per_resolution_group():
    network = md.MultiCropNetwork(CountingBackbone(), CountingHead(small_head()))
    out = network(views_of_sizes([16, 16, 8, 8, 8, 8], batch=3))
    expect(isinstance(out, torch.Tensor) and tuple(out.shape) == (18, 12), f"output should be (V*B, K) = (18, 12), got {getattr(out, 'shape', out)}")
    expect(
        network.backbone.calls == [(6, 16), (12, 8)],
        f"the backbone should run twice, on 2*B = 6 global images of 16 px then 4*B = 12 local images of 8 px; "
        f"got calls (batch, size) = {network.backbone.calls}: concatenate each group of views with torch.cat",
    )
    expect(network.head.calls == [18], f"the head should run once on all V*B = 18 features, got calls with {network.head.calls} rows")


@exercise("MultiCropNetwork.forward")
@pytest.mark.parametrize("sizes", LAYOUTS, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("batch", [1, 4])
def test_grouped_forward_equals_one_pass_per_view(sizes, batch):
    backbone, head = CountingBackbone(seed=2), small_head(seed=3)
    network = md.MultiCropNetwork(backbone, head)
    views = views_of_sizes(sizes, batch, seed=len(sizes))
    got = network(views)
    per_view = torch.cat([head(backbone(view)) for view in views])  # the definition, crop-major
    expect_close(got, per_view, "the grouped forward must equal one pass per view, stacked crop-major in view order", **GROUPING_TOL)
    expected_groups = len(ref.group_by_resolution(views))
    expect(
        len(backbone.calls) - len(views) == expected_groups,
        f"{sizes}: expected {expected_groups} backbone passes (one per run of consecutive equal sizes), got {len(backbone.calls) - len(views)}",
    )
    want = ref.MultiCropNetwork(backbone, head)(views)
    expect_close(got, want, "output differs from the reference multi-crop network", **GROUPING_TOL)


@exercise("MultiCropNetwork.forward")
def test_grouped_forward_backpropagates_to_backbone_and_head():
    network = md.MultiCropNetwork(CountingBackbone(seed=4), small_head(seed=5))
    twin = ref.MultiCropNetwork(CountingBackbone(seed=4), small_head(seed=5))
    views = views_of_sizes([16, 16, 8, 8], batch=2, seed=6)
    weights = torch.linspace(-1, 1, 12)
    (network(views) * weights).sum().backward()
    (twin(views) * weights).sum().backward()
    for (name, p), q in zip(network.named_parameters(), twin.parameters()):
        if not q.requires_grad:
            continue
        expect(p.grad is not None, f"{name} received no gradient through the grouped forward: no torch.no_grad() or .detach() in the student")
        expect_close(p.grad, q.grad, f"gradient of {name} differs from the reference", rtol=1e-4, atol=1e-6)


@exercise("MultiCropNetwork.forward")
def test_multicrop_network_matches_original_first_iteration(golden):
    """Golden `train`: the original student and teacher outputs of iteration 0, from `init_student`."""
    train = golden["train"]
    config = train["config"]
    backbone = VisionTransformer(ViTConfig(img_size=32, patch_size=4, embed_dim=32, depth=2, num_heads=2))
    head = ref_heads.DINOProjectionHead(32, output_dim=64, hidden_dim=48, bottleneck_dim=16)
    network = md.MultiCropNetwork(backbone, head)
    keys = sorted(network.state_dict())
    expect(keys == sorted(train["init_student"]), "the network's state-dict keys should be backbone.* and head.* (attributes named backbone and head)")
    network.load_state_dict(train["init_student"])
    student_output = network(list(train["inputs"][0]))
    expect_close(student_output, train["student_output"][0], "golden train, iteration 0: the student output differs from the original multi-crop forward", **GOLDEN_TRAIN_TOL)
    with torch.no_grad():
        teacher_output = network(list(train["inputs"][0][: config.get("n_global", 2)]))
    expect_close(teacher_output, train["teacher_output"][0], "golden train, iteration 0: the output on the two global views differs", **GOLDEN_TRAIN_TOL)


@exercise("MultiCropNetwork.forward")
def test_complete_model_student_all_views_teacher_globals():
    model = md.CompleteDINOModel(CountingBackbone(seed=7), small_head(seed=8), epochs=2, steps_per_epoch=2)
    views = views_of_sizes([16, 16, 8, 8, 8], batch=2, seed=9)
    student_output, teacher_output = model(views)
    expect(tuple(student_output.shape) == (10, 12) and tuple(teacher_output.shape) == (4, 12), "student (V*B, K) = (10, 12), teacher (2*B, K) = (4, 12)")
    expect(model.teacher.backbone.calls[-1] == (4, 16), f"the teacher should run once on the 2 global views, got {model.teacher.backbone.calls}")
    expect(model.student.backbone.calls[-2:] == [(4, 16), (6, 8)], f"the student should run once per resolution, got {model.student.backbone.calls}")
    expect_close(teacher_output, student_output[:4].detach(), "teacher = student at initialisation: global rows must agree", **GROUPING_TOL)


@exercise("MultiCropNetwork.forward")
def test_multicrop_network_rejects_bad_views():
    network = md.MultiCropNetwork(CountingBackbone(), small_head())
    network(views_of_sizes([16], batch=2))
    with pytest.raises((TypeError, ValueError)):
        network(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError):
        network([])
    with pytest.raises(ValueError):
        network([torch.randn(2, 3, 16, 16), torch.randn(3, 3, 16, 16)])


# ----------------------------------------------------------------------------- adaptive_head_dims


@exercise("adaptive_head_dims")
def test_adaptive_dims_paper_values():
    got = md.adaptive_head_dims(384)
    expect(tuple(got) == (2048, 256), f"ViT-S (D=384) should get the paper's head (2048, 256), got {got}")
    expect(tuple(md.adaptive_head_dims(96)) == (512, 64), f"D=96: 4·96 = 384 rounds up to 512, bottleneck 512/8 = 64; got {md.adaptive_head_dims(96)}")
    expect(tuple(md.adaptive_head_dims(2048)) == (2048, 256), "wide backbones are capped at the paper's 2048")


@exercise("adaptive_head_dims")
@pytest.mark.parametrize("embed_dim", [1, 2, 3, 32, 96, 100, 192, 384, 512, 768, 1024, 2048])
@pytest.mark.parametrize("max_hidden,expansion,ratio", [(2048, 4, 8), (1024, 2, 4), (4096, 4, 16)])
def test_adaptive_dims_match_reference(embed_dim, max_hidden, expansion, ratio):
    got = md.adaptive_head_dims(embed_dim, max_hidden_dim=max_hidden, expansion=expansion, bottleneck_ratio=ratio)
    want = ref.adaptive_head_dims(embed_dim, max_hidden_dim=max_hidden, expansion=expansion, bottleneck_ratio=ratio)
    expect(
        tuple(got) == want and all(isinstance(v, int) for v in got),
        f"adaptive_head_dims({embed_dim}, max_hidden_dim={max_hidden}, expansion={expansion}, bottleneck_ratio={ratio}) "
        f"should be {want} (ints), got {got}: hidden = min(cap, smallest power of two >= expansion·D)",
    )


@exercise("adaptive_head_dims")
def test_adaptive_dims_reject_bad_input():
    md.adaptive_head_dims(8)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError):
            md.adaptive_head_dims(bad)


# ----------------------------------------------------------------------------- freeze invariant on the full model


@pytest.mark.exercise("3.3", "cancel_last_layer_gradients")
def test_no_gradient_reaches_frozen_last_layer_in_the_complete_model():
    """Forward, loss, backward, cancel: in the freeze epoch the last layer has no gradient, the rest has one."""
    torch.manual_seed(10)
    model = ref.CompleteDINOModel(CountingBackbone(seed=10), small_head(seed=11), epochs=2, steps_per_epoch=1)
    views = views_of_sizes([16, 16, 8, 8], batch=2, seed=12)
    optimizer = torch.optim.AdamW([p for p in model.student.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.04)
    last_layer_before = model.student.head.last_layer.weight_v.detach().clone()
    for epoch in (0, 1):
        student_output, teacher_output = model(views)
        targets = teacher_output.softmax(-1)
        loss = -(targets.repeat(2, 1) * student_output.log_softmax(-1)).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        hd.cancel_last_layer_gradients(model.student, epoch, 1)
        last_layer_grads = [p.grad for name, p in model.student.named_parameters() if "last_layer" in name]
        if epoch == 0:
            expect(all(g is None for g in last_layer_grads), "in the freeze epoch the last layer's gradients must be None after cancelling")
            expect(model.student.head.mlp[0].weight.grad is not None, "the rest of the student must keep its gradients")
        else:
            expect(model.student.head.last_layer.weight_v.grad is not None, "after the freeze epoch the last layer trains again")
        optimizer.step()
        if epoch == 0:
            expect(torch.equal(model.student.head.last_layer.weight_v, last_layer_before), "the last layer moved in the freeze epoch")
    expect(all(p.grad is None for p in model.teacher.parameters()), "the teacher never receives gradients")
