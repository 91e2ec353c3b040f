"""The response cycle :class:`~modelport.server._protocol.GatewayProtocol` gives each
request: uvicorn's, with the response head's headers checked in two regular-expression
searches instead of two per header.

uvicorn's ``RequestResponseCycle.send`` checks every header's name and value against
its patterns of forbidden bytes, one search each: a stream's five headers cost ~7 µs
here, more than building the head. The patterns are character classes, so one search
over all the names (joined with nothing) and one over all the values (joined with a
tab, which a value may hold) find exactly what the searches one by one find, and
raise the same error. Everything else about the head is uvicorn's, in its order:
``content-length`` and ``transfer-encoding`` noted, ``connection: close`` honoured,
chunked encoding when neither length nor encoding is given. Any other message, or a
server that logs its own access lines, goes to uvicorn's ``send`` as it is.

A response that knows its first body bytes when it starts (a plain JSON answer, a
stream's first frames) may put them in the ``http.response.start`` message itself,
under :data:`~modelport.server._streaming.BODY_KEY` (and ``more_body``), where the
server offers :data:`~modelport.server._streaming.START_WITH_BODY_EXTENSION`: the
head and those bytes then go out in one write at once, without holding the head for
the next message (a loop callback per answer) and without a second ``send``. The
body is written as uvicorn writes an ``http.response.body`` message (its length
checked, chunked when the head said so, the response completed when ``more_body``
is false).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)

from modelport.server._streaming import BODY_KEY

__all__ = ["GatewayCycle"]


class GatewayCycle(RequestResponseCycle):
    """uvicorn's cycle; only the head of a response is written differently (see above)."""

    async def send(self, message: Any) -> None:
        if (
            self.response_started
            or message["type"] != "http.response.start"
            or self.access_log
            or self.disconnected
            or self.flow.write_paused
        ):
            await super().send(message)
            if BODY_KEY in message and message["type"] == "http.response.start":
                body = {"type": "http.response.body", "body": message[BODY_KEY]}
                body["more_body"] = message.get("more_body", False)
                await super().send(body)
            return
        self.response_started = True
        self.waiting_for_100_continue = False
        status_code = message["status"]
        headers = self.default_headers + list(message.get("headers", []))
        if HEADER_RE.search(b"".join([name for name, _ in headers])):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(b"\t".join([value for _, value in headers])):
            raise RuntimeError("Invalid HTTP header value.")
        content = [STATUS_LINE[status_code]]
        has_connection_close = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
            content.extend((name, b": ", value, b"\r\n"))
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status_code not in (204, 304)
        ):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        body = message.get(BODY_KEY)
        if body is None:
            self.transport.write(b"".join(content))
            return
        more_body = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
        elif self.chunked_encoding:
            if body:
                content.extend((b"%x\r\n" % len(body), body, b"\r\n"))
            if not more_body:
                content.append(b"0\r\n\r\n")
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            content.append(body)
        # Nothing to hold for a next message: the head's transport writes it now.
        self.transport.write_now(b"".join(content))
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()
