"""A class of 40 submissions made from the course itself, each with the verdicts it must get.

Used by `test_instructor_class.py` (which grades them with `dino-course grade` and with the
Gradescope bundle's `run_autograder`) and by `benchmarks/batch_grading.py` (which times it).

`make_class(folder, solutions_dir, stubs_dir)` writes one submission per student into `folder`
(mostly archives as `dino-course submit` writes them, some as folders or loose files, the way
platforms hand them over) and returns `{student: Expected}`. The students:

- the reference solutions, handed in five ways (archive, folder, loose files, a zipped folder,
  and one archive written by the real `dino-course submit` in a student edition: the caller adds
  that one); the untouched stubs; a half-finished course;
- the reference with one exercise broken (13 ways: a wrong formula, `None` returned, a wrong type
  or dtype, an input changed in place, an exception, ...);
- a syntax error, an endless loop, an endless loop at import, a crash at import, an endless loop
  that swallows the time-limit exception, a call of `os._exit`, 100 MB printed, 5 MB printed
  (harmless), a deletion the grader stops, a deletion it cannot stop (through `ctypes`);
- attempts at the reference: importing `solutions`, a path to `solutions/`, importing it under a
  computed name, reading its file under a computed path, importing the exercise's own module,
  patching `torch.testing.assert_close`;
- planted extra files (`conftest.py`, hidden-check and solution look-alikes), an archive entry
  that leaves the archive, missing files, a manifest from another release.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from dino_course.grading.catalog import exercise_bodies, exercises, lessons
from dino_course.instructor.submit import archive_bytes, course_versions

PASSED, FAILED, NOT_STARTED = "passed", "failed", "not started"


@dataclass
class Expected:
    """The verdicts one student must get: `base` for every exercise unless `overrides` says otherwise
    (exercise id or a whole lesson id -> (outcome, regular expression the message must match))."""

    base: str
    overrides: dict[str, tuple[str, str]] = field(default_factory=dict)
    notes: str = ""  # a regular expression one of the submission's notes must match
    flagged: bool = False
    how: str = "archive"

    def verdict(self, exercise_id: str) -> tuple[str, str]:
        lesson = exercise_id.split("/")[0]
        return self.overrides.get(exercise_id) or self.overrides.get(lesson) or (self.base, "")


def _module_override(module: str, outcome: str, pattern: str) -> dict[str, tuple[str, str]]:
    return {e.id: (outcome, pattern) for e in exercises().values() if e.module == module}


class Files:
    """The exercise files of one submission, module -> text, with edits that keep the rest intact."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = dict(texts)

    def copy(self) -> "Files":
        return Files(self.texts)

    def _body(self, exercise_id: str):
        exercise = exercises()[exercise_id]
        text = self.texts[exercise.module]
        return exercise.module, text, {b.name: b for b in exercise_bodies(text)}[exercise.name]

    def replace_body(self, exercise_id: str, body: str) -> "Files":
        module, text, found = self._body(exercise_id)
        lines = text.splitlines()
        new = [found.indent + line if line else line for line in textwrap.dedent(body).strip("\n").splitlines()]
        self.texts[module] = "\n".join(lines[: found.begin_line - 1] + new + lines[found.end_line:]) + "\n"
        return self

    def prepend_to_body(self, exercise_id: str, code: str) -> "Files":
        module, text, found = self._body(exercise_id)
        lines = text.splitlines()
        new = [found.indent + line for line in textwrap.dedent(code).strip("\n").splitlines()]
        self.texts[module] = "\n".join(lines[: found.begin_line] + new + lines[found.begin_line:]) + "\n"
        return self

    def append(self, module: str, code: str) -> "Files":
        self.texts[module] += "\n" + textwrap.dedent(code).strip("\n") + "\n"
        return self

    def bytes(self) -> dict[str, bytes]:
        return {f"dino_course/{m}.py": t.encode() for m, t in self.texts.items()}


def _manifest(files: dict[str, bytes]) -> dict:
    import hashlib

    course, versions = course_versions()
    return {
        "format": "dino-course-submission/1", "course_version": course, "lesson_versions": versions,
        "files": {n: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for n, d in sorted(files.items())},
    }


