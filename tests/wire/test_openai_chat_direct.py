"""``decode_chat_response`` (a plain answer decoded once, straight into its response)
against the events path it replaces (``decode_response`` → ``aggregate``)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.aggregate import aggregate
from modelport.errors import ModelportError, ParseError
from modelport.providers._http import _response_id
from modelport.types import ChatResponse
from modelport.wire.openai_chat import decode_chat_response, decode_response
from tests._fixtures import FIXTURES

MODEL = "conn/model-x"

#: Every recorded non-streaming answer of an OpenAI-compatible server (and vLLM's legacy
#: ``/completions`` answer, which both paths must refuse alike).
ANSWERS = sorted(
    str(path.relative_to(FIXTURES))
    for folder in ("openai", "deepseek", "openrouter", "openai-compatible", "vllm", "ollama")
    for path in (FIXTURES / folder).glob("*.json")
    if not path.name.endswith(".request.json")
    and b'"chat.completion"' in path.read_bytes() + (b'"chat.completion"' * (folder == "vllm"))
)


def _events_path(body: bytes) -> ChatResponse | str:
    """What the provider answered before: the events, folded, with the body's id."""
    try:
        events = decode_response(body)
        return aggregate(events, model=MODEL, id=_response_id(body))
    except ModelportError as exc:
        return f"{type(exc).__name__}: {exc}"


def _direct_path(body: bytes) -> ChatResponse | str:
    try:
        return decode_chat_response(body, model=MODEL)
    except ModelportError as exc:
        return f"{type(exc).__name__}: {exc}"


def _same(body: bytes) -> None:
    old, new = _events_path(body), _direct_path(body)
    if isinstance(old, str) or isinstance(new, str):
        assert new == old
        return
    if old.id.startswith("resp_") and new.id.startswith("resp_"):
        # Neither had the body's id: each made its own.
        new = msgspec.structs.replace(new, id=old.id)
    assert new == old


def test_every_recorded_answer_is_covered() -> None:
    assert len(ANSWERS) >= 10
    assert "openai/chat-completion-refusal.json" in ANSWERS
    assert "vllm/completion.json" in ANSWERS


@pytest.mark.parametrize("relative", ANSWERS)
def test_a_recorded_answer_decodes_as_its_events_aggregate(relative: str) -> None:
    body = (FIXTURES / relative).read_bytes()
    _same(body)
    new = _direct_path(body)
    if relative != "vllm/completion.json":
        assert isinstance(new, ChatResponse)
        assert new.id == json.loads(body)["id"]
        assert new.model == MODEL


def test_a_recorded_tool_call_answer_keeps_its_calls() -> None:
    body = (FIXTURES / "openai/chat-completion-parallel-tool-calls.json").read_bytes()
    response = decode_chat_response(body, model=MODEL)
    assert isinstance(response, ChatResponse)
    assert len(response.tool_calls) >= 2
    assert response.finish_reason == "tool_calls"


_TEXT = st.one_of(st.none(), st.text(max_size=12))
_ARGUMENTS = st.one_of(
    st.none(),
    st.sampled_from(["", "  ", "{}", '{"a": 1}', '{"a": ', "[1, 2]", "nope"]),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
_CALL = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.none(), st.text(max_size=6)),
        "type": st.just("function"),
        "function": st.fixed_dictionaries({}, optional={"name": _TEXT, "arguments": _ARGUMENTS}),
    },
)
_MESSAGE = st.fixed_dictionaries(
    {"role": st.just("assistant")},
    optional={
        "content": _TEXT,
        "reasoning_content": _TEXT,
        "reasoning": _TEXT,
        "refusal": _TEXT,
        "tool_calls": st.one_of(st.none(), st.lists(_CALL, max_size=3)),
        "function_call": st.one_of(
            st.none(), st.fixed_dictionaries({"name": _TEXT, "arguments": _ARGUMENTS})
        ),
    },
)
_COUNT = st.one_of(st.none(), st.integers(0, 10_000))
_USAGE = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": _COUNT,
        "completion_tokens": _COUNT,
        "prompt_cache_hit_tokens": _COUNT,
        "cost": st.one_of(st.none(), st.floats(0, 10, allow_nan=False)),
        "prompt_tokens_details": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {}, optional={"cached_tokens": _COUNT, "cache_write_tokens": _COUNT}
            ),
        ),
        "completion_tokens_details": st.one_of(
            st.none(), st.fixed_dictionaries({}, optional={"reasoning_tokens": _COUNT})
        ),
    },
)
_CHOICE = st.fixed_dictionaries(
    {},
    optional={
        "index": st.one_of(st.none(), st.integers(0, 2)),
        "message": st.one_of(st.none(), _MESSAGE),
        "finish_reason": st.one_of(
            st.none(),
            st.sampled_from(["stop", "length", "tool_calls", "content_filter", "eos", "other"]),
        ),
    },
)
_COMPLETION = st.fixed_dictionaries(
    {"object": st.just("chat.completion")},
    optional={
        "id": st.one_of(st.none(), st.text(max_size=8), st.integers()),
        "model": st.text(max_size=8),
        "choices": st.one_of(st.none(), st.lists(_CHOICE, max_size=3)),
        "usage": st.one_of(st.none(), _USAGE),
        "error": st.one_of(st.none(), st.fixed_dictionaries({"message": _TEXT, "code": _TEXT})),
    },
)


@given(_COMPLETION)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_any_answer_decodes_as_its_events_aggregate(completion: dict[str, Any]) -> None:
    _same(json.dumps(completion).encode())


@given(st.sampled_from(ANSWERS), st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_a_damaged_recorded_answer_fails_or_decodes_alike(relative: str, data: Any) -> None:
    body = (FIXTURES / relative).read_bytes()
    cut = data.draw(st.integers(0, len(body)))
    garbage = data.draw(st.binary(max_size=8))
    _same(body[:cut] + garbage + body[cut + len(garbage) :])


@given(st.binary(max_size=64))
def test_garbage_is_a_parse_error(body: bytes) -> None:
    try:
        decode_chat_response(body, model=MODEL)
    except ParseError:
        return
    except ModelportError:
        # An in-band error object is the upstream's error, as on the events path.
        assert isinstance(_events_path(body), str)
        return


@pytest.mark.parametrize("finish", ["tool_calls", "stop", "length"])
def test_broken_arguments_fail_unless_the_turn_was_cut_off(finish: str) -> None:
    answer = json.loads((FIXTURES / "openai/chat-completion-tool-call.json").read_bytes())
    choice = answer["choices"][0]
    choice["finish_reason"] = finish
    choice["message"]["tool_calls"][0]["function"]["arguments"] = '{"city": "Par'
    body = json.dumps(answer).encode()
    _same(body)
    new = _direct_path(body)
    if finish == "length":
        assert isinstance(new, ChatResponse)
        assert new.tool_calls[0].arguments == '{"city": "Par'
    else:
        assert isinstance(new, str)
        assert new.startswith("ParseError: Tool call") and "not valid JSON" in new
