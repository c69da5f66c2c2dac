import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest


def test_outside_connections_fail():
    with pytest.raises(ConnectionError, match="must not use the network"):
        socket.create_connection(("93.184.216.34", 443), timeout=1)
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen("https://example.org", timeout=1)
    assert "must not use the network" in str(info.value.reason)


def test_loopback_is_allowed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=1)
    client.close()
    server.close()


def test_kernels_and_subprocesses_are_guarded_too():
    code = "import socket; socket.create_connection(('8.8.8.8', 53), timeout=1)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "must not use the network" in result.stderr
