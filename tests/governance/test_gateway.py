"""The team gateway through the real gateway, driven by the official SDKs.

Virtual keys replace the gateway key on the model routes once one exists;
budgets clamp ``max_tokens`` and refuse with 429 in both APIs' shapes; rate
limits count requests per minute; every model route passes the same gate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from modelport.governance import open_governance
from modelport.server._keys import GatewayKeys
from modelport.testing import FakeUpstream, Reply
from tests.governance.conftest import fresh_minute
from tests.server.conftest import Gateway, upstream_config

PRICES = """
[connections.oai.prices."gpt-test"]
input = 1.0
output = 2.0
[connections.ant.prices."claude-test"]
input = 1.0
output = 2.0
"""


def completion(prompt_tokens: int = 10, completion_tokens: int = 20) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-test",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi"},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@pytest.fixture
def governed(
    make_gateway: Callable[..., Gateway], tmp_path: Path, upstream: FakeUpstream
) -> Callable[..., tuple[Gateway, Any]]:
    def make(extra: str = PRICES, **options: Any) -> tuple[Gateway, Any]:
        governance = open_governance(url=f"sqlite:///{tmp_path / 'gov.db'}")
        gateway = make_gateway(extra, governance=governance, **options)
        return gateway, governance

    return make


def issue(governance: Any, **fields: Any) -> tuple[Any, str]:
    fields.setdefault("name", "test")
    key, secret = governance.catalog.create_key(actor="test", **fields)
    governance.reload()
    return key, secret


def test_the_gateway_key_works_until_a_virtual_key_is_issued(
    governed: Callable[..., tuple[Gateway, Any]], upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.json(completion()))
    gateway, governance = governed(keys=GatewayKeys("gw-key-0123456789"))
    client = gateway.openai(api_key="gw-key-0123456789")
    client.chat.completions.create(
        model="oai/gpt-test", messages=[{"role": "user", "content": "a"}]
    )
    key, secret = issue(governance)
    with pytest.raises(openai.AuthenticationError, match="virtual key"):
        client.chat.completions.create(
            model="oai/gpt-test", messages=[{"role": "user", "content": "a"}]
        )
    answer = gateway.openai(api_key=secret).chat.completions.create(
        model="oai/gpt-test", messages=[{"role": "user", "content": "a"}]
    )
    assert answer.choices[0].message.content == "hi"
    # Revoking the last key keeps the gateway governed: it does not open up again.
    governance.catalog.revoke_key(key.id, actor="test")
    governance.reload()
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        gateway.openai(api_key=secret).chat.completions.create(
            model="oai/gpt-test", messages=[{"role": "user", "content": "a"}]
        )
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="oai/gpt-test", messages=[{"role": "user", "content": "a"}]
        )


def test_a_key_may_use_only_its_models(
    governed: Callable[..., tuple[Gateway, Any]], upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.json(completion()))
    gateway, governance = governed()
    _, secret = issue(governance, models=["oai/gpt-test"])
    gateway.openai(api_key=secret).chat.completions.create(
        model="oai/gpt-test", messages=[{"role": "user", "content": "a"}]
    )
    with pytest.raises(openai.PermissionDeniedError, match="may not use model"):
        gateway.openai(api_key=secret).chat.completions.create(
            model="oai/other", messages=[{"role": "user", "content": "a"}]
        )
    with pytest.raises(anthropic.PermissionDeniedError, match="may not use model"):
        gateway.anthropic(api_key=secret).messages.create(
            model="ant/claude-test", max_tokens=10, messages=[{"role": "user", "content": "a"}]
        )


def test_a_budget_clamps_max_tokens_and_then_refuses_in_both_shapes(
    governed: Callable[..., tuple[Gateway, Any]], upstream: FakeUpstream
) -> None:
    # $1 and $2 per million tokens: a 1,000-token reply costs $0.002.
    upstream.route("POST", "/v1/chat/completions", Reply.json(completion(10, 1000)))
    gateway, governance = governed()
    key, secret = issue(governance, team="red")
    governance.catalog.set_budget(
        scope="team", subject="red", period="day", max_cost=0.003, actor="test"
    )
    governance.reload()
    client = gateway.openai(api_key=secret)
    client.chat.completions.create(
        model="oai/gpt-test", messages=[{"role": "user", "content": "a"}], max_tokens=100_000
    )
    sent = upstream.requests[-1].json()
    # What $0.003 can pay for after the input's worst case, not the 100,000 asked for.
    assert 1000 < sent["max_tokens"] < 1500
    # The first call settled at $0.00201: what is left pays for under 500 tokens.
    client.chat.completions.create(
        model="oai/gpt-test", messages=[{"role": "user", "content": "a"}], max_tokens=100_000
    )
    assert upstream.requests[-1].json()["max_tokens"] < 500
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="oai/gpt-test", messages=[{"role": "user", "content": "a"}]
        )
    assert caught.value.code == "insufficient_quota"
    assert int(caught.value.response.headers["retry-after"]) >= 1
    with pytest.raises(anthropic.RateLimitError) as refused:
        gateway.anthropic(api_key=secret).messages.create(
            model="ant/claude-test", max_tokens=10, messages=[{"role": "user", "content": "a"}]
        )
    assert refused.value.body["error"]["type"] == "rate_limit_error"
    assert "budget" in refused.value.body["error"]["message"]
    assert int(refused.value.response.headers["retry-after"]) >= 1


def test_requests_per_minute_are_refused_past_the_limit(
    governed: Callable[..., tuple[Gateway, Any]], upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.json(completion()))
    gateway, governance = governed()
    key, secret = issue(governance)
    governance.catalog.set_limit(scope="key", subject=key.id, rpm=2, actor="test")
    governance.reload()
    fresh_minute()
    client = gateway.openai(api_key=secret)
    for _ in range(2):
        client.chat.completions.create(
            model="oai/gpt-test", messages=[{"role": "user", "content": "a"}]
        )
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="oai/gpt-test", messages=[{"role": "user", "content": "a"}]
        )
    assert caught.value.code == "rate_limit_exceeded"
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert len(upstream.requests) == 2


def test_a_dollar_budget_refuses_a_model_without_prices(
    governed: Callable[..., tuple[Gateway, Any]], upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.json(completion()))
    gateway, governance = governed()
    key, secret = issue(governance)
    governance.catalog.set_budget(
        scope="key", subject=key.id, period="month", max_cost=1.0, actor="test"
    )
    governance.reload()
    with pytest.raises(openai.PermissionDeniedError, match=r"no known price.*prices"):
        gateway.openai(api_key=secret).chat.completions.create(
            model="oai/unpriced", messages=[{"role": "user", "content": "a"}]
        )
    assert upstream.requests == []


async def test_embeddings_pass_the_same_gate(
    governed: Callable[..., tuple[Gateway, Any]], upstream: FakeUpstream
) -> None:
    answer = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
        "model": "emb",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    upstream.route("POST", "/v1/embeddings", Reply.json(answer))
    gateway, governance = governed()
    key, secret = issue(governance)
    governance.catalog.set_limit(scope="key", subject=key.id, rpm=1, actor="test")
    governance.reload()
    fresh_minute()
    client = gateway.openai(api_key=secret)
    client.embeddings.create(model="oai/emb", input=["x"], encoding_format="float")
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="oai/emb", input=["x"], encoding_format="float")
    with pytest.raises(openai.AuthenticationError):
        gateway.openai(api_key="mpvk-wrong").embeddings.create(
            model="oai/emb", input=["x"], encoding_format="float"
        )


def test_admin_routes_issue_list_rotate_and_revoke_with_an_audit_trail(
    governed: Callable[..., tuple[Gateway, Any]], upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.json(completion()))
    gateway, governance = governed(keys=GatewayKeys(None, "admin-key-0123456789"))
    admin = httpx.Client(
        base_url=gateway.url, headers={"authorization": "Bearer admin-key-0123456789"}
    )
    try:
        created = admin.post(
            "/admin/keys", json={"name": "ci", "team": "platform", "models": ["oai/gpt-test"]}
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        key_id = created.json()["key"]["id"]
        assert secret.startswith("mpvk-") and "digest" not in created.json()["key"]
        listed = admin.get("/admin/keys").json()["keys"]
        assert [k["id"] for k in listed] == [key_id]
        assert secret not in json.dumps(listed)
        # Every key shows what it spent this month, budget or not (the UI test spends some).
        assert listed[0]["spent"]["cost"] == 0 and listed[0]["spent"]["tokens"] == 0
        gateway.openai(api_key=secret).chat.completions.create(
            model="oai/gpt-test", messages=[{"role": "user", "content": "a"}]
        )
        rotated = admin.post(f"/admin/keys/{key_id}/rotate").json()
        with pytest.raises(openai.AuthenticationError):
            gateway.openai(api_key=secret).chat.completions.create(
                model="oai/gpt-test", messages=[{"role": "user", "content": "a"}]
            )
        budget = admin.put(
            "/admin/budgets",
            json={"scope": "team", "subject": "platform", "period": "month", "max_cost": 5},
        )
        assert budget.status_code == 200, budget.text
        assert admin.put("/admin/limits", json={"scope": "team", "subject": "x"}).status_code == 400
        assert admin.post(f"/admin/keys/{key_id}/revoke").json()["key"]["revoked_at"]
        with pytest.raises(openai.AuthenticationError, match="revoked"):
            gateway.openai(api_key=rotated["secret"]).chat.completions.create(
                model="oai/gpt-test", messages=[{"role": "user", "content": "a"}]
            )
        actions = [e["action"] for e in admin.get("/admin/audit").json()["entries"]]
        assert actions == ["key.revoke", "budget.set", "key.rotate", "key.create"]
        assert admin.get("/admin/keys/vk_nope").status_code == 404
        # A virtual key is no admin key.
        refused = httpx.get(
            f"{gateway.url}/admin/keys", headers={"authorization": f"Bearer {secret}"}
        )
        assert refused.status_code == 401
    finally:
        admin.close()


def test_the_audit_log_pages_on_with_before(
    governed: Callable[..., tuple[Gateway, Any]],
) -> None:
    gateway, _ = governed(keys=GatewayKeys(None, "admin-key-0123456789"))
    admin = httpx.Client(
        base_url=gateway.url, headers={"authorization": "Bearer admin-key-0123456789"}
    )
    try:
        for n in range(5):
            assert admin.post("/admin/keys", json={"name": f"k{n}"}).status_code == 201
        pages: list[list[str]] = []
        query = "/admin/audit?limit=2"
        while True:
            entries = admin.get(query).json()["entries"]
            if not entries:
                break
            pages.append([e["detail"]["name"] for e in entries])
            query = f"/admin/audit?limit=2&before={entries[-1]['id']}"
        assert pages == [["k4", "k3"], ["k2", "k1"], ["k0"]]
        assert admin.get("/admin/audit?before=x").status_code == 400
    finally:
        admin.close()


def test_plugin_models_pass_the_same_gate(
    gateway_factory: Callable[..., Gateway], tmp_path: Path
) -> None:
    from modelport.config import Config
    from modelport.routing import Router
    from modelport.server.app import create_app
    from modelport.testing import FakeProvider

    # A provider registered at run time, as the plugin host registers a plugin's.
    router = Router(Config())
    router.register_provider("plug", FakeProvider())
    governance = open_governance(url=f"sqlite:///{tmp_path / 'gov.db'}")
    key, secret = issue(governance)
    governance.catalog.set_limit(scope="model", subject="plug/echo", rpm=1, actor="test")
    governance.reload()
    app = create_app(router=router, plugin_host=False, ledger=False, governance=governance)
    gateway = gateway_factory(app)
    client = gateway.openai(api_key=secret)
    fresh_minute()
    client.chat.completions.create(model="plug/echo", messages=[{"role": "user", "content": "a"}])
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="plug/echo", messages=[{"role": "user", "content": "a"}]
        )
    with pytest.raises(anthropic.RateLimitError):
        gateway.anthropic(api_key=secret).messages.create(
            model="plug/echo", max_tokens=5, messages=[{"role": "user", "content": "a"}]
        )
    with pytest.raises(openai.AuthenticationError):
        gateway.openai(api_key="nope").chat.completions.create(
            model="plug/echo", messages=[{"role": "user", "content": "a"}]
        )


def test_the_admin_routes_are_in_the_openapi_document(gateway: Gateway) -> None:
    document = httpx.get(f"{gateway.url}/openapi.json").json()
    paths = document["paths"]
    assert {"post", "get"} <= set(paths["/admin/keys"])
    assert "put" in paths["/admin/budgets"] and "put" in paths["/admin/limits"]
    assert "post" in paths["/admin/keys/{id}/revoke"]
    assert "IssuedVirtualKey" in document["components"]["schemas"]


def test_a_key_lists_only_the_models_it_may_use(
    gateway_factory: Callable[..., Gateway], tmp_path: Path
) -> None:
    from modelport.config import Config
    from modelport.routing import Router
    from modelport.server.app import create_app
    from modelport.testing import FakeProvider
    from modelport.types import ModelInfo

    router = Router(Config())
    models = [ModelInfo(id="a", connection="plug"), ModelInfo(id="b", connection="plug")]
    router.register_provider("plug", FakeProvider(), models)
    governance = open_governance(url=f"sqlite:///{tmp_path / 'gov.db'}")
    _, secret = issue(governance, models=["plug/b"])
    app = create_app(router=router, plugin_host=False, ledger=False, governance=governance)
    gateway = gateway_factory(app)
    listed = gateway.openai(api_key=secret).models.list()
    assert [model.id for model in listed.data] == ["plug/b"]


def _spent_reaches(governance: Any, nanos: int) -> int:
    """The team budget's settled spend (counters in this process), once it reaches ``nanos``."""
    deadline = time.monotonic() + 10
    while True:
        (state,) = governance.counters._budgets.values()
        if state.spent_cost >= nanos or time.monotonic() > deadline:
            return int(state.spent_cost)
        time.sleep(0.01)


