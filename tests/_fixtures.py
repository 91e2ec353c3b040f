"""Where the recorded provider traffic lives (importable from any test module)."""

from __future__ import annotations

import os
from pathlib import Path

FIXTURES = Path(os.environ.get("MODELPORT_FIXTURES", Path(__file__).resolve().parent / "fixtures"))


def fixture_bytes(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()
