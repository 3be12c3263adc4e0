"""Import a learner's exercise module for the hidden checks, turning crashes into readable errors.

Checks never import `dino_course.<module>` at the top of a test file: a syntax error there
would stop the whole test run. They hold a `LearnerModule` proxy instead, which imports on
first use inside a check, so a broken file fails only that file's own exercises.
"""

from __future__ import annotations

import importlib
import sys
import traceback

from dino_course.grading.errors import LearnerCodeError


def _location_in(exc: BaseException, path_fragment: str) -> str:
    """' (line N)' of the deepest traceback frame inside the learner's file, if any."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if path_fragment in f.filename.replace("\\", "/")]
    return f" (line {frames[-1].lineno})" if frames else ""


def import_learner_module(module: str):
    """`dino_course.<module>`, or a `LearnerCodeError` that says in one line what went wrong."""
    path = f"dino_course/{module}.py"
    try:
        return importlib.import_module(f"dino_course.{module}")
    except SyntaxError as exc:  # includes IndentationError
        sys.modules.pop(f"dino_course.{module}", None)
        raise LearnerCodeError(
            f"{path} has a syntax error ({type(exc).__name__}) on line {exc.lineno}: {exc.msg}. "
            "Fix it and every exercise in the file can be graded again."
        ) from None
    except ImportError as exc:
        sys.modules.pop(f"dino_course.{module}", None)
        raise LearnerCodeError(
            f"{path} could not be imported: {type(exc).__name__}: {exc}{_location_in(exc, path)}"
        ) from None
    except Exception as exc:
        sys.modules.pop(f"dino_course.{module}", None)
        raise LearnerCodeError(
            f"{path} raised {type(exc).__name__} while being imported{_location_in(exc, path)}: {exc}"
        ) from None


class LearnerModule:
    """Lazy stand-in for `dino_course.<module>`: `st = LearnerModule("student_teacher"); st.ema_update(...)`."""

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        module = import_learner_module(self._module)
        try:
            return getattr(module, name)
        except AttributeError:
            raise LearnerCodeError(
                f"dino_course/{self._module}.py has no `{name}`: was it renamed or deleted? "
                "The exercise must keep its name and signature."
            ) from None

    def __repr__(self) -> str:
        return f"LearnerModule('dino_course.{self._module}')"
