"""Run a command where only loopback exists: ``python tests/_netns.py COMMAND...``.

``make test`` runs pytest through this, in a network namespace of its own
with nothing but ``lo`` (brought up here): the gateway's uvloop connections,
``modelport serve`` and plugin processes started by tests, Node plugins — none
can reach anything but 127.0.0.1, whatever library opens the socket. (The
``socket.connect`` guard in ``tests/conftest.py`` covers only Python sockets of
the test process itself.)

As root (CI), ``unshare --net`` makes the namespace; anyone else gets a user
namespace with it (``unshare --user --map-root-user --net``), where the
kernel allows that. Where neither works the command runs as it is, after a
warning on stderr, and ``tests/test_network_isolation.py`` says so.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys

#: Set inside the namespace (not MODELPORT_*: the tests' environment scrub keeps it).
MARKER = "TESTS_LOOPBACK_ONLY"

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def main(command: list[str]) -> None:
    if not command:
        sys.exit("usage: python tests/_netns.py COMMAND [ARGS...]")
    if os.environ.get(MARKER) == "1":
        _bring_up_loopback()
        os.execvp(command[0], command)
    unshare = shutil.which("unshare")
    flags = ["--net"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--net"]
    if unshare and subprocess.run([unshare, *flags, "true"], capture_output=True).returncode == 0:
        os.environ[MARKER] = "1"
        here = os.path.abspath(__file__)  # by path: the command may run from any folder
        os.execv(unshare, [unshare, *flags, sys.executable, here, *command])
    print(
        "tests/_netns.py: cannot make a network namespace here (unshare); the tests run "
        "with only the in-process socket guard",
        file=sys.stderr,
    )
    os.execvp(command[0], command)


def _bring_up_loopback() -> None:
    """``ip link set lo up``, without needing iproute2."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | _IFF_UP, b""))


if __name__ == "__main__":
    main(sys.argv[1:])
