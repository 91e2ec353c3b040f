"""Same-format passthrough: an upstream's own bytes, relayed to a client of the same API.

An OpenAI client on an OpenAI-compatible upstream, or an Anthropic client on
an Anthropic upstream, needs no decode-then-encode: a relay forwards the
upstream's bytes and rewrites only what must change —

* the answer's ``model`` (the bare model id upstream) back to the address the
  client asked for, and its ``id`` to the gateway's own, which the ledger
  records;
* for an OpenAI client that did not ask for ``stream_options.include_usage``,
  the usage chunk the gateway asked for on the ledger's behalf is dropped;
* an OpenAI ``finish_reason`` the canonical path would have written
  differently (``stop`` on a turn that made tool calls, ``eos``, …) is
  rewritten to what that path writes.

What the ledger needs is read with a cheap scan: one regular-expression
search per upstream read finds the few frames that matter (usage, finish,
errors, the end), and only those are decoded, with the wire module's own
shapes. A read with none of them is forwarded after two ``bytes.replace``.

The guarantees of the decode-encode path hold: nothing is yielded before the
stream's first output (so an error or overload right after ``message_start``
or a role-only chunk can still be retried), an in-band error ends the stream
with that error (raised after the frames before it were yielded), a stream
that stops before its end raises what the decoder raises, and the usage the
ledger and budgets see is what the decoder would have produced.

A relay yields items: ``bytes`` for the client, and canonical events
(:class:`~modelport.events.UsageEvent`, and one empty
:class:`~modelport.events.TextEvent` marking the first output, for time to
first token) for the ledger, the budgets and the metrics, never for the client.

An upstream that answers a stream request with one JSON body, or a plain
request with a stream, is transcoded through the canonical events and the
API's own encoder (:meth:`OpenAIRelay.transcode_stream`,
:meth:`OpenAIRelay.transcode_answer`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from modelport.aggregate import aggregate
from modelport.errors import ModelportError
from modelport.events import (
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallDeltaEvent,
    ToolCallStartEvent,
    UsageEvent,
)
from modelport.wire import (
    anthropic_messages,
    anthropic_messages_server,
    openai_chat,
    openai_chat_server,
)
from modelport.wire._errors import truncated_stream

__all__ = ["AnthropicRelay", "OpenAIRelay", "RelayItem"]

#: What a relay yields: bytes for the client, events for the ledger (see the module).
RelayItem = bytes | StreamEvent

_OUTPUT_EVENTS = (TextEvent, ReasoningEvent, ToolCallStartEvent, ToolCallDeltaEvent)

#: What a Chat Completions frame that matters holds (written without spaces).
_OPENAI_MARKS = (b'"finish_reason":"', b'"usage":{', b'"error"', b"[DONE]", b"event:")

#: The marker of the first output (the ledger and the metrics time it).
_FIRST_OUTPUT = TextEvent(text="")


class _Head(msgspec.Struct):
    id: str | None = None
    model: str | None = None


_HEAD = msgspec.json.Decoder(_Head)


class _AnthropicStart(msgspec.Struct):
    message: _Head | None = None


_ANTHROPIC_START = msgspec.json.Decoder(_AnthropicStart)


def _literal(frame: bytes, key: bytes, value: str | None) -> bytes | None:
    """How ``"key": value`` is written in ``frame`` (with or without a space), if it is."""
    if value is None:
        return None
    encoded = msgspec.json.encode(value)
    for candidate in (b'"' + key + b'":' + encoded, b'"' + key + b'": ' + encoded):
        if candidate in frame:
            return candidate
    return None


def _data(frame: bytes) -> bytes:
    """The ``data:`` of one SSE frame (its lines joined, as the SSE parser does)."""
    lines = []
    for line in frame.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(lines)


class _SSERelay:
    """Framing, holding and the id/model rewrite that both APIs' relays share."""

    #: Searched once per read: a frame the scan must look at more closely.
    _MARKS: re.Pattern[bytes]
    #: Found once: the first frame that is output (what ends the hold).
    _OUTPUT: re.Pattern[bytes]

    def __init__(self, *, model: str, response_id: str) -> None:
        self.model = model
        self.response_id = response_id
        self._model_new = b'"model":' + msgspec.json.encode(model)
        self._id_new = b'"id":' + msgspec.json.encode(response_id)
        self._model_old: bytes | None = None
        self._id_old: bytes | None = None
        self._learned = False
        self._partial = b""
        self._sep = b"\n\n"
        self._held: list[RelayItem] | None = []
        self._deferred: ModelportError | None = None
        self._done = False

    # -- what the provider calls -----------------------------------------------------------

    def feed(self, chunk: bytes) -> list[RelayItem]:
        """The items these bytes complete (bytes for the client, events for the ledger)."""
        if self._deferred is not None:
            self._raise_deferred()
        if self._done:
            return []
        buffer = self._partial + chunk if self._partial else chunk
        if not self._learned and b"\r\n" in buffer:
            self._sep = b"\r\n\r\n"
        cut = buffer.rfind(self._sep)
        if cut < 0:
            self._partial = buffer
            return []
        cut += len(self._sep)
        if cut == len(buffer):
            self._partial = b""
            items = self._batch(buffer)
        else:
            self._partial = buffer[cut:]
            items = self._batch(buffer[:cut])
        return items if self._held is None else self._release(items)

    def close(self) -> list[RelayItem]:
        """The end of the body: what was left, or the error the decoder would raise."""
        self._raise_deferred()
        items: list[RelayItem] = []
        if not self._done and self._partial.strip():
            # A last frame without its blank line is still worth reading.
            items = self._batch(self._partial + self._sep)
            self._partial = b""
            self._raise_deferred()
        if not self._done:
            if self._held:
                # Nothing reached the client: the decoder's own words for what is wrong
                # (data that is not JSON, say), as the decode-encode path would say it.
                decoder = self._new_decoder()
                decoder.feed(b"".join(i for i in self._held if type(i) is bytes))
                decoder.close()
            self._check_end()
        self._done = True
        held = self._held or []
        self._held = None
        return [*held, *items]

    # -- shared mechanics --------------------------------------------------------------------

    def _raise_deferred(self) -> None:
        if self._deferred is not None:
            error, self._deferred = self._deferred, None
            self._done = True
            raise error

    def _fail(self, error: ModelportError, items: list[RelayItem]) -> list[RelayItem]:
        """End with ``error``: now if nothing is out or held, else after ``items`` go out."""
        if self._held is not None:
            # Nothing reached the client yet: fail at once, so the call can be retried.
            self._done = True
            raise error
        self._deferred = error
        return items

    def _release(self, items: list[RelayItem]) -> list[RelayItem]:
        held = self._held
        if held is None:
            return items
        held.extend(items)
        return []

    def _open(self) -> list[RelayItem]:
        """The first output arrived: what was held goes out, after the output marker."""
        held = self._held or []
        self._held = None
        return [_FIRST_OUTPUT, *held]

    def _rewrite(self, data: bytes) -> bytes:
        if self._id_old is not None:
            data = data.replace(self._id_old, self._id_new)
        if self._model_old is not None:
            data = data.replace(self._model_old, self._model_new)
        return data

    def _frames(self, data: bytes) -> list[bytes]:
        sep = self._sep
        return [frame + sep for frame in data.split(sep) if frame]

    def _batch(self, data: bytes) -> list[RelayItem]:
        raise NotImplementedError

    def _new_decoder(self) -> Any:
        raise NotImplementedError

    def _check_end(self) -> None:
        raise truncated_stream()


