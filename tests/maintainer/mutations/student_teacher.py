"""Mutations of Lesson 3.1 (`solutions/student_teacher.py`); see `../mutation_harness.py`."""

from mutation_harness import Alternative, Bug

BUILD_TEACHER = [
    Bug(
        "build_teacher",
        "returns the student itself (frozen)",
        "teacher = copy.deepcopy(student)",
        "teacher = student",
        r"returned the student itself",
    ),
    Bug(
        "build_teacher",
        "copy.copy: a shallow copy shares the parameters",
        "teacher = copy.deepcopy(student)",
        "teacher = copy.copy(student)",
        r"share tensors: use copy\.deepcopy",
    ),
    Bug(
        "build_teacher",
        "forgets to freeze the teacher",
        "",
        "return copy.deepcopy(student)",
        r"still require gradients",
    ),
    Bug(
        "build_teacher",
        "`teacher.requires_grad = False` sets a module attribute, not the parameters'",
        "",
        """
        teacher = copy.deepcopy(student)
        teacher.requires_grad = False
        return teacher
        """,
        r"still require gradients.*only sets an attribute",
    ),
    Bug(
        "build_teacher",
        "freezes the student instead of the copy",
        "for parameter in teacher.parameters():",
        "for parameter in student.parameters():",
        r"student parameters .* were frozen",
    ),
    Bug(
        "build_teacher",
        "puts the teacher in eval mode",
        "return teacher",
        "return teacher.eval()",
        r"the teacher is in eval mode, the student in train mode",
    ),
    Bug(
        "build_teacher",
        "forgets the return statement",
        "return teacher",
        "pass",
        r"returned None",
    ),
    Alternative(
        "build_teacher",
        "deepcopy, then Module.requires_grad_(False) in one line",
        "",
        "return copy.deepcopy(student).requires_grad_(False)",
    ),
    Alternative(
        "build_teacher",
        "deepcopy under no_grad, p.requires_grad = False, mode set explicitly",
        "",
        """
        with torch.no_grad():
            teacher = copy.deepcopy(student)
        for p in teacher.parameters():
            p.requires_grad = False
        teacher.train(student.training)
        return teacher
        """,
    ),
    Alternative(
        "build_teacher",
        "a pickle round trip through torch.save / torch.load",
        "",
        """
        import io

        buffer = io.BytesIO()
        torch.save(student, buffer)
        buffer.seek(0)
        teacher = torch.load(buffer, weights_only=False)
        teacher.requires_grad_(False)
        return teacher
        """,
    ),
]

SYNC_TEACHER = [
    Bug(
        "sync_teacher",
        "copies the parameters only, not the buffers",
        "zip(teacher.state_dict().values(), student.state_dict().values())",
        "zip(teacher.parameters(), student.parameters())",
        r"teacher buffer .* differs.*copy the buffers too",
    ),
    Bug(
        "sync_teacher",
        "copies in the wrong direction (teacher into student)",
        "teacher_tensor.copy_(student_tensor)",
        "student_tensor.copy_(teacher_tensor)",
        r"sync_teacher changed the student",
    ),
    Bug(
        "sync_teacher",
        "rebinds the local name `teacher` to a fresh copy",
        "",
        "teacher = copy.deepcopy(student)",
        r"left the teacher unchanged.*assigning `teacher = \.\.\.`",
    ),
    Bug(
        "sync_teacher",
        "assigns `.data` (new storage) instead of copying in place",
        "",
        """
        with torch.no_grad():
            teacher_tensors = list(teacher.parameters()) + list(teacher.buffers())
            student_tensors = list(student.parameters()) + list(student.buffers())
            for teacher_tensor, student_tensor in zip(teacher_tensors, student_tensors):
                teacher_tensor.data = student_tensor.data.clone()
        """,
        r"replaced teacher tensor .*copy into it in place",
    ),
    Bug(
        "sync_teacher",
        "copies outside torch.no_grad(): the teacher joins the student's graph",
        "",
        """
        teacher_tensors = list(teacher.parameters()) + list(teacher.buffers())
        student_tensors = list(student.parameters()) + list(student.buffers())
        for teacher_tensor, student_tensor in zip(teacher_tensors, student_tensors):
            teacher_tensor.copy_(student_tensor)
        """,
        r"requires gradients: copy under torch\.no_grad\(\)",
    ),
    Bug(
        "sync_teacher",
        "load_state_dict(assign=True): the teacher takes the student's own tensors",
        "",
        "teacher.load_state_dict(student.state_dict(), assign=True)",
        r"replaced teacher tensor",
    ),
    Alternative(
        "sync_teacher",
        "load_state_dict (copies in place under no_grad)",
        "",
        "teacher.load_state_dict(student.state_dict())",
    ),
    Alternative(
        "sync_teacher",
        "by name, parameters and buffers, through .data",
        "",
        """
        student_tensors = dict(student.named_parameters())
        student_tensors.update(student.named_buffers())
        for name, tensor in list(teacher.named_parameters()) + list(teacher.named_buffers()):
            tensor.data.copy_(student_tensors[name].data)
        """,
    ),
    Alternative(
        "sync_teacher",
        "parameters and buffers in two zipped loops",
        "",
        """
        with torch.no_grad():
            for t, s in zip(teacher.parameters(), student.parameters()):
                t.copy_(s)
            for t, s in zip(teacher.buffers(), student.buffers()):
                t.copy_(s)
        """,
    ),
]

