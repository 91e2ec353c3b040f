"""The chat handler both APIs share, through each API's ChatSurface."""

from __future__ import annotations

import re

from modelport.server.anthropic_routes import ANTHROPIC_CHAT
from modelport.server.openai_routes import OPENAI_CHAT
from modelport.testing import FakeUpstream, Reply
from tests.server.conftest import Gateway

USER = [{"role": "user", "content": "hi"}]


def test_each_api_answers_with_ids_in_its_own_format(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    # The SDKs and their users read these ids: OpenAI's chatcmpl- and 128 random
    # bits, Anthropic's msg_ and 96, in lower-case hex of a fixed width.
    upstream.route(
        "POST", "/v1/chat/completions", Reply.fixture("openai/chat-stream-text-include-usage.sse")
    )
    upstream.route("POST", "/v1/messages", Reply.fixture("anthropic/messages-stream-text.sse"))
    openai_client, anthropic_client = gateway.openai(), gateway.anthropic()
    openai_ids = [
        openai_client.chat.completions.create(model="oai/gpt-4o", messages=USER).id,  # type: ignore[arg-type]
        next(
            iter(
                openai_client.chat.completions.create(
                    model="oai/gpt-4o",
                    messages=USER,  # type: ignore[arg-type]
                    stream=True,
                )
            )
        ).id,
    ]
    anthropic_ids = [
        anthropic_client.messages.create(model="ant/claude", max_tokens=5, messages=USER).id,  # type: ignore[arg-type]
    ]
    with anthropic_client.messages.stream(
        model="ant/claude",
        max_tokens=5,
        messages=USER,  # type: ignore[arg-type]
    ) as stream:
        anthropic_ids.append(stream.get_final_message().id)
    for completion_id in openai_ids:
        assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", completion_id), completion_id
        # All 128 bits random: 32 leading zero bits happen once in 2**32 ids.
        assert int(completion_id.removeprefix("chatcmpl-"), 16).bit_length() > 96
    for message_id in anthropic_ids:
        assert re.fullmatch(r"msg_[0-9a-f]{24}", message_id), message_id
        assert int(message_id.removeprefix("msg_"), 16).bit_length() > 64
    assert len({*openai_ids, *anthropic_ids}) == 4


def test_each_surface_names_its_api_and_keepalive() -> None:
    # What the ledger records the call under, and a keep-alive frame each SDK skips.
    assert (OPENAI_CHAT.api, ANTHROPIC_CHAT.api) == ("openai", "anthropic")
    assert OPENAI_CHAT.keepalive.startswith(b":")
    assert ANTHROPIC_CHAT.keepalive.startswith(b"event: ping\n")
