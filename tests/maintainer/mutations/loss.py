"""Mutations of Lesson 4.3 (`solutions/loss.py`); see `../mutation_harness.py`."""

from mutation_harness import Alternative, Bug

MASK = "return cross_entropy[~same_view].mean()"
TEACHER = "teacher_probs = torch.softmax((teacher_output.detach().float() - center.float()) / teacher_temp, dim=-1)"
STUDENT = "student_log_probs = torch.log_softmax(student_output.float() / student_temp, dim=-1)"
FORWARD_LOSS = (
    "loss = dino_loss(student_output, teacher_output, self.center, teacher_temp, self.student_temp, self.n_global_views)"
)
FORWARD_CENTER = "self.center.copy_(update_center(self.center, teacher_output, self.center_momentum))"

MUTATIONS = [
    # ------------------------------------------------------------------ dino_loss: bugs
    Bug("dino_loss", "the diagonal is not excluded: each teacher view is also paired with its own student view",
        MASK, "return cross_entropy.mean()", r"paired with itself"),
    Bug("dino_loss", "every global-global pair dropped, not only a view with itself",
        MASK, "return cross_entropy[:, n_teacher:].mean()", r"global view 0 must still be compared with the student's global view 1"),
    Bug("dino_loss", "the teacher is sharpened with the student's temperature",
        "- center.float()) / teacher_temp", "- center.float()) / student_temp", r"teacher's logits are divided by student_temp"),
    Bug("dino_loss", "temperatures swapped both ways",
        "teacher_output.detach().float() - center.float()) / teacher_temp, dim=-1)\n        teacher_probs = teacher_probs.view(n_teacher, batch, -1)  # (n_global, B, K)\n        student_log_probs = torch.log_softmax(student_output.float() / student_temp, dim=-1)",
        "teacher_output.detach().float() - center.float()) / student_temp, dim=-1)\n        teacher_probs = teacher_probs.view(n_teacher, batch, -1)  # (n_global, B, K)\n        student_log_probs = torch.log_softmax(student_output.float() / teacher_temp, dim=-1)",
        r"temperatures are swapped"),
    Bug("dino_loss", "the student is not divided by its temperature",
        "student_output.float() / student_temp", "student_output.float()", r"not divided by student_temp"),
    Bug("dino_loss", "the student_temp argument is ignored (the paper's 0.1 is written in)",
        "student_output.float() / student_temp", "student_output.float() / 0.1", r"ignores its `student_temp` argument"),
    Bug("dino_loss", "the teacher_temp argument is ignored (the paper's 0.04 is written in)",
        "- center.float()) / teacher_temp", "- center.float()) / 0.04", r"ignores its `teacher_temp` argument"),
    Bug("dino_loss", "the center is added",
        "teacher_output.detach().float() - center.float()", "teacher_output.detach().float() + center.float()",
        r"center is added instead of subtracted"),
    Bug("dino_loss", "the center is never used",
        "(teacher_output.detach().float() - center.float()) / teacher_temp", "teacher_output.detach().float() / teacher_temp",
        r"center is not used"),
    Bug("dino_loss", "the center is subtracted after sharpening",
        "(teacher_output.detach().float() - center.float()) / teacher_temp",
        "teacher_output.detach().float() / teacher_temp - center.float()", r"subtracted after dividing by teacher_temp"),
    Bug("dino_loss", "the teacher is not detached: gradients flow into the teacher",
        "teacher_output.detach().float()", "teacher_output.float()", r"gradients reached the teacher"),
    Bug("dino_loss", "log(softmax(...)) instead of log_softmax: −inf, then NaN, for confident students",
        STUDENT, "student_log_probs = torch.log(torch.softmax(student_output.float() / student_temp, dim=-1))",
        r"NaN/inf for confident networks"),
    Bug("dino_loss", "the cross-entropy averaged over K instead of summed",
        "/ batch  # (n_global, V)", "/ (batch * teacher_probs.shape[-1])  # (n_global, V)", r"averaged over the K prototypes"),
    Bug("dino_loss", "the cross-entropy summed over the batch instead of averaged",
        "/ batch  # (n_global, V)", "# (n_global, V)", r"summed over the images"),
    Bug("dino_loss", "the pair losses summed instead of averaged",
        MASK, "return cross_entropy[~same_view].sum()", r"summed over the pairs"),
    Bug("dino_loss", "divided by every (t, s) pair, the skipped ones too",
        MASK, "return cross_entropy[~same_view].sum() / cross_entropy.numel()", r"divided by n_global_views·V"),
    Bug("dino_loss", "the sign of the cross-entropy is lost",
        "cross_entropy = -torch.einsum", "cross_entropy = torch.einsum", r"wrong sign"),
    Bug("dino_loss", "the rows split image-major (row b·V + v) instead of crop-major",
        "student_log_probs = student_log_probs.view(n_views, batch, -1)  # (V, B, K)",
        "student_log_probs = student_log_probs.view(batch, n_views, -1).transpose(0, 1)  # (V, B, K)",
        r"crop-major"),
    Bug("dino_loss", "the teacher's softmax taken over the rows (dim=0)",
        "- center.float()) / teacher_temp, dim=-1)", "- center.float()) / teacher_temp, dim=0)", r"over the K prototypes \(dim=-1\)"),
    Bug("dino_loss", "n_global_views ignored: two global views written in",
        "n_teacher = n_global_views", "n_teacher = 2", r"n_global_views=\d.*not a fixed 2"),
    Bug("dino_loss", "a loop that never converts bfloat16 outputs: log_softmax runs in bfloat16", "", """
        q = torch.softmax((teacher_output.detach() - center) / teacher_temp, dim=-1).chunk(n_global_views)
        log_p = torch.log_softmax(student_output / student_temp, dim=-1).chunk(n_views)
        terms = [(-q[t] * log_p[s]).sum(-1).mean() for t in range(n_global_views) for s in range(n_views) if s != t]
        return sum(terms) / len(terms)
        """, r"bfloat16 outputs differs.*\.float\(\)"),
    Bug("dino_loss", "the einsum runs under the caller's autocast (in bfloat16)",
        "with torch.autocast(device_type=student_output.device.type, enabled=False):",
        "if True:", r"inside torch.autocast the loss came out as torch.bfloat16"),
    Bug("dino_loss", "the teacher's logits are centred in place (the caller's tensor changes)",
        TEACHER, "teacher_output.detach().sub_(center)\n        teacher_probs = torch.softmax(teacher_output.detach().float() / teacher_temp, dim=-1)",
        r"changed its input `teacher_output` in place"),
    Bug("dino_loss", "a Python float returned (loss.item())",
        MASK, "return cross_entropy[~same_view].mean().item()", r"should return a torch.Tensor"),
    Bug("dino_loss", "float64 intermediates and the result not converted back",
        "return cross_entropy[~same_view].mean()", "return cross_entropy[~same_view].double().mean()",
        r"must return a float32 tensor"),
    # ------------------------------------------------------------------ dino_loss: correct alternatives
    Alternative("dino_loss", "the original's double loop over chunks", "", """
        teacher_out = ((teacher_output.float().detach() - center) / teacher_temp).softmax(dim=-1).chunk(n_global_views)
        student_out = (student_output.float() / student_temp).chunk(n_views)
        total_loss, n_loss_terms = 0, 0
        for iq, q in enumerate(teacher_out):
            for v in range(len(student_out)):
                if v == iq:
                    continue
                loss = torch.sum(-q * torch.nn.functional.log_softmax(student_out[v], dim=-1), dim=-1)
                total_loss += loss.mean()
                n_loss_terms += 1
        return total_loss / n_loss_terms
        """),
    Alternative("dino_loss", "F.cross_entropy with probability targets, temperatures as reciprocals", "", """
        import torch.nn.functional as F
        with torch.no_grad():
            targets = torch.softmax((teacher_output.float() - center) * (1.0 / teacher_temp), dim=-1).chunk(n_global_views)
        logits = (student_output.float() * (1.0 / student_temp)).chunk(n_views)
        with torch.autocast(device_type=student_output.device.type, enabled=False):
            terms = [F.cross_entropy(logits[s], targets[t]) for t in range(n_global_views) for s in range(n_views) if s != t]
        return torch.stack(terms).mean()
        """),
    Alternative("dino_loss", "float64 intermediates, explicit logsumexp, converted back to float32", "", """
        x = (teacher_output.detach().double() - center.double()) / teacher_temp
        q = torch.exp(x - torch.logsumexp(x, dim=-1, keepdim=True)).view(n_global_views, batch, -1)
        y = student_output.double() / student_temp
        log_p = (y - torch.logsumexp(y, dim=-1, keepdim=True)).view(n_views, batch, -1)
        ce = -(q[:, None] * log_p[None]).sum(-1).mean(-1)  # (n_global, V)
        keep = ~torch.eye(n_global_views, n_views, dtype=torch.bool)
        return (ce * keep).sum().float() / keep.sum()
        """),
    Alternative("dino_loss", "float32 explicit logsumexp, one mean over every kept (pair, image)", "", """
        x = (teacher_output.detach().float() - center) / teacher_temp
        q = torch.exp(x - torch.logsumexp(x, dim=-1, keepdim=True)).view(n_global_views, 1, batch, -1)
        y = student_output.float() / student_temp
        log_p = (y - torch.logsumexp(y, dim=-1, keepdim=True)).view(1, n_views, batch, -1)
        per_image = -(q * log_p).sum(-1)  # (n_global, V, B)
        keep = ~torch.eye(n_global_views, n_views, dtype=torch.bool)
        return per_image[keep].mean()
        """),
    # ------------------------------------------------------------------ DINOLoss.forward: bugs
    Bug("DINOLoss.forward", "the center updated before the loss",
        f"{FORWARD_LOSS}\n        {FORWARD_CENTER}", f"{FORWARD_CENTER}\n        {FORWARD_LOSS}",
        r"computed with the center already updated"),
    Bug("DINOLoss.forward", "the center updated from the centred teacher logits",
        FORWARD_CENTER, "self.center.copy_(update_center(self.center, teacher_output - self.center, self.center_momentum))",
        r"centred teacher logits.*raw"),
    Bug("DINOLoss.forward", "the center updated from the student's outputs",
        FORWARD_CENTER, "self.center.copy_(update_center(self.center, student_output, self.center_momentum))",
        r"towards the student's outputs"),
    Bug("DINOLoss.forward", "the center never updated",
        f"\n        {FORWARD_CENTER}", "", r"center did not move"),
    Bug("DINOLoss.forward", "the buffer rebound to a new tensor instead of updated in place",
        FORWARD_CENTER, "self.center = update_center(self.center, teacher_output, self.center_momentum)",
        r"replaced by a new tensor.*in place"),
    Bug("DINOLoss.forward", "the center updated by hand without no_grad/detach (the buffer joins the graph)",
        FORWARD_CENTER,
        "self.center.mul_(self.center_momentum).add_((1 - self.center_momentum) * teacher_output.mean(dim=0, keepdim=True))",
        r"center buffer now requires gradients"),
    Bug("DINOLoss.forward", "center_momentum not passed (update_center's default 0.9)",
        FORWARD_CENTER, "self.center.copy_(update_center(self.center, teacher_output))", r"pass self.center_momentum"),
    Bug("DINOLoss.forward", "the final τ_t used in every epoch",
        "self.center, teacher_temp,", "self.center, float(self.teacher_temp_schedule[-1]),", r"use self.teacher_temp\(epoch\)"),
    Bug("DINOLoss.forward", "the first epoch's τ_t used in every epoch",
        "self.center, teacher_temp,", "self.center, self.teacher_temp(0),", r"use self.teacher_temp\(epoch\)"),
    Bug("DINOLoss.forward", "self.student_temp not passed on",
        "teacher_temp, self.student_temp, self.n_global_views)", "teacher_temp, n_global_views=self.n_global_views)",
        r"pass self.student_temp"),
    Bug("DINOLoss.forward", "self.n_global_views not passed on",
        "teacher_temp, self.student_temp, self.n_global_views)", "teacher_temp, self.student_temp)",
        r"pass self.n_global_views"),
    Bug("DINOLoss.forward", "a Python float returned",
        "return loss", "return loss.item()", r"should return a torch.Tensor"),
    Bug("DINOLoss.forward", "the loss detached from the student",
        "return loss", "return loss.detach()", r"carries no gradient"),
    # ------------------------------------------------------------------ DINOLoss.forward: correct alternatives
    Alternative("DINOLoss.forward", "the center moved by hand with lerp_ under no_grad", "", """
        loss = dino_loss(student_output, teacher_output, self.center, teacher_temp=teacher_temp,
                         student_temp=self.student_temp, n_global_views=self.n_global_views)
        with torch.no_grad():
            self.center.lerp_(teacher_output.detach().float().mean(dim=0, keepdim=True), 1.0 - self.center_momentum)
        return loss
        """),
    Alternative("DINOLoss.forward", "slice assignment of m·c + (1 − m)·mean, τ read from the schedule buffer", "", """
        tau = self.teacher_temp_schedule[epoch].item()
        loss = dino_loss(student_output, teacher_output, self.center, tau, self.student_temp, self.n_global_views)
        batch_center = teacher_output.detach().float().sum(dim=0, keepdim=True) / len(teacher_output)
        with torch.no_grad():
            self.center[:] = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)
        return loss
        """),
]
