"""Fixtures for the browser tests: a throw-away JupyterLab, headless Chromium, an artifacts folder.

These tests are marked `browser`; the grading plugin deselects them unless `-m browser` is given,
so a learner's `pytest` never starts a browser. Run them with

    PYTHONPATH=$PWD pytest -m browser tests/browser

Screenshots and executed notebooks go to `$DINO_COURSE_ARTIFACTS/browser` when that variable is
set, else to a fresh temporary folder; the folder is printed before and after the run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from jupyterlab_driver import CHROMIUM, CHROMIUM_ARGS, LabServer, copy_tree

REPO_ROOT = Path(__file__).resolve().parents[2]
_ARTIFACTS: list[Path] = []  # the session's folder, once a browser test asked for it


def _say(config: pytest.Config, line: str) -> None:
    capture = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if capture is None or reporter is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="session")
def browser_artifacts(request: pytest.FixtureRequest) -> Path:
    base = os.environ.get("DINO_COURSE_ARTIFACTS")
    if base:
        folder = Path(base) / "browser"
        if folder.exists():
            shutil.rmtree(folder)  # this run's screenshots only
        folder.mkdir(parents=True)
    else:
        folder = Path(tempfile.mkdtemp(prefix="dino-course-browser-"))
    _ARTIFACTS.append(folder)
    _say(request.config, f"\nbrowser test artifacts (screenshots, executed notebooks, logs): {folder}")
    return folder


def pytest_terminal_summary(terminalreporter) -> None:
    if _ARTIFACTS:
        terminalreporter.write_sep("-", f"browser test artifacts: {_ARTIFACTS[0]}")


@pytest.fixture(scope="session")
def lab_root() -> Path:
    """The folder JupyterLab serves: a copy of lessons/, so the committed notebooks stay untouched."""
    root = Path(tempfile.mkdtemp(prefix="dino-course-lab-"))
    if (REPO_ROOT / "lessons").is_dir():
        copy_tree(REPO_ROOT / "lessons", root / "lessons")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def lab_server(lab_root: Path, browser_artifacts: Path):
    state = Path(tempfile.mkdtemp(prefix="dino-course-lab-state-"))
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    server = LabServer(
        lab_root,
        state,
        # The kernel imports this checkout's dino_course and uses the reference solutions.
        extra_env={
            "DINO_COURSE_REFERENCE": "all",
            "PYTHONPATH": python_path,
            # ratings and quiz answers the test clicks go to a throw-away file, never a learner's
            "DINO_COURSE_PROGRESS": str(state / "progress.json"),
        },
        log_path=browser_artifacts / "jupyterlab.log",
    )
    started = time.monotonic()
    server.start()
    _say_started = f"jupyter lab at {server.url} (root {lab_root}) started in {time.monotonic() - started:.1f} s"
    (browser_artifacts / "server.txt").write_text(_say_started + "\n")
    yield server
    server.stop()
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need playwright: pip install -e '.[browser]'", pytrace=False)
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: run `bash .ci/browser.sh` (apt-get install chromium) "
            "or point DINO_COURSE_CHROMIUM at one",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
