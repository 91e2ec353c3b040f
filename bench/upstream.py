"""A fake OpenAI-compatible upstream, fast enough never to be the bottleneck.

A raw :class:`asyncio.Protocol` on uvloop: no framework, no per-request JSON
work. Every answer is canned bytes, built once per shape and cached, so a
request costs one header scan and one ``transport.write``.

What the request's ``model`` selects (the gateway strips ``bench/``):

* ``chunks-N`` — with ``"stream": true``, an SSE stream in the real OpenAI
  ``chat.completion.chunk`` format: a role chunk, ``N`` content chunks, a
  ``finish_reason`` chunk, a usage chunk when ``stream_options.include_usage``
  asked for one, then ``data: [DONE]``. Each event is its own HTTP chunk (as
  OpenAI sends them), and the whole stream goes out in one write: a paced
  writer would cost this process a syscall per chunk and make it, not the
  gateway, the thing measured.
* ``hold-S`` — a stream whose role chunk and first content chunk go out at
  once and the rest ``S`` seconds later: it keeps streams open for the
  "1,000 open streams" memory figure.
* ``error-NNN`` — an OpenAI-style error body with status ``NNN`` (the soak's
  upstream errors).
* anything else without ``stream`` — one ``chat.completion`` JSON body.

Keep-alive always; ``GET /health`` and ``GET /v1/models`` answer too.
Run it as ``python -m bench.upstream --port 0``: it prints ``PORT <n>`` once
listening.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from functools import cache
from typing import cast

__all__ = [
    "UpstreamProtocol",
    "completion_body",
    "error_body",
    "main",
    "serve",
    "stream_body",
]

_ID = "chatcmpl-bench0000000000000000000000"
_CREATED = 1727346168
_MODEL = "gpt-4o-2024-08-06"
_PREFIX = (
    '{"id":"' + _ID + '","object":"chat.completion.chunk","created":' + str(_CREATED) + ","
    '"model":"' + _MODEL + '","system_fingerprint":"fp_5050236cbd","choices":['
)
_WORD = " token"


def _event(choices: str, tail: str = "") -> bytes:
    data = f"data: {_PREFIX}{choices}]{tail}}}\n\n".encode()
    # One HTTP chunk per SSE event, as OpenAI's servers frame them.
    return b"%x\r\n%s\r\n" % (len(data), data)


def _content(text: str) -> str:
    return '{"index":0,"delta":{"content":"' + text + '"},"logprobs":null,"finish_reason":null}'


@cache
def stream_body(chunks: int, usage: bool) -> tuple[bytes, bytes]:
    """The stream's (head, rest): head is the status line, headers, role and first chunk."""
    head = (
        b"HTTP/1.1 200 OK\r\n"
        b"content-type: text/event-stream; charset=utf-8\r\n"
        b"cache-control: no-cache\r\n"
        b"transfer-encoding: chunked\r\n"
        b"\r\n"
    )
    role = '{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
    role += '"logprobs":null,"finish_reason":null}'
    head += _event(role)
    events = [_event(_content(_WORD)) for _ in range(chunks)]
    head += events[0] if events else b""
    rest = events[1:]
    rest.append(_event('{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}'))
    if usage:
        rest.append(
            _event(
                "",
                f',"usage":{{"prompt_tokens":12,"completion_tokens":{chunks},'
                f'"total_tokens":{chunks + 12}}}',
            )
        )
    done = b"data: [DONE]\n\n"
    rest.append(b"%x\r\n%s\r\n" % (len(done), done))
    rest.append(b"0\r\n\r\n")
    return head, b"".join(rest)


@cache
def completion_body() -> bytes:
    """A whole non-streaming ``chat.completion`` response, headers included."""
    body = (
        '{"id":"' + _ID + '","object":"chat.completion","created":' + str(_CREATED) + ","
        '"model":"' + _MODEL + '","choices":[{"index":0,"message":{"role":"assistant",'
        '"content":"Hello! How can I help you today?","refusal":null},'
        '"logprobs":null,"finish_reason":"stop"}],'
        '"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21},'
        '"system_fingerprint":"fp_5050236cbd"}'
    ).encode()
    return _plain(b"200 OK", body)


@cache
def error_body(status: int) -> bytes:
    """An OpenAI-style error answer with ``status``, headers included."""
    reason = {429: b"Too Many Requests", 500: b"Internal Server Error"}.get(status, b"Error")
    body = b'{"error":{"message":"bench upstream error %d","type":"server_error"}}' % status
    return _plain(b"%d %s" % (status, reason), body)


def _plain(status: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        status,
        len(body),
        body,
    )


_MODELS = _plain(b"200 OK", b'{"object":"list","data":[{"id":"chunks-20","object":"model"}]}')
_HEALTH = _plain(b"200 OK", b'{"status":"ok"}')
_NOT_FOUND = _plain(b"404 Not Found", b'{"error":{"message":"no such route"}}')


def _model(body: bytes) -> bytes:
    """The ``model`` string of a JSON body, by byte search (a full parse costs ~10x)."""
    at = body.find(b'"model"')
    if at < 0:
        return b""
    start = body.find(b'"', body.find(b":", at + 7)) + 1
    return body[start : body.find(b'"', start)]


def _is_stream(body: bytes) -> bool:
    return b'"stream":true' in body or b'"stream": true' in body


def _wants_usage(body: bytes) -> bool:
    return b'"include_usage":true' in body or b'"include_usage": true' in body


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: parse requests off the buffer, answer each from the cache."""

    __slots__ = ("_buffer", "_held", "_transport")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._held: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; same methods.
        self._transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._held is not None:
            self._held.cancel()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        # Loop: a client may pipeline, and one read may hold several requests.
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            length = _content_length(head)
            total = end + 4 + length
            if len(buffer) < total:
                return
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            self._answer(head, body)

    def _answer(self, head: bytes, body: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        line = head[: head.find(b"\r\n")]
        if line.startswith(b"POST ") and b"/chat/completions" in line:
            model = _model(body)
            if model.startswith(b"error-"):
                transport.write(error_body(int(model[6:])))
            elif model.startswith(b"hold-"):
                self._hold(float(model[5:]), _wants_usage(body))
            elif _is_stream(body):
                chunks = int(model[7:]) if model.startswith(b"chunks-") else 20
                first, rest = stream_body(chunks, _wants_usage(body))
                transport.write(first + rest)
            else:
                transport.write(completion_body())
        elif line.startswith(b"GET /health"):
            transport.write(_HEALTH)
        elif line.startswith(b"GET ") and b"/models" in line:
            transport.write(_MODELS)
        else:
            transport.write(_NOT_FOUND)

    def _hold(self, seconds: float, usage: bool) -> None:
        assert self._transport is not None
        first, rest = stream_body(20, usage)
        self._transport.write(first)
        loop = asyncio.get_running_loop()
        self._held = loop.call_later(seconds, self._release, rest)

    def _release(self, rest: bytes) -> None:
        self._held = None
        if self._transport is not None:
            self._transport.write(rest)


def _content_length(head: bytes) -> int:
    at = head.find(b"ontent-Length:")
    if at < 0:
        at = head.find(b"ontent-length:")
    if at < 0:
        return 0
    end = head.find(b"\r\n", at)
    return int(head[at + 14 : end if end >= 0 else len(head)])


async def serve(host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Start listening; the caller runs the loop."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(UpstreamProtocol, host, port, backlog=4096)


async def _run(port: int) -> None:
    server = await serve(port=port)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.upstream [--port N]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    import uvloop

    try:
        uvloop.run(_run(args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
