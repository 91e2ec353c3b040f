from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections import deque
from pathlib import Path
from typing import Any

from modelport.errors import PluginError
from modelport.plugin_host.process import PluginProcess


class _Handler:
    def __init__(self) -> None:
        self.exits: list[PluginError | None] = []

    async def handle_request(self, process: PluginProcess, method: str, params: Any) -> Any:
        return {}

    def handle_exit(self, process: PluginProcess, error: PluginError | None) -> None:
        self.exits.append(error)


async def test_close_returns_when_the_watcher_task_was_cancelled(tmp_path: Path) -> None:
    # asyncio.run cancels every task, the watcher included, before closing the
    # loop; close() must still see the child exit instead of waiting for ever.
    process = PluginProcess(
        name="sleeper",
        command=[sys.executable, "-c", "import time; time.sleep(60)"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "")},
        ids=itertools.count(1),
        stderr=deque(maxlen=10),
        handler=_Handler(),
    )
    await process.spawn()
    for task in list(process._tasks):
        task.cancel()
    await asyncio.sleep(0)
    code = await asyncio.wait_for(process.close(timeout=0.2, grace=0.5), 5.0)
    assert code is not None and code != 0
    assert not process.alive or process.returncode is not None
