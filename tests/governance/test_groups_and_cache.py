"""Virtual keys with model groups and the response cache: the gate comes first.

A key may name a model group; a group is held at its dearest deployment's
prices. Cached answers are partitioned by team (else key), a hit is only for
a model the key may use, and it costs the key nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from modelport.governance import open_governance
from modelport.ledger import open_ledger
from modelport.testing import FakeUpstream, Reply
from tests.governance.test_gateway import PRICES, completion, issue
from tests.server.conftest import Gateway

GROUP = (
    PRICES
    + """
[connections.oai.prices."gpt-dear"]
input = 10.0
output = 20.0

[aliases.pool]
deployments = ["oai/gpt-test", "oai/gpt-dear"]

[cache]
"""
)

ASK = [{"role": "user", "content": "what is 2 + 2?"}]


@pytest.fixture
def governed(
    make_gateway: Callable[..., Gateway], tmp_path: Path
) -> Callable[..., tuple[Gateway, Any]]:
    def make(**options: Any) -> tuple[Gateway, Any]:
        governance = open_governance(url=f"sqlite:///{tmp_path / 'gov.db'}")
        return make_gateway(GROUP, governance=governance, **options), governance

    return make


def test_a_key_may_use_a_group_held_at_its_dearest_deployment(
    governed: Callable[..., tuple[Gateway, Any]], upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.json(completion(10, 20)))
    gateway, governance = governed()
    _key, secret = issue(governance, team="red", models=["pool"])
    governance.catalog.set_budget(
        scope="team", subject="red", period="day", max_cost=0.003, actor="test"
    )
    governance.reload()
    raw = gateway.openai(api_key=secret).chat.completions.with_raw_response.create(
        model="pool", messages=ASK, max_tokens=100_000, extra_headers={"cache-control": "no-store"}
    )
    assert raw.headers["x-modelport-deployment"] in ("oai/gpt-test", "oai/gpt-dear")
    # $0.003 at the dear deployment's $20 per million output tokens: under 150 tokens,
    # whichever deployment answers (at the cheap one's $2 it would be over 1,000).
    assert upstream.requests[-1].json()["max_tokens"] < 150


def test_answers_are_shared_within_a_team_and_never_across(
    governed: Callable[..., tuple[Gateway, Any]], upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.json(completion(10, 20)))
    ledger = open_ledger(url=f"sqlite:///{tmp_path / 'usage.db'}")
    gateway, governance = governed(ledger=ledger)
    red_one, red_one_secret = issue(governance, team="red")
    _red_two, red_two_secret = issue(governance, team="red")
    _blue, blue_secret = issue(governance, team="blue")
    _narrow, narrow_secret = issue(governance, team="red", models=["oai/other"])

    def ask(secret: str) -> str:
        raw = gateway.openai(api_key=secret).chat.completions.with_raw_response.create(
            model="oai/gpt-test", messages=ASK
        )
        return raw.headers["x-modelport-cache"]

    assert ask(red_one_secret) == "miss"
    assert ask(red_two_secret) == "hit"  # the same team
    assert ask(blue_secret) == "miss"  # another team never sees red's answer
    # A key that may not use the model is refused, cached answer or not.
    with pytest.raises(openai.PermissionDeniedError):
        ask(narrow_secret)
    assert len(upstream.requests) == 2
    assert ledger.flush(5)
    hits = [r for r in ledger.recent() if r.outcome == "cache_hit"]
    assert [(r.cost, r.input_tokens) for r in hits] == [(0.0, 0)]
    assert hits[0].key_id is not None and hits[0].key_id != red_one.id
