"""Drive a real JupyterLab in headless Chromium the way a learner does.

`LabServer` starts `jupyter lab` on loopback with throw-away config, settings, runtime and
workspace folders (no token, no news pop-up). `LabNotebook` opens one notebook in a browser
page, runs all cells from the Run menu, reports error outputs and cells that never finish,
and moves every ipywidgets control by keyboard or mouse while comparing screenshots of the
cell's rendered output.

Playwright is imported lazily by the fixtures (tests/browser/conftest.py) so that a learner's
plain `pytest`, which only collects these tests and deselects them, never needs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = os.environ.get("DINO_COURSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Tall enough that a lesson figure plus its controls usually fits the window, so element
# screenshots do not depend on JupyterLab's inner scrolling.
VIEWPORT = {"width": 1400, "height": 1600}
MAX_VIEWPORT_HEIGHT = 6000
ACTION_TIMEOUT_MS = 10_000  # one click or key press; a covered control fails in 10 s, not playwright's 30

# Settings written into the throw-away user-settings folder. `windowingMode: none` keeps every
# cell in the DOM (the default virtualisation would detach cells scrolled out of view, and the
# test reads prompts and outputs of all cells); the notification settings stop the "fetch
# Jupyter news?" toast and the update check (there is no network anyway).
USER_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
}
# Belt and braces: the announcements plugin (news + update check) is switched off entirely.
PAGE_CONFIG = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}

# ipywidgets 8 controls a learner can move, by kind. Buttons and text boxes are left alone:
# a button may start long work and a text box has no "next value" to try.
CONTROL_KINDS = {
    "slider": ".widget-slider",  # IntSlider, FloatSlider, SelectionSlider, range sliders (noUiSlider)
    "checkbox": ".widget-checkbox",
    "toggle": "button.widget-toggle-button:not(.widget-toggle-buttons *)",
    "toggle-buttons": ".widget-toggle-buttons",
    "dropdown": ".widget-dropdown",
    "radio": ".widget-radio",
    "select": ".widget-select:not(.widget-select-multiple)",
}
# The controls themselves (with their readouts and descriptions) are masked out of the "picture"
# screenshots: moving a slider always changes its own readout, which proves nothing. What is left
# is what the notebook draws in response: figures, images, status lines, quiz feedback.
CONTROL_MASK = ", ".join(
    [*CONTROL_KINDS.values(), ".widget-button", ".widget-text", ".widget-textarea", ".widget-play"]
)
UNEXERCISED_KINDS = {
    "button": "button.widget-button:not(.widget-toggle-button)",
    "text": ".widget-text, .widget-textarea",
    "play": ".widget-play",
    "multiple-select": ".widget-select-multiple",
    "color/date picker": ".widget-colorpicker, .widget-datepicker",
}
# Focus rings reach a few pixels beyond a control's box, so past the mask: without this, the
# ring leaving the button pressed last would count as the next control's "change".
NO_FOCUS_STYLE = "*, *:focus, *:focus-visible { outline: none !important; box-shadow: none !important; }"
WIDGET_ERROR_TEXT = ("Error displaying widget", "Error rendering output item")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LabServer:
    """`jupyter lab` on 127.0.0.1 serving `root`, with all its state under `state_dir`."""

    def __init__(self, root: Path, state_dir: Path, extra_env: dict[str, str], log_path: Path) -> None:
        self.root = root
        self.state_dir = state_dir
        self.extra_env = extra_env
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._log = None

    def _write_config(self) -> dict[str, Path]:
        dirs = {name: self.state_dir / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")}
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        (dirs["config"] / "labconfig").mkdir(exist_ok=True)
        (dirs["config"] / "labconfig" / "page_config.json").write_text(json.dumps(PAGE_CONFIG))
        for relative, values in USER_SETTINGS.items():
            target = dirs["settings"] / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values))
        return dirs

    def start(self, timeout_s: float = 90.0) -> None:
        dirs = self._write_config()
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)  # the kernel must use the notebook's inline backend, as for a learner
        env.update(
            {
                "JUPYTER_CONFIG_DIR": str(dirs["config"]),
                # A private data dir hides any user-level "python3" kernelspec, so the kernel is
                # this interpreter (ipykernel's built-in spec uses sys.executable).
                "JUPYTER_DATA_DIR": str(dirs["data"]),
                "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
                "IPYTHONDIR": str(dirs["ipython"]),
                "JUPYTER_PLATFORM_DIRS": "1",
            }
        )
        env.update(self.extra_env)
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.terminals_enabled=False",
            f"--LabApp.user_settings_dir={dirs['settings']}",
            f"--LabApp.workspaces_dir={dirs['workspaces']}",
            "--LabApp.news_url=None",
            "--LabApp.expose_app_in_browser=True",
            "--LanguageServerManager.autodetect=False",
            "--LabApp.extension_manager=readonly",  # the default asks PyPI about extensions
            # Without a token the REST calls below (shutting kernels down) carry no credentials;
            # the XSRF check would refuse them. Loopback only, throw-away server.
            "--ServerApp.disable_check_xsrf=True",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
            command.append("--allow-root")
        self._log = open(self.log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}; log: {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer within {timeout_s:.0f} s; log: {self.log_path}")

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(f"{self.url}{path}", method=method)
        with urllib.request.urlopen(request, timeout=60) as response:  # shutting a busy kernel takes seconds
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Stop every kernel, so one notebook's leftovers do not slow the next on a small machine."""
        for session in self.api("GET", "/api/sessions") or []:
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels") or []:  # kernels without a session, if any
            self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # jupyter server shuts its kernels down on SIGTERM
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()


