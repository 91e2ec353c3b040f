"""One renewal of a login at a time across processes: an advisory lock file per login.

An :class:`~modelport.auth.session.OAuthSession` renews single-flight within its
process; gateway workers, or the CLI beside a running gateway, share only the
stored tokens. A rotating authorization server honours each refresh token
once, so two processes renewing the same expired login at once would spend
one refresh token twice: the second is refused (and some servers then revoke
the whole login). The session holds this lock from reading the stored tokens
until the renewed ones are stored, so the second process waits and then
finds them.

``flock`` locks belong to an open file, not to a process: two sessions in one
process exclude each other too, and the kernel lets go when a holder dies.
The lock is taken by polling a non-blocking ``flock``, so a caller that is
cancelled while it waits leaves nothing held.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

from modelport.config import ensure_private_dir, modelport_home
from modelport.errors import AuthError

__all__ = ["renewal_lock"]

logger = logging.getLogger("modelport.auth")

#: Longer than a token request may take (its own timeouts end it sooner).
_WAIT_LIMIT = 60.0
_POLL = 0.02


def _lock_path(name: str) -> Path:
    return modelport_home() / "locks" / f"oauth-{quote(name, safe='')}.lock"


@contextlib.asynccontextmanager
async def renewal_lock(name: str) -> AsyncIterator[None]:
    """Held by one renewal of login ``name`` at a time, in any process of this user."""
    path = _lock_path(name)
    try:
        ensure_private_dir(path.parent)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        # Where nothing can be written the renewed tokens cannot be stored either, so
        # there is nothing to share with another process: renew here, and say so.
        logger.warning(
            "could not open the lock file %s (%s); renewing the login of %r without "
            "waiting for other modelport processes",
            path,
            exc.strerror or type(exc).__name__,
            name,
        )
        yield
        return
    try:
        deadline = time.monotonic() + _WAIT_LIMIT
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AuthError(
                        f"Another modelport process has been renewing the login of {name!r} "
                        f"for {_WAIT_LIMIT:g} s; check for a stuck `modelport` process "
                        f"(the lock is {path})",
                        connection=name,
                    ) from None
                await asyncio.sleep(_POLL)
        yield
    finally:
        os.close(descriptor)  # closing the file lets go of the lock