class OpenAIRelay(_SSERelay):
    """Relays a ``chat.completion.chunk`` stream (or a ``chat.completion``) to an OpenAI client.

    ``include_usage`` is the client's own ``stream_options.include_usage``:
    the upstream is always asked for usage (the ledger needs it), and a client
    that did not ask does not get it.
    """

    _MARKS = re.compile(
        rb'"(?:usage|finish_reason|error)"\s*:\s*[{"]|\[DONE\]|^event:\s*error', re.MULTILINE
    )
    _OUTPUT = re.compile(
        rb'"(?:content|reasoning_content|reasoning|refusal)"\s*:\s*"[^"]'
        rb'|"(?:tool_calls|function_call)"\s*:\s*[\[{]|"finish_reason"\s*:\s*"'
    )
    _CALLS = re.compile(rb'"(?:tool_calls|function_call)"\s*:\s*[\[{]\s*[^\]\s]')
    _REFUSAL = re.compile(rb'"refusal"\s*:\s*"[^"]')
    _FINISH = re.compile(rb'"finish_reason"\s*:\s*"((?:[^"\\]|\\.)*)"')
    _ERROR_EVENT = re.compile(rb"^event:\s*error", re.MULTILINE)

    def __init__(self, *, model: str, response_id: str, include_usage: bool) -> None:
        super().__init__(model=model, response_id=response_id)
        self._include_usage = include_usage
        self._finished = False
        self._calls = False
        self._refused = False
        self._last_usage: UsageEvent | None = None

    def _learn(self, data: bytes) -> None:
        """The upstream's id and model as its first chunk writes them (comments skipped)."""
        for frame in data.split(self._sep):
            payload = _data(frame).strip()
            if not payload or payload == b"[DONE]":
                continue
            self._learned = True
            try:
                head = _HEAD.decode(payload)
            except (msgspec.DecodeError, msgspec.ValidationError):
                return  # the per-frame decode says what is wrong with it, if it matters
            self._id_old = _literal(frame, b"id", head.id)
            self._model_old = _literal(frame, b"model", head.model)
            return

    def _batch(self, data: bytes) -> list[RelayItem]:
        if not self._learned:
            self._learn(data)
        if self._held is None and not (
            b"_call" in data  # tool_calls, function_call
            or b'"finish_reason":"' in data
            or b'"usage":{' in data
            or b'"refusal":"' in data
            or b'"error"' in data
            or b"[DONE]" in data
            or b"event:" in data
            or b'": ' in data  # JSON written with spaces: the slow path decides
        ):
            # The common read: text deltas only. A few `in` (tens of ns each; a regular
            # expression over the same literals costs microseconds), then the two rewrites.
            return [self._rewrite(data)]
        items: list[RelayItem] = []
        if self._held is not None and self._OUTPUT.search(data):
            items = self._open()
        if not self._calls and (b'"tool_calls"' in data or b'"function_call"' in data):
            self._calls = self._CALLS.search(data) is not None
        if not self._refused and b'"refusal"' in data:
            self._refused = self._REFUSAL.search(data) is not None
        if not self._may_be_marked(data):
            items.append(self._rewrite(data))
            return items
        # Some frame of this read carries usage, a finish, an error or the end: those
        # frames alone are looked at, found by `find`; the bytes between go as they are.
        out: list[bytes] = []
        position = 0
        for start, end in self._marked_spans(data):
            frame = data[start:end]
            if self._MARKS.search(frame) is None:
                continue
            out.append(data[position:start])
            try:
                kept = self._marked(frame, items)
            except ModelportError as error:
                if any(out):
                    items.append(self._rewrite(b"".join(out)))
                return self._fail(error, items)
            out.append(kept)
            position = end
            if self._done:
                break  # nothing after [DONE] is read, as the decoder reads nothing after it
        if not self._done:
            out.append(data[position:])
        relayed = b"".join(out)
        if relayed:
            items.append(self._rewrite(relayed))
        return items

    def _marked_spans(self, data: bytes) -> list[tuple[int, int]]:
        """The (start, end) of each frame of ``data`` that may be marked, in order."""
        sep = self._sep
        starts: set[int] = set()
        for literal in _OPENAI_MARKS:
            at = data.find(literal)
            while at >= 0:
                starts.add(data.rfind(sep, 0, at) + 1)
                at = data.find(literal, at + len(literal))
        if b'": ' in data:
            starts.update(data.rfind(sep, 0, m.start()) + 1 for m in self._MARKS.finditer(data))
        spans = []
        for start in sorted(starts):
            begin = start + len(sep) - 1 if start else 0
            end = data.find(sep, begin)
            spans.append((begin, len(data) if end < 0 else end + len(sep)))
        return spans

    def _may_be_marked(self, data: bytes) -> bool:
        """Whether a frame of ``data`` may carry usage, a finish, an error or the end."""
        if (
            b'"finish_reason":"' in data
            or b'"usage":{' in data
            or b'"error"' in data
            or b"[DONE]" in data
            or b"event:" in data
        ):
            return True
        # JSON written with spaces (`"usage": {`): the regular expression decides.
        return b'": ' in data and self._MARKS.search(data) is not None

    def _marked(self, frame: bytes, items: list[RelayItem]) -> bytes:
        """``frame`` as the client gets it (``b""``: dropped); usage goes into ``items``."""
        data = _data(frame)
        if data.strip() == b"[DONE]":
            self._done = True
            return frame
        chunk = openai_chat._decode_chunk(data.decode("utf-8", "replace"))
        if chunk.error is not None or self._ERROR_EVENT.search(frame):
            # The decoder's own words for the error (an in-band error, or `event: error`).
            openai_chat.StreamDecoder().feed(frame)
        usage = chunk.usage
        if usage is None and chunk.x_groq is not None:
            usage = chunk.x_groq.usage
        if usage is not None:
            event = openai_chat._usage(usage, UsageEvent)
            if event != self._last_usage:
                self._last_usage = event
                items.append(event)
            if not self._include_usage:
                if not chunk.choices:
                    return b""  # the usage chunk the gateway asked for on the ledger's behalf
                frame = _without_usage(frame, self._sep)
        found = self._FINISH.search(frame)
        if found is not None and not self._finished:
            self._finished = True
            frame = self._finish(frame, found)
        return frame

    def _finish(self, frame: bytes, found: re.Match[bytes]) -> bytes:
        """The finish chunk, its reason written as the canonical path would write it."""
        raw = found.group(1).decode("utf-8", "replace")
        reason = openai_chat.finish_reason(raw)
        if reason == "stop" and self._calls:
            reason = "tool_calls"
        elif reason == "stop" and self._refused:
            reason = "refusal"
        wire = openai_chat_server._WIRE_FINISH[reason].decode()
        if wire == raw:
            return frame
        return frame[: found.start(1)] + wire.encode() + frame[found.end(1) :]

    def _new_decoder(self) -> Any:
        return openai_chat.StreamDecoder()

    def _check_end(self) -> None:
        if not (self._done or self._finished):
            raise truncated_stream()

    # -- one whole answer ----------------------------------------------------------------------

    def answer(self, body: bytes) -> list[RelayItem]:
        """A ``chat.completion`` body, rewritten, and its usage for the ledger."""
        events = openai_chat.decode_response(body)  # one typed decode; raises as the path does
        head = _HEAD.decode(body)
        old_id = _literal(body, b"id", head.id)
        old_model = _literal(body, b"model", head.model)
        items = _answer_items(events)
        if old_id is not None:
            body = body.replace(old_id, self._id_new, 1)
        if old_model is not None:
            body = body.replace(old_model, self._model_new, 1)
        body = self._answer_finish(body, events)
        items.append(body)
        return items

    def _answer_finish(self, body: bytes, events: list[StreamEvent]) -> bytes:
        finish = next((e for e in reversed(events) if e.type == "finish"), None)
        found = self._FINISH.search(body)
        if finish is None or found is None:
            return body
        wire = openai_chat_server._WIRE_FINISH[finish.reason]  # type: ignore[union-attr]
        if wire == found.group(1):
            return body
        return body[: found.start(1)] + wire + body[found.end(1) :]

    def transcode_stream(self, events: Iterable[StreamEvent]) -> bytes:
        """An upstream that answered a stream request with one body: its events as a stream."""
        encoder = openai_chat_server.StreamEncoder(
            model=self.model, id=self.response_id, include_usage=self._include_usage
        )
        return encoder.start() + b"".join(encoder.encode(e) for e in events) + encoder.finish()

    def transcode_answer(self, events: list[StreamEvent]) -> bytes:
        """An upstream that streamed a plain request: its events as one body."""
        response = aggregate(events, model=self.model, id=self.response_id)
        return openai_chat_server.encode_response(response)


