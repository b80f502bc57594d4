"""JupyterLab in a real browser: notebooks run, their widgets render and respond to clicks
and keys.

Headless Chromium (Debian's ``chromium``, driven by Playwright without downloading a browser)
opens JupyterLab on a copy of the notebooks and runs every cell of a notebook. In the
captured-traffic notebook it picks another session in the explorer's list and clicks the
dashboard's "5xx" button; in notebook 8 it types a transaction into the SMTP console, with
Enter and with the send button. Each widget must answer through the kernel. Skipped, saying
why, where chromium or Playwright is missing; ``.ci/run`` installs both.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

playwright = pytest.importorskip("playwright.sync_api", reason="needs Playwright (pip)")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs chromium (.ci/run installs it: apt install chromium)"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[str]:
    """JupyterLab on a copy of the notebooks (running them must not write into the repo)."""
    home = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", home / "notebooks")
    shutil.copytree(ROOT / "tests" / "fixtures", home / "tests" / "fixtures")
    port, token = _free_port(), "smtplab-browser-test"
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
        "--ip=127.0.0.1", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={home / 'notebooks'}", "--allow-root",
    ]  # fmt: skip
    # Every cell rendered, not only those in view (JupyterLab 4 windows long notebooks), and
    # no "news" pop-up over the page.
    settings = home / "settings"
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}'
    )
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (
        settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    ).write_text('{"fetchNews": "false"}')
    environment = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
    }
    server = subprocess.Popen(
        command, cwd=home, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(
                        f"JupyterLab did not start: {server.stderr.read().decode()[-2000:]}"
                    )  # type: ignore[union-attr]
                time.sleep(0.5)
        # A workspace per notebook: JupyterLab would otherwise reopen the last test's tab.
        yield f"{url}/lab/workspaces/{{workspace}}/tree/{{notebook}}?token={token}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextlib.contextmanager
def notebook_run(lab: str, notebook: str, tmp_path: Path) -> Iterator[Any]:
    """A browser page with ``notebook`` open in JupyterLab and every cell run."""
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.set_default_timeout(120_000)
        try:
            page.goto(lab.format(workspace=notebook[:2], notebook=notebook))
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            # A fresh settings directory may ask which kernel to start: the notebook's own.
            choose = page.get_by_role("button", name="Select", exact=True)
            try:
                choose.wait_for(timeout=5_000)
                choose.click()
            except playwright.Error:
                pass  # no question asked: the kernel starts by itself
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            yield page
            page.wait_for_timeout(1_000)  # let the redrawn figure arrive before the picture
            page.screenshot(path=str(tmp_path / "jupyterlab.png"), full_page=True)
        except Exception:  # keep a picture of what the browser showed, for the report
            page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
            raise
        finally:
            browser.close()


def test_the_explorer_and_dashboard_work_in_jupyterlab(lab, tmp_path) -> None:
    with notebook_run(lab, "07-captured-traffic.ipynb", tmp_path) as page:
        # The explorer: a dropdown of sessions and, under it, the session's summary.
        picker = page.locator(".widget-dropdown select").first
        picker.wait_for(state="attached")
        picker.scroll_into_view_if_needed()
        heading = page.locator(".widget-html").filter(has_text="smtp-9:").first
        heading.wait_for()
        picker.select_option(index=1)  # smtp-2, the pipelined session
        page.locator(".widget-html").filter(has_text="smtp-2:").first.wait_for()

        # The dashboard: the "5xx" toggle was set by the notebook; click "all", then "5xx".
        status = page.locator(".widget-html").filter(has_text="sessions,")
        status.filter(has_text="5 of 9 sessions").first.wait_for()
        page.get_by_role("button", name="all", exact=True).click()
        status.filter(has_text="9 of 9 sessions").first.wait_for()
        page.get_by_role("button", name="5xx", exact=True).click()
        status.filter(has_text="5 of 9 sessions").first.wait_for()


def test_the_console_sends_each_line_once_from_the_button_and_from_enter(lab, tmp_path) -> None:
    """The send button takes the focus from the text box: the line must go once, with no
    empty line after it (a 500), and the history must keep the order typed."""
    with notebook_run(lab, "08-reply-codes-and-sessions.ipynb", tmp_path) as page:
        box = page.get_by_placeholder("EHLO client.example.net, then Enter")
        box.wait_for()
        box.scroll_into_view_if_needed()
        history = page.locator(".widget-html").filter(has_text="C: MAIL FROM:<ann@partner.example>")
        history.first.wait_for()  # the notebook's own two lines
        box.fill("RCPT TO:<bob@example.org>")
        page.get_by_role("button", name="send", exact=True).click()
        history.filter(has_text="S: 250 2.1.5").first.wait_for()
        # Then line by line, as a person types: each line once its predecessor is echoed.
        # (Playwright types faster than the kernel answers; ipywidgets sends Enter at once but
        # holds a keystroke's value while the kernel is busy, so a line typed and entered in
        # the same millisecond would reach the kernel after its Enter.)
        for line in ["DATA", "Subject: typed in a browser", "", "Hello Bob.", "."]:
            before = history.first.inner_text()
            box.fill(line)
            page.wait_for_timeout(200)
            box.press("Enter")
            for _ in range(600):  # until the console shows the line sent
                if history.first.inner_text() != before:
                    break
                page.wait_for_timeout(100)
        history.filter(has_text="S: 250 2.0.0").first.wait_for()
        said = history.first.inner_text()
        assert "500" not in said, said  # no empty line sent behind a click
        lines = [line for line in said.splitlines() if line.startswith(("C: ", "S: "))]
        assert lines[-9:] == [
            "C: RCPT TO:<bob@example.org>",
            "S: 250 2.1.5 Recipient <bob@example.org> OK",
            "C: DATA",
            "S: 354 End data with <CR><LF>.<CR><LF>",
            "C: Subject: typed in a browser",
            "C: ",
            "C: Hello Bob.",
            "C: .",
            lines[-1],
        ], lines
        assert lines[-1].startswith("S: 250 2.0.0 OK: queued as")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The course site of notebook 8 (the step player and the console), built as users do."""
    from smtplab.teaching.course import build_site

    out = tmp_path_factory.mktemp("site")
    build_site(out, only=["08-"], progress=False)
    return out