EMA_UPDATE = [
    Bug(
        "ema_update",
        "τ and 1 − τ swapped",
        "torch._foreach_mul_(teacher_params, momentum)\n"
        "        torch._foreach_add_(teacher_params, student_params, alpha=1.0 - momentum)",
        "torch._foreach_mul_(teacher_params, 1.0 - momentum)\n"
        "        torch._foreach_add_(teacher_params, student_params, alpha=momentum)",
        r"τ weighs the teacher",
    ),
    Bug(
        "ema_update",
        "moves the student towards the teacher (arguments' roles swapped)",
        "",
        """
        with torch.no_grad():
            for t, s in zip(teacher.parameters(), student.parameters()):
                s.mul_(momentum).add_(t, alpha=1.0 - momentum)
        """,
        r"ema_update changed the student",
    ),
    Bug(
        "ema_update",
        "assigns the average to the loop variable: nothing changes",
        "",
        """
        with torch.no_grad():
            for t, s in zip(teacher.parameters(), student.parameters()):
                t = momentum * t + (1 - momentum) * s
        """,
        r"left the teacher unchanged.*loop variable",
    ),
    Bug(
        "ema_update",
        "no torch.no_grad(): the teacher joins the student's graph",
        "",
        """
        for t, s in zip(teacher.parameters(), student.parameters()):
            t.copy_(momentum * t + (1 - momentum) * s)
        """,
        r"became part of the autograd graph",
    ),
    Bug(
        "ema_update",
        "averages the state dict in place: BatchNorm's integer counter cannot be averaged",
        "",
        """
        with torch.no_grad():
            for t, s in zip(teacher.state_dict().values(), student.state_dict().values()):
                t.mul_(momentum).add_(s, alpha=1.0 - momentum)
        """,
        r"changed the teacher's buffers.*num_batches_tracked",
    ),
    Bug(
        "ema_update",
        "averages the state dict with copy_: buffers are averaged too",
        "",
        """
        with torch.no_grad():
            for t, s in zip(teacher.state_dict().values(), student.state_dict().values()):
                t.copy_(momentum * t + (1 - momentum) * s)
        """,
        r"changed the teacher's buffers",
    ),
    Bug(
        "ema_update",
        "MoCo style `.data = ...`: new storage instead of an in-place update",
        "",
        """
        for t, s in zip(teacher.parameters(), student.parameters()):
            t.data = t.data * momentum + s.data * (1.0 - momentum)
        """,
        r"replaced teacher tensor .*update it in place",
    ),
    Alternative(
        "ema_update",
        "lerp_ towards the student",
        "",
        """
        with torch.no_grad():
            for t, s in zip(teacher.parameters(), student.parameters()):
                t.lerp_(s, 1.0 - momentum)
        """,
    ),
    Alternative(
        "ema_update",
        "the paper's formula written literally",
        "",
        """
        with torch.no_grad():
            for t, s in zip(teacher.parameters(), student.parameters()):
                t.copy_(momentum * t + (1 - momentum) * s)
        """,
    ),
    Alternative(
        "ema_update",
        "a step of (1 − τ) along the gap: θ_t += (1 − τ)(θ_s − θ_t)",
        "",
        """
        with torch.no_grad():
            for t, s in zip(teacher.parameters(), student.parameters()):
                t.add_(s - t, alpha=1 - momentum)
        """,
    ),
    Alternative(
        "ema_update",
        "by name, float64 intermediates, on .detach()",
        "",
        """
        student_params = dict(student.named_parameters())
        for name, t in teacher.named_parameters():
            s = student_params[name].detach()
            mixed = momentum * t.detach().double() + (1.0 - momentum) * s.double()
            t.detach().copy_(mixed.to(t.dtype))
        """,
    ),
    Alternative(
        "ema_update",
        "fused foreach lerp",
        "",
        """
        with torch.no_grad():
            torch._foreach_lerp_(list(teacher.parameters()), list(student.parameters()), 1.0 - momentum)
        """,
    ),
]

