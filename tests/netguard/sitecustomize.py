"""Network guard for tests: connecting to anything but loopback or a Unix socket raises, and
so does resolving a name that is not local (a test fails at once instead of waiting for DNS).

The repository's root ``conftest.py`` loads this file (as ``course_netguard``) and calls
:func:`install` in the pytest process. It also sets ``COURSE_NETWORK_GUARD=1`` and puts this
folder first on ``PYTHONPATH``, so every Python the tests start (nbval's notebook kernels,
subprocesses) imports this file as ``sitecustomize`` at start-up, and the check at the bottom
installs the guard there too. Without ``COURSE_NETWORK_GUARD=1``, importing it changes nothing.
"""

from __future__ import annotations

import ipaddress
import os
import socket

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


class NetworkAccessError(ConnectionError):
    """Raised when code under test tries to reach the network."""


def _is_local(host: object) -> bool:
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def install() -> None:
    """Patch ``socket`` so that only loopback and Unix-socket connections are allowed."""
    if getattr(socket, "_course_guarded", False):
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def _check(sock: socket.socket, address: object) -> None:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return
        host = address[0] if isinstance(address, tuple) else address
        if not _is_local(host):
            raise NetworkAccessError(f"tests must not use the network (tried to connect to {address!r})")

    def connect(self: socket.socket, address: object) -> None:
        _check(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        _check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: object, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if not _is_local(host):
            raise NetworkAccessError(f"tests must not use the network (tried to resolve {host!r})")
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket._course_guarded = True  # type: ignore[attr-defined]


if os.environ.get("COURSE_NETWORK_GUARD") == "1":
    install()
