"""The values the team gateway keeps: virtual keys, budgets, rate limits, audit entries.

All are frozen msgspec structs, as the rest of modelport's values. A key's
secret is never among them: :class:`VirtualKey` holds its SHA-256 digest and
the last four characters (``hint``), enough to recognise it in a list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

__all__ = [
    "PERIODS",
    "SCOPES",
    "AuditEntry",
    "Budget",
    "BudgetScope",
    "LimitScope",
    "Period",
    "RateLimit",
    "VirtualKey",
]

Period = Literal["day", "week", "month", "total"]
BudgetScope = Literal["key", "user", "team"]
LimitScope = Literal["key", "user", "team", "model"]

#: Budget periods, calendar-aligned in UTC; ``total`` never resets.
PERIODS: tuple[str, ...] = ("day", "week", "month", "total")
#: What a budget (the first three) or a rate limit (all four) may apply to.
SCOPES: tuple[str, ...] = ("key", "user", "team", "model")


class VirtualKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key the gateway issued. ``models`` empty means every model.

    ``user`` and ``team`` are fixed at issue: the ledger records the key's id,
    and a user's or team's spend is the spend of its keys.
    """

    id: str
    name: str
    digest: str
    hint: str
    user: str | None = None
    team: str | None = None
    models: list[str] = msgspec.field(default_factory=list)
    expires_at: datetime | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: datetime
    revoked_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        """What an admin may see: everything but the digest."""
        data = msgspec.structs.asdict(self)
        del data["digest"]
        return msgspec.to_builtins(data)

    def allows(self, address: str) -> bool:
        return not self.models or address in self.models

    def usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class Budget(msgspec.Struct, frozen=True, kw_only=True):
    """Spend allowed to a key, a user or a team per ``period``, in dollars and/or tokens.

    ``model`` (an address) narrows it to calls to that model.
    """

    id: str
    scope: BudgetScope
    subject: str
    period: Period
    max_cost: float | None = None
    max_tokens: int | None = None
    model: str | None = None
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """Requests and/or tokens per minute for a key, user, team or model.

    ``model`` narrows a key's, user's or team's limit to calls to that model
    (a ``model`` scope names its model as ``subject``).
    """

    id: str
    scope: LimitScope
    subject: str
    rpm: int | None = None
    tpm: int | None = None
    model: str | None = None
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One admin action: who did what to which key, budget or limit."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any] = msgspec.field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)
