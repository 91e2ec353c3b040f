"""Budget periods: which one a moment falls in, and when it ends (UTC calendar).

A budget's counter is named by its period's label (``2026-11-21``,
``2026-W47``, ``2026-11``, ``total``), so a new period starts a new counter
and nothing ever has to be reset.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["period_bounds", "period_label"]


def period_bounds(period: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    """``[start, end)`` of the period ``now`` falls in; ``(None, None)`` for ``total``."""
    now = now.astimezone(UTC)
    if period == "total":
        return None, None
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())  # ISO weeks start on Monday
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        return start, end
    raise ValueError(f"unknown budget period {period!r}")


def period_label(period: str, now: datetime) -> str:
    now = now.astimezone(UTC)
    if period == "total":
        return "total"
    if period == "day":
        return now.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = now.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return now.strftime("%Y-%m")
    raise ValueError(f"unknown budget period {period!r}")
