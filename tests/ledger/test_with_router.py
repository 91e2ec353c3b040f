"""The ledger as the router uses it: every call through ``Router.stream`` is recorded."""

from __future__ import annotations

import pytest

from modelport.errors import AuthError
from modelport.events import FinishEvent, UsageEvent
from modelport.ledger import open_ledger
from modelport.routing import Router
from modelport.testing import FakeProvider, FakeReply
from modelport.types import ChatRequest, Message, ModelInfo, ModelPrices

PRICES = ModelPrices(input=2.0, output=10.0)


def request() -> ChatRequest:
    return ChatRequest(model="fake/priced", messages=[Message(role="user", content="hi")])


async def test_router_calls_are_recorded(database_url: str) -> None:
    provider = FakeProvider(
        ["Hello", UsageEvent(input_tokens=1000, output_tokens=100), FinishEvent(reason="stop")],
        FakeReply(events=["partial"], error=AuthError("bad key")),
        connection="fake",
    )
    ledger = open_ledger(url=database_url)
    router = Router(ledger=ledger)
    router.register_provider(
        "fake", provider, models=[ModelInfo(id="priced", connection="fake", prices=PRICES)]
    )
    try:
        async for _event in router.stream(request()):
            pass
        with pytest.raises(AuthError):
            async for _event in router.stream(request()):
                pass
    finally:
        await router.aclose()
        await ledger.aclose()

    with open_ledger(url=database_url) as reopened:
        failed, ok = reopened.recent()
    assert (ok.connection, ok.model, ok.outcome) == ("fake", "priced", "ok")
    assert (ok.input_tokens, ok.output_tokens) == (1000, 100)
    assert ok.cost == pytest.approx((1000 * 2.0 + 100 * 10.0) / 1e6)
    assert failed.outcome == "AuthError"
    assert failed.cost == 0.0