def test_the_course_site_shows_its_widgets_from_a_disk_with_no_network(site, tmp_path) -> None:
    """Opened as a file with the network off, a page draws its widgets from the site's own
    copy of the renderer, and asks nothing of any other host."""
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(offline=True, viewport={"width": 1300, "height": 1000})
        page = context.new_page()
        outside: list[str] = []
        page.on(
            "request",
            lambda request: (
                outside.append(request.url)
                if not request.url.startswith(("file:", "data:", "blob:"))
                else None
            ),
        )
        try:
            page.goto((site / "08-reply-codes-and-sessions.html").as_uri())
            box = page.get_by_placeholder("EHLO client.example.net, then Enter")
            box.wait_for(timeout=60_000)  # the console's text box: widgets were drawn
            box.scroll_into_view_if_needed()
            history = page.locator(".widget-html").filter(has_text="C: MAIL FROM:<ann@")
            history.first.wait_for()  # with the state the notebook left them in
            assert page.locator(".widget-slider").count() >= 1  # the step player
            console = page.locator(".widget-vbox").filter(has=box).first
            picture = tmp_path / "console-offline.png"
            console.screenshot(path=str(picture))
            page.screenshot(path=str(tmp_path / "site-offline.png"), full_page=True)
        finally:
            browser.close()
    assert outside == []
    from PIL import Image

    with Image.open(picture) as shot:  # drawn, not blank: text, a diagram, many colours
        width, height = shot.size
        colours = shot.convert("RGB").getcolors(maxcolors=width * height) or []
    assert height > 300 and len(colours) > 50, (shot.size, len(colours))
