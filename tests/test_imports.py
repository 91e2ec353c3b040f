"""``import modelport`` stays light: fast, and none of the heavy dependencies loaded."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["httpx", "aiohttp", "starlette", "typer", "rich", "keyring", "sqlalchemy", "click"]

_PROBE = """
import json, sys, time
start = time.perf_counter()
import modelport
elapsed = time.perf_counter() - start
print(json.dumps({"elapsed": elapsed, "modules": sorted(sys.modules)}))
"""


def _probe() -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout)


def test_import_modelport_loads_no_heavy_dependency() -> None:
    modules = set(_probe()["modules"])  # type: ignore[arg-type]
    loaded = sorted(name for name in modules if name.split(".")[0] in HEAVY)
    assert loaded == []


def test_import_modelport_is_fast() -> None:
    # The target is 150 ms; the bound is loose so a busy CI machine cannot flake it.
    elapsed = min(float(_probe()["elapsed"]) for _ in range(3))  # type: ignore[arg-type]
    print(f"import modelport took {elapsed * 1000:.1f} ms")
    assert elapsed < 0.5


def test_the_lazy_names_load_on_first_use() -> None:
    probe = (
        "import sys, modelport; modelport.Router; modelport.complete_sync;"
        "print('modelport.routing' in sys.modules, 'modelport._api' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["True", "True"]


def test_the_router_module_does_not_need_the_http_stack_either() -> None:
    probe = (
        "import sys, json, modelport.routing, modelport._api, modelport.config;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = [name for name in json.loads(result.stdout) if name.split(".")[0] in HEAVY]
    assert loaded == []


_CLI_PROBE = """
import json, socket, sys
import modelport.cli
modelport.cli.build_app()  # imports every command module
after_import = sorted(m for m in sys.modules if m.split(".")[0] == "httpx")
from modelport.cli.plugins import _admin
with socket.socket() as sock:  # a loopback port where nothing listens
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
try:
    _admin("GET", "/plugins", f"http://127.0.0.1:{port}")
except SystemExit as exc:
    code = exc.code
after_call = sorted(m for m in sys.modules if m.split(".")[0] == "httpx")
print(json.dumps([after_import, code, after_call]))
"""


def test_the_cli_needs_no_httpx_even_to_call_a_gateway() -> None:
    # httpx is a test dependency only; the CLI speaks to a gateway's admin API over aiohttp.
    result = subprocess.run(
        [sys.executable, "-c", _CLI_PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    after_import, code, after_call = json.loads(result.stdout.splitlines()[-1])
    assert after_import == []
    assert code == 1  # "cannot reach the gateway": the request really was made
    assert after_call == []
