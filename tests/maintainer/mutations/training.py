"""Mutations of Lesson 4.4 (`solutions/training.py`); see `../mutation_harness.py`."""

from mutation_harness import Alternative, Bug

RULE = 'group = not_regularized if name.endswith(".bias") or parameter.dim() == 1 else regularized'
SCALED_LR = "cosine_schedule(base_lr * batch_size / 256.0, min_lr, epochs, niter_per_ep, warmup_epochs=warmup_epochs)"
WD = "wd = cosine_schedule(weight_decay, weight_decay_end, epochs, niter_per_ep)"
BACKWARD = "    optimizer.zero_grad()\n    loss.backward()"
CLIP = "grad_norms = clip_gradients(model.student, clip_grad) if clip_grad else []"
FREEZE = "cancel_last_layer_gradients(model.student, epoch, freeze_last_layer)"
STEP = "optimizer.step()"
EMA = "momentum = model.update_teacher(it)"

MUTATIONS = [
    # ------------------------------------------------------------------ parameter_groups
    Bug("parameter_groups", "weight decay on every parameter, biases and norms too",
        RULE, "group = regularized", r"biases and 1-D tensors .* must not be decayed"),
    Bug("parameter_groups", "only 2-D weight matrices decayed (cls_token, pos_embed and conv kernels are not)",
        RULE, 'group = regularized if parameter.dim() == 2 and not name.endswith(".bias") else not_regularized',
        r"cls_token and pos_embed are 3-D"),
    Bug("parameter_groups", "only the name rule: LayerNorm weights decayed",
        RULE, 'group = not_regularized if name.endswith(".bias") else regularized', r"biases and 1-D tensors"),
    Bug("parameter_groups", "only the shape rule: a 2-D parameter named bias decayed",
        RULE, "group = not_regularized if parameter.dim() == 1 else regularized", r"whatever its shape"),
    Bug("parameter_groups", "frozen parameters handed to the optimiser",
        "        if not parameter.requires_grad:\n            continue\n", "", r"must not be given to the optimiser"),
    Bug("parameter_groups", "the groups in the wrong order",
        "return [regularized, not_regularized]", "return [not_regularized, regularized]", r"groups are swapped"),
    Bug("parameter_groups", "the non-decayed group lacks weight_decay=0.0",
        'not_regularized = {"params": [], "param_names": [], "weight_decay": 0.0}',
        'not_regularized = {"params": [], "param_names": []}', r"second group must carry weight_decay=0\.0"),
    Bug("parameter_groups", "detached copies instead of the parameters",
        'group["params"].append(parameter)', 'group["params"].append(parameter.detach())',
        r"parameters themselves in the groups \(not copies"),
    Bug("parameter_groups", "param_names not kept in step with params",
        'group["param_names"].append(name)', 'regularized["param_names"].append(name)', r"'param_names' must list the names"),
    Alternative("parameter_groups", "two comprehensions over named_parameters", "", """
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        plain = [(n, p) for n, p in trainable if n.endswith(".bias") or len(p.shape) == 1]
        decayed = [(n, p) for n, p in trainable if not (n.endswith(".bias") or len(p.shape) == 1)]
        return [
            {"params": [p for _, p in decayed], "param_names": [n for n, _ in decayed]},
            {"params": [p for _, p in plain], "param_names": [n for n, _ in plain], "weight_decay": 0.0},
        ]
        """),
    Alternative("parameter_groups", "ndim <= 1, and the decay key set explicitly to a positive default", "", """
        groups = [{"params": [], "param_names": [], "weight_decay": 0.04},
                  {"params": [], "param_names": [], "weight_decay": 0.0}]
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                index = 1 if parameter.ndim <= 1 or name.endswith(".bias") else 0
                groups[index]["params"].append(parameter)
                groups[index]["param_names"].append(name)
        return groups
        """),
    # ------------------------------------------------------------------ clip_gradients
    Bug("clip_gradients", "one global-norm clip over all parameters", "", """
        norms = [p.grad.norm(2).item() for p in model.parameters() if p.grad is not None]
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], clip)
        return norms
        """, r"one global-norm clip"),
    Bug("clip_gradients", "the norms recorded after clipping",
        "        norms.append(norm.item())\n        coef = clip / (norm + 1e-6)\n        if coef < 1:\n            parameter.grad.mul_(coef)",
        "        coef = clip / (norm + 1e-6)\n        if coef < 1:\n            parameter.grad.mul_(coef)\n        norms.append(parameter.grad.norm(2).item())",
        r"norms \*after\* clipping"),
    Bug("clip_gradients", "no 1e-6 in the denominator", "coef = clip / (norm + 1e-6)", "coef = clip / norm",
        r"1e-6 in the denominator is missing"),
    Bug("clip_gradients", "scaled when the norm exceeds clip (not when coef < 1)",
        "if coef < 1:", "if norm > clip:", r"compare coef < 1 \(not ‖g‖ > clip\)"),
    Bug("clip_gradients", "parameters without a gradient not skipped",
        "        if parameter.grad is None:\n            continue\n", "", r"skip parameters whose \.grad is None"),
    Bug("clip_gradients", "tensors returned instead of Python floats",
        "norms.append(norm.item())", "norms.append(norm)", r"Python floats, not tensors"),
    Bug("clip_gradients", "the gradient replaced instead of scaled in place",
        "parameter.grad.mul_(coef)", "parameter.grad = parameter.grad * coef", r"replaced by a new tensor: scale it in place"),
    Bug("clip_gradients", "the squared norm",
        "norm = parameter.grad.detach().norm(2)", "norm = parameter.grad.detach().pow(2).sum()", r"not the sum of squares"),
    Bug("clip_gradients", "small gradients scaled up too",
        "        if coef < 1:\n            parameter.grad.mul_(coef)", "        parameter.grad.mul_(coef)", r"never scale up"),
    Bug("clip_gradients", "the paper's clip 3.0 written in", "coef = clip / (norm + 1e-6)", "coef = 3.0 / (norm + 1e-6)",
        r"ignores its clip argument"),
    Alternative("clip_gradients", "per-tensor torch.nn.utils.clip_grad_norm_", "", """
        norms = []
        for parameter in model.parameters():
            if parameter.grad is not None:
                norms.append(float(torch.nn.utils.clip_grad_norm_([parameter], clip)))
        return norms
        """),
    Alternative("clip_gradients", "float64 norm from a sum of squares, coef as a Python float", "", """
        norms = []
        for name, parameter in model.named_parameters():
            if parameter.grad is None:
                continue
            norm = parameter.grad.double().square().sum().sqrt().item()
            norms.append(norm)
            coef = clip / (norm + 1e-6)
            if coef < 1:
                parameter.grad.mul_(coef)
        return norms
        """),
    # ------------------------------------------------------------------ gradient_norms_by_layer
    Bug("gradient_norms_by_layer", "the squared norms", "return {group: math.sqrt(total) for",
        "return {group: total for", r"the norms are squared"),
    Bug("gradient_norms_by_layer", "the largest parameter norm of each group", "", """
        norms = {}
        for name, parameter in model.named_parameters():
            if parameter.grad is not None:
                group = gradient_group(name)
                norms[group] = max(norms.get(group, 0.0), parameter.grad.norm().item())
        return norms
        """, r"largest of its parameters' norms"),
    Bug("gradient_norms_by_layer", "the sum of the parameter norms of each group", "", """
        norms = {}
        for name, parameter in model.named_parameters():
            if parameter.grad is not None:
                group = gradient_group(name)
                norms[group] = norms.get(group, 0.0) + parameter.grad.norm().item()
        return norms
        """, r"sum of its parameters' norms"),
    Bug("gradient_norms_by_layer", "parameters without a gradient not skipped (crash on None)",
        "        if parameter.grad is None:\n            continue\n", "", r"crashed the function.*skip parameters"),
    Bug("gradient_norms_by_layer", "a group without gradients listed with norm 0",
        "        if parameter.grad is None:\n            continue",
        "        if parameter.grad is None:\n"
        "            squares.setdefault(gradient_group(name), 0.0)\n            continue",
        r"teacher received no gradient"),
    Bug("gradient_norms_by_layer", "missing gradients filled with zeros in place",
        "        if parameter.grad is None:\n            continue",
        "        if parameter.grad is None:\n            parameter.grad = torch.zeros_like(parameter)",
        r"changed: only read the gradients"),
    Bug("gradient_norms_by_layer", "the parameters' values read instead of their gradients",
        "parameter.grad.detach().double()", "parameter.detach().double()", r"norms of the parameters' values"),
    Bug("gradient_norms_by_layer", "groups by the first name component only", "group = gradient_group(name)",
        'group = name.split(".")[0]', r"too coarse"),
    Bug("gradient_norms_by_layer", "groups by module (every name but its last component)",
        "group = gradient_group(name)", 'group = name.rpartition(".")[0]', r"single modules"),
    Bug("gradient_norms_by_layer", "all transformer blocks in one group", "group = gradient_group(name)",
        'group = ".".join(name.split(".")[:2])', r"transformer blocks share one group"),
    Bug("gradient_norms_by_layer", "tensors returned instead of Python floats", "", """
        squares = {}
        for name, parameter in model.named_parameters():
            if parameter.grad is not None:
                group = gradient_group(name)
                squares[group] = squares.get(group, 0.0) + parameter.grad.square().sum()
        return {group: total.sqrt() for group, total in squares.items()}
        """, r"Python floats, not tensors"),
    Bug("gradient_norms_by_layer", "the gradients squared in place", "parameter.grad.detach().double().square()",
        "parameter.grad.square_().double()", r"changed: only read the gradients"),
    Alternative("gradient_norms_by_layer", "one concatenated vector per group, torch.linalg.vector_norm", "", """
        grouped = {}
        for name, parameter in model.named_parameters():
            if parameter.grad is not None:
                grouped.setdefault(gradient_group(name), []).append(parameter.grad.flatten())
        return {group: torch.linalg.vector_norm(torch.cat(grads)).item() for group, grads in grouped.items()}
        """),
    Alternative("gradient_norms_by_layer", "float32 per-parameter norms (as clip_gradients) combined", "", """
        per_group = {}
        for name, parameter in model.named_parameters():
            if parameter.grad is None:
                continue
            per_group.setdefault(gradient_group(name), []).append(parameter.grad.norm(2).item())
        return {group: math.sqrt(sum(n * n for n in norms)) for group, norms in per_group.items()}
        """),
    Alternative("gradient_norms_by_layer", "stacked per-parameter norms, norm of the norms", "", """
        names = [name for name, p in model.named_parameters() if p.grad is not None]
        norms = {}
        for group in dict.fromkeys(gradient_group(name) for name in names):
            grads = [p.grad for name, p in model.named_parameters()
                     if p.grad is not None and gradient_group(name) == group]
            norms[group] = float(torch.stack([g.norm() for g in grads]).norm())
        return norms
        """),
    # ------------------------------------------------------------------ TrainingSchedules.create
    Bug("TrainingSchedules.create", "no linear scaling rule", SCALED_LR,
        "cosine_schedule(base_lr, min_lr, epochs, niter_per_ep, warmup_epochs=warmup_epochs)", r"scale the base learning rate"),
    Bug("TrainingSchedules.create", "the scaling inverted", SCALED_LR,
        "cosine_schedule(base_lr * 256.0 / batch_size, min_lr, epochs, niter_per_ep, warmup_epochs=warmup_epochs)",
        r"scaling is inverted"),
    Bug("TrainingSchedules.create", "no warm-up", SCALED_LR, "cosine_schedule(base_lr * batch_size / 256.0, min_lr, epochs, niter_per_ep)",
        r"ignores warmup_epochs"),
    Bug("TrainingSchedules.create", "the paper's MIN_LR written in", SCALED_LR,
        "cosine_schedule(base_lr * batch_size / 256.0, MIN_LR, epochs, niter_per_ep, warmup_epochs=warmup_epochs)",
        r"ignores its min_lr argument"),
    Bug("TrainingSchedules.create", "epochs and niter_per_ep swapped in the lr schedule", SCALED_LR,
        "cosine_schedule(base_lr * batch_size / 256.0, min_lr, niter_per_ep, epochs, warmup_epochs=warmup_epochs)",
        r"epochs and niter_per_ep are swapped"),
    Bug("TrainingSchedules.create", "schedules with one value per epoch", "", """
        lr = cosine_schedule(base_lr * batch_size / 256.0, min_lr, epochs, 1, warmup_epochs=warmup_epochs)
        wd = cosine_schedule(weight_decay, weight_decay_end, epochs, 1)
        return cls(lr=lr, weight_decay=wd, niter_per_ep=niter_per_ep)
        """, r"one per epoch"),
    Bug("TrainingSchedules.create", "the weight decay warms up too", WD,
        "wd = cosine_schedule(weight_decay, weight_decay_end, epochs, niter_per_ep, warmup_epochs=warmup_epochs)",
        r"weight-decay schedule has no warm-up"),
    Bug("TrainingSchedules.create", "the weight decay runs backwards", WD,
        "wd = cosine_schedule(weight_decay_end, weight_decay, epochs, niter_per_ep)", r"weight-decay schedule runs backwards"),
    Bug("TrainingSchedules.create", "the paper's WEIGHT_DECAY_END written in", WD,
        "wd = cosine_schedule(weight_decay, WEIGHT_DECAY_END, epochs, niter_per_ep)",
        r"weight-decay schedule ignores its weight_decay_end argument"),
    Alternative("TrainingSchedules.create", "keyword arguments, base_lr / 256 * batch_size, the class by name", "", """
        peak = base_lr / 256 * batch_size
        return TrainingSchedules(
            lr=cosine_schedule(base_value=peak, final_value=min_lr, epochs=epochs, niter_per_ep=niter_per_ep,
                               warmup_epochs=warmup_epochs, start_warmup_value=0.0),
            weight_decay=cosine_schedule(base_value=weight_decay, final_value=weight_decay_end, epochs=epochs,
                                         niter_per_ep=niter_per_ep, warmup_epochs=0),
            niter_per_ep=niter_per_ep,
        )
        """),
    Alternative("TrainingSchedules.create", "the scaled lr computed first as base_lr * (batch_size / 256)", "", """
        scaled_lr = base_lr * (batch_size / 256)
        schedules = dict(
            lr=cosine_schedule(scaled_lr, min_lr, epochs, niter_per_ep, warmup_epochs),
            weight_decay=cosine_schedule(weight_decay, weight_decay_end, epochs, niter_per_ep),
        )
        return cls(niter_per_ep=niter_per_ep, **schedules)
        """),
    # ------------------------------------------------------------------ apply_schedules
    Bug("apply_schedules", "weight decay set on every group",
        "        if index == 0:  # only the regularised group is decayed\n            group[\"weight_decay\"] = weight_decay",
        "        group[\"weight_decay\"] = weight_decay", r"second group .* must keep weight decay 0"),
    Bug("apply_schedules", "lr set on the first group only",
        "        group[\"lr\"] = lr\n        if index == 0:  # only the regularised group is decayed\n            group[\"weight_decay\"] = weight_decay",
        "        if index == 0:  # only the regularised group is decayed\n            group[\"lr\"] = lr\n            group[\"weight_decay\"] = weight_decay",
        r"learning rate of every parameter group"),
    Bug("apply_schedules", "tensors instead of floats",
        "lr, weight_decay = float(schedules.lr[it]), float(schedules.weight_decay[it])",
        "lr, weight_decay = schedules.lr[it], schedules.weight_decay[it]", r"must return Python floats"),
    Bug("apply_schedules", "the pair returned in the wrong order",
        "return lr, weight_decay", "return weight_decay, lr", r"returned \(weight_decay, lr\)"),
    Bug("apply_schedules", "off by one: the next iteration's values",
        "lr, weight_decay = float(schedules.lr[it]), float(schedules.weight_decay[it])",
        "lr, weight_decay = float(schedules.lr[min(it + 1, len(schedules) - 1)]), float(schedules.weight_decay[min(it + 1, len(schedules) - 1)])",
        r"used the values of index 1: index the schedules with `it` itself"),
    Bug("apply_schedules", "the other groups' weight decay reset to 0",
        "        if index == 0:  # only the regularised group is decayed\n            group[\"weight_decay\"] = weight_decay",
        "        group[\"weight_decay\"] = weight_decay if index == 0 else 0.0", r"leave the weight decay of every group but the first"),
    Bug("apply_schedules", "the decay set on the last group",
        "if index == 0:", "if index == len(optimizer.param_groups) - 1:", r"first \(regularised\) group's weight decay"),
    Alternative("apply_schedules", ".item() and the first group addressed directly", "", """
        lr = schedules.lr[it].item()
        weight_decay = schedules.weight_decay[it].item()
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.param_groups[0]["weight_decay"] = weight_decay
        return (lr, weight_decay)
        """),
    Alternative("apply_schedules", "groups after the first reached by slicing, values via tolist()", "", """
        lr, weight_decay = schedules.lr[it].tolist(), schedules.weight_decay[it].tolist()
        first, *others = optimizer.param_groups
        first.update(lr=lr, weight_decay=weight_decay)
        for group in others:
            group["lr"] = lr
        return lr, weight_decay
        """),
    # ------------------------------------------------------------------ train_step
    Bug("train_step", "gradients never zeroed", BACKWARD, "    loss.backward()", r"previous step's gradients"),
    Bug("train_step", "zero_grad after backward", BACKWARD, "    loss.backward()\n    optimizer.zero_grad()", r"saw no gradients"),
    Bug("train_step", "clipping after the optimiser step",
        f"    {CLIP}\n    {FREEZE}\n    # 7. the student learns\n    {STEP}",
        f"    {FREEZE}\n    # 7. the student learns\n    {STEP}\n    {CLIP}", r"clipped after optimizer\.step\(\)"),
    Bug("train_step", "the EMA before the optimiser step",
        f"    {STEP}\n    # 8. the teacher follows by EMA\n    {EMA}", f"    {EMA}\n    {STEP}", r"teacher was updated before optimizer\.step\(\)"),
    Bug("train_step", "the last layer cancelled before clipping (its norm is missing)",
        f"    {CLIP}\n    {FREEZE}", f"    {FREEZE}\n    {CLIP}", r"clip before cancelling the last layer's gradients"),
    Bug("train_step", "the last layer's gradients zeroed instead of set to None", FREEZE,
        "for name, p in model.student.named_parameters():\n"
        "        if epoch < freeze_last_layer and 'last_layer' in name and p.grad is not None:\n"
        "            p.grad.zero_()", r"set to zero: set it to None"),
    Bug("train_step", "no last-layer freeze", f"    {FREEZE}\n", "", r"the last layer must get no update"),
    Bug("train_step", "freeze_last_layer not passed on (the paper's 1 written in)", FREEZE,
        "cancel_last_layer_gradients(model.student, epoch, 1)", r"epoch 1 < freeze_last_layer = 2"),
    Bug("train_step", "schedules indexed by the epoch", "apply_schedules(optimizer, schedules, it)",
        "apply_schedules(optimizer, schedules, epoch)", r"schedules\.lr\[epoch\]"),
    Bug("train_step", "the teacher's EMA step indexed by the epoch", EMA, "momentum = model.update_teacher(epoch)",
        r"pass the global iteration it"),
    Bug("train_step", "the criterion given the iteration", "loss = criterion(student_output, teacher_output, epoch)",
        "loss = criterion(student_output, teacher_output, it)", r"criterion got .* instead of the epoch|takes the epoch, not the iteration"),
    Bug("train_step", "clip_grad not passed on (the paper's 3.0 written in)", CLIP,
        "grad_norms = clip_gradients(model.student, 3.0) if clip_grad else []", r"clipped to 3, not to clip_grad"),
    Bug("train_step", "clip_grad = 0 not treated as 'off'", CLIP, "grad_norms = clip_gradients(model.student, clip_grad)",
        r"clip_grad = 0 switches clipping off"),
    Bug("train_step", "autocast_dtype ignored",
        "with torch.autocast(views[0].device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):",
        "if True:", r"must run inside torch\.autocast"),
    Bug("train_step", "the finiteness checked after the step", "", """
        lr, weight_decay = apply_schedules(optimizer, schedules, it)
        student_output, teacher_output = model(views)
        loss = criterion(student_output, teacher_output, epoch)
        optimizer.zero_grad()
        loss.backward()
        grad_norms = clip_gradients(model.student, clip_grad) if clip_grad else []
        cancel_last_layer_gradients(model.student, epoch, freeze_last_layer)
        optimizer.step()
        momentum = model.update_teacher(it)
        if not math.isfinite(loss.item()):
            raise NonFiniteLossError(f"the loss is {loss.item()}")
        return {"loss": loss.item(), "lr": lr, "weight_decay": weight_decay, "momentum": momentum, "grad_norms": grad_norms}
        """, r"changed although the loss was nan"),
    Bug("train_step", "no finiteness check", "", """
        lr, weight_decay = apply_schedules(optimizer, schedules, it)
        student_output, teacher_output = model(views)
        loss = criterion(student_output, teacher_output, epoch)
        optimizer.zero_grad()
        loss.backward()
        grad_norms = clip_gradients(model.student, clip_grad) if clip_grad else []
        cancel_last_layer_gradients(model.student, epoch, freeze_last_layer)
        optimizer.step()
        momentum = model.update_teacher(it)
        return {"loss": loss.item(), "lr": lr, "weight_decay": weight_decay, "momentum": momentum, "grad_norms": grad_norms}
        """, r"a nan loss must stop the step"),
    Bug("train_step", "the loss tensor returned in the metrics", '{"loss": loss.item(),', '{"loss": loss,',
        r"metrics\['loss'\] must be a Python float"),
    Alternative("train_step", "zero_grad(set_to_none=False) first, own per-tensor clipping and freeze, values from the optimiser",
                "", """
        import contextlib
        optimizer.zero_grad(set_to_none=False)
        apply_schedules(optimizer, schedules, it)
        context = (torch.autocast(device_type=views[0].device.type, dtype=autocast_dtype) if autocast_dtype is not None
                   else contextlib.nullcontext())
        with context:
            student_output, teacher_output = model(views)
            loss = criterion(student_output, teacher_output, epoch)
        value = loss.item()
        if math.isnan(value) or math.isinf(value):
            raise NonFiniteLossError(f"non-finite loss {value}")
        loss.backward()
        grad_norms = []
        if clip_grad > 0:
            for name, p in model.student.named_parameters():
                if p.grad is not None:
                    grad_norms.append(float(torch.nn.utils.clip_grad_norm_([p], clip_grad)))
        if epoch < freeze_last_layer:
            for name, p in model.student.named_parameters():
                if "last_layer" in name:
                    p.grad = None
        optimizer.step()
        tau = model.update_teacher(it)
        return dict(loss=value, lr=optimizer.param_groups[0]["lr"], weight_decay=optimizer.param_groups[0]["weight_decay"],
                    momentum=tau, grad_norms=grad_norms)
        """),
    Alternative("train_step", "the student's own zero_grad, backward outside a plain autocast block, isfinite on the tensor",
                "", """
        lr, weight_decay = apply_schedules(optimizer, schedules, it)
        device_type = views[0].device.type
        with torch.autocast(device_type, dtype=autocast_dtype if autocast_dtype else torch.bfloat16,
                            enabled=bool(autocast_dtype)):
            outputs = model(views)
            loss = criterion(*outputs, epoch)
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLossError(f"the loss is not finite at iteration {it}")
        model.student.zero_grad()
        loss.backward()
        grad_norms = [] if clip_grad == 0 else clip_gradients(model.student, clip_grad)
        cancel_last_layer_gradients(model.student, epoch, freeze_last_layer)
        optimizer.step()
        momentum = model.update_teacher(it)
        return {"loss": float(loss), "lr": lr, "weight_decay": weight_decay, "momentum": momentum, "grad_norms": grad_norms}
        """),
]
