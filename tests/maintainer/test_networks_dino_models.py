"""Given code around Lesson 3.4's model: the factories, adaptive and multi-head projections and
spectral normalisation of `dino_course/networks/dino_models.py` (on the reference), and loading
the original DINO weights into `solutions/model.py`'s network."""

from __future__ import annotations

import copy

import pytest
import torch

import solutions.heads as heads
import solutions.model as model
from dino_course.networks import dino_models
from dino_course.networks.vit import ViTConfig, VisionTransformer


def multicrop_views(global_size: int, local_size: int, n_local: int, batch: int = 2) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(batch, 3, global_size, global_size, generator=generator) for _ in range(2)] + [
        torch.randn(batch, 3, local_size, local_size, generator=generator) for _ in range(n_local)
    ]


def test_tiny_cpu_preset_shapes_and_sizes():
    torch.manual_seed(0)
    dino = dino_models.dino_tiny_cpu(epochs=2, steps_per_epoch=3)
    assert isinstance(dino, model.CompleteDINOModel)
    head = dino.student.head
    assert (head.mlp[0].out_features, head.bottleneck_dim, head.output_dim) == (512, 64, dino_models.CPU_OUTPUT_DIM)
    student_output, teacher_output = dino(multicrop_views(32, 16, n_local=6))
    assert student_output.shape == (16, dino_models.CPU_OUTPUT_DIM)
    assert teacher_output.shape == (4, dino_models.CPU_OUTPUT_DIM)
    assert dino.update_teacher(5) == pytest.approx(float(dino.momentum_schedule[5]))


def test_vit_small_preset_is_the_papers_model():
    torch.manual_seed(0)
    dino = dino_models.dino_vit_small(epochs=1, steps_per_epoch=1)
    backbone_params = sum(p.numel() for p in dino.student.backbone.parameters())
    head = dino.student.head
    assert 21.5e6 < backbone_params < 22.0e6  # ViT-S/16: 21.7 M
    assert (head.in_dim, head.mlp[0].out_features, head.bottleneck_dim, head.output_dim) == (384, 2048, 256, 65536)
    assert not head.last_layer.weight_g.requires_grad
    with torch.no_grad():
        student_output, teacher_output = dino(multicrop_views(224, 96, n_local=2, batch=1))
    assert student_output.shape == (4, 65536) and teacher_output.shape == (2, 65536)


def test_resnet_backbone_and_factory():
    torch.manual_seed(0)
    backbone = dino_models.resnet_backbone("resnet18")
    assert backbone.embed_dim == 512 and "conv1.weight" in backbone.state_dict()
    dino = dino_models.dino_resnet("resnet18", output_dim=32, epochs=1, steps_per_epoch=2)
    assert dino.student.head.mlp[0].out_features == 2048  # 4 * 512 -> 2048, the paper's width
    student_output, teacher_output = dino(multicrop_views(64, 32, n_local=2))
    assert student_output.shape == (8, 32) and teacher_output.shape == (4, 32)
    assert sum(p.numel() for p in dino_models.resnet_backbone("resnet50").parameters()) == pytest.approx(23.5e6, rel=0.01)
    with pytest.raises(ValueError, match="arch"):
        dino_models.resnet_backbone("vgg16")


def test_adaptive_head_sizes_follow_the_backbone():
    for embed_dim, hidden, bottleneck in ((96, 512, 64), (192, 1024, 128), (384, 2048, 256), (768, 2048, 256)):
        head = dino_models.adaptive_head(embed_dim, output_dim=10)
        assert (head.mlp[0].in_features, head.mlp[0].out_features, head.bottleneck_dim) == (embed_dim, hidden, bottleneck)


def test_multi_head_projection_on_one_backbone():
    torch.manual_seed(1)
    backbone = VisionTransformer(ViTConfig(img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2))
    projection = dino_models.multi_head_projection(16, {"prototypes": 40, "coarse": 8})
    dino = model.CompleteDINOModel(backbone, projection, epochs=1, steps_per_epoch=2)
    student_output, teacher_output = dino(multicrop_views(16, 8, n_local=2))
    assert set(student_output) == {"prototypes", "coarse"}
    assert student_output["prototypes"].shape == (8, 40) and teacher_output["coarse"].shape == (4, 8)
    # Each head is the plain head applied to the shared features.
    features = torch.cat([backbone(torch.cat(v)) for v in (multicrop_views(16, 8, 2)[:2], multicrop_views(16, 8, 2)[2:])])
    torch.testing.assert_close(student_output["coarse"], projection.heads["coarse"](features))
    assert any(k.startswith("student.head.heads.prototypes.last_layer") for k in dino.state_dict())
    dino.update_teacher(1)
    with pytest.raises(ValueError):
        dino_models.MultiHeadProjection({})


def test_spectral_norm_bounds_every_mlp_layer():
    torch.manual_seed(2)
    head = dino_models.apply_spectral_norm(heads.DINOProjectionHead(16, output_dim=10, hidden_dim=32, bottleneck_dim=8))
    head.train()
    for _ in range(30):  # one power iteration per training-mode forward
        head(torch.randn(4, 16))
    for layer in head.mlp:
        if isinstance(layer, torch.nn.Linear):
            sigma = torch.linalg.matrix_norm(layer.weight.detach(), ord=2)
            assert float(sigma) == pytest.approx(1.0, abs=1e-3)
    twin = copy.deepcopy(head).eval()
    head.eval()
    x = torch.randn(3, 16)
    torch.testing.assert_close(twin(x), head(x))
    dino = dino_models.dino_tiny_cpu(epochs=1, steps_per_epoch=2, spectral_norm=True, depth=1)
    student_output, _ = dino(multicrop_views(32, 16, n_local=2))
    student_output.sum().backward()
    dino.update_teacher(0)
    with pytest.raises(TypeError):
        dino_models.apply_spectral_norm(torch.nn.Linear(2, 2))


def test_original_checkpoint_loads_into_multicrop_network(golden):
    train = golden["train"]
    network = model.MultiCropNetwork(
        VisionTransformer(ViTConfig(img_size=32, patch_size=4, embed_dim=32, depth=2, num_heads=2)),
        heads.DINOProjectionHead(32, output_dim=64, hidden_dim=48, bottleneck_dim=16),
    )
    assert list(network.state_dict()) == list(train["init_student"])  # same keys, same order
    assert [name for name, _ in network.named_parameters()] == train["param_names"]
    network.load_state_dict(train["init_student"])


def test_head_loads_new_style_weight_norm_keys(golden):
    """A checkpoint from `torch.nn.utils.parametrizations.weight_norm` loads into the head too."""
    entry = golden["head"]["default"]
    renamed = {
        "last_layer.weight_g": "last_layer.parametrizations.weight.original0",
        "last_layer.weight_v": "last_layer.parametrizations.weight.original1",
    }
    state = {renamed.get(entry["original_keys"][a], entry["original_keys"][a]): v for a, v in entry["params"].items() if a in entry["original_keys"]}
    head = heads.DINOProjectionHead(24, output_dim=40, hidden_dim=32, bottleneck_dim=16)
    head.load_state_dict(state)
    torch.testing.assert_close(head(entry["x"]), entry["output"], rtol=0, atol=1e-6)
    # and the real newer-style module produces those keys
    reference = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(16, 40, bias=False))
    assert set(reference.state_dict()) == {"parametrizations.weight.original0", "parametrizations.weight.original1"}
