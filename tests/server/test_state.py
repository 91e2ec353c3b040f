"""The gateway's ``app.state`` (``server/_state.py``): Starlette's State, with its
values as plain attributes too, so a read skips ``__getattr__``."""

from __future__ import annotations

import pytest

from modelport.config import parse_config
from modelport.server._state import GatewayState
from modelport.server.app import create_app


def test_values_are_attributes_and_mapping_entries_alike() -> None:
    state = GatewayState()
    state.router = "r1"
    state["metrics"] = "m"
    assert vars(state)["router"] == "r1" and vars(state)["metrics"] == "m"
    assert (state.router, state["router"], state.metrics) == ("r1", "r1", "m")
    assert sorted(state) == ["metrics", "router"] and len(state) == 2
    state.router = "r2"  # a reload swaps the router in
    assert state.router == state["router"] == "r2"
    del state.router
    del state["metrics"]
    assert len(state) == 0
    with pytest.raises(AttributeError):
        _ = state.router


def test_the_gateway_state_is_read_without_getattr() -> None:
    app = create_app(parse_config(""), plugin_host=False, ledger=False, governance=False)
    state = app.state
    assert isinstance(state, GatewayState)
    for name in ("router", "metrics", "health", "drain", "cache", "keepalive_interval"):
        assert name in vars(state), name  # found by the ordinary lookup
        assert getattr(state, name) is state[name]
