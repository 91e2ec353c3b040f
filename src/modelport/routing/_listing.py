"""Listing models across connections: each connection's answer or error, and the merge.

The router asks every connection at once (:meth:`Router.list_models_report`);
one that fails must not hide the others, and a third-party provider's bug is
reported as that connection's error rather than raised.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from modelport.errors import ModelportError
from modelport.routing._route import ConnectionModels
from modelport.types import ModelInfo

__all__ = ["models_in", "report_of"]

logger = logging.getLogger("modelport.routing")


async def report_of(
    connection: str, models_of: Callable[[str], Awaitable[list[ModelInfo]]]
) -> ConnectionModels:
    """``connection``'s models, or the error it gave."""
    try:
        return ConnectionModels(connection=connection, models=await models_of(connection))
    except ModelportError as error:
        return ConnectionModels(connection=connection, models=[], error=error)
    except Exception as exc:  # a third-party provider's bug must not hide the others
        error = ModelportError(f"{type(exc).__name__}: {exc}", connection=connection)
        error.__cause__ = exc
        return ConnectionModels(connection=connection, models=[], error=error)


def models_in(report: list[ConnectionModels]) -> list[ModelInfo]:
    """Every model of ``report``; failures are logged, and raised only if all failed."""
    failures = [entry for entry in report if entry.error is not None]
    for entry in failures:
        logger.warning("listing models of %s failed: %s", entry.connection, entry.error)
    if report and len(failures) == len(report):
        assert failures[0].error is not None
        raise failures[0].error
    return [model for entry in report for model in entry.models]
