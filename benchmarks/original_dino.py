"""The original DINO code (facebookresearch/dino), imported unchanged, for the benchmarks that time it.

    python benchmarks/train_step.py --original-dir path/to/dino

`--original-dir` is a checkout of https://github.com/facebookresearch/dino (the course measured
commit 7c446df: `git clone https://github.com/facebookresearch/dino && git -C dino checkout 7c446df`).
Nothing from it is copied into the course: `import_original(directory)` imports its
`vision_transformer.py`, `utils.py` and `main_dino.py` as they are, and `OriginalDINO` builds the
student and teacher (`utils.MultiCropWrapper` of `vision_transformer.VisionTransformer` and `DINOHead`)
from a course model's state dict (the keys are the same), the original's `DINOLoss`, and AdamW over
`utils.get_params_groups`. `step(views, it, epoch, schedules, momentum_schedule)` is one iteration of
`main_dino.train_one_epoch` on a CPU, in its order and with its calls: lr and weight decay of iteration
`it`, teacher on the two global views, student on all views, `DINOLoss`, backward,
`utils.clip_gradients`, `utils.cancel_gradients_last_layer`, AdamW, and the EMA written as the original
writes it (`t.mul_(m).add_((1 - m) * s)`). What `train_one_epoch` does and this step leaves out: moving the
views to a GPU, `torch.cuda.synchronize()`, the fp16 scaler (off on a CPU) and the metric logger.

The original's `DINOLoss.update_center` calls `torch.distributed.all_reduce`: `import_original` starts a
one-process gloo group when none is running.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import tempfile
import types
from functools import partial
from pathlib import Path

import torch

ORIGINAL_MODULES = ("utils", "vision_transformer", "main_dino")
HOW_TO_GET_IT = (
    "the original DINO code is not given (--original-dir): clone it with "
    "`git clone https://github.com/facebookresearch/dino && git -C dino checkout 7c446df` "
    "and pass --original-dir dino"
)


def import_original(directory: str | os.PathLike) -> types.SimpleNamespace:
    """The original's `utils`, `vision_transformer` and `main_dino` modules, imported from `directory`.

    A package those files import at module level and this environment lacks gets an empty stand-in module,
    so that the import succeeds (the benchmark uses none of them; each is named on stderr).
    """
    directory = Path(directory).resolve()
    missing = [name for name in (f"{m}.py" for m in ORIGINAL_MODULES) if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"--original-dir {str(directory)!r} lacks {', '.join(missing)}: expected a checkout of "
                                "facebookresearch/dino")
    clashing = [m for m in ORIGINAL_MODULES if m in sys.modules and Path(getattr(sys.modules[m], "__file__", "") or "").parent != directory]
    if clashing:
        raise RuntimeError(f"modules named {clashing} are already imported from elsewhere; run the benchmark in a fresh process")
    sys.path.insert(0, str(directory))
    try:
        for _ in range(20):  # one stand-in per missing package, then try again
            try:
                modules = {name: importlib.import_module(name) for name in ORIGINAL_MODULES}
                break
            except ModuleNotFoundError as error:
                if error.name is None or error.name in ORIGINAL_MODULES:
                    raise
                print(f"original DINO: package {error.name!r} is missing, imported as an empty stand-in", file=sys.stderr)
                sys.modules[error.name] = types.ModuleType(error.name)
        else:
            raise RuntimeError("could not import the original DINO modules")
    finally:
        sys.path.remove(str(directory))
    for name, module in modules.items():
        if Path(module.__file__).resolve().parent != directory:
            raise RuntimeError(f"{name} was imported from {module.__file__}, not from {directory}")
    if not torch.distributed.is_initialized():  # DINOLoss.update_center all-reduces the teacher's batch center
        store = tempfile.NamedTemporaryFile(prefix="dino_original_gloo_", delete=False).name
        torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    return types.SimpleNamespace(**modules)


class OriginalDINO:
    """The original's student, teacher, loss and optimiser, with the weights of a course `model`."""

    def __init__(self, original: types.SimpleNamespace, model: torch.nn.Module, config, criterion_epochs: int) -> None:
        vits, utils, main_dino = original.vision_transformer, original.utils, original.main_dino

        def network() -> torch.nn.Module:
            backbone = vits.VisionTransformer(
                img_size=[config.global_size], patch_size=config.patch_size, embed_dim=config.embed_dim,
                depth=config.depth, num_heads=config.num_heads, mlp_ratio=4, qkv_bias=True,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            )
            head = vits.DINOHead(config.embed_dim, config.output_dim, use_bn=config.use_bn_in_head,
                                 norm_last_layer=config.norm_last_layer, hidden_dim=config.hidden_dim,
                                 bottleneck_dim=config.bottleneck_dim)
            return utils.MultiCropWrapper(backbone, head)

        self.config, self.utils = config, utils
        self.student, self.teacher = network(), network()
        self.student.load_state_dict(model.student.state_dict())
        self.teacher.load_state_dict(model.teacher.state_dict())
        for p in self.teacher.parameters():
            p.requires_grad = False
        self.criterion = main_dino.DINOLoss(
            config.output_dim, 2 + config.n_local, config.warmup_teacher_temp, config.teacher_temp,
            config.warmup_teacher_temp_epochs, criterion_epochs, student_temp=config.student_temp,
            center_momentum=config.center_momentum,
        )
        self.optimizer = torch.optim.AdamW(utils.get_params_groups(self.student))

    def step(self, views: list[torch.Tensor], it: int, epoch: int, schedules, momentum_schedule) -> torch.Tensor:
        """One iteration of `main_dino.train_one_epoch` on `views` (global views first); returns the loss."""
        for index, group in enumerate(self.optimizer.param_groups):
            group["lr"] = schedules.lr[it]
            if index == 0:
                group["weight_decay"] = schedules.weight_decay[it]
        teacher_output = self.teacher(views[:2])
        student_output = self.student(views)
        loss = self.criterion(student_output, teacher_output, epoch)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"the original's loss is {loss.item()} at iteration {it}")
        self.optimizer.zero_grad()
        loss.backward()
        if self.config.clip_grad:
            self.utils.clip_gradients(self.student, self.config.clip_grad)
        self.utils.cancel_gradients_last_layer(epoch, self.student, self.config.freeze_last_layer)
        self.optimizer.step()
        with torch.no_grad():
            m = momentum_schedule[it]
            for s, t in zip(self.student.parameters(), self.teacher.parameters()):
                t.data.mul_(m).add_((1 - m) * s.detach().data)
        return loss
