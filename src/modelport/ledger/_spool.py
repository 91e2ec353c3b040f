"""The spool: usage records kept on disk while the database cannot take them.

When the database is unreachable, the writer keeps a bounded number of
records in memory; past that it hands them here, a batch per file. Files
live in one owner-only folder (``0700``, files ``0600``: a record names models
and may quote an error), are written under a temporary name and renamed, so
a reader never sees half a file, and are named
``<nanoseconds>-<owner>-<sequence>.jsonl`` (the owner is the process id and a
token for this spool) so that sorting them is their age.
Once the database is back each file goes in as one transaction and is
deleted after it committed. The folder is bounded by ``max_bytes``: what does
not fit is refused, and the writer counts it as dropped.

A spool only reads its own files. Files left by one that is gone (a gateway
killed during an outage, or shut down before the database returned; a ledger
of this process that was closed) are adopted by the next ledger that starts
writing: renamed to its own owner, which is atomic, so two adopters never
both take one file.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Spool"]

logger = logging.getLogger("modelport.ledger")

_SUFFIX = ".jsonl"

#: The owners of the spools open in this process (their files are not orphans).
_OPEN: set[str] = set()


class Spool:
    """Batches of items on disk under ``folder``, oldest first, at most ``max_bytes`` in all.

    ``encode`` turns an item into one line (bytes, no newline), ``decode`` one
    line back. Only the writer thread uses a spool.
    """

    def __init__(
        self,
        folder: Path,
        *,
        encode: Callable[[Any], bytes],
        decode: Callable[[bytes], Any],
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._encode = encode
        self._decode = decode
        self._pid = os.getpid()
        self._owner = f"{self._pid}.{secrets.token_hex(4)}"
        _OPEN.add(self._owner)
        self._sequence = itertools.count()
        #: Our files, oldest first, with their item count and size.
        self._files: deque[tuple[Path, int, int]] = deque()
        self.bytes = 0
        self.items = 0

    def __bool__(self) -> bool:
        return bool(self._files)

    # --- writing --------------------------------------------------------

    def put(self, batch: Sequence[Any]) -> bool:
        """Keep ``batch`` in a file of its own; False (nothing kept) when it does not fit."""
        data = b"".join(self._encode(item) + b"\n" for item in batch)
        if self.bytes + len(data) > self.max_bytes:
            return False
        self._ensure_folder()
        name = f"{time.time_ns():020d}-{self._owner}-{next(self._sequence):06d}{_SUFFIX}"
        path = self.folder / name
        temporary = self.folder / f".{name}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self._files.append((path, len(batch), len(data)))
        self.bytes += len(data)
        self.items += len(batch)
        return True

    def _ensure_folder(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is masked by the umask, and the folder may predate us.
        os.chmod(self.folder, 0o700)

    # --- reading back ---------------------------------------------------

    def oldest(self) -> tuple[Path, list[Any]] | None:
        """The oldest file and its items (None when the spool is empty).

        A file that cannot be read back is set aside as ``*.bad`` (and logged),
        never retried for ever.
        """
        while self._files:
            path, _count, _size = self._files[0]
            try:
                items = [self._decode(line) for line in path.read_bytes().splitlines() if line]
            except Exception:
                logger.error(
                    "usage ledger: could not read back %s; set aside as %s.bad",
                    path,
                    path.name,
                    exc_info=True,
                )
                self._forget_oldest()
                try:
                    path.rename(path.with_name(path.name + ".bad"))
                except OSError:
                    pass
                continue
            return path, items
        return None

    def remove_oldest(self) -> None:
        """Delete the oldest file: its items are in the database."""
        path = self._forget_oldest()
        path.unlink(missing_ok=True)

    def _forget_oldest(self) -> Path:
        path, count, size = self._files.popleft()
        self.items -= count
        self.bytes -= size
        return path

    # --- files of processes that are gone -------------------------------

    def adopt(self) -> int:
        """Take over the files of processes that no longer run; how many items they hold."""
        try:
            names = sorted(p.name for p in self.folder.iterdir() if p.name.endswith(_SUFFIX))
        except FileNotFoundError:
            return 0
        adopted = 0
        for name in names:
            stamp, _, rest = name.partition("-")
            owner, _, tail = rest.partition("-")
            if not self._orphaned(owner):
                continue
            path = self.folder / f"{stamp}-{self._owner}-{tail}"
            try:
                os.rename(self.folder / name, path)  # atomic: one adopter wins
                data = path.read_bytes()
            except OSError:
                continue
            count = sum(1 for line in data.splitlines() if line)
            self._files.append((path, count, len(data)))
            self.bytes += len(data)
            self.items += count
            adopted += count
        if adopted:
            self._files = deque(sorted(self._files))
            logger.warning(
                "usage ledger: %d record(s) left in %s by a previous run will be written",
                adopted,
                self.folder,
            )
        return adopted

    def _orphaned(self, owner: str) -> bool:
        """Whether the spool that wrote files as ``owner`` is gone."""
        pid_text = owner.partition(".")[0]
        if not pid_text.isdigit() or owner == self._owner:
            return False
        if int(pid_text) == self._pid:
            return owner not in _OPEN
        return not _alive(int(pid_text))

    def release(self) -> None:
        """This spool is closed: what is left in it is for the next ledger to adopt."""
        _OPEN.discard(self._owner)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to take
        return True
    return True
