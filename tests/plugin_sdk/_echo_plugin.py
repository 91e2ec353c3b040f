"""A plugin written with the SDK, used by the SDK tests.

``echo-1`` streams the last user message back word by word (an async
generator); ``tools-1`` streams two tool calls out of index order; the text
``rate`` raises a RateLimitError (``quota``, a subclass of it) and ``wait`` waits to be cancelled.
Completions go through an explicit completion handler.
"""

from __future__ import annotations

import asyncio
import json
import sys

from modelport.errors import AuthError, RateLimitError
from modelport.plugin_sdk import Request, llm_provider, plugin, send_chunk, send_error, send_reply


class QuotaExceeded(RateLimitError):
    """A plugin's own error class: the host knows it as a RateLimitError."""


USAGE = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}


@plugin.on_start
async def start(info):
    print(f"starting as {info.plugin_name}")  # stdout is the protocol's: this goes to stderr
    await llm_provider.register(
        "Echo Bot",
        name="Echo",
        models=[{"id": "echo-1", "contextWindow": 4096}, {"id": "tools-1"}],
        config_fields=[{"key": "prefix", "label": "Prefix", "type": "text"}],
    )


@plugin.on_stop
def stop():
    print("on_stop ran", file=sys.stderr, flush=True)


@llm_provider.on_stream_request
async def stream(request: Request):
    text = request.messages[-1]["content"]
    if text == "rate":
        raise RateLimitError("slow down", status=429, retry_after=3)
    if text == "quota":
        raise QuotaExceeded("quota used up", status=429, retry_after=9)
    if text == "wait":
        yield "waiting "
        try:
            await asyncio.sleep(60)
        finally:
            print(f"handler cancelled {request.request_id}", file=sys.stderr, flush=True)
    if request.model == "tools-1":

        def call(index, **fields):
            return {
                "choices": [{"index": 0, "delta": {"tool_calls": [{"index": index, **fields}]}}]
            }

        yield call(1, id="b", function={"name": "second", "arguments": '{"x"'})
        yield call(0, id="a", function={"name": "first", "arguments": "{}"})
        yield call(1, function={"arguments": ": 1}"})
        yield {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": USAGE}
        return
    if text == "last chunk reply":  # relays chunks, then answers with the last one
        first = {"choices": [{"index": 0, "delta": {"content": "one "}}]}
        last = {"choices": [{"index": 0, "delta": {"content": "two"}, "finish_reason": "stop"}]}
        send_chunk(request.request_id, first)
        send_chunk(request.request_id, last)
        send_reply(request.request_id, last, True)
        return
    for word in (request.config.get("prefix", "") + text).split():
        yield word + " "
    yield {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": USAGE}


@llm_provider.on_completion_request
async def complete(request: Request):
    if request.model == "tools-1":
        return {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "explicit"},
                    "finish_reason": "length",
                }
            ]
        }
    text = request.messages[-1]["content"]
    if text == "manual":
        message = {"role": "assistant", "content": "answered by hand"}
        send_reply(request.request_id, {"choices": [{"index": 0, "message": message}]})
        return None
    if text == "manual error":
        send_error(request.request_id, AuthError("bad key", status=401))
        return None
    if text == "failed reply":  # the guide's shape: sendReply(requestId, response, success)
        send_reply(request.request_id, {"error": {"message": "upstream said no"}}, False)
        return None
    if text == "options":
        seen = {"providerConfig": request.options.get("providerConfig"), "body": request.body}
        return {"choices": [{"index": 0, "message": {"content": json.dumps(seen)}}]}
    # The coroutine style: send chunks, return nothing, and the SDK answers with their sum.
    send_chunk(request.request_id, "sent ")
    send_chunk(request.request_id, {"choices": [{"index": 0, "delta": {"content": "chunks"}}]})


if __name__ == "__main__":
    plugin.run()
