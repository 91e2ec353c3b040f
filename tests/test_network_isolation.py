"""The tests cannot reach the network: not the test process, not its event loops, not a child.

``make test`` runs pytest in a network namespace with only loopback
(``tests/_netns.py``); ``tests/conftest.py`` also refuses a Python
``socket.connect`` to anything but loopback. These tests check both claims
the way the code under test would try it: a plain socket, the uvloop loop the
gateway runs on (libuv connects in C, past any Python patch), and a child
process (``modelport serve``, a plugin).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import subprocess
import sys

import pytest
import uvloop

from tests._netns import MARKER

#: TEST-NET-1 (RFC 5737): routable nowhere, so a connect can only fail.
OUTSIDE = ("192.0.2.1", 80)
ISOLATED = os.environ.get(MARKER) == "1"
needs_namespace = pytest.mark.skipif(
    not ISOLATED, reason="run through `make test`: only there is the suite in its own namespace"
)


def test_a_python_socket_to_the_outside_is_refused_in_process() -> None:
    with socket.socket() as sock, pytest.raises(RuntimeError, match="must not reach the network"):
        sock.connect(OUTSIDE)


@needs_namespace
def test_the_gateways_event_loop_cannot_connect_out() -> None:
    async def connect() -> None:
        await asyncio.wait_for(
            asyncio.get_running_loop().create_connection(asyncio.Protocol, *OUTSIDE), timeout=5
        )

    loop = uvloop.new_event_loop()
    try:
        with pytest.raises(OSError) as caught:
            loop.run_until_complete(connect())
    finally:
        loop.close()
    assert caught.value.errno == errno.ENETUNREACH


@needs_namespace
def test_a_child_process_cannot_connect_out_but_reaches_loopback() -> None:
    code = (
        "import socket\n"
        "s = socket.socket(); s.settimeout(5)\n"
        f"print(s.connect_ex({OUTSIDE!r}))\n"
        "server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen()\n"
        "socket.create_connection(server.getsockname(), timeout=5); print('loopback')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    assert out == [str(errno.ENETUNREACH), "loopback"]


@needs_namespace
def test_only_loopback_exists() -> None:
    names = {name for _, name in socket.if_nameindex()}
    assert names == {"lo"}, names
