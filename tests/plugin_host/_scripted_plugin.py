"""A plugin without the SDK whose behaviour the test picks: ``python _scripted_plugin.py MODE``.

Plain JSON lines on stdin/stdout, standard library only, so that it starts fast
and misbehaves exactly as asked.

Modes: ``ok`` (a well-behaved echo), ``crash_mid_stream``, ``hang`` (never
answers provider requests), ``garbage`` (prints a non-JSON line mid-stream),
``register_twice``, ``exit_in_initialize``, ``crash_after_start``,
``error_reply`` (answers with a RateLimitError), ``shadow_builtin``,
``no_initialize_answer``, ``ignore_shutdown``, ``crash_if_file`` (``crash_after_start``
while a file named ``crash`` exists in its folder), ``reverse`` (holds provider
requests and answers each batch of three in reverse order, echoing each request's
last message; logs every JSON-RPC id it receives), ``ignore_all`` (no answer to
unknown methods or unknown providers; streams through a ``$/cancelRequest``),
``string_fields`` (errors whose numbers are strings or junk, picked by the message),
``requires_key_no_field`` (requiresKey with only a text field), ``capability_list``
(capabilities as a list of strings, one unknown), ``final_last_chunk``, ``final_empty``,
``final_null``, ``final_chunk_with_usage`` (the answer to ``provider.stream`` is the
last chunk, ``{}``, ``null`` or a chunk holding the usage the chunks lacked),
``final_thin`` (chunks with no finish reason or usage, then ``{}``),
``fail_after_refusal`` (fails ``initialize`` once its registration is refused),
``tools`` (when the last
user message says ``RUN: <command>`` and tools are offered, calls the one that message
names, else the first, with the command as its ``command`` or ``cmd``; answers a tool's
result with ``tool said: <result>``, anything else with ``pong``).
"""

from __future__ import annotations

import json
import os
import sys
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
PROVIDER = sys.argv[2] if len(sys.argv) > 2 else "scripted"
_ids = iter(range(1000, 10**9))


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def read() -> dict | None:
    line = sys.stdin.readline()
    if not line:
        return None
    return json.loads(line)


