"""Schemathesis against the gateway's own OpenAPI document (``/openapi.json``).

Needs ``schemathesis`` (to be added to the ``test`` extra); until it is
installed this module is skipped, and ``test_fuzz.py`` covers the same ground
with Hypothesis alone.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelport.config import Config
from modelport.router import Router
from modelport.server.app import create_app
from modelport.testing import FakeProvider

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed (add it to the test extra)"
)


@pytest.fixture
def api_schema() -> Any:
    router = Router(Config())
    router.register_provider("fake", FakeProvider())
    app = create_app(router=router, plugin_host=False, ledger=False)
    openapi = getattr(schemathesis, "openapi", None)
    if openapi is not None and hasattr(openapi, "from_asgi"):  # schemathesis 4
        return openapi.from_asgi("/openapi.json", app)
    return schemathesis.from_asgi("/openapi.json", app)  # schemathesis 3


_plugin = getattr(schemathesis, "pytest", None)
if _plugin is not None and hasattr(_plugin, "from_fixture"):  # schemathesis 4
    schema = _plugin.from_fixture("api_schema")
else:  # schemathesis 3
    schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
def test_gateway_conforms_to_its_openapi_document(case: Any) -> None:
    case.call_and_validate()