@dataclass
class RunResult:
    finished: bool
    seconds: float
    errors: list[str] = field(default_factory=list)  # one line per error output: "cell 7: ValueError: ..."
    unfinished_cell: str | None = None  # "cell 7: <first source line>" when the time limit hit
    notebook: dict | None = None


@dataclass
class WidgetResult:
    cell: int
    kind: str
    label: str
    changed: bool
    detail: str
    before: Path
    after: Path


def _why_not(error: Exception) -> str:
    """The useful line of a playwright error (its call log names what intercepts the click)."""
    lines = [line.strip(" -") for line in str(error).splitlines() if line.strip()]
    covering = next((line for line in lines if "intercepts pointer events" in line), None)
    if covering:
        return f"another element covers it ({covering[:200]}); overlapping layout?"
    return lines[0][:200] if lines else type(error).__name__


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "widget"


class LabNotebook:
    """One notebook open in JupyterLab in its own browser page."""

    def __init__(self, browser, server: LabServer, relative_path: str, artifacts: Path) -> None:
        self.server = server
        self.relative_path = relative_path
        self.artifacts = artifacts
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.console_errors: list[str] = []
        self.page.on("pageerror", lambda error: self.console_errors.append(f"page error: {error}"))
        self.page.on(
            "console", lambda message: self.console_errors.append(message.text) if message.type == "error" else None
        )

    # --- opening and running -------------------------------------------------------------
    def open(self, timeout_s: float = 90.0) -> None:
        # `?reset` starts from an empty workspace: without it JupyterLab would reopen (and start
        # kernels for) the notebooks of earlier tests.
        self.page.goto(f"{self.server.url}/lab/tree/{self.relative_path}?reset", timeout=timeout_s * 1000)
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=timeout_s * 1000)
        self.page.wait_for_function(
            """() => {
                const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                const kernel = panel && panel.sessionContext && panel.sessionContext.session
                    && panel.sessionContext.session.kernel;
                return kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected';
            }""",
            timeout=timeout_s * 1000,
        )
        panel_id = self.page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
        self.notebook_selector = f"[id='{panel_id}'] .jp-Notebook"

    def kernel_status(self) -> str:
        return self.page.evaluate(
            """() => {
                const session = window.jupyterapp.shell.currentWidget.sessionContext.session;
                return session && session.kernel ? session.kernel.status : 'none';
            }"""
        )

    def widget_messages_handled(self) -> int:
        """How many widget messages (`comm_msg`) the kernel has finished handling since the page opened.

        Counted from the kernel's own `idle` status replies on the iopub channel, so a moved
        control's message is known to be handled only once the kernel says so, however long the
        message took to get there (a busy machine can hold it back for seconds).
        """
        return self.page.evaluate(
            """() => {
                const session = window.jupyterapp.shell.currentWidget.sessionContext.session;
                const kernel = session && session.kernel;
                if (!kernel) return -1;
                if (kernel.dinoCourseHandled === undefined) {
                    kernel.dinoCourseHandled = 0;
                    kernel.iopubMessage.connect((_, msg) => {
                        if (msg.header.msg_type === 'status' && msg.content.execution_state === 'idle'
                            && msg.parent_header && msg.parent_header.msg_type === 'comm_msg') {
                            kernel.dinoCourseHandled += 1;
                        }
                    });
                }
                return kernel.dinoCourseHandled;
            }"""
        )

    def _prompts(self) -> list[str]:
        return self.page.eval_on_selector_all(
            f"{self.notebook_selector} .jp-CodeCell .jp-InputArea-prompt", "nodes => nodes.map(n => n.textContent.trim())"
        )

    def _code_cells(self) -> list[dict]:
        return self.page.evaluate(
            """() => {
                const cells = window.jupyterapp.shell.currentWidget.content.model.toJSON().cells;
                return cells.map((c, index) => ({index, type: c.cell_type,
                    source: Array.isArray(c.source) ? c.source.join('') : c.source}))
                    .filter(c => c.type === 'code');
            }"""
        )

    def run_all(self, time_limit_s: float) -> RunResult:
        """Run > Run All Cells, then wait until no cell is queued or running (or the limit hits)."""
        start = time.monotonic()
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        deadline = start + time_limit_s
        settled_since = None
        while time.monotonic() < deadline:
            prompts = self._prompts()
            busy = any("*" in p for p in prompts) or self.kernel_status() != "idle"
            if busy:
                settled_since = None
            elif settled_since is None:
                settled_since = time.monotonic()
            elif time.monotonic() - settled_since > 1.0:  # idle and nothing queued for a second
                break
            time.sleep(0.25)
        seconds = time.monotonic() - start
        notebook = self.page.evaluate("() => window.jupyterapp.shell.currentWidget.content.model.toJSON()")
        (self.artifacts / "executed.ipynb").write_text(json.dumps(notebook, indent=1))
        result = RunResult(finished=time.monotonic() < deadline, seconds=seconds, notebook=notebook)
        code_cells = self._code_cells()
        prompts = self._prompts()
        if not result.finished:
            for cell, prompt in zip(code_cells, prompts):
                if "*" in prompt:
                    first = next((line for line in cell["source"].splitlines() if line.strip()), "")
                    result.unfinished_cell = f"cell {cell['index']}: {first[:100]}"
                    break
            self.screenshot("timeout")
        for index, cell in enumerate(notebook["cells"]):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    result.errors.append(f"cell {index}: {output.get('ename')}: {output.get('evalue', '')[:300]}")
        widget_errors = self.page.eval_on_selector_all(
            ".jp-OutputArea-output", "nodes => nodes.map(n => n.innerText)"
        )
        for text in widget_errors:
            for marker in WIDGET_ERROR_TEXT:
                if marker in text:
                    result.errors.append(f"rendering: {text.strip()[:300]}")
        return result

    def screenshot(self, name: str) -> Path:
        """The notebook as a learner sees it, cell by cell (the notebook scrolls inside the page)."""
        folder = self.artifacts / name
        folder.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(folder / "window.png"))
        cells = self.page.locator(f"{self.notebook_selector} .jp-Cell")
        for index in range(cells.count()):
            cell = cells.nth(index)
            if cell.locator(".jp-OutputArea-output").count():
                try:
                    cell.screenshot(path=str(folder / f"cell-{index:02d}.png"), timeout=15_000)
                except Exception as error:  # a screenshot is an artifact, not a check
                    (folder / f"cell-{index:02d}.txt").write_text(f"no screenshot: {error}")
        return folder

    # --- widgets -------------------------------------------------------------------------
    def controls(self) -> list[tuple[str, object]]:
        """Every movable control in the outputs, in page order, as (kind, locator)."""
        found = []
        outputs = self.page.locator(f"{self.notebook_selector} .jp-Cell-outputArea")
        for kind, selector in CONTROL_KINDS.items():
            locator = outputs.locator(selector)
            for index in range(locator.count()):
                found.append((kind, locator.nth(index)))

        def top(item):
            box = item[1].bounding_box()
            return (box["y"], box["x"]) if box else (1e9, 1e9)

        # A picture taller than the window would be cut off by the notebook's own scrolling: make
        # the window tall enough for the tallest output that holds a control (once, so every
        # before/after pair is taken at the same size).
        tallest = max(
            (control.evaluate("node => node.closest('.jp-Cell-outputArea').getBoundingClientRect().height")
             for _, control in found),
            default=0,
        )
        height = int(min(MAX_VIEWPORT_HEIGHT, max(VIEWPORT["height"], tallest + 400)))
        if height != self.page.viewport_size["height"]:
            self.page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
            time.sleep(0.5)
        # Order by position on the page, so artifacts read top to bottom like the notebook.
        self.page.locator(self.notebook_selector).evaluate("node => node.scrollTop = 0")
        return sorted(found, key=top)

    def overlapping_option_labels(self) -> list[str]:
        """Radio/toggle options whose text spills over the next option (unreadable, unclickable).

        ipywidgets gives each radio option a fixed-height row; a long option wraps and runs into
        the next one, which then lies over it.
        """
        return self.page.evaluate(
            """selector => {
                const problems = [];
                document.querySelectorAll(selector + ' .widget-radio-box').forEach(box => {
                    box.querySelectorAll('label').forEach(label => {
                        if (label.scrollHeight > label.clientHeight + 2) {
                            problems.push(label.innerText.trim().slice(0, 80));
                        }
                    });
                });
                return problems;
            }""",
            self.notebook_selector,
        )

    def unexercised_controls(self) -> dict[str, int]:
        """Widgets the harness does not move (buttons, text boxes, ...), counted for the summary."""
        counts = {}
        outputs = self.page.locator(f"{self.notebook_selector} .jp-Cell-outputArea")
        for kind, selector in UNEXERCISED_KINDS.items():
            number = outputs.locator(selector).count()
            if number:
                counts[kind] = number
        return counts

    def _cell_of(self, control) -> tuple[int, object]:
        index = control.evaluate(
            """node => {
                const cell = node.closest('.jp-Cell');
                return Array.from(cell.parentElement.children).filter(n => n.classList.contains('jp-Cell')).indexOf(cell);
            }"""
        )
        return index, self.page.locator(f"{self.notebook_selector} .jp-Cell").nth(index)

    def _picture(self, area) -> bytes:
        return area.screenshot(
            mask=[area.locator(CONTROL_MASK)], animations="disabled", style=NO_FOCUS_STYLE, timeout=15_000
        )

    def _settled_picture(self, area, timeout_s: float) -> bytes:
        """A screenshot taken once the kernel is idle and two shots in a row agree."""
        deadline = time.monotonic() + timeout_s
        previous = self._picture(area)
        while time.monotonic() < deadline:
            time.sleep(0.4)
            current = self._picture(area)
            if current == previous and self.kernel_status() == "idle":
                return current
            previous = current
        return previous

    @staticmethod
    def _state(control) -> str:
        """What the control shows (readout, checked state, selection): proves the input arrived."""
        return control.evaluate(
            """node => {
                const parts = [node.innerText || ''];
                node.querySelectorAll('input').forEach(i => parts.push(i.type + ':' + i.value + ':' + i.checked));
                node.querySelectorAll('select').forEach(s => parts.push('select:' + s.value));
                node.querySelectorAll('.noUi-handle').forEach(h => parts.push('handle:' + h.getAttribute('aria-valuenow')));
                node.querySelectorAll('button').forEach(b => parts.push('button:' + b.className));
                if (node.tagName === 'BUTTON') parts.push('self:' + node.className);
                return parts.join('|');
            }"""
        )

    def _state_changes(self, control, state_before: str, within_s: float) -> bool:
        """Whether the control shows another state within `within_s` (polled; a busy browser is slow).

        Trying the other direction too early would undo a move that had merely not shown yet.
        """
        deadline = time.monotonic() + within_s
        while True:
            if self._state(control) != state_before:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def _move(self, kind: str, control, attempt: int) -> None:
        """One learner action on the control; `attempt` 1 tries the other direction/option."""
        keyboard = self.page.keyboard
        if kind == "slider":
            handle = control.locator(".noUi-handle").first
            handle.focus(timeout=ACTION_TIMEOUT_MS)
            keyboard.press("ArrowLeft" if attempt else "ArrowRight")
        elif kind == "checkbox":
            control.locator("input[type=checkbox]").click(timeout=ACTION_TIMEOUT_MS)
        elif kind == "toggle":
            control.click(timeout=ACTION_TIMEOUT_MS)
        elif kind == "toggle-buttons":
            buttons = control.locator("button")
            unpressed = [i for i in range(buttons.count()) if "mod-active" not in (buttons.nth(i).get_attribute("class") or "")]
            buttons.nth(unpressed[attempt % len(unpressed)] if unpressed else 0).click(timeout=ACTION_TIMEOUT_MS)
        elif kind == "radio":
            radios = control.locator("input[type=radio]")
            unchecked = [i for i in range(radios.count()) if not radios.nth(i).is_checked()]
            radios.nth(unchecked[attempt % len(unchecked)] if unchecked else 0).click(timeout=ACTION_TIMEOUT_MS)
        elif kind in ("dropdown", "select"):
            select = control.locator("select")
            if attempt == 0:  # keyboard, as a learner tabbing through the controls would
                select.focus(timeout=ACTION_TIMEOUT_MS)
                keyboard.press("ArrowDown")
            else:  # the mouse route: pick another option (ArrowDown on the last option does nothing)
                values = select.locator("option").evaluate_all("nodes => nodes.map(n => n.value)")
                current = select.input_value()
                others = [v for v in values if v != current]
                if others:
                    select.select_option(others[0], timeout=ACTION_TIMEOUT_MS)
        else:
            raise ValueError(f"kind must be one of {sorted(CONTROL_KINDS)}, got {kind!r}")

    def _wait_for_change(self, area, before: bytes, handled_before: int, timeout_s: float, quiet_s: float = 3.0):
        """`(picture, why)`: the settled new picture, or `before` and why nothing changed.

        A redraw is a round trip through the kernel (widget message in, display messages out).
        Once the kernel has finished handling a widget message sent after the move
        (`widget_messages_handled()` above `handled_before`) and has then stayed idle for
        `quiet_s` with no change, it has nothing more to draw. Until it has handled one, only
        `timeout_s` ends the wait: an idle kernel may simply not have received the message yet.
        """
        deadline = time.monotonic() + timeout_s
        idle_since = None
        while time.monotonic() < deadline:
            if self._picture(area) != before:
                return self._settled_picture(area, max(5.0, deadline - time.monotonic())), ""
            now = time.monotonic()
            if self.widget_messages_handled() > handled_before and self.kernel_status() == "idle":
                idle_since = idle_since or now
                if now - idle_since >= quiet_s:
                    return before, f"the kernel handled the change and nothing was redrawn within {quiet_s:.0f} s"
            else:
                idle_since = None
            time.sleep(0.3)
        if self.widget_messages_handled() > handled_before:
            return before, f"nothing was redrawn within {timeout_s:.0f} s"
        return before, f"the kernel did not handle any widget message within {timeout_s:.0f} s"

    def _next_button(self, cell, control):
        buttons = cell.locator("button.widget-button:not(.widget-toggle-button)")
        index = control.evaluate(
            """(node, selector) => {
                const cell = node.closest('.jp-Cell');
                const buttons = Array.from(cell.querySelectorAll(selector));
                return buttons.findIndex(b => node.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
            }""",
            "button.widget-button:not(.widget-toggle-button)",
        )
        return buttons.nth(index) if index >= 0 else None

    def exercise_control(
        self, kind: str, control, number: int, timeout_s: float = 30.0, picture: str = ".jp-Cell-outputArea"
    ) -> WidgetResult:
        """Move one control; report whether the cell's rendered output (controls masked) changed.

        `picture` narrows what must change to one element of the cell (e.g. ".widget-output",
        the figure an explorer draws into), instead of the whole output area.
        """
        cell_index, cell = self._cell_of(control)
        area = cell.locator(picture).first
        control.scroll_into_view_if_needed()
        label = _slug(
            control.evaluate(
                """node => {
                    // textContent: a checkbox's description sits in a label that may be hidden
                    const texts = Array.from(node.querySelectorAll('.widget-label:not(.widget-readout), .widget-label-basic'))
                        .map(n => n.textContent.replace(/\u200b/g, '').trim()).filter(t => t);  // checkboxes: a zero-width space
                    const text = texts[0] || node.innerText || node.title || '';
                    return text.split('\\n')[0];
                }"""
            )
        )
        stem = f"{number:02d}-cell{cell_index:02d}-{kind}-{label}"
        before_path, after_path = self.artifacts / f"{stem}-before.png", self.artifacts / f"{stem}-after.png"
        self.page.mouse.move(0, 0)  # no hover effects in the pictures
        before = self._settled_picture(area, timeout_s)
        area.screenshot(path=str(before_path), timeout=15_000)  # the artifact shows the controls too
        state_before = self._state(control)
        handled_before = self.widget_messages_handled()
        detail = ""
        try:
            for attempt in (0, 1):  # a slider at its maximum only moves left, and so on
                self._move(kind, control, attempt)
                if self._state_changes(control, state_before, within_s=2.0):
                    break
            else:
                detail = "the control did not react to the keyboard/mouse"
        except Exception as error:  # playwright's TimeoutError: e.g. another element lies over it
            detail = f"a learner cannot operate it: {_why_not(error)}"
        operated = not detail
        self.page.mouse.move(0, 0)
        after, unchanged_why = self._wait_for_change(area, before, handled_before, timeout_s)
        if after == before and operated:
            # A form (pick an answer, then press Check) shows its effect only after its button:
            # press the first button that follows the control in the same cell, as a learner would.
            button = self._next_button(cell, control)
            if button is not None:
                button_label = button.inner_text().strip()
                handled_before = self.widget_messages_handled()
                button.click(timeout=ACTION_TIMEOUT_MS)
                self.page.mouse.move(0, 0)
                after, unchanged_why = self._wait_for_change(area, before, handled_before, timeout_s)
                if after != before:
                    detail = f"changed after pressing '{button_label}'"
        area.screenshot(path=str(after_path), timeout=15_000)
        changed = operated and after != before  # a control that could not be moved changed nothing
        if not changed and not detail:
            detail = f"the picture did not change ({unchanged_why})"
        return WidgetResult(cell_index, kind, label, changed, detail, before_path, after_path)

    def close(self) -> None:
        """Shut the kernel down (as Kernel > Shut Down Kernel would), close the page, sweep leftovers."""
        try:
            self.page.evaluate(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext.shutdown()"
            )
        except Exception:  # the page may be gone; the REST sweep below still stops the kernel
            pass
        try:
            self.context.close()
        finally:
            self.server.shutdown_kernels()
            leftover = self.server.api("GET", "/api/kernels") or []
            if leftover:
                raise RuntimeError(f"{len(leftover)} kernel(s) still running after closing {self.relative_path}")


def copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"), dirs_exist_ok=True)
