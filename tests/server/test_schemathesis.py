"""Schemathesis against the gateway's own OpenAPI document (``/openapi.json``).

Driven from Hypothesis directly: schemathesis' own pytest plugin
(``schema.parametrize()``) fails under pytest 9. Every operation is fuzzed
with schema-valid data, which the gateway must accept (2xx, or 404 for a
model no connection serves) and answer in the documented shapes, streams
included, event by event; the two chat routes are also fuzzed with
schema-invalid data, which they must refuse with a 4xx. Between them the two
modes pin the document to what the parsers really accept: a schema looser
than a parser fails the first, a stricter one the second. All of
schemathesis' default checks run.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from modelport.config import Config
from modelport.routing import Router
from modelport.server.app import create_app
from modelport.testing import FakeProvider

_HOST = "127.0.0.1"
_OPERATIONS = [
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/responses"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("POST", "/admin/reload"),
    ("GET", "/admin/models"),
    ("GET", "/admin/connections"),
]
_BODIES = ("/v1/chat/completions", "/v1/messages", "/v1/embeddings")


@pytest.fixture(scope="module")
def api_schema() -> Any:
    router = Router(Config())
    router.register_provider("fake", FakeProvider())
    app = create_app(router=router, plugin_host=False, ledger=False)
    # The gateway answers only requests addressed to a loopback host name.
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers={"host": _HOST})


def _on_fake(case: Any, prefix: bool) -> Any:
    """Half the valid cases address the fake connection, so real answers get checked too."""
    body = case.body
    if prefix and isinstance(body, dict) and isinstance(body.get("model"), str):
        body["model"] = f"fake/{body['model']}"
    return case


_CASES = [
    *((method, path, GenerationMode.POSITIVE) for method, path in _OPERATIONS),
    # The GET routes take no input that could be malformed (`anthropic-version` may be
    # any string), and the admin reload takes none at all, so only the routes with a
    # body have negative cases.
    *((method, path, GenerationMode.NEGATIVE) for method, path in _OPERATIONS if path in _BODIES),
]


@pytest.mark.parametrize(("method", "path", "mode"), _CASES)
def test_gateway_conforms_to_its_openapi_document(
    api_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    strategy = api_schema[path][method].as_strategy(generation_mode=mode)
    if mode is GenerationMode.POSITIVE:
        strategy = st.builds(_on_fake, strategy, st.booleans())

    @given(case=strategy)
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        case.call_and_validate(base_url=f"http://{_HOST}")

    check()
