"""The Node toolchain the Node SDK's checks use: TypeScript, installed into sdk/node.

``make test`` installs it (``npm ci`` in ``sdk/node``, from its package-lock.json);
:func:`tsc` does the same the first time a test needs it outside ``make``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

NODE_SDK = Path(__file__).resolve().parents[1] / "sdk" / "node"


def tsc() -> Path:
    """The TypeScript compiler of sdk/node's devDependencies."""
    compiler = NODE_SDK / "node_modules" / ".bin" / "tsc"
    if not compiler.exists():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_SDK,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0 or not compiler.exists():
            pytest.fail(f"cannot install TypeScript in {NODE_SDK} (npm ci): {done.stderr[-2000:]}")
    return compiler


def build(plugin_dir: Path) -> None:
    """``npm run build`` for a TypeScript plugin, with sdk/node's compiler."""
    done = subprocess.run(
        [str(tsc()), "-p", str(plugin_dir)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