COSINE_SCHEDULE = [
    Bug(
        "cosine_schedule",
        "cosine divides by n − 1 (reaches final_value exactly)",
        "math.pi * iters / len(iters)",
        "math.pi * iters / (len(iters) - 1)",
        r"divide by n = \d+, not n − 1",
    ),
    Bug(
        "cosine_schedule",
        "warm-up excludes its end point (i / W)",
        "warmup = torch.linspace(start_warmup_value, base_value, warmup_iters, dtype=torch.float64)",
        "warmup = start_warmup_value + (base_value - start_warmup_value)"
        " * torch.arange(warmup_iters, dtype=torch.float64) / warmup_iters",
        r"warm-up must end exactly at base_value.*not i/W",
    ),
    Bug(
        "cosine_schedule",
        "warm-up made in float32 (linspace without dtype), promoted by torch.cat",
        "warmup = torch.linspace(start_warmup_value, base_value, warmup_iters, dtype=torch.float64)",
        "warmup = torch.linspace(start_warmup_value, base_value, warmup_iters)",
        r"warm-up values carry float32 rounding",
    ),
    Bug(
        "cosine_schedule",
        "cosine made in float32 (arange without dtype), promoted by torch.cat",
        "iters = torch.arange(epochs * niter_per_ep - warmup_iters, dtype=torch.float64)",
        "iters = torch.arange(epochs * niter_per_ep - warmup_iters)",
        r"cosine values carry float32 rounding",
    ),
    Bug(
        "cosine_schedule",
        "returns float32",
        "return torch.cat([warmup, cosine])",
        "return torch.cat([warmup, cosine]).float()",
        r"should return float64 values, got torch\.float32",
    ),
    Bug(
        "cosine_schedule",
        "the cosine counts iterations over the whole run, warm-up included",
        "iters = torch.arange(epochs * niter_per_ep - warmup_iters, dtype=torch.float64)\n"
        "    cosine = final_value + 0.5 * (base_value - final_value) * (1 + torch.cos(math.pi * iters / len(iters)))",
        "iters = torch.arange(warmup_iters, epochs * niter_per_ep, dtype=torch.float64)\n"
        "    cosine = final_value + 0.5 * (base_value - final_value)"
        " * (1 + torch.cos(math.pi * iters / (epochs * niter_per_ep)))",
        r"the cosine starts after the warm-up",
    ),
    Bug(
        "cosine_schedule",
        "the cosine has epochs·niter_per_ep values on top of the warm-up",
        "iters = torch.arange(epochs * niter_per_ep - warmup_iters, dtype=torch.float64)",
        "iters = torch.arange(epochs * niter_per_ep, dtype=torch.float64)",
        r"warm-up iterations count towards the total",
    ),
    Bug(
        "cosine_schedule",
        "base and final values swapped in the cosine",
        "cosine = final_value + 0.5 * (base_value - final_value)",
        "cosine = base_value + 0.5 * (final_value - base_value)",
        r"base and final are swapped",
    ),
    Bug(
        "cosine_schedule",
        "the warm-up always starts at 0 (ignores start_warmup_value)",
        "torch.linspace(start_warmup_value, base_value,",
        "torch.linspace(0.0, base_value,",
        r"warm-up .* from start_warmup_value=0\.\d+",
    ),
    Bug(
        "cosine_schedule",
        "the original NumPy code, returning an ndarray",
        "",
        """
        import numpy as np

        warmup_iters = warmup_epochs * niter_per_ep
        warmup = np.linspace(start_warmup_value, base_value, warmup_iters)
        iters = np.arange(epochs * niter_per_ep - warmup_iters)
        cosine = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))
        return np.concatenate((warmup, cosine))
        """,
        r"got a NumPy array: convert it with torch\.from_numpy",
    ),
    Alternative(
        "cosine_schedule",
        "the original NumPy code, converted with torch.from_numpy",
        "",
        """
        import numpy as np

        warmup_iters = warmup_epochs * niter_per_ep
        warmup = np.linspace(start_warmup_value, base_value, warmup_iters)
        iters = np.arange(epochs * niter_per_ep - warmup_iters)
        cosine = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))
        return torch.from_numpy(np.concatenate((warmup, cosine)))
        """,
    ),
    Alternative(
        "cosine_schedule",
        "a Python loop with the docstring's formulas and math.cos",
        "",
        """
        w = warmup_epochs * niter_per_ep
        n = epochs * niter_per_ep - w
        values = [start_warmup_value + (base_value - start_warmup_value) * i / (w - 1) for i in range(w)]
        values += [final_value + 0.5 * (base_value - final_value) * (1 + math.cos(math.pi * i / n)) for i in range(n)]
        return torch.tensor(values, dtype=torch.float64)
        """,
    ),
    Alternative(
        "cosine_schedule",
        "midpoint plus half-range cosine, filled into one preallocated tensor",
        "",
        """
        total = epochs * niter_per_ep
        w = warmup_epochs * niter_per_ep
        out = torch.empty(total, dtype=torch.float64)
        if w:
            out[:w] = torch.linspace(start_warmup_value, base_value, w, dtype=torch.float64)
        i = torch.arange(total - w, dtype=torch.float64)
        out[w:] = (base_value + final_value) / 2 + (base_value - final_value) / 2 * torch.cos(i * math.pi / (total - w))
        return out
        """,
    ),
]