def call(method: str, params: dict) -> dict:
    """A request to the host; the host's answer is read synchronously."""
    id = next(_ids)
    send({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    while True:
        message = read()
        if message is None:
            sys.exit(3)
        if message.get("id") == id and "method" not in message:
            return message


def register(provider_id: str = PROVIDER) -> dict:
    return call(
        "provider.register",
        {
            "providerId": provider_id,
            "name": "Scripted",
            "requiresKey": MODE == "requires_key_no_field",
            "configFields": [{"key": "greeting", "label": "Greeting", "type": "text"}],
            "models": [{"id": "m1", "name": "Model One", "contextWindow": 1000}],
            **(
                {"capabilities": ["chat", "streaming", "vision", "telepathy"]}
                if MODE == "capability_list"
                else {}
            ),
        },
    )


def chunk(
    request_id: str, delta: dict, finish: str | None = None, usage: dict | None = None
) -> dict:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "c1", "object": "chat.completion.chunk", "model": "m1", "choices": [choice]}
    if usage is not None:
        body["usage"] = usage
    send(
        {
            "jsonrpc": "2.0",
            "method": "provider.chunk",
            "params": {"requestId": request_id, "chunk": body},
        }
    )
    return body


def completion(text: str) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion",
        "model": "m1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


held: list[tuple[int, str]] = []


def _text(content: object) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def tool_turn(method: str, id: int, rid: str, options: dict) -> None:
    """The ``tools`` mode: a call to an offered tool, or an answer to a tool's result."""
    last = options["messages"][-1]
    tools = [tool["function"]["name"] for tool in options.get("tools") or []]
    said = next(
        (_text(m.get("content")) for m in reversed(options["messages"]) if m["role"] == "user"), ""
    )
    if last["role"] == "tool" or not tools or "RUN:" not in said:
        text = f"tool said: {_text(last.get('content'))}" if last["role"] == "tool" else "pong"
        if method == "provider.stream":
            chunk(rid, {"role": "assistant", "content": text})
            chunk(rid, {}, "stop")
        send({"jsonrpc": "2.0", "id": id, "result": completion(text)})
        return
    name = next((tool for tool in tools if tool in said), tools[0])
    command = said.split("RUN:", 1)[1].strip()
    schema = next(t["function"] for t in options["tools"] if t["function"]["name"] == name)
    known = (schema.get("parameters") or {}).get("properties") or {}
    # The command under whichever of these names the tool takes (both when it says none).
    fields = [key for key in ("command", "cmd") if key in known] or ["command", "cmd"]
    arguments = json.dumps(dict.fromkeys(fields, command))
    call = {"id": "call_scripted", "type": "function", "function": {"name": name}}
    if method == "provider.stream":
        chunk(rid, {"role": "assistant", "tool_calls": [{"index": 0, **call}]})
        fragment = {"index": 0, "function": {"arguments": arguments}}
        chunk(rid, {"tool_calls": [fragment]}, "tool_calls")
        send({"jsonrpc": "2.0", "id": id, "result": {}})
        return
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    call["function"]["arguments"] = arguments
    result = completion("")
    result["choices"][0].update(message=message, finish_reason="tool_calls")
    send({"jsonrpc": "2.0", "id": id, "result": result})


def main() -> None:
    print(f"scripted plugin starting in mode {MODE}", file=sys.stderr, flush=True)
    while True:
        message = read()
        if message is None:
            return
        method = message.get("method")
        id = message.get("id")
        params = message.get("params") or {}
        if method == "initialize":
            if MODE == "exit_in_initialize":
                print("fatal: cannot initialize", file=sys.stderr, flush=True)
                sys.exit(7)
            if MODE == "no_initialize_answer":
                continue
            if MODE in ("shadow_builtin", "fail_after_refusal"):
                answer = register("OpenAI")
                print(f"register answer: {json.dumps(answer)}", file=sys.stderr, flush=True)
                if MODE == "fail_after_refusal":  # what an SDK does when on_start raises
                    error = {"code": -32000, "message": answer["error"]["message"]}
                    send({"jsonrpc": "2.0", "id": id, "error": error})
                    continue
            else:
                register()
            if MODE == "register_twice":
                answer = register()
                print(f"second register: {json.dumps(answer)}", file=sys.stderr, flush=True)
            send({"jsonrpc": "2.0", "id": id, "result": {}})
            if MODE == "crash_if_file" and os.path.exists("crash"):
                print("crashing because ./crash exists", file=sys.stderr, flush=True)
                sys.exit(9)
            if MODE == "crash_after_start":
                time.sleep(0.05)
                print("crashing on purpose", file=sys.stderr, flush=True)
                sys.exit(9)
        elif method == "shutdown":
            if MODE == "ignore_shutdown":
                continue
            send({"jsonrpc": "2.0", "id": id, "result": {}})
        elif method == "exit":
            return
        elif method == "$/cancelRequest":
            print(f"cancelled {params['requestId']}", file=sys.stderr, flush=True)
        elif method in ("provider.stream", "provider.complete"):
            rid = params["requestId"]
            options = params["options"]
            if MODE == "hang":
                continue
            if MODE == "reverse":
                print(f"rpc id {id}", file=sys.stderr, flush=True)
                held.append((id, options["messages"][-1]["content"]))
                if len(held) == 3:
                    for held_id, text in reversed(held):
                        send({"jsonrpc": "2.0", "id": held_id, "result": completion(text)})
                    held.clear()
                continue
            if MODE == "string_fields":
                data = {
                    "rate": {"class": "RateLimitError", "status": "429", "retry_after": "3"},
                    "upstream": {"class": "UpstreamError", "status": "503", "retry_after": "soon"},
                    "context": {"class": "ContextTooLongError", "limit": "x", "actual": [1]},
                }[options["messages"][-1]["content"]]
                error = {"code": -32000, "message": "sloppy", "data": data}
                send({"jsonrpc": "2.0", "id": id, "error": error})
                continue
            if MODE == "ignore_all":
                if params["providerId"] != PROVIDER:
                    continue
                if method == "provider.stream":
                    for _ in range(15):  # never reads the $/cancelRequest meanwhile
                        chunk(rid, {"content": "x"})
                        time.sleep(0.1)
                    send({"jsonrpc": "2.0", "id": id, "result": completion("x" * 15)})
                    continue
            if MODE == "tools":
                tool_turn(method, id, rid, options)
                continue
            if MODE == "error_reply":
                error = {
                    "code": -32000,
                    "message": "slow down",
                    "data": {"class": "RateLimitError", "status": 429, "retry_after": 7},
                }
                send({"jsonrpc": "2.0", "id": id, "error": error})
                continue
            if MODE in ("env", "config"):
                text = json.dumps(
                    dict(os.environ) if MODE == "env" else options.get("providerConfig")
                )
                if method == "provider.stream":
                    chunk(rid, {"content": text})
                    chunk(rid, {}, "stop")
                send({"jsonrpc": "2.0", "id": id, "result": completion(text)})
                continue
            if method == "provider.complete":
                send({"jsonrpc": "2.0", "id": id, "result": completion("Hello")})
                continue
            chunk(rid, {"role": "assistant", "content": "Hel"})
            if MODE == "crash_mid_stream":
                print("dying mid-stream", file=sys.stderr, flush=True)
                os._exit(5)
            if MODE == "garbage":
                sys.stdout.write("this is not json\n")
                sys.stdout.flush()
                continue
            if MODE == "slow":
                continue  # the next line read may be $/cancelRequest
            if MODE == "final_thin":
                chunk(rid, {"content": "lo"})
                send({"jsonrpc": "2.0", "id": id, "result": {}})
                continue
            chunk(rid, {"content": "lo"})
            if MODE.startswith("final_"):
                # As an upstream without include_usage streams: a finish reason, no usage.
                last = chunk(rid, {}, "length")
                usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
                with_usage = {
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
                    "usage": usage,
                }
                final = {
                    "final_last_chunk": last,
                    "final_chunk_with_usage": with_usage,
                    "final_empty": {},
                }.get(MODE)
                send({"jsonrpc": "2.0", "id": id, "result": final})
                continue
            chunk(rid, {}, "stop")
            send({"jsonrpc": "2.0", "id": id, "result": completion("Hello")})
        elif id is not None and MODE != "ignore_all":
            error = {"code": -32601, "message": f"no method {method}"}
            send({"jsonrpc": "2.0", "id": id, "error": error})


if __name__ == "__main__":
    main()
