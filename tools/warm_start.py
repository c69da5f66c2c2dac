"""Warm start for ``make mutants``: fork pytest and Jupyter kernels from a process that has
already imported torch, pytest, nbval, ipykernel and course_utils.

Each mutant is one ``pytest --nbval-lax -x`` session with one fresh kernel, exactly as before;
only the start-up is shared. A cold start costs ≈ 3.5 CPU-seconds per mutant (pytest and its
plugins ≈ 1, ipykernel ≈ 0.5, torch + matplotlib + course_utils in the kernel ≈ 2), more than
most mutants need to be caught. The server imports all of that once and forks:

* ``pytest`` requests (from tools/mutants.py): a child runs ``pytest.main(args)`` with the
  request's working folder, environment and stdout/stderr;
* ``kernel`` requests (from the ``course-warm`` kernel spec that tools/mutants.py writes, whose
  command is ``python -S tools/warm_start.py kernel -f {connection_file}``): a tiny client process
  that Jupyter starts and signals like any kernel; it asks the server to fork an ipykernel with
  its environment and stdio, relays interrupts and exits with the kernel's exit code.

A forked kernel is a real ipykernel with a fresh namespace; what differs from a cold one is
only that modules are already in ``sys.modules``. They were imported under the same start-up
environment (:func:`startup_env`: ``PYTHONPATH`` and so ``sitecustomize``, ``COURSE_*``, thread
counts, the matplotlib backend); a request whose start-up environment differs is not served warm
but ``exec``-s the cold command (and says so on its stderr, which lands in the mutant's log). ``tests/test_mutants.py``
compares what a warm and a cold kernel report about themselves. Closing a request's connection
(a timeout, Ctrl-C) kills its process and the kernels it started; the server exits with its parent.

    python tools/warm_start.py serve SOCKET    # started and stopped by tools/mutants.py
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import sys

SOCKET_ENV = "COURSE_WARM_SOCKET"  # where the kernel client finds the server
TAG_ENV = "COURSE_WARM_TAG"  # ties a pytest run and the kernels it starts together
KERNEL_NAME = "course-warm"
_HEADER = struct.Struct("!I")


# --- wire format: a length-prefixed JSON request with stdin/stdout/stderr attached, JSON lines back ---


def send_request(sock: socket.socket, request: dict, fds: list[int]) -> None:
    data = json.dumps(request).encode()
    socket.send_fds(sock, [_HEADER.pack(len(data)) + data], fds)


def _recv_request(sock: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
    if len(data) < _HEADER.size:
        raise ConnectionError("short request")
    (size,) = _HEADER.unpack_from(data)
    data = data[_HEADER.size:]
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            raise ConnectionError("request cut short")
        data += more
    return json.loads(data), list(fds)


def read_reply(sock: socket.socket, buffer: bytearray, timeout: float | None) -> dict | None:
    """The next JSON line from the server, or None if nothing came within ``timeout`` seconds."""
    while b"\n" not in buffer:
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            return None
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the warm-start server closed the connection")
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return json.loads(line)


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


# --- the kernel client: what Jupyter launches as "the kernel" ---


def kernel_client(argv: list[str]) -> int:
    path = os.environ.get(SOCKET_ENV)
    if not path:
        print(f"{KERNEL_NAME}: {SOCKET_ENV} is not set (this kernel only runs under tools/mutants.py)",
              file=sys.stderr)
        return 2
    sock = connect(path)
    send_request(sock, {"kind": "kernel", "argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}, [0, 1, 2])
    buffer = bytearray()
    pid = read_reply(sock, buffer, None)["pid"]  # type: ignore[index]

    def relay(signum: int, frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGINT, relay)  # Jupyter interrupts a kernel with SIGINT
    signal.signal(signal.SIGTERM, relay)
    while True:
        try:
            reply = read_reply(sock, buffer, None)
        except InterruptedError:  # pragma: no cover - select restarts after a handled signal
            continue
        if reply is not None and "exit" in reply:
            return int(reply["exit"])


# --- the server ---


def _preload() -> None:
    """Import what pytest, nbval, ipykernel and the notebooks import, once, in one thread."""
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # as ipykernel does
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # see PYTEST in tools/mutants.py
    import importlib
    import pkgutil
    from importlib.metadata import entry_points

    # first: its OpenBLAS starts worker threads, which it stops before a fork (pthread_atfork)
    import numpy  # noqa: F401

    allowed = _thread_count()
    import _pytest.junitxml  # noqa: F401
    import ipykernel.ipkernel  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import nbval.plugin  # noqa: F401
    import pytest  # noqa: F401
    import torch  # noqa: F401
    import torch.nn.functional  # noqa: F401

    import course_utils

    for plugin in entry_points(group="pytest11"):
        if plugin.name not in {"xdist.plugin", "xdist.looponfail", "pytest_cov", "hypothesispytest"}:
            try:
                importlib.import_module(plugin.value.split(":")[0])
            except Exception:  # a broken plugin fails the same way in the child, visibly
                pass
    for info in pkgutil.iter_modules(course_utils.__path__):
        if info.name != "__main__":
            importlib.import_module(f"course_utils.{info.name}")
    del sys.modules["rfc3987_syntax"]
    if _thread_count() != allowed:  # e.g. torch's OpenMP pool: forking a process with it running hangs
        raise RuntimeError(f"the warm-start server has {_thread_count()} threads after its imports "
                           f"({allowed} after numpy's); forking it is unsafe: use --cold")


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1


def _become_child(request: dict, fds: list[int], closing: list[socket.socket]) -> None:
    for s in closing:
        s.close()
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.setpgid(0, 0)
    for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
        del sys.path[0]  # the server's script folder; a fresh kernel or pytest does not have it
    import random

    random.seed()  # a fresh interpreter's entropy, not the server's state
    try:
        import numpy

        numpy.random.seed()
    except ImportError:  # pragma: no cover
        pass


def startup_env(env: dict[str, str]) -> dict[str, object]:
    """The part of an environment that acts when Python, torch or matplotlib start (and so is
    frozen into the server's imports): ``PYTHON*`` (``PYTHONPATH`` as the de-duplicated list
    ``site`` makes of it), ``COURSE_*``, thread counts and the matplotlib backend."""
    keys = ("PYTHON", "COURSE_", "OMP_", "MKL_", "OPENBLAS_", "KMP_", "TORCH_", "MPLBACKEND")
    picked: dict[str, object] = {k: v for k, v in env.items()
                                 if k.startswith(keys) and not k.startswith("COURSE_WARM") and k != "PYTHONPATH"}
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    picked["PYTHONPATH"] = list(dict.fromkeys(os.path.realpath(p) for p in paths))
    picked["MPLBACKEND"] = env.get("MPLBACKEND") or "module://matplotlib_inline.backend_inline"  # ipykernel's default
    return picked


SERVER_ENV: dict[str, object] = {}  # startup_env of the server, taken before its imports


def _cold_command(request: dict) -> list[str] | None:
    """None if this request can be served warm; else the cold command to exec instead (and why)."""
    wanted, have = startup_env(request["env"]), SERVER_ENV
    if wanted == have:
        return None
    differ = sorted(k for k in set(wanted) | set(have) if wanted.get(k) != have.get(k))
    print(f"warm-start: cold {request['kind']} because {', '.join(differ)} differ from the server's", file=sys.stderr)
    if request["kind"] == "pytest":
        return [sys.executable, "-c", "import pytest, sys; sys.exit(pytest.main())", *request["argv"]]
    return [sys.executable, "-m", "ipykernel_launcher", *request["argv"]]


def _run_child(request: dict) -> int:
    cold = _cold_command(request)
    if cold:  # this environment would have started Python differently: start it for real
        os.execve(sys.executable, cold, request["env"])
    if request["kind"] == "pytest":
        import pytest

        sys.argv = ["pytest", *request["argv"]]
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]
        return int(pytest.main(request["argv"]))
    import importlib.util

    from ipykernel import kernelapp

    spec = importlib.util.find_spec("ipykernel_launcher")  # `python -m` puts the module's path in argv[0]
    sys.argv = [spec.origin if spec and spec.origin else "ipykernel_launcher", *request["argv"]]
    kernelapp.launch_new_instance(argv=request["argv"])
    return 0


def serve(path: str) -> int:
    SERVER_ENV.update(startup_env(dict(os.environ)))
    _preload()
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    conn_of: dict[int, socket.socket] = {}  # child pid -> the connection that asked for it
    tag_of: dict[int, str] = {}
    kind_of: dict[int, str] = {}
    cpu_of_tag: dict[str, float] = {}

    def kill(pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop_all(signum: int = 0, frame: object = None) -> None:
        for pid in list(conn_of):
            kill(pid)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop_all)
    while True:
        if os.getppid() != parent:
            stop_all()
        readable, _, _ = select.select([listener, *conn_of.values()], [], [], 0.05)
        for sock in readable:
            if sock is listener:
                conn, _ = listener.accept()
                try:
                    request, fds = _recv_request(conn)
                except (ConnectionError, OSError, ValueError):
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        _become_child(request, fds, [listener, conn, *conn_of.values()])
                        code = _run_child(request)
                    except SystemExit as exit_:
                        code = exit_.code if isinstance(exit_.code, int) else 1
                    except BaseException:
                        import traceback

                        traceback.print_exc()
                    finally:
                        sys.stdout.flush()
                        sys.stderr.flush()
                        os._exit(code)
                for fd in fds:
                    os.close(fd)
                conn_of[pid] = conn
                tag_of[pid] = request["env"].get(TAG_ENV, "")
                kind_of[pid] = request["kind"]
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            else:  # the requester closed its end (timeout, Ctrl-C, killed): kill what it asked for
                if sock.recv(1):
                    continue
                for pid, conn in list(conn_of.items()):
                    if conn is sock:
                        kill(pid)
                        if kind_of[pid] == "pytest":  # and the kernels that run started
                            for other, tag in tag_of.items():
                                if tag == tag_of[pid] and other != pid:
                                    kill(other)
        while conn_of:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            tag = tag_of.pop(pid)
            cpu_of_tag[tag] = cpu_of_tag.get(tag, 0.0) + usage.ru_utime + usage.ru_stime
            conn = conn_of.pop(pid)
            reply: dict[str, float] = {"exit": os.waitstatus_to_exitcode(status)}
            if kind_of.pop(pid) == "pytest":
                reply["cpu"] = cpu_of_tag.pop(tag, 0.0)
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass
            conn.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2]))
    if len(sys.argv) >= 2 and sys.argv[1] == "kernel":
        sys.exit(kernel_client(sys.argv[2:]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
