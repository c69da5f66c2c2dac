"""JupyterLab in headless Chromium: a notebook renders and a cell runs from the page.

Needs a Chromium binary. CI installs Debian's ``chromium`` (see ``.ci/run``); on a machine
without one the test is skipped with a message saying how to enable it.
"""

from __future__ import annotations

import shutil
import time
import urllib.error

import pytest
from test_jupyter_server import Server, copy_notebooks

pytestmark = pytest.mark.slow

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)


def wait_for_idle_kernel(server: Server, timeout: float = 120) -> None:
    """Wait until JupyterLab has started the notebook's kernel and it is idle.

    While a kernel is being launched, jupyter_server already lists it but has not yet given it a
    ``last_activity``, so ``GET /api/kernels`` can answer 500 for a moment (an AttributeError in
    ``kernel_model``; seen in CI on 2026-12-07, and reported upstream for enterprise_gateway #1395).
    JupyterLab's own poll retries; so does this one, until ``timeout``, and then shows the server log.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            kernels = server.request("GET", "/api/kernels")
        except urllib.error.HTTPError as error:
            if error.code != 500:
                raise
            last_error = error
        else:
            if kernels and all(k["execution_state"] == "idle" for k in kernels):  # type: ignore[union-attr]
                return
        time.sleep(0.5)
    server.log.seek(0)
    raise TimeoutError(f"JupyterLab did not start an idle kernel (last error: {last_error});"
                       f" server log:\n{server.log.read()[-3000:]}")


def test_notebook_renders_and_a_cell_runs_in_jupyterlab(tmp_path, local_ports_lock):
    if CHROMIUM is None:
        pytest.skip("no Chromium found: install it (Debian/Ubuntu: `sudo apt-get install chromium`) "
                    "to run the JupyterLab browser test")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    server = Server(copy_notebooks(tmp_path / "notebooks"), app="lab")
    try:
        server.wait_ready()
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                page.goto(f"{server.base}/lab/tree/01_tensors.ipynb?token={server.token}",
                          timeout=120_000)
                page.wait_for_selector(".jp-Notebook .jp-RenderedMarkdown h1", timeout=120_000)
                assert "01 · Tensors" in page.inner_text(".jp-Notebook .jp-RenderedMarkdown h1")
                wait_for_idle_kernel(server)
                first_code = page.locator(".jp-Notebook .jp-CodeCell").first
                first_code.locator(".jp-InputArea-editor").click()
                page.keyboard.press("Shift+Enter")
                output = first_code.locator(".jp-OutputArea-output")
                output.first.wait_for(timeout=120_000)
                page.wait_for_function(
                    "el => el.innerText.includes('smoke mode')",
                    arg=output.first.element_handle(), timeout=120_000)
                assert "smoke mode: True" in output.first.inner_text()
            finally:
                page.screenshot(path=str(tmp_path / "jupyterlab.png"))
                browser.close()
    finally:
        server.stop()
