"""The gateway's ``app.state``: Starlette's :class:`~starlette.datastructures.State`,
read at the speed of an attribute.

Starlette keeps state values in a dict behind ``__getattr__``, which Python calls
only after the ordinary lookup failed: every ``state.router`` made and caught an
``AttributeError`` first (~1.8 µs here), and a chat call reads the state half a
dozen times. :class:`GatewayState` keeps each value in that dict, as Starlette
does (``state["x"]``, iteration and ``len`` see them), and in the instance's
``__dict__`` too, where the ordinary lookup finds it.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import State

__all__ = ["GatewayState"]


class GatewayState(State):
    """:class:`~starlette.datastructures.State` whose values are plain attributes too."""

    def __setattr__(self, key: Any, value: Any) -> None:
        self._state[key] = value
        object.__setattr__(self, key, value)

    def __delattr__(self, key: Any) -> None:
        del self._state[key]
        object.__delattr__(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.__setattr__(key, value)

    def __delitem__(self, key: str) -> None:
        self.__delattr__(key)
