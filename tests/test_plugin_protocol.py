from __future__ import annotations

import json

import pytest

from modelport import plugin_protocol
from modelport.errors import ContextTooLongError, PluginError, RateLimitError


def test_messages_are_one_line_each() -> None:
    line = plugin_protocol.encode(plugin_protocol.request(1, "initialize", {"text": "a\u2028b\nc"}))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line)["params"]["text"] == "a\u2028b\nc"
    assert plugin_protocol.response(3) == {"jsonrpc": "2.0", "id": 3, "result": {}}
    assert "id" not in plugin_protocol.notification("exit")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"hello", "not JSON"),
        (b"[1, 2]", "not a JSON-RPC 2.0 message"),
        (b'{"jsonrpc": "1.0", "id": 1, "result": {}}', "not a JSON-RPC 2.0 message"),
        (b'{"jsonrpc": "2.0", "method": 5}', "'method' is not a string"),
        (b'{"jsonrpc": "2.0", "id": 1}', "one of result/error"),
        (b'{"jsonrpc": "2.0", "id": 1, "result": 1, "error": {}}', "one of result/error"),
        (b'{"jsonrpc": "2.0", "id": 1, "error": "bad"}', "malformed error"),
        (b'{"jsonrpc": "2.0", "id": 1, "error": null}', "malformed error"),
        (b'{"jsonrpc": "2.0", "id": [1], "method": "x"}', "'id' is neither"),
    ],
)
def test_bad_lines_are_protocol_errors(line: bytes, message: str) -> None:
    with pytest.raises(plugin_protocol.ProtocolError, match=message):
        plugin_protocol.parse_line(line)


def test_errors_keep_class_status_and_retry_after_across_the_wire() -> None:
    error = RateLimitError("slow down", status=429, retry_after=2.5, connection="acme")
    wire = json.loads(json.dumps(plugin_protocol.error_to_rpc(error)))
    back = plugin_protocol.error_from_rpc(wire, plugin="p")
    assert type(back) is RateLimitError
    assert (back.message, back.status, back.retry_after) == ("slow down", 429, 2.5)

    limit = plugin_protocol.error_from_rpc(
        plugin_protocol.error_to_rpc(ContextTooLongError("too long", limit=10, actual=20)),
        plugin="p",
    )
    assert isinstance(limit, ContextTooLongError) and (limit.limit, limit.actual) == (10, 20)


def test_unnamed_errors_become_plugin_errors_naming_the_plugin() -> None:
    plain = plugin_protocol.error_from_rpc({"code": -32603, "message": "boom"}, plugin="p")
    assert isinstance(plain, PluginError) and plain.plugin == "p" and "-32603" in str(plain)
    unknown = plugin_protocol.error_from_rpc(
        {"code": -32000, "message": "odd", "data": {"class": "NoSuchClass"}}, plugin="p"
    )
    assert isinstance(unknown, PluginError)
    crashed = plugin_protocol.error_to_rpc(ValueError("bad value"))
    assert crashed["data"] == {"class": "PluginError"} and "bad value" in crashed["message"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"class": "RateLimitError", "retry_after": "3", "status": "429"}, (429, 3.0)),
        ({"class": "RateLimitError", "retry_after": "soon", "status": [429]}, (None, None)),
        ({"class": "UpstreamError", "status": "503.0", "retry_after": -1}, (503, None)),
        ({"class": "UpstreamError", "status": True, "retry_after": float("nan")}, (None, None)),
    ],
)
def test_error_fields_are_converted_or_dropped(data: dict, expected: tuple) -> None:
    error = plugin_protocol.error_from_rpc(
        {"code": -32000, "message": "m", "data": data}, plugin="p"
    )
    assert type(error).__name__ == data["class"]
    assert (error.status, error.retry_after) == expected


def test_malformed_fields_still_make_a_well_formed_error() -> None:
    error = plugin_protocol.error_from_rpc(
        {
            "code": -32000,
            "message": "m",
            "data": {"class": "ContextTooLongError", "limit": "lots", "connection": 5},
        },
        plugin="p",
    )
    assert isinstance(error, ContextTooLongError)
    assert error.limit is None and error.connection is None
    assert str(error) == "m"


def test_a_subclass_travels_as_the_nearest_modelport_class() -> None:
    class QuotaExceeded(RateLimitError):
        pass

    class Mine(ContextTooLongError):
        pass

    wire = plugin_protocol.error_to_rpc(QuotaExceeded("quota", retry_after=5))
    assert wire["data"]["class"] == "RateLimitError"
    back = plugin_protocol.error_from_rpc(wire, plugin="p")
    assert type(back) is RateLimitError and back.retry_after == 5
    nested = plugin_protocol.error_from_rpc(
        plugin_protocol.error_to_rpc(Mine("long", limit=3)), plugin="p"
    )
    assert type(nested) is ContextTooLongError and nested.limit == 3
