"""What the SSE stream decoders (Chat Completions, Messages, Gemini, Responses) share.

Both read ``text/event-stream`` bytes through one :class:`~modelport.wire._sse.SSEDecoder`
and hold back an error that arrives after some events of the same
:meth:`SSEStreamDecoder.feed`: those events go out first and the error is
raised by the next call, so the caller sees every event that came before it.
A subclass writes ``_dispatch`` (its loop over the SSE events) and ``close``.

Nothing here adds a call per chunk: ``feed`` is the one both decoders had, and
:meth:`SSEStreamDecoder._defer` runs only once something has failed.
"""

from __future__ import annotations

from modelport.errors import ModelportError, ParseError
from modelport.events import StreamEvent
from modelport.wire._errors import truncated_stream
from modelport.wire._sse import SSEDecoder, SSEEvent

__all__ = ["SSEStreamDecoder"]


class SSEStreamDecoder:
    """Bytes → SSE events → canonical events, with in-band errors deferred (see the module)."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._done = False
        self._deferred: ModelportError | None = None

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """The events completed by these bytes. Raises in-band errors and ``ParseError``."""
        self._raise_deferred()
        out: list[StreamEvent] = []
        if not self._done:
            self._dispatch(self._sse.feed(chunk), out)
        return out

    def _dispatch(self, events: list[SSEEvent], out: list[StreamEvent]) -> None:
        """Append the canonical events of ``events`` to ``out``; set ``_done`` at the end."""
        raise NotImplementedError

    def _close_tail(self) -> list[StreamEvent]:
        """The end of the body: the events of a last event without its blank line.

        A parse error there is a truncated stream (``NetworkError``) when
        :meth:`_cut_short` says so; a subclass's ``close`` then checks that the
        stream finished.
        """
        self._raise_deferred()
        out: list[StreamEvent] = []
        if not self._done:
            try:
                self._dispatch(self._sse.feed(b"\n\n"), out)
                self._raise_deferred()
            except ParseError as exc:
                if self._cut_short():
                    raise truncated_stream() from exc
                raise
        return out

    def _cut_short(self) -> bool:
        """Whether the stream ended before its end (a parse error at the end is then
        the truncation's, not the upstream's)."""
        return True

    def _raise_deferred(self) -> None:
        if self._deferred is not None:
            error, self._deferred = self._deferred, None
            self._done = True
            raise error

    def _defer(self, error: ModelportError, out: list[StreamEvent]) -> None:
        """``error`` stopped ``_dispatch``: raise it now if ``out`` is empty, else next call.

        Either way the stream is over: nothing after an error is decoded.
        """
        if not out:
            self._done = True
            raise error
        self._deferred = error