def _write_archive(
    path: Path, files: dict[str, bytes], manifest: dict | None = None, extra: dict[str, bytes] | None = None
) -> None:
    data = archive_bytes({**files, **(extra or {})}, manifest if manifest is not None else _manifest(files))
    path.write_bytes(data)


def _write_folder(path: Path, files: dict[str, bytes], with_manifest: bool = True, loose: bool = False) -> None:
    path.mkdir()
    for name, data in files.items():
        target = path / (Path(name).name if loose else name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if with_manifest:
        (path / "manifest.json").write_text(json.dumps(_manifest(files)))


def _zip_with_top_folder(path: Path, files: dict[str, bytes]) -> None:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"my-course/{name}", data)
    path.write_bytes(buffer.getvalue())


def _zip_with_escape(path: Path, files: dict[str, bytes]) -> None:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("../../evil.py", b"print('I escaped')\n")
    path.write_bytes(buffer.getvalue())


EVERYTHING = "passed"
REFUSED = r"^refused: "


def make_class(folder: Path, solutions_dir: Path, stubs_dir: Path) -> dict[str, Expected]:
    modules = sorted({e.module for e in exercises().values()})
    reference = Files({m: (solutions_dir / f"{m}.py").read_text(encoding="utf-8") for m in modules})
    stubs = Files({m: (stubs_dir / f"{m}.py").read_text(encoding="utf-8") for m in modules})
    expected: dict[str, Expected] = {}
    folder.mkdir(parents=True, exist_ok=True)

    def archive(student: str, files: Files, exp: Expected, **kwargs) -> None:
        _write_archive(folder / f"{student}.zip", files.bytes(), **kwargs)
        expected[student] = exp

    def broken(student: str, exercise_id: str, body: str, pattern: str = "") -> None:
        files = reference.copy().replace_body(exercise_id, body)
        archive(student, files, Expected(PASSED, {exercise_id: (FAILED, pattern)}))

    # The batch starts them in this order (names sort so): the reference first (the lessons most
    # students share are graded once, at the start), then the slow ones.
    archive("s01-reference", reference, Expected(PASSED))
    archive("s04-loop-that-swallows-the-time-limit", reference.copy().replace_body("4.1/update_center", """
        import time
        while True:
            try:
                time.sleep(0.05)
            except BaseException:
                pass
        """), Expected(PASSED, {"4.1/update_center": (FAILED, r"still running after \d+ s")}, flagged=False))
    archive("s02-endless-loop", reference.copy().replace_body("3.1/cosine_schedule", "while True:\n    pass"),
            Expected(PASSED, {"3.1/cosine_schedule": (FAILED, r"took longer than")}))
    archive("s03-endless-loop-at-import", reference.copy().append("centering", "while True:\n    pass"),
            Expected(PASSED, {"4.1": (FAILED, r"did not finish importing|took longer than")}))
    _write_folder(folder / "s05-reference-as-a-folder", reference.bytes())
    expected["s05-reference-as-a-folder"] = Expected(PASSED, how="folder")
    _write_folder(folder / "s06-reference-as-loose-files", reference.bytes(), with_manifest=False, loose=True)
    expected["s06-reference-as-loose-files"] = Expected(PASSED, how="loose files")
    _zip_with_top_folder(folder / "s07-reference-zipped-folder.zip", reference.bytes())
    expected["s07-reference-zipped-folder"] = Expected(PASSED, how="zipped folder")
    archive("s08-stubs-untouched", stubs, Expected(NOT_STARTED))
    half = stubs.copy()
    for module in ("student_teacher", "multicrop", "heads", "model", "diagnostics"):
        half.texts[module] = reference.texts[module]
    done = {lesson: (PASSED, "") for lesson in ("3.1", "3.2", "3.3", "3.4")}
    archive("s09-half-finished", half, Expected(NOT_STARTED, done))

    broken("s10-ema-momentum-swapped", "3.1/ema_update", """
        with torch.no_grad():
            for t, s in zip(teacher.parameters(), student.parameters()):
                t.mul_(1 - momentum).add_(s, alpha=momentum)
        """)
    broken("s11-teacher-is-the-student", "3.1/build_teacher", "return student")
    broken("s12-crop-is-the-whole-image", "3.2/sample_crop_box", "return (0, 0, height, width)")
    broken("s13-one-group-for-all-views", "3.2/group_by_resolution", "return [(0, len(views))]")
    broken("s14-collate-raises", "3.2/collate_multicrop", 'raise RuntimeError("cannot stack the crops")',
           r"RuntimeError")
    broken("s15-l2-normalises-in-place", "3.3/l2_normalize", """
        x.div_(x.norm(dim=-1, keepdim=True).clamp_min(eps))
        return x
        """)
    broken("s16-effective-rank-a-tensor", "3.4/effective_rank", "return torch.tensor(1.0)")
    broken("s17-center-without-momentum", "4.1/update_center",
           "return teacher_output.detach().mean(dim=0, keepdim=True)")
    broken("s18-sharpen-without-temperature", "4.2/sharpen", "return torch.softmax(logits.float(), dim=-1)")
    broken("s19-schedule-returns-none", "4.2/teacher_temperature_schedule", "pass", r"None")
    broken("s20-loss-ignores-the-center", "4.3/dino_loss", """
        targets = torch.softmax(teacher_output.float() / teacher_temp, dim=-1).detach().chunk(n_global_views)
        views = len(student_output) // len(targets[0])
        log_probs = torch.log_softmax(student_output.float() / student_temp, dim=-1).chunk(views)
        total, pairs = 0.0, 0
        for t, q in enumerate(targets):
            for s, log_p in enumerate(log_probs):
                if s != t:
                    total = total + (-(q * log_p).sum(dim=-1)).mean()
                    pairs += 1
        return total / pairs
        """)
    broken("s21-everything-decayed", "4.4/parameter_groups", """
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        return [{"params": [p for _, p in named], "param_names": [n for n, _ in named]},
                {"params": [], "param_names": [], "weight_decay": 0.0}]
        """)
    broken("s22-mask-of-floats", "4.5/attention_mass_mask", "return (maps > 0).float()")

    syntax = reference.copy().replace_body("4.3/dino_loss", "for view in student_output\n    pass")
    archive("s23-syntax-error", syntax, Expected(PASSED, {"4.3": (FAILED, r"syntax error")}))
    archive("s24-crash-at-import", reference.copy().append("heads", 'raise RuntimeError("half-finished edit")'),
            Expected(PASSED, _module_override("heads", FAILED, r"raised an error while being imported.*RuntimeError")))
    archive("s25-calls-os-exit", reference.copy().replace_body("4.2/entropy", "import os\nos._exit(3)"),
            Expected(PASSED, {"4.2/entropy": (FAILED, r"exit code 3")}, flagged=True))
    archive("s26-prints-100-megabytes", reference.copy().replace_body("3.2/group_by_resolution", """
        import os
        for _ in range(100):
            os.write(1, b"x" * 1_000_000)
        return []
        """), Expected(PASSED, {"3.2/group_by_resolution": (FAILED, r"File too large|wrote more than")}, flagged=True))
    archive("s27-prints-5-megabytes", reference.copy().prepend_to_body("4.5/knn_classify", 'print("x" * 5_000_000)'),
            Expected(PASSED))
    archive("s28-deletes-the-course", reference.copy().prepend_to_body("3.3/l2_normalize", """
        import shutil
        from pathlib import Path
        shutil.rmtree(Path(__file__).resolve().parents[1], ignore_errors=True)
        """), Expected(PASSED, {"3.3/l2_normalize": (FAILED, r"PermissionError.*must not write or delete")},
                       flagged=True))
    archive("s29-deletes-through-ctypes", reference.copy().prepend_to_body("3.4/dimension_spread", """
        import ctypes
        from pathlib import Path
        ctypes.CDLL(None).unlink(str(Path(__file__).resolve().parents[1] / "dino_course" / "networks" / "vit.py").encode())
        """), Expected(PASSED, {"3.4/dimension_spread": (FAILED, r"changed or deleted files of the course.*vit\.py")},
                       flagged=True))

    cheat = reference.copy().replace_body("3.1/ema_update", "_reference_ema(teacher, student, momentum)")
    cheat.texts["student_teacher"] = cheat.texts["student_teacher"].replace(
        "import torch\n", "import torch\nfrom solutions.student_teacher import ema_update as _reference_ema\n", 1)
    archive("s30-imports-solutions", cheat,
            Expected(PASSED, _module_override("student_teacher", FAILED, REFUSED + r".*imports the reference"),
                     flagged=True))
    archive("s31-reads-solutions-by-path", reference.copy().prepend_to_body("4.3/dino_loss", """
        from pathlib import Path
        _ = (Path(__file__).resolve().parents[1] / "solutions" / "loss.py").read_text()
        """), Expected(PASSED, _module_override("loss", FAILED, REFUSED + r".*solutions"), flagged=True))
    archive("s32-imports-solutions-by-computed-name", reference.copy().replace_body("4.2/sharpen", """
        import importlib
        return importlib.import_module("sol" + "utions.temperature").sharpen(logits, temperature)
        """), Expected(PASSED, _module_override("temperature", FAILED, REFUSED + r".*calls the reference solution"),
                       flagged=True))
    archive("s33-reads-solutions-by-computed-path", reference.copy().prepend_to_body("3.4/l2_norm_consistency", """
        import os
        here = os.path.dirname(os.path.abspath(__file__))
        _ = open(os.path.join(here, os.pardir, "sol" + "utions", "diagnostics.py")).read()
        """), Expected(PASSED, _module_override("diagnostics", FAILED, REFUSED + r".*opens solutions"), flagged=True))
    archive("s34-imports-its-own-module", reference.copy().replace_body("4.5/knn_accuracy", """
        from dino_course import evaluation as graded
        return graded.knn_accuracy(
            train_features, train_labels, test_features, test_labels, k, temperature, num_classes
        )
        """), Expected(PASSED, _module_override("evaluation", FAILED, REFUSED + r".*own module"), flagged=True))
    archive("s35-patches-assert-close", reference.copy().append(
        "diagnostics", "torch.testing.assert_close = lambda *args, **kwargs: None"),
        Expected(PASSED, _module_override("diagnostics", FAILED, REFUSED + r".*changes library code"), flagged=True))

    planted = {
        "conftest.py": b"def pytest_collection_modifyitems(items):\n    items.clear()\n",
        "tests/test_student_teacher.py": b"def test_everything():\n    pass\n",
        "solutions/student_teacher.py": reference.texts["student_teacher"].encode(),
        "dino_course/networks/vit.py": b"raise SystemExit('replaced given code')\n",
    }
    archive("s36-plants-extra-files", stubs, Expected(NOT_STARTED, notes=r"ignored 4 file"), extra=planted)
    _zip_with_escape(folder / "s37-archive-entry-escapes.zip", reference.bytes())
    expected["s37-archive-entry-escapes"] = Expected(PASSED, notes=r"refused \.\./\.\./evil\.py")
    only = {name: data for name, data in reference.bytes().items() if name.endswith(("student_teacher.py", "loss.py"))}
    _write_archive(folder / "s38-two-files-only.zip", only)
    expected["s38-two-files-only"] = Expected(NOT_STARTED, {"3.1": (PASSED, ""), "4.3": (PASSED, "")},
                                              notes=r"not in the submission")
    manifest = _manifest(reference.bytes())
    manifest["lesson_versions"]["3.1"] = "000000000000"
    _write_archive(folder / "s39-older-release.zip", reference.bytes(), manifest)
    expected["s39-older-release"] = Expected(PASSED, notes=r"another release of lesson\(s\) 3\.1")
    assert len(expected) == 39, len(expected)  # the 40th is written by `dino-course submit` (see the module docstring)
    return expected


def check_verdicts(student: str, expected: Expected, verdicts: dict[str, tuple[str, str]]) -> list[str]:
    """Mismatches between `verdicts` (exercise id -> (outcome, message)) and what was expected."""
    problems = []
    for exercise_id in exercises():
        outcome, message = verdicts.get(exercise_id, ("missing", ""))
        want, pattern = expected.verdict(exercise_id)
        if outcome != want or (pattern and not re.search(pattern, message)):
            problems.append(f"{student} {exercise_id}: got {outcome}: {message[:160]!r}, want {want} /{pattern}/")
    return problems


__all__ = ["Expected", "make_class", "check_verdicts", "lessons"]
