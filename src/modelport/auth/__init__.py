"""Credentials: API keys per connection (:mod:`modelport.auth.keys`) and OAuth
logins (:mod:`modelport.auth.tokens`, :mod:`modelport.auth.oauth`)."""

from __future__ import annotations

from modelport.auth.keys import delete_key, get_key, key_storage, set_key

__all__ = ["delete_key", "get_key", "key_storage", "set_key"]
