"""A hint from a provider to whoever writes its events out: more are ready right now.

Upstreams often deliver several events in one read (a fast model, a proxy that
buffers, TCP putting many small frames in one segment). A provider decodes a
whole read before yielding its first event, so it knows that the event it is
yielding is followed by others that are already decoded. It says so in
:data:`more_ready` (a context variable, so it reaches the consumer through any
number of pass-through async generators in the same task), and the gateway
writes the frames of one read with one ``send`` instead of one each: a
socket write per read, not per event, with no added wait, since nothing that
has arrived is held back.

The contract that keeps it safe: a producer sets ``True`` only right before
yielding an event that is followed by another without any awaiting in
between, and ``False`` before yielding the last event of a read. A producer
that never sets it leaves the default, ``False``: one write per event.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["more_ready"]

#: True while the event just yielded is followed by others already in hand.
more_ready: ContextVar[bool] = ContextVar("modelport_more_ready", default=False)