PARAMETER_DIVERGENCE = [
    Bug(
        "parameter_divergence",
        "divides by the teacher's norm",
        "scale = torch.linalg.vector_norm(student_param).clamp_min(1e-12)",
        "scale = torch.linalg.vector_norm(teacher_params[name]).clamp_min(1e-12)",
        r"divided by the teacher's norm",
    ),
    Bug(
        "parameter_divergence",
        "returns tensors, not Python floats",
        "divergence[name] = float(distance / scale)",
        "divergence[name] = distance / scale",
        r"Python float, got a tensor .*float\(\.\.\.\) or \.item\(\)",
    ),
    Bug(
        "parameter_divergence",
        "no 1e-12 floor: an all-zero student parameter gives 0/0",
        "scale = torch.linalg.vector_norm(student_param).clamp_min(1e-12)",
        "scale = torch.linalg.vector_norm(student_param)",
        r"all[- ]zeros?.*max\(‖θ_s‖, 1e-12\)",
    ),
    Bug(
        "parameter_divergence",
        "ratio of squared norms (no square root)",
        "divergence[name] = float(distance / scale)",
        "divergence[name] = float((distance / scale) ** 2)",
        r"ratio of squared norms",
    ),
    Bug(
        "parameter_divergence",
        "sorted names instead of the student's order",
        "for name, student_param in student.named_parameters():",
        "for name, student_param in sorted(student.named_parameters()):",
        r"student's parameter names, in the student's order",
    ),
    Bug(
        "parameter_divergence",
        "subtracts in place: the student's weights are overwritten",
        "distance = torch.linalg.vector_norm(student_param - teacher_params[name])\n"
        "            scale = torch.linalg.vector_norm(student_param).clamp_min(1e-12)",
        "scale = torch.linalg.vector_norm(student_param).clamp_min(1e-12)\n"
        "            difference = student_param\n"
        "            difference -= teacher_params[name]\n"
        "            distance = torch.linalg.vector_norm(difference)",
        r"changed the student's parameter .*do not subtract in place",
    ),
    Bug(
        "parameter_divergence",
        "mean absolute values (an L1 ratio) instead of 2-norms",
        "distance = torch.linalg.vector_norm(student_param - teacher_params[name])\n"
        "            scale = torch.linalg.vector_norm(student_param).clamp_min(1e-12)",
        "distance = (student_param - teacher_params[name]).abs().mean()\n"
        "            scale = student_param.abs().mean().clamp_min(1e-12)",
        r"should be ‖θ_s − θ_t‖₂ / ‖θ_s‖₂",
    ),
    Alternative(
        "parameter_divergence",
        "Tensor.norm, .item() and max with a Python float",
        "",
        """
        teacher_params = dict(teacher.named_parameters())
        result = {}
        for name, s in student.named_parameters():
            t = teacher_params[name]
            result[name] = (s - t).norm().item() / max(s.norm().item(), 1e-12)
        return result
        """,
    ),
    Alternative(
        "parameter_divergence",
        "float64, torch.dist, a dict comprehension",
        "",
        """
        t = dict(teacher.named_parameters())
        with torch.no_grad():
            return {
                n: float(torch.dist(s.double(), t[n].double()) / torch.clamp(s.double().norm(), min=1e-12))
                for n, s in student.named_parameters()
            }
        """,
    ),
    Alternative(
        "parameter_divergence",
        "square root of sums of squares, + 1e-12 in the denominator",
        "",
        """
        teacher_params = dict(teacher.named_parameters())
        out = {}
        for name, s in student.named_parameters():
            d = s.detach() - teacher_params[name].detach()
            out[name] = math.sqrt(float(d.pow(2).sum())) / (math.sqrt(float(s.detach().pow(2).sum())) + 1e-12)
        return out
        """,
    ),
]

