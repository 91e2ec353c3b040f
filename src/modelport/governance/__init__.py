"""The team gateway: virtual keys, budgets, rate limits and the audit log.

>>> governance = open_governance(config)     # the ledger's database; Redis if redis_url is set
>>> key, secret = governance.catalog.create_key(name="ci", team="platform", actor="admin")
>>> governance.catalog.set_budget(scope="team", subject="platform", period="month",
...                               max_cost=50.0, actor="admin")

One job a module: ``_values`` (keys, budgets, limits, audit entries),
``_secrets`` (making and hashing key secrets), ``_catalog`` (the tables, every
change with its audit entry), ``_periods`` (budget periods), ``_pricing``
(a request's worst-case cost), ``_counters`` (the reservation every backend
makes), ``_memory`` / ``_postgres`` / ``_redis`` (+ :mod:`modelport._resp`, a lean Redis
connection) the three backends, ``_spend`` (starting a counter from the
ledger), ``_instances`` (the heartbeat), ``_enforcer`` (:class:`Governance`,
the gate a request passes). The model and its guarantees: docs/team-gateway.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelport.governance._values import (
    AuditEntry,
    Budget,
    RateLimit,
    VirtualKey,
)

if TYPE_CHECKING:
    from modelport.governance._catalog import Catalog
    from modelport.governance._enforcer import Governance

__all__ = [
    "AuditEntry",
    "Budget",
    "Catalog",
    "Governance",
    "RateLimit",
    "VirtualKey",
    "open_catalog",
    "open_governance",
]

#: How long a hold lives without being renewed: the longest a crashed instance's
#: holds keep budget from others. Requests in flight renew theirs every third of it.
HOLD_SECONDS = 120.0


def __getattr__(name: str) -> Any:
    # The catalog and the gate need SQLAlchemy: imported on first use only.
    if name == "Catalog":
        from modelport.governance._catalog import Catalog

        return Catalog
    if name == "Governance":
        from modelport.governance._enforcer import Governance

        return Governance
    raise AttributeError(name)


def _database_url(config: Any) -> str:
    from modelport.ledger import default_database_url

    url = getattr(config, "database_url", None) if config is not None else None
    return str(url) if url else default_database_url()


def open_catalog(config: Any = None, *, url: str | None = None) -> Catalog:
    """The catalog in the ledger's database (``url``, ``config.database_url`` or SQLite)."""
    from modelport.governance._catalog import Catalog
    from modelport.ledger import make_engine

    engine, display = make_engine(url or _database_url(config))
    return Catalog(engine, display)


def open_governance(
    config: Any = None, *, url: str | None = None, redis_url: str | None = None, **options: Any
) -> Governance:
    """The gate for one gateway instance: its catalog and the counters it shares.

    Counters go to Redis when ``redis_url`` (or ``config.redis_url``) is set,
    else to PostgreSQL when the database is PostgreSQL, else into this process.
    ``options`` go to :class:`Governance`. Raises
    :class:`~modelport.errors.ConfigError` when the database cannot be opened,
    or Redis is asked for without the extra installed.
    """
    from modelport.governance._enforcer import Governance
    from modelport.governance._instances import InstanceRegistry
    from modelport.governance._spend import ledger_spend

    catalog = open_catalog(config, url=url)
    engine = catalog.engine
    ttl_ms = int(options.get("hold_seconds", HOLD_SECONDS) * 1000)
    options.setdefault("hold_seconds", HOLD_SECONDS)
    redis_url = redis_url or (getattr(config, "redis_url", None) if config is not None else None)
    counters: Any
    fingerprint = ""
    if redis_url:
        from modelport._resp import RedisConnection, parse_redis_url
        from modelport.governance._redis import RedisCounters

        address = parse_redis_url(redis_url)
        fingerprint = address.fingerprint
        deployment = catalog.snapshot().deployment
        counters = RedisCounters(
            RedisConnection(address), deployment, ledger_spend(engine), ttl_ms=ttl_ms
        )
    elif engine.dialect.name == "postgresql":
        from modelport.governance._postgres import PostgresCounters

        counters = PostgresCounters(engine, ttl_ms=ttl_ms)
    else:
        from modelport.governance._memory import MemoryCounters

        counters = MemoryCounters(ledger_spend(engine), ttl_ms=ttl_ms)
    registry = InstanceRegistry(engine, fingerprint)
    return Governance(catalog, counters, registry=registry, **options)
