"""dino_course: learn DINO (self-distillation with no labels) by implementing it.

The package holds the exercises you fill in (`student_teacher.py`, ...) and everything that
is given: the Vision Transformer backbone (`vit.py`), plotting and monitoring tools, the
grading engine and the command line.

Shape vocabulary, used in every docstring of the course:

    B   images in a batch
    V   views (crops) of each image: 2 global views first, then the local ones
    C   image channels (3)
    H, W   image height and width in pixels
    P   patch size in pixels
    N   patch tokens per image, (H/P) * (W/P); token sequences have 1 + N entries with CLS first
    D   embedding (feature) width of the backbone
    K   output dimension of the projection head (number of "prototypes")

Multi-crop tensors are crop-major: `(V * B, ...)`, rows `v*B ... v*B + B - 1` are view v.
"""

from dino_course.grading import reference_switch as _reference
from dino_course.grading import check
from dino_course.grading.reference_switch import use_reference

_reference.install()

__all__ = ["check", "use_reference"]
__version__ = "0.1.0"
