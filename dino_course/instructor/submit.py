"""`dino-course submit`: the hand-in archive, and reading it back on the grading side.

A student runs `dino-course submit` in their copy of the course. It writes one zip archive
(`dino-course-submission.zip` by default) holding exactly

    manifest.json                    format, course and lesson versions, each file's SHA-256
    dino_course/<module>.py          every exercise file of the course, nothing else

and refuses anything else: a missing exercise file, one that is a link or not a regular file,
one over 1 MB or not UTF-8 text. The archive is deterministic (same files, same bytes), and an
existing archive is only replaced with `--overwrite`. Files with a syntax error, and files the
grader would refuse (they name the reference solutions), are written but reported first.

`read_submission` is the other side, used by the batch grader and by Gradescope's
`run_autograder`: it accepts such an archive, or a folder holding its contents (Gradescope
unpacks uploaded zips; students may also upload the `.py` files themselves), keeps only the
exercise files, and says what it ignored and whether the manifest matches the course.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from dino_course.grading.catalog import COURSE_PLAN_PATH, PACKAGE_DIR, REPO_ROOT, lessons, solution_modules
from dino_course.files.safe_files import atomic_write_bytes

FORMAT = "dino-course-submission/1"
DEFAULT_ARCHIVE = "dino-course-submission.zip"
MAX_FILE_BYTES = 1_000_000
MAX_ARCHIVE_ENTRIES = 200
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def exercise_modules() -> list[str]:
    return [m.module for m in solution_modules()]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def course_versions() -> tuple[str, dict[str, str]]:
    """(course version, lesson id -> version) of this copy of the course.

    The student edition records them in its course plan at release time; the full course
    computes the same numbers from its committed stubs, so the two agree for one release.
    """
    if COURSE_PLAN_PATH.exists():
        plan = json.loads(COURSE_PLAN_PATH.read_text(encoding="utf-8"))
        if "lesson_versions" in plan:
            versions = plan["lesson_versions"]
            return _sha(json.dumps(versions, sort_keys=True).encode())[:12], versions
    paths = {m: PACKAGE_DIR / f"{m}.py" for m in exercise_modules()}
    stub_hashes = {m: _sha(path.read_bytes()) for m, path in paths.items() if path.exists()}
    versions = {}
    for lesson in lessons().values():
        digest = hashlib.sha256()
        for module in lesson.modules:
            digest.update(f"{module}:{stub_hashes.get(module, '')}\n".encode())
        versions[lesson.id] = digest.hexdigest()[:12]
    return _sha(json.dumps(versions, sort_keys=True).encode())[:12], versions


# ----------------------------------------------------------------------------- writing (the student's side)


def _read_exercise_file(module: str) -> bytes:
    path = PACKAGE_DIR / f"{module}.py"
    shown = f"dino_course/{module}.py"
    if path.is_symlink():
        raise ValueError(f"{shown} is a link: the archive takes only real files (copy the file in its place)")
    if not path.exists():
        raise ValueError(f"{shown} is missing: restore it (e.g. `git checkout {shown}`) before handing in")
    if not path.is_file():
        raise ValueError(f"{shown} is not a regular file")
    data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{shown} is {len(data)} bytes, over the {MAX_FILE_BYTES} bytes an exercise file may have")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{shown} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    return data


def archive_bytes(files: dict[str, bytes], manifest: dict) -> bytes:
    """A deterministic zip: sorted entries, fixed dates and permissions."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = {"manifest.json": (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode(), **files}
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name])
    return buffer.getvalue()


def build_submission() -> tuple[dict[str, bytes], dict]:
    """The exercise files of this copy and their manifest."""
    files = {f"dino_course/{m}.py": _read_exercise_file(m) for m in exercise_modules()}
    course, versions = course_versions()
    manifest = {
        "format": FORMAT,
        "course_version": course,
        "lesson_versions": versions,
        "files": {name: {"sha256": _sha(data), "bytes": len(data)} for name, data in sorted(files.items())},
    }
    return files, manifest


def submission_warnings(files: dict[str, bytes]) -> list[str]:
    """What a student should fix before handing in (the archive is written anyway)."""
    from dino_course.instructor.runner import scan_exercise_file

    warnings = []
    for name, data in files.items():
        module = PurePosixPath(name).stem
        text = data.decode("utf-8")
        try:
            compile(text, name, "exec")
        except SyntaxError as exc:
            warnings.append(f"{name} has a syntax error on line {exc.lineno}: every exercise in it will fail")
            continue
        findings = scan_exercise_file(module, text)  # the course's stubs themselves have no findings
        for finding in findings.refusals:
            warnings.append(f"{name}: {finding}: the grader gives this file's exercises no points")
    return warnings


def write_submission(output: str | Path | None = None, *, overwrite: bool = False) -> tuple[Path, dict, list[str]]:
    """Write the archive; return (path, manifest, warnings)."""
    path = Path(output) if output is not None else REPO_ROOT / DEFAULT_ARCHIVE
    if path.exists() and not overwrite:
        raise ValueError(f"--output {str(path)!r} exists: pass --overwrite to replace it, or choose another name")
    if path.exists() and not path.is_file():
        raise ValueError(f"--output {str(path)!r} is not a file")
    if not path.parent.is_dir():
        raise ValueError(f"--output {str(path)!r}: the folder {str(path.parent)!r} does not exist")
    if path.suffix != ".zip":
        raise ValueError(f"--output must end in .zip, got {str(path)!r}")
    files, manifest = build_submission()
    warnings = submission_warnings(files)
    atomic_write_bytes(path, archive_bytes(files, manifest))
    return path, manifest, warnings


# ----------------------------------------------------------------------------- reading (the grader's side)