def _answer_items(events: list[StreamEvent]) -> list[RelayItem]:
    """The ledger's items for one whole answer: its first-output marker and usage."""
    items: list[RelayItem] = []
    if any(isinstance(e, _OUTPUT_EVENTS) for e in events):
        items.append(_FIRST_OUTPUT)
    items.extend(e for e in events if type(e) is UsageEvent)
    return items


def _without_usage(frame: bytes, sep: bytes) -> bytes:
    """A chunk with choices that also carried usage the client did not ask for (rare)."""
    chunk: dict[str, Any] = msgspec.json.decode(_data(frame))
    chunk.pop("usage", None)
    groq = chunk.get("x_groq")
    if isinstance(groq, dict):
        groq.pop("usage", None)
    return b"data: " + msgspec.json.encode(chunk) + sep


class AnthropicRelay(_SSERelay):
    """Relays a Messages API stream (or one Message) to an Anthropic client."""

    _MARKS = re.compile(rb'"type"\s*:\s*"(?:error|message_start|message_delta|message_stop)"')
    _OUTPUT = re.compile(
        rb'"type"\s*:\s*"(?:content_block_delta|message_delta|message_stop|tool_use)"'
    )

    def __init__(self, *, model: str, response_id: str) -> None:
        super().__init__(model=model, response_id=response_id)
        # Fed only the frames that carry usage and the end: the usage it builds is the one
        # the full decode would build (it depends on nothing else).
        self._decoder = anthropic_messages.StreamDecoder()
        self._started: UsageEvent | None = None

    def _batch(self, data: bytes) -> list[RelayItem]:
        items: list[RelayItem] = []
        opening = self._held is not None and self._OUTPUT.search(data) is not None
        # Only message_* and error frames matter, and no other frame holds `"message_`
        # or `"error"` outside a string (where its quotes would be escaped).
        if (b'"message_' not in data and b'"error"' not in data) or self._MARKS.search(
            data
        ) is None:
            if opening:
                items = self._open()
            items.append(data)  # message_start, the one frame rewritten, is a marked one
            return items
        out: list[bytes] = []
        for frame in self._frames(data):
            if self._done:
                break
            if self._MARKS.search(frame) is None:
                out.append(frame)
                continue
            try:
                events = self._decoder.feed(frame)
            except ModelportError as error:
                if opening:
                    items = self._open()
                if out:
                    items.append(b"".join(out))
                return self._fail(error, items)
            if not self._learned:
                frame = self._learn(frame)
            items.extend(e for e in events if type(e) is UsageEvent)
            if b"message_stop" in frame:
                self._done = True
            out.append(frame)
        if opening:
            items[:0] = self._open()
        if out:
            items.append(b"".join(out))
        return items

    def _new_decoder(self) -> Any:
        return anthropic_messages.StreamDecoder()

    def _learn(self, frame: bytes) -> bytes:
        """``message_start``: learn the id and model (rewritten here, the one frame with them)."""
        self._learned = True
        try:
            message = _ANTHROPIC_START.decode(_data(frame)).message
        except (msgspec.DecodeError, msgspec.ValidationError):
            message = None
        if message is not None:
            self._id_old = _literal(frame, b"id", message.id)
            self._model_old = _literal(frame, b"model", message.model)
        self._started = self._decoder._held
        return self._rewrite(frame)

    def _open(self) -> list[RelayItem]:
        items = super()._open()
        if self._started is not None:
            # The message_start usage goes out with the first content, as the decoder sends it.
            items.insert(0, self._started)
            self._started = None
        return items

    def answer(self, body: bytes) -> list[RelayItem]:
        """One Message body, rewritten, and its usage for the ledger."""
        events = anthropic_messages.decode_response(body)
        head = _HEAD.decode(body)
        items = _answer_items(events)
        old_id = _literal(body, b"id", head.id)
        old_model = _literal(body, b"model", head.model)
        if old_id is not None:
            body = body.replace(old_id, self._id_new, 1)
        if old_model is not None:
            body = body.replace(old_model, self._model_new, 1)
        items.append(body)
        return items

    def transcode_stream(self, events: Iterable[StreamEvent]) -> bytes:
        """An upstream that answered a stream request with one body: its events as a stream."""
        encoder = anthropic_messages_server.StreamEncoder(model=self.model, id=self.response_id)
        return encoder.start() + b"".join(encoder.encode(e) for e in events) + encoder.finish()

    def transcode_answer(self, events: list[StreamEvent]) -> bytes:
        """An upstream that streamed a plain request: its events as one body."""
        response = aggregate(events, model=self.model, id=self.response_id)
        return anthropic_messages_server.encode_response(response)
