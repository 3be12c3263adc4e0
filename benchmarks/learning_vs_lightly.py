"""Does the cpu-digits preset learn? The course's DINO and `lightly`'s DINO, side by side.

    pip install -e .[bench]          # lightly, only for the benchmarks
    python benchmarks/learning_vs_lightly.py [--epochs 5] [--threads 2]

Both runs start from the same backbone weights, see the same batches and the same views
(the train job's batched multi-crop with its per-iteration seeds) and follow the same
schedules (lr, weight decay, teacher momentum); only the DINO parts differ:

  course:  `dino-course train`'s own loop (`run_training`) with the reference code:
           CompleteDINOModel (3.4), DINOLoss (4.3), train_step (4.4)
  lightly: lightly.models.modules.DINOProjectionHead, lightly.loss.DINOLoss and
           lightly.models.utils.update_momentum in a plain loop (per-tensor clipping and the
           last-layer freeze written as in the original); it runs the networks view by view,
           as lightly's examples do, so a BatchNorm in its head sees one view's batch at a time
           (the course's grouped forward shows it all views at once, as the original does)

After every epoch it prints the held-out k-NN top-1 of each teacher backbone (k = 20,
T = 0.07) and each run's last loss; log K (the loss of a student that matches a uniform
teacher) is printed for comparison. It answers one question: is a weak result the course's
code, or the regime (a tiny ViT, 1,437 digits, a few hundred iterations)?
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import tempfile
import warnings

import torch

os.environ.setdefault("DINO_COURSE_REFERENCE", "all")


def lightly_run(config, data, epochs: int) -> list[tuple[float, float]]:
    """(k-NN top-1, last loss) after each epoch, for lightly's DINO parts in the train job's setting."""
    from lightly_dino import LightlyDINO

    from dino_course import evaluation
    from dino_course.job.train import _batch_generator, _epoch_order, _Parts, build_augmentation, build_model, build_schedules

    n_train = data.train_images.shape[0]
    steps_per_epoch = n_train // config.batch_size
    augment = build_augmentation(config)
    parts = _Parts()
    model = build_model(config, parts, steps_per_epoch)
    backbone = copy.deepcopy(model.student.backbone)  # the course run's initial weights
    schedules = build_schedules(config, parts, steps_per_epoch)

    lightly = LightlyDINO(backbone, config)
    teacher = lightly.teacher

    def knn() -> float:
        train = evaluation.extract_features(teacher["backbone"], config.network_input(data.train_images))
        test = evaluation.extract_features(teacher["backbone"], config.network_input(data.test_images))
        top1, _ = evaluation.knn_accuracy(train, data.train_labels, test, data.test_labels, k=config.knn_k,
                                          temperature=config.knn_temperature, num_classes=len(data.classes))
        return top1

    results, it = [(knn(), float("nan"))], 0
    for epoch in range(epochs):
        order = _epoch_order(config, epoch, n_train)
        for position in range(steps_per_epoch):
            batch = data.train_images[order[position * config.batch_size : (position + 1) * config.batch_size]]
            views = augment(batch, _batch_generator(config, it))
            loss = lightly.step(views, it, epoch, schedules, model.momentum_schedule)
            it += 1
        results.append((knn(), loss.item()))
    return results


def course_run(config, steps_per_epoch: int, epochs: int) -> list[tuple[float, float]]:
    """(k-NN top-1, last loss) after each epoch, from `dino-course train`'s own loop."""
    from dino_course.job.train import run_training

    with tempfile.TemporaryDirectory() as folder:
        result = run_training(config.replace(eval_every=1), folder, quiet=True, progress=False, figures=False,
                              stop_after=epochs * steps_per_epoch)
    metrics = result.metrics
    losses = [float("nan")] + [metrics["iterations"][(e + 1) * steps_per_epoch - 1]["loss"] for e in range(epochs)]
    return [(row["knn_top1"], loss) for row, loss in zip(metrics["evaluations"], losses)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-digits")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*weight_norm.*")  # lightly's head still uses the old weight_norm
    from dino_course.data.datasets import load_dataset
    from dino_course.job.train import PRESETS

    config = PRESETS[args.preset]
    data = load_dataset(config.dataset, data=config.data, size=config.image_size, test_fraction=config.test_fraction, seed=config.seed)
    course = course_run(config, data.train_images.shape[0] // config.batch_size, args.epochs)
    peer = lightly_run(config, data, args.epochs)
    print(f"preset {args.preset}, {args.epochs} epochs, torch threads {torch.get_num_threads()}; "
          f"log K = {math.log(config.output_dim):.3f} (the loss against a uniform teacher)")
    print("| epoch | course k-NN top-1 (%) | course loss | lightly k-NN top-1 (%) | lightly loss |")
    print("| ---: | ---: | ---: | ---: | ---: |")

    def shown(loss: float) -> str:
        return "-" if math.isnan(loss) else f"{loss:.3f}"

    for epoch, ((c_knn, c_loss), (l_knn, l_loss)) in enumerate(zip(course, peer)):
        print(f"| {epoch} | {c_knn:.1f} | {shown(c_loss)} | {l_knn:.1f} | {shown(l_loss)} |")


if __name__ == "__main__":
    main()
