"""A real Jupyter server on loopback: list the notebooks over REST, run cells in a kernel.

This is how a learner meets the course (`make lab`), so it is tested end to end: token auth,
a random free port, the contents API, a kernel started from the course's own environment, the
first cells of a notebook executed through the kernel's websocket, and a clean shutdown.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root_dir: Path, app: str = "server") -> None:
        self.log = tempfile.TemporaryFile("w+")
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, COURSE_SMOKE="1", JUPYTER_PLATFORM_DIRS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"jupyter{'lab' if app == 'lab' else '_server'}", "--no-browser",
             f"--port={self.port}", "--ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={root_dir}", "--ServerApp.port_retries=0"]
            # A workspace of its own: JupyterLab otherwise restores the user's saved layout
            # (~/.config/jupyter/lab/workspaces), and a notebook left open there hid the one
            # the browser test opens (CI, 14:13 and 14:31 on 2026-11-28).
            + (["--LabApp.extension_manager=readonly",
                f"--LabApp.workspaces_dir={root_dir.parent / 'lab-workspaces'}"] if app == "lab" else [])
            + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
            env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def request(self, method: str, path: str, body: dict | None = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"jupyter exited early:\n{self.log.read()[-3000:]}")
            try:
                self.request("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise TimeoutError("jupyter server did not start")

    def stop(self) -> None:
        try:
            self.request("POST", "/api/shutdown")
        except (urllib.error.URLError, ConnectionError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def copy_notebooks(target: Path) -> Path:
    """Serve copies, so that nothing the server or browser saves can touch the repository."""
    target.mkdir(parents=True, exist_ok=True)
    for nb in (REPO / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, target / nb.name)
    return target


@pytest.fixture
def server(tmp_path, local_ports_lock):
    srv = Server(copy_notebooks(tmp_path / "notebooks"))
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def execute(ws_url: str, token: str, code: str, timeout: float = 120) -> dict:
    """Run ``code`` in the kernel behind ``ws_url``; return its stdout text and any error."""
    from tornado import httpclient, ioloop, websocket

    async def run() -> dict:
        request = httpclient.HTTPRequest(ws_url, headers={"Authorization": f"token {token}"})
        conn = await websocket.websocket_connect(request)
        msg_id = uuid.uuid4().hex
        conn.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        result = {"stdout": "", "error": None, "status": None}
        idle = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = await conn.read_message()
            if raw is None:
                break
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream" and msg["content"]["name"] == "stdout":
                result["stdout"] += msg["content"]["text"]
            elif kind == "error":
                result["error"] = f"{msg['content']['ename']}: {msg['content']['evalue']}"
            elif kind == "execute_reply":
                result["status"] = msg["content"]["status"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            # iopub output may arrive after the shell reply: wait for both the reply and the
            # kernel's "idle" status, which comes after every output of this request
            if idle and result["status"] is not None:
                break
        conn.close()
        return result

    return ioloop.IOLoop.current().run_sync(run, timeout=timeout + 10)


def test_server_lists_notebooks_and_runs_cells_in_a_kernel(server):
    listing = server.request("GET", "/api/contents/")
    names = {item["name"] for item in listing["content"]}  # type: ignore[index]
    assert {"01_tensors.ipynb", "02_autograd.ipynb"} <= names
    nb = server.request("GET", "/api/contents/01_tensors.ipynb?content=1")
    cells = [c for c in nb["content"]["cells"] if c["cell_type"] == "code"]  # type: ignore[index]
    kernel = server.request("POST", "/api/kernels", {"name": "python3"})
    kernel_id = kernel["id"]  # type: ignore[index]
    ws = f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels"
    try:
        where = execute(ws, server.token, "import sys; print(sys.executable)")
        assert where["status"] == "ok"
        assert Path(where["stdout"].strip()).resolve() == Path(sys.executable).resolve(), \
            "the kernel must run in the course's own environment"
        outputs = [execute(ws, server.token, cell["source"]) for cell in cells[:3]]
        for out in outputs:
            assert out["status"] == "ok" and out["error"] is None, out
        assert "smoke mode: True" in outputs[0]["stdout"]
        probe = execute(ws, server.token, "print(X.shape, x.sum().item())")
        assert probe["stdout"].strip() == "torch.Size([3, 4]) 66"
        failing = execute(ws, server.token, "assert 1 == 2, 'caught'")
        assert failing["status"] == "error" and "AssertionError" in failing["error"]
    finally:
        server.request("DELETE", f"/api/kernels/{kernel_id}")
    assert server.request("GET", "/api/kernels") == []
