"""Property tests: whatever JSON a client sends, the gateway answers in its API's shape.

Never a 5xx for a client's mistake, never a traceback, and every body one of
the shapes the official SDKs parse (checked with the SDKs' own types).
"""

from __future__ import annotations

import json
from typing import Any

import anthropic.types
import httpx
import openai.types.chat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.config import Config
from modelport.routing import Router
from modelport.server._keys import GatewayKeys
from modelport.server.app import create_app
from modelport.testing import FakeProvider
from tests.server._sse import sse_events

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
_content = st.one_of(
    st.text(max_size=20),
    st.lists(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "bogus"]),
                               "text": st.text(max_size=10)}),
        max_size=2,
    ),
    _json,
)  # fmt: skip
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "developer", "x"]),
     "content": _content},
    optional={"tool_call_id": st.text(max_size=5), "name": _json},
)  # fmt: skip
_models = st.sampled_from(["fake/m", "nowhere/m", "fake", "", "/", "fake/"]) | st.text(max_size=10)


def _bodies(extra_keys: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        _json,
        st.fixed_dictionaries(
            {"model": _models | _json, "messages": st.lists(_message, max_size=3) | _json},
            optional={key: _json for key in extra_keys}
            | {"stream": st.booleans() | _json, "max_tokens": st.integers(-5, 5000) | _json},
        ),
    )


def _app() -> Any:
    router = Router(Config())
    router.register_provider("fake", FakeProvider())
    # Built at import, before the environment is scrubbed: no keys from it.
    return create_app(router=router, plugin_host=False, ledger=False, keys=GatewayKeys())


APP = _app()
_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


async def _post(path: str, body: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.post(
            path, content=json.dumps(body), headers={"content-type": "application/json"}
        )


@_SETTINGS
@given(
    _bodies(["tools", "tool_choice", "stop", "response_format", "stream_options", "temperature"])
)
async def test_chat_completions_answers_every_body_in_openai_shape(body: Any) -> None:
    response = await _post("/v1/chat/completions", body)
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["type"]
        return
    if response.headers["content-type"].startswith("text/event-stream"):
        events = sse_events(response.content)
        assert events[-1].data == "[DONE]"
        for event in events[:-1]:
            openai.types.chat.ChatCompletionChunk.model_validate_json(event.data)
    else:
        openai.types.chat.ChatCompletion.model_validate_json(response.content)


@_SETTINGS
@given(_bodies(["system", "tools", "tool_choice", "thinking", "stop_sequences", "metadata"]))
async def test_messages_answers_every_body_in_anthropic_shape(body: Any) -> None:
    response = await _post("/v1/messages", body)
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        payload = response.json()
        assert payload["type"] == "error" and isinstance(payload["error"]["message"], str)
        return
    if response.headers["content-type"].startswith("text/event-stream"):
        events = sse_events(response.content)
        assert events[-1].event == "message_stop"
        for event in events:
            assert json.loads(event.data)["type"] == event.event
    else:
        anthropic.types.Message.model_validate_json(response.content)
