"""An SDK plugin with one handler: ``python _one_handler_plugin.py complete|stream``.

``complete`` registers only ``on_completion_request`` (it must still answer
``provider.stream``); ``stream`` registers only ``on_stream_request`` (it must
still answer ``provider.complete``).
"""

from __future__ import annotations

import sys

from modelport.plugin_sdk import Request, llm_provider, plugin

KIND = sys.argv[1]
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


@plugin.on_start
async def start():
    await llm_provider.register(f"only-{KIND}", models=[{"id": "m"}])


if KIND == "complete":

    @llm_provider.on_completion_request
    async def complete(request: Request):
        message = {"role": "assistant", "content": "whole answer"}
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": request.model,
            "choices": [{"index": 0, "message": message, "finish_reason": "length"}],
            "usage": USAGE,
        }

else:

    @llm_provider.on_stream_request
    async def stream(request: Request):
        yield "streamed "
        yield {"choices": [{"index": 0, "delta": {"content": "answer"}, "finish_reason": "length"}]}
        yield {"choices": [], "usage": USAGE}


if __name__ == "__main__":
    plugin.run()
