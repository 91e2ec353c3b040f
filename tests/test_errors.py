from __future__ import annotations

import pickle

import pytest

from modelport import errors
from modelport.errors import (
    AuthError,
    ContextTooLongError,
    ModelportError,
    NetworkError,
    PluginError,
    RateLimitError,
    UpstreamError,
    error_from_dict,
)
from modelport.wire._errors import error_for_status, parse_retry_after


def test_message_names_its_context() -> None:
    exc = NetworkError("Cannot reach it", connection="local", url="http://x/v1", model="llama")
    assert str(exc) == "Cannot reach it (connection 'local', model 'llama', url http://x/v1)"


@pytest.mark.parametrize(
    "exc",
    [
        RateLimitError("slow down", connection="c", status=429, retry_after=2.5),
        ContextTooLongError("too long", limit=8192, actual=9000, model="m"),
        PluginError("crashed", plugin="my-plugin", connection="p"),
        UpstreamError("boom", status=503, body="<html>"),
    ],
)
def test_errors_pickle_and_travel_as_json_with_every_attribute(exc: ModelportError) -> None:
    for copy in (pickle.loads(pickle.dumps(exc)), error_from_dict(exc.to_dict())):
        assert type(copy) is type(exc)
        assert vars(copy) == vars(exc)
        assert str(copy) == str(exc)


def test_a_foreign_subclass_travels_as_its_nearest_known_class() -> None:
    class UpstreamBusy(RateLimitError):
        pass

    copy = error_from_dict(UpstreamBusy("busy", retry_after=2.0).to_dict())
    assert type(copy) is RateLimitError and copy.retry_after == 2.0 and copy.retryable


def test_unknown_class_from_a_plugin_becomes_the_base() -> None:
    exc = error_from_dict({"class": "Weird", "message": "hm", "status": 418})
    assert type(exc) is ModelportError and exc.status == 418


def test_retryable_classification() -> None:
    assert NetworkError("x").retryable and RateLimitError("x").retryable
    assert not AuthError("x").retryable
    assert UpstreamError("x", status=529).retryable
    assert UpstreamError("x", status=504).retryable
    assert not UpstreamError("x", status=501).retryable


def test_hierarchy_is_drawn_in_the_docstring() -> None:
    assert errors.__doc__ is not None
    for name in errors.__all__:
        if name != "error_from_dict":
            assert name in errors.__doc__


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, errors.AuthError),
        (403, errors.AuthError),
        (429, errors.RateLimitError),
        (404, errors.ModelNotFoundError),
        (400, errors.InvalidRequestError),
        (500, errors.UpstreamError),
        (529, errors.UpstreamError),
    ],
)
def test_error_for_status(status: int, cls: type[ModelportError]) -> None:
    exc = error_for_status(status, "msg", body=b"x" * 2000)
    assert type(exc) is cls and exc.status == status
    assert exc.body is not None and len(exc.body) < 600


def test_context_overflow_names_limit_and_actual() -> None:
    openai = error_for_status(
        400,
        "This model's maximum context length is 8192 tokens. However, your messages "
        "resulted in 9000 tokens.",
        code="context_length_exceeded",
    )
    anthropic = error_for_status(400, "prompt is too long: 208310 tokens > 200000 maximum")
    assert isinstance(openai, ContextTooLongError) and (openai.limit, openai.actual) == (8192, 9000)
    assert isinstance(anthropic, ContextTooLongError)
    assert (anthropic.limit, anthropic.actual) == (200000, 208310)
    summed = error_for_status(
        400,
        "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, "
        "decrease input length or `max_tokens` and try again",
    )
    assert isinstance(summed, ContextTooLongError)
    assert (summed.limit, summed.actual) == (200000, 209573)


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    assert error_for_status(429, "x", headers={"retry-after": "7"}).retry_after == 7.0