FORWARD = [
    Bug(
        "StudentTeacherWrapper.forward",
        "the teacher sees every view",
        "teacher_output = self.teacher(list(views[: self.n_global_views]))",
        "teacher_output = self.teacher(list(views))",
        r"the teacher was given all \d+ views",
    ),
    Bug(
        "StudentTeacherWrapper.forward",
        "two global views hard-coded",
        "teacher_output = self.teacher(list(views[: self.n_global_views]))",
        "teacher_output = self.teacher(list(views[:2]))",
        r"more than the first 1 .*not a fixed number",
    ),
    Bug(
        "StudentTeacherWrapper.forward",
        "the teacher sees the last views",
        "teacher_output = self.teacher(list(views[: self.n_global_views]))",
        "teacher_output = self.teacher(list(views[-self.n_global_views :]))",
        r"the global views come first",
    ),
    Bug(
        "StudentTeacherWrapper.forward",
        "the teacher runs with autograd on",
        "with torch.no_grad():\n            teacher_output",
        "if True:\n            teacher_output",
        r"teacher's forward ran with autograd on",
    ),
    Bug(
        "StudentTeacherWrapper.forward",
        "torch.inference_mode() for the teacher",
        "with torch.no_grad():",
        "with torch.inference_mode():",
        r"inference_mode\(\): use torch\.no_grad\(\)",
    ),
    Bug(
        "StudentTeacherWrapper.forward",
        "returns (teacher, student)",
        "return student_output, teacher_output",
        "return teacher_output, student_output",
        r"returned \(teacher_output, student_output\)",
    ),
    Bug(
        "StudentTeacherWrapper.forward",
        "the student also runs under no_grad",
        "",
        """
        with torch.no_grad():
            student_output = self.student(list(views))
            teacher_output = self.teacher(list(views[: self.n_global_views]))
        return student_output, teacher_output
        """,
        r"student's forward ran without autograd",
    ),
    Bug(
        "StudentTeacherWrapper.forward",
        "one concatenated tensor instead of the list of views",
        "student_output = self.student(list(views))",
        "student_output = self.student(torch.cat(list(views)))",
        r"student was given Tensor.*not one concatenated tensor",
    ),
    Bug(
        "StudentTeacherWrapper.forward",
        "the teacher's output computed with the student network",
        "teacher_output = self.teacher(list(views[: self.n_global_views]))",
        "teacher_output = self.student(list(views[: self.n_global_views]))",
        r"teacher network was never called",
    ),
    Bug(
        "StudentTeacherWrapper.forward",
        "the student sees only the local views",
        "student_output = self.student(list(views))",
        "student_output = self.student(list(views[self.n_global_views :]))",
        r"student must see every view",
    ),
    Bug(
        "StudentTeacherWrapper.forward",
        "the student's output detached",
        "return student_output, teacher_output",
        "return student_output.detach(), teacher_output",
        r"student's output has no graph",
    ),
    Alternative(
        "StudentTeacherWrapper.forward",
        "the teacher called once per global view, outputs concatenated",
        "",
        """
        student_output = self.student(views)
        with torch.no_grad():
            teacher_output = torch.cat([self.teacher([view]) for view in views[0 : self.n_global_views]])
        return student_output, teacher_output
        """,
    ),
    Alternative(
        "StudentTeacherWrapper.forward",
        "the student's forward first, then the teacher's (same outputs, a higher memory peak)",
        "",
        """
        student_output = self.student(list(views))
        with torch.no_grad():
            teacher_output = self.teacher(list(views[: self.n_global_views]))
        return student_output, teacher_output
        """,
    ),
    Alternative(
        "StudentTeacherWrapper.forward",
        "global views as a tuple, grad mode switched off by set_grad_enabled",
        "",
        """
        global_views = tuple(views[: self.n_global_views])
        with torch.set_grad_enabled(False):
            teacher_output = self.teacher(global_views)
        return self.student(views), teacher_output
        """,
    ),
]

