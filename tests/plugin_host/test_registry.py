"""``providerConfig`` from a plugin connection's table (``plugin_host/registry.py``)."""

from __future__ import annotations

from modelport.config import parse_config
from modelport.plugin_host.provider import parse_registration
from modelport.plugin_host.registry import ProviderTable


def test_a_plugins_base_url_field_gets_the_connections_base_url() -> None:
    config = parse_config(
        '[connections.acme]\ncompat = "plugin:acme"\nbase_url = "https://llm.internal/v1"\n'
        'region = "eu"\n'
    )
    table = ProviderTable(
        None, config=config, get_key=lambda name: None, environ={}, request_timeout=1
    )
    fields = [
        {"key": "base_url", "label": "URL", "type": "text"},
        {"key": "region", "label": "Region", "type": "text"},
    ]
    registration = parse_registration(
        {"providerId": "acme", "configFields": fields, "models": []}, plugin="acme-plugin"
    )
    assert table.provider_config(registration) == {
        "base_url": "https://llm.internal/v1",
        "region": "eu",
    }
