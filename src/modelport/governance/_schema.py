"""The team gateway's tables, in the ledger's database (SQLite or PostgreSQL).

Times are seconds since the epoch (UTC) as floats, the same on both dialects.
``modelport_governance`` is one row: ``version`` goes up with every admin
change (instances poll it to reload what changed) and ``deployment`` names
this database's counters in Redis, so two deployments sharing one Redis never
share a counter. The three counter tables serve the PostgreSQL backend only.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "METADATA",
    "audit",
    "budget_counters",
    "budget_holds",
    "budgets",
    "instances",
    "rate_limits",
    "rate_windows",
    "state",
    "virtual_keys",
]

METADATA = sa.MetaData()
_Big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

virtual_keys = sa.Table(
    "modelport_virtual_keys",
    METADATA,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("hint", sa.String(8), nullable=False),
    sa.Column("user", sa.String(255), nullable=True),
    sa.Column("team", sa.String(255), nullable=True),
    sa.Column("models", sa.Text(), nullable=False, default="[]"),
    sa.Column("expires_at", sa.Float(), nullable=True),
    sa.Column("metadata", sa.Text(), nullable=False, default="{}"),
    sa.Column("created_at", sa.Float(), nullable=False),
    sa.Column("revoked_at", sa.Float(), nullable=True),
)

budgets = sa.Table(
    "modelport_budgets",
    METADATA,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("period", sa.String(16), nullable=False),
    # Empty string rather than NULL: part of the unique natural key on both dialects.
    sa.Column("model", sa.String(512), nullable=False, default=""),
    sa.Column("max_cost", sa.Float(), nullable=True),
    sa.Column("max_tokens", _Big, nullable=True),
    sa.Column("created_at", sa.Float(), nullable=False),
    sa.UniqueConstraint("scope", "subject", "period", "model"),
)

rate_limits = sa.Table(
    "modelport_rate_limits",
    METADATA,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(512), nullable=False),
    sa.Column("model", sa.String(512), nullable=False, default=""),
    sa.Column("rpm", _Big, nullable=True),
    sa.Column("tpm", _Big, nullable=True),
    sa.Column("created_at", sa.Float(), nullable=False),
    sa.UniqueConstraint("scope", "subject", "model"),
)

audit = sa.Table(
    "modelport_audit",
    METADATA,
    sa.Column("id", _Big, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float(), nullable=False, index=True),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(512), nullable=False),
    sa.Column("detail", sa.Text(), nullable=False, default="{}"),
)

state = sa.Table(
    "modelport_governance",
    METADATA,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("version", _Big, nullable=False),
    sa.Column("deployment", sa.String(64), nullable=False),
)

instances = sa.Table(
    "modelport_instances",
    METADATA,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer(), nullable=False),
    sa.Column("started_at", sa.Float(), nullable=False),
    sa.Column("seen_at", sa.Float(), nullable=False, index=True),
    # A fingerprint of the Redis it uses (host, port, database; never a password), or "".
    sa.Column("redis", sa.String(128), nullable=False, default=""),
)

budget_counters = sa.Table(
    "modelport_budget_counters",
    METADATA,
    sa.Column("counter", sa.String(255), primary_key=True),
    sa.Column("epoch", sa.String(16), nullable=False),
    sa.Column("spent_cost", _Big, nullable=False, default=0),
    sa.Column("spent_tokens", _Big, nullable=False, default=0),
    sa.Column("held_cost", _Big, nullable=False, default=0),
    sa.Column("held_tokens", _Big, nullable=False, default=0),
)

budget_holds = sa.Table(
    "modelport_budget_holds",
    METADATA,
    sa.Column("counter", sa.String(255), primary_key=True),
    sa.Column("lease", sa.String(64), primary_key=True),
    sa.Column("cost", _Big, nullable=False),
    sa.Column("tokens", _Big, nullable=False),
    sa.Column("expires_ms", _Big, nullable=False),
)

rate_windows = sa.Table(
    "modelport_rate_windows",
    METADATA,
    sa.Column("counter", sa.String(255), primary_key=True),
    sa.Column("window", _Big, primary_key=True),
    sa.Column("count", _Big, nullable=False, default=0),
    sa.Column("tokens", _Big, nullable=False, default=0),
    sa.Column("held", _Big, nullable=False, default=0),
)
