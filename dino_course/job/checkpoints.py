"""Checkpoints of the train job: everything needed to continue a run exactly where it stopped.

A checkpoint is one file (`checkpoint.pt` in the output folder) holding a plain dict, written
only between complete iterations (never with a step half-applied; see `dino_course.job.train`):

    format        CHECKPOINT_FORMAT, to recognise the file and its layout
    config        the run's TrainConfig as a dict (so `--resume` can refuse a different run)
    student       student state dict (backbone + head)
    teacher       teacher state dict
    criterion     the loss's state dict: its running center and τ_t schedule
    optimizer     AdamW state (moments, step counts, parameter groups)
    iteration     global iterations done (the schedules' position)
    epoch         epochs completed
    rng           torch's global CPU RNG state (the batch generator is reseeded per iteration
                  from the config's seed, so it needs no state of its own; no step draws from
                  a CUDA generator: the ViT has no dropout or drop-path)
    metrics       the history so far (losses, k-NN accuracies, collapse statistics)

It is written atomically (`dino_course.files.safe_files`), so a crash or Ctrl-C during the write
leaves the previous checkpoint intact (a write killed outright leaves a `.checkpoint.pt.*.tmp`
file, which the next `save_checkpoint` into the folder and the start of a run remove), and loaded with `torch.load(..., weights_only=True)`,
which refuses anything but tensors and plain containers: a checkpoint cannot run code.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from dino_course.files.safe_files import atomic_write_bytes, remove_stale_temporaries

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "dino-course-train-v1"
REQUIRED_KEYS = ("format", "config", "student", "teacher", "criterion", "optimizer", "iteration", "epoch", "rng", "metrics")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, damaged, or from another kind of run."""


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write `state` (a dict with `REQUIRED_KEYS` except `format`) to `path` atomically.

    Temporary files of earlier writes of `path` that were killed before they finished are
    removed first (`remove_stale_temporaries`): only the main process writes a checkpoint.
    """
    missing = [key for key in REQUIRED_KEYS if key != "format" and key not in state]
    if missing:
        raise ValueError(f"state is missing the checkpoint entries {missing}")
    remove_stale_temporaries(path)
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by `save_checkpoint`, with `weights_only=True`.

    Raises:
        CheckpointError: the file is missing, truncated or corrupted, holds something other
            than plain tensors and containers, or is not a train-job checkpoint. The message
            names the file and says what to do; the file itself is left where it is.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: start a new run without --resume, or point --output at the run's folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - damaged bytes raise anything (KeyError, IndexError, ...) from the readers
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} is damaged or not a PyTorch file and cannot be loaded ({first_line}). "
            "Move it aside and resume from a copy, or start a new run without --resume."
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a dino-course train checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {missing}")
    return state


# --------------------------------------------------------------------------------------------
# The teacher backbone alone: small enough to ship with the course for Lesson 4.5
# --------------------------------------------------------------------------------------------

BACKBONE_FORMAT = "dino-course-backbone-v1"
# A teacher backbone trained by the course's own `dino-course train`, for Lesson 4.5 (see docs/main_job.md).
SHIPPED_DIGITS_BACKBONE = Path(__file__).with_name("assets") / "digits_teacher_backbone.pt"


def export_teacher_backbone(checkpoint_path: str | Path, path: str | Path, summary: dict | None = None) -> Path:
    """Write the teacher's backbone of a train checkpoint, with its ViT settings, to `path` (atomically)."""
    state = load_checkpoint(checkpoint_path)
    config = state["config"]
    backbone = {k.removeprefix("backbone."): v for k, v in state["teacher"].items() if k.startswith("backbone.")}
    vit = {"img_size": config["global_size"], "patch_size": config["patch_size"], "embed_dim": config["embed_dim"],
           "depth": config["depth"], "num_heads": config["num_heads"]}
    buffer = io.BytesIO()
    torch.save({"format": BACKBONE_FORMAT, "vit": vit, "backbone": backbone, "config": config, "summary": summary or {}}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_teacher_backbone(path: str | Path = SHIPPED_DIGITS_BACKBONE):
    """A `VisionTransformer` with the weights saved by `export_teacher_backbone` (eval mode), and the file's dict."""
    from dino_course.networks.vit import ViTConfig, VisionTransformer

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no backbone file at {path}") from None
    except Exception as exc:  # noqa: BLE001 - as in load_checkpoint
        raise CheckpointError(f"backbone file {path} is damaged and cannot be loaded ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != BACKBONE_FORMAT:
        raise CheckpointError(f"{path} is not a dino-course backbone file (expected format {BACKBONE_FORMAT!r})")
    backbone = VisionTransformer(ViTConfig(**state["vit"]))
    backbone.load_state_dict(state["backbone"])
    return backbone.eval(), state