def test_new_prices_count_once_the_config_changes(
    governed: Callable[..., tuple[Gateway, Any]], upstream: FakeUpstream
) -> None:
    # The gate keeps each address's configured prices per config: a new config,
    # new prices, from its first call on.
    upstream.route("POST", "/v1/chat/completions", Reply.json(completion(10, 20)))
    gateway, governance = governed()
    _, secret = issue(governance, team="blue")
    governance.catalog.set_budget(
        scope="team", subject="blue", period="day", max_cost=1.0, actor="test"
    )
    governance.reload()
    client = gateway.openai(api_key=secret)

    def ask() -> None:
        client.chat.completions.create(
            model="oai/gpt-test", messages=[{"role": "user", "content": "a"}], max_tokens=50
        )

    ask()
    ask()
    cheap = 10 * 1_000 + 20 * 2_000  # nano-dollars at $1 and $2 per million tokens
    assert _spent_reaches(governance, 2 * cheap) == 2 * cheap
    dearer = PRICES.replace("output = 2.0", "output = 4.0", 1)
    # As the admin connection routes change it: a new config object on the same router.
    gateway.app.state.router.config = upstream_config(upstream, dearer)
    ask()
    expected = 2 * cheap + 10 * 1_000 + 20 * 4_000
    assert _spent_reaches(governance, expected) == expected
