"""Mutations of Lesson 3.1 (`solutions/student_teacher.py`); see `../mutation_harness.py`."""

from mutation_harness import Alternative, Bug

MUTATIONS = [
    Bug(
        "ema_update",
        "τ and 1 − τ swapped",
        "torch._foreach_mul_(teacher_params, momentum)\n        torch._foreach_add_(teacher_params, student_params, alpha=1.0 - momentum)",
        "torch._foreach_mul_(teacher_params, 1.0 - momentum)\n        torch._foreach_add_(teacher_params, student_params, alpha=momentum)",
        r"τ weighs the teacher",
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
]
