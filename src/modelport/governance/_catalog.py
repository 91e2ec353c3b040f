"""The catalog: virtual keys, budgets and rate limits in the database, and the audit log.

Every change is one transaction that also appends its audit entry and bumps
the catalog's version, so a change is never without its record and every
instance sees it at its next poll. Reads return a :class:`Snapshot`, the whole
catalog (small: keys, budgets and limits of one organisation), which an
instance keeps in memory and swaps when the version moves.

The methods are synchronous (SQLAlchemy Core); the gateway calls them on a
worker thread, the CLI directly.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelport.errors import ConfigError, InvalidRequestError
from modelport.governance import _schema as t
from modelport.governance._secrets import digest, new_key_id, new_secret
from modelport.governance._values import (
    PERIODS,
    AuditEntry,
    Budget,
    RateLimit,
    VirtualKey,
)

__all__ = ["Catalog", "NotFound", "Snapshot"]


class NotFound(InvalidRequestError):
    """No key, budget or limit with that id (the admin routes answer 404)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole catalog at one version."""

    version: int
    deployment: str
    keys: tuple[VirtualKey, ...] = ()
    budgets: tuple[Budget, ...] = ()
    limits: tuple[RateLimit, ...] = ()
    by_digest: Mapping[bytes, VirtualKey] = field(default_factory=dict)

    @property
    def governed(self) -> bool:
        """Whether this gateway has issued any key (revoked ones count: revoking the last
        key must not open the gateway)."""
        return bool(self.keys)


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _key(row: Any) -> VirtualKey:
    return VirtualKey(
        id=row.id,
        name=row.name,
        digest=row.digest,
        hint=row.hint,
        user=row.user,
        team=row.team,
        models=json.loads(row.models),
        expires_at=_dt(row.expires_at),
        metadata=json.loads(row.metadata),
        created_at=_dt(row.created_at) or datetime.now(UTC),
        revoked_at=_dt(row.revoked_at),
    )


def _budget(row: Any) -> Budget:
    return Budget(
        id=row.id,
        scope=row.scope,
        subject=row.subject,
        period=row.period,
        max_cost=row.max_cost,
        max_tokens=row.max_tokens,
        model=row.model or None,
        created_at=_dt(row.created_at) or datetime.now(UTC),
    )


def _limit(row: Any) -> RateLimit:
    return RateLimit(
        id=row.id,
        scope=row.scope,
        subject=row.subject,
        rpm=row.rpm,
        tpm=row.tpm,
        model=row.model or None,
        created_at=_dt(row.created_at) or datetime.now(UTC),
    )


class Catalog:
    """The catalog tables on ``engine`` (created on first use)."""

    def __init__(self, engine: Engine, display_url: str = "") -> None:
        self.engine = engine
        self.display_url = display_url
        try:
            self._ensure_schema()
        except sa.exc.SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise ConfigError(
                f"Cannot open the virtual key catalog in {display_url or 'the database'}: "
                f"{reason}. Check database_url in config.toml, and that the database is running."
            ) from exc

    def _ensure_schema(self) -> None:
        from modelport.ledger import ensure_ledger_table

        try:
            t.METADATA.create_all(self.engine, checkfirst=True)
        except sa.exc.DBAPIError:
            # Several instances may race to create the tables; losing the race is fine.
            if not sa.inspect(self.engine).has_table(t.state.name):
                raise
        ensure_ledger_table(self.engine)  # budgets are rebuilt from the ledger's rows
        with self.engine.begin() as conn:
            if conn.execute(sa.select(t.state.c.id)).first() is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            t.state.insert().values(
                                id=1, version=0, deployment=secrets.token_hex(6)
                            )
                        )
                except sa.exc.IntegrityError:
                    pass  # another instance wrote it first

    # --- reading ------------------------------------------------------------------------

    def version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(t.state.c.version)).scalar_one())

    def snapshot(self) -> Snapshot:
        with self.engine.connect() as conn:
            version, deployment = conn.execute(
                sa.select(t.state.c.version, t.state.c.deployment)
            ).one()
            keys = tuple(_key(r) for r in conn.execute(sa.select(t.virtual_keys)))
            budgets = tuple(_budget(r) for r in conn.execute(sa.select(t.budgets)))
            limits = tuple(_limit(r) for r in conn.execute(sa.select(t.rate_limits)))
        by_digest = {bytes.fromhex(key.digest): key for key in keys}
        return Snapshot(int(version), deployment, keys, budgets, limits, by_digest)

    def key(self, key_id: str) -> VirtualKey:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.virtual_keys).where(t.virtual_keys.c.id == key_id))
            found = row.first()
        if found is None:
            raise NotFound(
                f"There is no virtual key {key_id!r}; `modelport vkeys list` shows them."
            )
        return _key(found)

    def audit_log(
        self, limit: int = 100, *, target: str | None = None, before: int | None = None
    ) -> list[AuditEntry]:
        """The latest ``limit`` entries, newest first; ``before`` pages on (ids below it)."""
        query = sa.select(t.audit).order_by(t.audit.c.id.desc()).limit(limit)
        if target is not None:
            query = query.where(t.audit.c.target == target)
        if before is not None:
            query = query.where(t.audit.c.id < before)
        with self.engine.connect() as conn:
            return [
                AuditEntry(
                    id=int(r.id),
                    at=_dt(r.at) or datetime.now(UTC),
                    actor=r.actor,
                    action=r.action,
                    target=r.target,
                    detail=json.loads(r.detail),
                )
                for r in conn.execute(query)
            ]

    # --- changing -----------------------------------------------------------------------

    def _record(
        self, conn: Connection, actor: str, action: str, target: str, **detail: Any
    ) -> None:
        conn.execute(
            t.audit.insert().values(
                at=time.time(),
                actor=actor[:255],
                action=action,
                target=target,
                detail=json.dumps(detail, default=str, sort_keys=True),
            )
        )
        conn.execute(t.state.update().values(version=t.state.c.version + 1))

    def create_key(
        self,
        *,
        name: str,
        actor: str,
        user: str | None = None,
        team: str | None = None,
        models: list[str] | None = None,
        expires_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[VirtualKey, str]:
        """Issue a key; the answer holds its secret, which is never readable again."""
        if not name.strip():
            raise InvalidRequestError("A virtual key needs a name (who or what it is for).")
        if expires_at is not None and expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        secret = new_secret()
        key = VirtualKey(
            id=new_key_id(),
            name=name.strip(),
            digest=digest(secret),
            hint=secret[-4:],
            user=user or None,
            team=team or None,
            models=list(models or []),
            expires_at=expires_at,
            metadata=dict(metadata or {}),
            created_at=datetime.now(UTC),
        )
        with self.engine.begin() as conn:
            conn.execute(
                t.virtual_keys.insert().values(
                    id=key.id,
                    name=key.name,
                    digest=key.digest,
                    hint=key.hint,
                    user=key.user,
                    team=key.team,
                    models=json.dumps(key.models),
                    expires_at=_ts(key.expires_at),
                    metadata=json.dumps(key.metadata, default=str),
                    created_at=_ts(key.created_at),
                )
            )
            self._record(
                conn,
                actor,
                "key.create",
                key.id,
                name=key.name,
                user=key.user,
                team=key.team,
                models=key.models,
                expires_at=key.expires_at,
            )
        return key, secret

    def rotate_key(self, key_id: str, *, actor: str) -> tuple[VirtualKey, str]:
        """A new secret for the same key (its budgets and history stay); the old one stops."""
        key = self.key(key_id)
        if key.revoked_at is not None:
            raise InvalidRequestError(f"Virtual key {key_id!r} is revoked; issue a new one.")
        secret = new_secret()
        with self.engine.begin() as conn:
            conn.execute(
                t.virtual_keys.update()
                .where(t.virtual_keys.c.id == key_id)
                .values(digest=digest(secret), hint=secret[-4:])
            )
            self._record(conn, actor, "key.rotate", key_id, name=key.name)
        return self.key(key_id), secret

    def revoke_key(self, key_id: str, *, actor: str) -> VirtualKey:
        key = self.key(key_id)
        if key.revoked_at is None:
            with self.engine.begin() as conn:
                conn.execute(
                    t.virtual_keys.update()
                    .where(t.virtual_keys.c.id == key_id)
                    .values(revoked_at=time.time())
                )
                self._record(conn, actor, "key.revoke", key_id, name=key.name)
        return self.key(key_id)

    def set_budget(
        self,
        *,
        scope: str,
        subject: str,
        period: str,
        actor: str,
        max_cost: float | None = None,
        max_tokens: int | None = None,
        model: str | None = None,
    ) -> Budget:
        """Set (or change) the budget of one key, user or team for ``period``."""
        if scope not in ("key", "user", "team"):
            raise InvalidRequestError(f"A budget's scope is key, user or team, not {scope!r}.")
        if period not in PERIODS:
            raise InvalidRequestError(
                f"A budget's period is one of {', '.join(PERIODS)}, not {period!r}."
            )
        _check_limits(max_cost=max_cost, max_tokens=max_tokens)
        if scope == "key":
            self.key(subject)
        where = (
            (t.budgets.c.scope == scope)
            & (t.budgets.c.subject == subject)
            & (t.budgets.c.period == period)
            & (t.budgets.c.model == (model or ""))
        )
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(t.budgets.c.id).where(where)).first()
            budget_id = found.id if found is not None else "bg_" + secrets.token_hex(6)
            values = {"max_cost": max_cost, "max_tokens": max_tokens}
            if found is None:
                conn.execute(
                    t.budgets.insert().values(
                        id=budget_id,
                        scope=scope,
                        subject=subject,
                        period=period,
                        model=model or "",
                        created_at=time.time(),
                        **values,
                    )
                )
            else:
                conn.execute(t.budgets.update().where(t.budgets.c.id == budget_id).values(values))
            self._record(
                conn,
                actor,
                "budget.set",
                budget_id,
                scope=scope,
                subject=subject,
                period=period,
                model=model,
                **values,
            )
            row = conn.execute(sa.select(t.budgets).where(t.budgets.c.id == budget_id)).one()
        return _budget(row)

    def remove_budget(self, budget_id: str, *, actor: str) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(t.budgets.delete().where(t.budgets.c.id == budget_id)).rowcount:
                raise NotFound(f"There is no budget {budget_id!r}.")
            self._record(conn, actor, "budget.remove", budget_id)

    def set_limit(
        self,
        *,
        scope: str,
        subject: str,
        actor: str,
        rpm: int | None = None,
        tpm: int | None = None,
        model: str | None = None,
    ) -> RateLimit:
        """Set (or change) the requests and tokens per minute of a key, user, team or model."""
        if scope not in ("key", "user", "team", "model"):
            raise InvalidRequestError(
                f"A rate limit's scope is key, user, team or model, not {scope!r}."
            )
        if rpm is None and tpm is None:
            raise InvalidRequestError("A rate limit needs rpm, tpm or both.")
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value < 0:
                raise InvalidRequestError(f"{name} cannot be negative.")
        if scope == "key":
            self.key(subject)
        model = None if scope == "model" else model
        where = (
            (t.rate_limits.c.scope == scope)
            & (t.rate_limits.c.subject == subject)
            & (t.rate_limits.c.model == (model or ""))
        )
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(t.rate_limits.c.id).where(where)).first()
            limit_id = found.id if found is not None else "rl_" + secrets.token_hex(6)
            values = {"rpm": rpm, "tpm": tpm}
            if found is None:
                conn.execute(
                    t.rate_limits.insert().values(
                        id=limit_id,
                        scope=scope,
                        subject=subject,
                        model=model or "",
                        created_at=time.time(),
                        **values,
                    )
                )
            else:
                conn.execute(
                    t.rate_limits.update().where(t.rate_limits.c.id == limit_id).values(values)
                )
            self._record(
                conn,
                actor,
                "limit.set",
                limit_id,
                scope=scope,
                subject=subject,
                model=model,
                **values,
            )
            row = conn.execute(sa.select(t.rate_limits).where(t.rate_limits.c.id == limit_id)).one()
        return _limit(row)

    def remove_limit(self, limit_id: str, *, actor: str) -> None:
        with self.engine.begin() as conn:
            deleted = conn.execute(t.rate_limits.delete().where(t.rate_limits.c.id == limit_id))
            if not deleted.rowcount:
                raise NotFound(f"There is no rate limit {limit_id!r}.")
            self._record(conn, actor, "limit.remove", limit_id)

    def record(self, actor: str, action: str, target: str, **detail: Any) -> None:
        """An audit entry for an action that changes no catalog row (a counter rebuild)."""
        with self.engine.begin() as conn:
            self._record(conn, actor, action, target, **detail)

    def close(self) -> None:
        self.engine.dispose()


def _check_limits(*, max_cost: float | None, max_tokens: int | None) -> None:
    if max_cost is None and max_tokens is None:
        raise InvalidRequestError("A budget needs max_cost (US dollars), max_tokens or both.")
    if max_cost is not None and max_cost < 0:
        raise InvalidRequestError("max_cost cannot be negative.")
    if max_tokens is not None and max_tokens < 0:
        raise InvalidRequestError("max_tokens cannot be negative.")