UPDATE_TEACHER = [
    Bug(
        "StudentTeacherWrapper.update_teacher",
        "returns the schedule's tensor, not a float",
        "momentum = float(self.momentum_schedule[step])",
        "momentum = self.momentum_schedule[step]",
        r"should return a Python float, got a tensor",
    ),
    Bug(
        "StudentTeacherWrapper.update_teacher",
        "off by one: the next step's momentum",
        "momentum = float(self.momentum_schedule[step])",
        "momentum = float(self.momentum_schedule[step + 1])",
        r"momentum of a neighbouring step: steps count from 0",
    ),
    Bug(
        "StudentTeacherWrapper.update_teacher",
        "ema_update(student, teacher): the student moves",
        "ema_update(self.teacher, self.student, momentum)",
        "ema_update(self.student, self.teacher, momentum)",
        r"update_teacher changed the student.*teacher first",
    ),
    Bug(
        "StudentTeacherWrapper.update_teacher",
        "forgets to call ema_update",
        "ema_update(self.teacher, self.student, momentum)\n        return momentum",
        "return momentum",
        r"left the teacher unchanged: call ema_update",
    ),
    Bug(
        "StudentTeacherWrapper.update_teacher",
        "passes 1 − τ to ema_update",
        "ema_update(self.teacher, self.student, momentum)",
        "ema_update(self.teacher, self.student, 1.0 - momentum)",
        r"moved by τ instead of 1 − τ",
    ),
    Bug(
        "StudentTeacherWrapper.update_teacher",
        "a constant τ = MOMENTUM_TEACHER instead of the schedule",
        "ema_update(self.teacher, self.student, momentum)",
        "ema_update(self.teacher, self.student, MOMENTUM_TEACHER)",
        r"τ = momentum_schedule\[step\]",
    ),
    Bug(
        "StudentTeacherWrapper.update_teacher",
        "the EMA written inline without torch.no_grad()",
        "ema_update(self.teacher, self.student, momentum)",
        "for t, s in zip(self.teacher.parameters(), self.student.parameters()):\n"
        "            t.copy_(momentum * t + (1 - momentum) * s)",
        r"requires gradients: update it under torch\.no_grad\(\)",
    ),
    Alternative(
        "StudentTeacherWrapper.update_teacher",
        "the EMA written inline with lerp_ (rounds differently from the reference)",
        "ema_update(self.teacher, self.student, momentum)",
        "with torch.no_grad():\n"
        "            for t, s in zip(self.teacher.parameters(), self.student.parameters()):\n"
        "                t.lerp_(s, 1.0 - momentum)",
    ),
    Alternative(
        "StudentTeacherWrapper.update_teacher",
        ".item(), keyword arguments",
        "",
        """
        tau = self.momentum_schedule[step].item()
        ema_update(teacher=self.teacher, student=self.student, momentum=tau)
        return tau
        """,
    ),
    Alternative(
        "StudentTeacherWrapper.update_teacher",
        "the schedule as a Python list, indexed",
        "momentum = float(self.momentum_schedule[step])",
        "momentum = self.momentum_schedule.tolist()[step]",
    ),
]

MUTATIONS = (
    BUILD_TEACHER + SYNC_TEACHER + EMA_UPDATE + COSINE_SCHEDULE + PARAMETER_DIVERGENCE + FORWARD + UPDATE_TEACHER
)
