"""DINO built from `lightly`'s parts, for the benchmarks that compare it with the course's.

`LightlyDINO(backbone, config)` pairs a student (the given backbone and lightly's
`DINOProjectionHead`) with a teacher copy, lightly's `DINOLoss` with the config's temperatures
and center momentum, and AdamW over the course's parameter groups. `step(views, it, epoch,
schedules, momentum_schedule)` is one iteration as the original orders it (`momentum_schedule`: the
course model's, `CompleteDINOModel.momentum_schedule`): this iteration's lr and weight decay,
teacher forward on the global views, student forward on all views (view by view, as lightly's
examples do), loss, backward, per-tensor clipping, the last-layer freeze, AdamW, and lightly's
`update_momentum` for the EMA.
"""

from __future__ import annotations

import copy

import torch


class LightlyDINO:
    def __init__(self, backbone: torch.nn.Module, config) -> None:
        from lightly.loss import DINOLoss
        from lightly.models.modules import DINOProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        from dino_course import training

        def head() -> DINOProjectionHead:
            return DINOProjectionHead(backbone.embed_dim, config.hidden_dim, config.bottleneck_dim, config.output_dim,
                                      batch_norm=config.use_bn_in_head, freeze_last_layer=config.freeze_last_layer,
                                      norm_last_layer=config.norm_last_layer)

        self.config = config
        self.student = torch.nn.ModuleDict({"backbone": backbone, "head": head()})
        self.teacher = torch.nn.ModuleDict({"backbone": copy.deepcopy(backbone), "head": head()})
        self.teacher["head"].load_state_dict(self.student["head"].state_dict())  # (deepcopy fails on weight norm)
        deactivate_requires_grad(self.teacher)
        self.criterion = DINOLoss(
            config.output_dim, warmup_teacher_temp=config.warmup_teacher_temp, teacher_temp=config.teacher_temp,
            warmup_teacher_temp_epochs=config.warmup_teacher_temp_epochs, student_temp=config.student_temp,
            center_momentum=config.center_momentum,
        )
        self.optimizer = torch.optim.AdamW(training.parameter_groups(self.student))

    def step(self, views: list[torch.Tensor], it: int, epoch: int, schedules, momentum_schedule) -> torch.Tensor:
        """One DINO iteration on `views` (global views first); returns the loss."""
        from lightly.models.utils import update_momentum

        student, teacher, optimizer = self.student, self.teacher, self.optimizer
        for group in optimizer.param_groups:
            group["lr"] = float(schedules.lr[it])
        optimizer.param_groups[0]["weight_decay"] = float(schedules.weight_decay[it])
        with torch.no_grad():
            teacher_out = [teacher["head"](teacher["backbone"](v)) for v in views[:2]]
        student_out = [student["head"](student["backbone"](v)) for v in views]
        loss = self.criterion(teacher_out, student_out, epoch=epoch)
        optimizer.zero_grad()
        loss.backward()
        for p in student.parameters():  # the original's per-tensor clipping
            if p.grad is not None:
                p.grad.mul_(torch.clamp(self.config.clip_grad / (p.grad.norm() + 1e-6), max=1.0))
        student["head"].cancel_last_layer_gradients(current_epoch=epoch)
        optimizer.step()
        momentum = float(momentum_schedule[it])
        update_momentum(student["backbone"], teacher["backbone"], m=momentum)
        update_momentum(student["head"], teacher["head"], m=momentum)
        return loss