@dataclass
class Submission:
    """The exercise files of one submission, module -> bytes, and what reading it found."""

    files: dict[str, bytes]
    manifest: dict | None = None
    notes: list[str] = field(default_factory=list)
    sha256: str = ""

    def __post_init__(self) -> None:
        if not self.sha256:
            digest = hashlib.sha256()
            for module in sorted(self.files):
                digest.update(f"{module}\0{_sha(self.files[module])}\n".encode())
            self.sha256 = digest.hexdigest()


def _module_of(name: str, modules: set[str]) -> str | None:
    """The exercise module an entry path stands for: `dino_course/x.py`, optionally under one
    top folder (a zipped folder), or a bare `x.py` (files uploaded one by one)."""
    parts = PurePosixPath(name).parts
    if len(parts) >= 2 and parts[-2] == "dino_course" and len(parts) <= 3:
        stem = PurePosixPath(parts[-1]).stem
        return stem if parts[-1].endswith(".py") and stem in modules else None
    if len(parts) == 1 and parts[0].endswith(".py") and PurePosixPath(parts[0]).stem in modules:
        return PurePosixPath(parts[0]).stem
    return None


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and "\\" not in name and not name.startswith("/")


def _collect(entries: list[tuple[str, bytes | None, str]]) -> Submission:
    """entries: (relative name, data or None, problem) -> Submission."""
    modules = set(exercise_modules())
    files: dict[str, bytes] = {}
    notes: list[str] = []
    manifest = None
    ignored: list[str] = []
    for name, data, problem in entries:
        module = _module_of(name, modules)
        if problem:
            notes.append(f"refused {name}: {problem}")
            continue
        if PurePosixPath(name).name == "manifest.json" and len(PurePosixPath(name).parts) <= 2:
            try:
                manifest = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                notes.append("manifest.json is not valid JSON: ignored")
            continue
        if module is None:
            ignored.append(name)
            continue
        if module in files:
            notes.append(f"more than one file for dino_course/{module}.py: kept the first, ignored {name}")
            continue
        files[module] = data
    if ignored:
        shown = ", ".join(sorted(ignored)[:5]) + (f" and {len(ignored) - 5} more" if len(ignored) > 5 else "")
        notes.append(f"ignored {len(ignored)} file(s) that are not exercise files: {shown}")
    submission = Submission(files, manifest if isinstance(manifest, dict) else None, notes)
    submission.notes.extend(_manifest_notes(submission))
    return submission


def _manifest_notes(submission: Submission) -> list[str]:
    if submission.manifest is None:
        return []
    notes = []
    _, versions = course_versions()
    theirs = submission.manifest.get("lesson_versions", {})
    if isinstance(theirs, dict):
        older = sorted(lesson for lesson, version in theirs.items() if versions.get(lesson, version) != version)
        if older:
            notes.append(
                f"made with another release of lesson(s) {', '.join(older)} than the grader's: "
                "check the stubs' docstrings"
            )
    recorded = submission.manifest.get("files", {})
    if isinstance(recorded, dict):
        changed = sorted(
            name for name, entry in recorded.items()
            if isinstance(entry, dict) and (m := PurePosixPath(name).stem) in submission.files
            and entry.get("sha256") != _sha(submission.files[m])
        )
        if changed:
            notes.append(
                f"file(s) differ from the manifest's hashes (edited after `dino-course submit`?): {', '.join(changed)}"
            )
    return notes


def read_archive(path: Path) -> Submission:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        return Submission({}, None, [f"{path.name} is not a readable zip archive ({exc})"])
    entries: list[tuple[str, bytes | None, str]] = []
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ARCHIVE_ENTRIES:
            problem = f"{path.name} holds {len(infos)} entries; a submission has at most {MAX_ARCHIVE_ENTRIES}"
            return Submission({}, None, [problem])
        for info in infos:
            if info.is_dir():
                continue
            mode = info.external_attr >> 16
            if not _safe_name(info.filename):
                entries.append((info.filename, None, "an absolute path or one that leaves the archive"))
            elif mode and stat.S_ISLNK(mode):
                entries.append((info.filename, None, "a symbolic link"))
            elif info.file_size > MAX_FILE_BYTES:
                entries.append((info.filename, None, f"{info.file_size} bytes, over {MAX_FILE_BYTES}"))
            else:
                with archive.open(info) as handle:
                    data = handle.read(MAX_FILE_BYTES + 1)
                if len(data) > MAX_FILE_BYTES:
                    entries.append((info.filename, None, f"over {MAX_FILE_BYTES} bytes when unpacked"))
                else:
                    entries.append((info.filename, data, ""))
    return _collect(entries)


def read_folder(folder: Path) -> Submission:
    entries: list[tuple[str, bytes | None, str]] = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(folder).parts):
            continue
        if path.is_symlink():
            entries.append((name, None, "a symbolic link"))
        elif path.is_file():
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                entries.append((name, None, f"{size} bytes, over {MAX_FILE_BYTES}"))
            else:
                entries.append((name, path.read_bytes(), ""))
        if len(entries) > 5 * MAX_ARCHIVE_ENTRIES:
            entries.append(("...", None, "too many files: the rest were not read"))
            break
    return _collect(entries)


def read_submission(path: str | Path) -> Submission:
    """A submission archive, or a folder with its contents (or with one archive in it)."""
    path = Path(path)
    if path.is_file():
        return read_archive(path)
    if path.is_dir():
        archives = [p for p in path.iterdir() if p.suffix == ".zip" and p.is_file()]
        loose = read_folder(path)
        if not loose.files and len(archives) == 1:
            return read_archive(archives[0])
        return loose
    return Submission({}, None, [f"{path} is neither a file nor a folder"])
