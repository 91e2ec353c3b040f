"""A plugin that misbehaves at scale: ``python _faulty_plugin.py MODE PROVIDER``.

Standard library only. Modes:

* ``huge_line``: registers and starts, then answers a provider request with a
  single 100 MB line on stdout;
* ``stderr_flood``: registers and starts, then writes 64 KiB lines to stderr as
  fast as it can for ever, while it answers requests as ``ok`` would;
* ``exit_in_register``: sends ``provider.register`` during ``initialize`` and
  exits before the host can answer.
"""

from __future__ import annotations

import json
import os
import sys
import threading

MODE = sys.argv[1]
PROVIDER = sys.argv[2] if len(sys.argv) > 2 else "faulty"
HUGE = 100 * 1000 * 1000


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def register() -> None:
    send(
        {
            "jsonrpc": "2.0",
            "id": 1000,
            "method": "provider.register",
            "params": {
                "providerId": PROVIDER,
                "name": "Faulty",
                "models": [{"id": "m1", "name": "Model One"}],
            },
        }
    )


def flood_stderr() -> None:
    line = b"e" * 65535 + b"\n"
    while True:
        os.write(2, line)


def completion(text: str) -> dict:
    message = {"role": "assistant", "content": text}
    return {
        "id": "c1",
        "object": "chat.completion",
        "model": "m1",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def main() -> None:
    for line in sys.stdin:
        message = json.loads(line)
        method, id = message.get("method"), message.get("id")
        if method == "initialize":
            register()
            if MODE == "exit_in_register":
                os._exit(4)
            sys.stdin.readline()  # the host's answer to provider.register
            send({"jsonrpc": "2.0", "id": id, "result": {}})
            if MODE == "stderr_flood":
                threading.Thread(target=flood_stderr, daemon=True).start()
        elif method == "shutdown":
            send({"jsonrpc": "2.0", "id": id, "result": {}})
        elif method == "exit":
            return
        elif method in ("provider.stream", "provider.complete"):
            if MODE == "huge_line":
                sys.stdout.buffer.write(b'{"jsonrpc": "2.0", "x": "' + b"x" * HUGE + b'"}\n')
                sys.stdout.flush()
                continue
            send({"jsonrpc": "2.0", "id": id, "result": completion("fine")})


if __name__ == "__main__":
    main()
