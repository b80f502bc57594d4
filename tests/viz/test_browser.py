"""JupyterLab in a real browser: the captured-traffic notebook runs, its widgets render and
respond to clicks.

Headless Chromium (Debian's ``chromium``, driven by Playwright without downloading a browser)
opens JupyterLab on a copy of the notebooks, runs every cell of the notebook with the session
explorer and the dashboard, picks another session in the explorer's list and clicks the
dashboard's "5xx" button, and checks that each widget answers through the kernel. Skipped,
saying why, where chromium or Playwright is missing; ``.ci/run`` installs both.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOTEBOOK = "07-captured-traffic.ipynb"

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
        yield f"{url}/lab/tree/{NOTEBOOK}?token={token}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_explorer_and_dashboard_work_in_jupyterlab(lab, tmp_path) -> None:
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.set_default_timeout(120_000)
        try:
            page.goto(lab)
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
            page.wait_for_timeout(1_000)  # let the redrawn figure arrive before the picture
            page.screenshot(path=str(tmp_path / "jupyterlab.png"), full_page=True)
        except Exception:  # keep a picture of what the browser showed, for the report
            page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
            raise
        finally:
            browser.close()
