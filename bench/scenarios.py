"""What is measured: the request shapes and the concurrency levels."""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["CONCURRENCY", "SCENARIOS", "Scenario", "hold_body"]

#: Closed-loop connections per run.
CONCURRENCY = (1, 16, 64)

_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Say hello in a few words."},
]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One request shape. ``chunks`` is the number of content chunks a stream carries."""

    name: str
    stream: bool
    chunks: int

    def body(self, prefix: str = "") -> bytes:
        """The request body; ``prefix`` is ``bench/`` through the gateway, empty direct."""
        payload: dict[str, object] = {
            # The fake upstream reads the chunk count from the model name. A
            # non-streaming request gets one chat.completion body; should a
            # gateway ask for a stream instead, it gets 8 chunks of about the
            # same text.
            "model": f"{prefix}chunks-{self.chunks}",
            "messages": _MESSAGES,
            "max_tokens": 256,
        }
        if self.stream:
            payload["stream"] = True
        return json.dumps(payload, separators=(",", ":")).encode()


SCENARIOS = (
    Scenario("non-streaming", stream=False, chunks=8),
    Scenario("stream 20 chunks", stream=True, chunks=20),
    Scenario("stream 200 chunks", stream=True, chunks=200),
)


def hold_body(prefix: str, seconds: float) -> bytes:
    """A stream whose upstream sends its first chunk, then waits ``seconds``."""
    payload = {"model": f"{prefix}hold-{seconds:g}", "messages": _MESSAGES, "stream": True}
    return json.dumps(payload, separators=(",", ":")).encode()
