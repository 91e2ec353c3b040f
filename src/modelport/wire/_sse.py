"""Server-sent events, parsed incrementally per the WHATWG rules and written back.

Bytes arrive split at arbitrary boundaries, so the decoder keeps the partial
line between calls (including a ``\\r`` that may be the first half of a
``\\r\\n``). ``data:`` lines of one event are joined with ``\\n``; comments
(``:``) and unknown fields are ignored; an event is dispatched at a blank line.
"""

from __future__ import annotations

import msgspec

from modelport.errors import ParseError

__all__ = ["SSEDecoder", "SSEEvent", "encode_sse"]

#: A single line longer than this is not an SSE stream we could ever finish parsing.
MAX_LINE_BYTES = 16 * 1024 * 1024


class SSEEvent(msgspec.Struct, frozen=True):
    data: str
    event: str = "message"
    id: str | None = None


class SSEDecoder:
    """Feed raw bytes; get back the events completed so far."""

    def __init__(self) -> None:
        self._buffer = b""
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._has_data = False
        self._first_line = True

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:  # an empty read must not forget a pending "\r"
            return []
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._pending_cr = False
        buffer = self._buffer + chunk
        events: list[SSEEvent] = []
        if b"\r" not in buffer:
            # What every server we know sends: "\n" line ends only. One split in C instead
            # of two finds and a slice per line (a streamed chunk is two or three lines).
            lines = buffer.split(b"\n")
            self._buffer = lines.pop()
            line = self._line
            for raw in lines:
                line(raw, events)
            if len(self._buffer) > MAX_LINE_BYTES:
                raise ParseError("An event-stream line exceeded 16 MiB without ending")
            return events
        start = 0
        length = len(buffer)
        while start < length:
            newline = buffer.find(b"\n", start)
            carriage = buffer.find(b"\r", start, newline if newline != -1 else length)
            if carriage != -1:
                end, next_start = carriage, carriage + 1
                if next_start < length and buffer[next_start] == 0x0A:
                    next_start += 1
                elif next_start == length:
                    self._pending_cr = True
            elif newline != -1:
                end, next_start = newline, newline + 1
            else:
                break
            self._line(buffer[start:end], events)
            start = next_start
        self._buffer = buffer[start:]
        if len(self._buffer) > MAX_LINE_BYTES:
            raise ParseError("An event-stream line exceeded 16 MiB without ending")
        return events

    def close(self) -> list[SSEEvent]:
        """End of input: a final event without its blank line is discarded, per the spec."""
        events: list[SSEEvent] = []
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = b""
        return events

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"The event stream is not valid UTF-8: {raw[:80]!r}") from exc
        if self._first_line:
            self._first_line = False
            line = line.removeprefix("\ufeff")
        if not line:
            if self._has_data:
                data = self._data
                events.append(
                    SSEEvent(
                        data=data[0] if len(data) == 1 else "\n".join(data),
                        event=self._event or "message",
                        id=self._id,
                    )
                )
            self._data = []
            self._event = ""
            self._has_data = False
            return
        if line[0] == ":":
            return
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._has_data = True
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value


def encode_sse(data: bytes | str, event: str | None = None) -> bytes:
    """One SSE frame. ``data`` must not contain newlines (JSON from msgspec never does)."""
    if isinstance(data, str):
        data = data.encode()
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
