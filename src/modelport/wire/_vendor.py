"""Saying what a request builder leaves out: the options meant for another API.

``ChatRequest.vendor`` holds, per compat name, what a client sent that only
that API understands (Anthropic's ``context_management``, a Responses client's
``include`` …). A builder sends its own and no other; :func:`note_unsent`
says so at debug level, so a user wondering where a setting went can see it.
"""

from __future__ import annotations

import logging

from modelport.types import ChatRequest

__all__ = ["note_unsent"]

logger = logging.getLogger("modelport.wire")


def note_unsent(request: ChatRequest, compat: str) -> None:
    """Log (debug) the vendor options of ``request`` that a ``compat`` upstream will not get."""
    if not request.vendor or not logger.isEnabledFor(logging.DEBUG):
        return
    for other, options in request.vendor.items():
        if other != compat and options:
            logger.debug(
                "not sent to the %s upstream of %s, which has no meaning for them: %s options %s",
                compat,
                request.model,
                other,
                ", ".join(sorted(options)),
            )
