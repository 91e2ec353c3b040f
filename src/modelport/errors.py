"""One hierarchy of errors, each with a message a person can act on.

::

    ModelportError
    ├── NetworkError            refused, DNS, TLS, timeout, dropped connection
    ├── AuthError               401 / 403, or no key where one is required
    ├── RateLimitError          429 (``retry_after`` in seconds where known)
    │   └── BudgetExceededError a virtual key's budget has no room (the gateway's own 429)
    ├── InvalidRequestError     400
    │   └── ContextTooLongError ``limit`` and ``actual`` tokens where known
    ├── ModelNotFoundError      unknown model, connection or alias
    ├── UpstreamError           any other status (``status``, ``body`` excerpt)
    ├── ParseError              malformed upstream data
    ├── PluginError             a plugin crashed, hung or broke the protocol
    └── ConfigError             config.toml or settings that cannot work

Every error carries the ``connection``, ``url`` and ``model`` involved as
attributes (any of them may be ``None``) and never a secret. Errors pickle with
all their attributes, because they cross process boundaries (plugins) and
travel as JSON (:meth:`ModelportError.to_dict` / :func:`error_from_dict`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

__all__ = [
    "AuthError",
    "BudgetExceededError",
    "ConfigError",
    "ContextTooLongError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "ModelportError",
    "NetworkError",
    "ParseError",
    "PluginError",
    "RateLimitError",
    "UpstreamError",
    "error_from_dict",
]

#: Statuses worth another attempt (DESIGN.md, "Retries and cancellation").
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})


class ModelportError(Exception):
    """Base class. ``str(error)`` is the message, with the context appended."""

    #: Whether a retry could succeed where this attempt failed.
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        connection: str | None = None,
        url: str | None = None,
        model: str | None = None,
        status: int | None = None,
        body: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.connection = connection
        self.url = url
        self.model = model
        self.status = status
        self.body = body
        self.retry_after = retry_after

    def context_parts(
        self, *, show_url: Callable[[str], str] = str, status: bool = True
    ) -> list[str]:
        """``connection 'x'``, ``model 'y'``, ``url …``, ``status n``: what is known, in order.

        ``show_url`` renders the URL (the public forms pass
        :func:`modelport._redact.public_url`); ``status=False`` leaves the status
        out where the answer carries it anyway.
        """
        parts = []
        if self.connection:
            parts.append(f"connection {self.connection!r}")
        if self.model:
            parts.append(f"model {self.model!r}")
        if self.url:
            parts.append(f"url {show_url(self.url)}")
        if status and self.status is not None:
            parts.append(f"status {self.status}")
        return parts

    def _context(self) -> list[str]:
        return self.context_parts()

    def __str__(self) -> str:
        context = self._context()
        return f"{self.message} ({', '.join(context)})" if context else self.message

    def _attributes(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "url": self.url,
            "model": self.model,
            "status": self.status,
            "body": self.body,
            "retry_after": self.retry_after,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self._attributes()))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form; :func:`error_from_dict` turns it back into the same class.

        A subclass defined elsewhere travels as the nearest class of this module,
        so a receiver that knows only these still retries and maps it right.
        """
        known = next(cls for cls in type(self).__mro__ if _CLASSES.get(cls.__name__) is cls)
        data = {"class": known.__name__, "message": self.message}
        data.update({k: v for k, v in self._attributes().items() if v is not None})
        return data


def _rebuild(cls: type[ModelportError], message: str, attrs: dict[str, Any]) -> ModelportError:
    return cls(message, **attrs)


class NetworkError(ModelportError):
    """The upstream could not be reached, or the connection broke."""

    retryable = True


class AuthError(ModelportError):
    """The upstream refused the credentials, or none were configured."""


class RateLimitError(ModelportError):
    """The upstream asked us to slow down (429)."""

    retryable = True


class BudgetExceededError(RateLimitError):
    """A budget of the gateway's virtual key, user or team has no room for the request.

    ``retry_after`` is when trying again can help: when holds of requests in
    flight settle, or when the budget's period starts afresh (``None`` for a
    budget that never does). Not worth retrying at once, unlike an upstream's 429.
    """

    retryable = False


class InvalidRequestError(ModelportError):
    """The upstream rejected the request as malformed (400)."""


class ContextTooLongError(InvalidRequestError):
    """The prompt does not fit the model's context window."""

    def __init__(
        self,
        message: str,
        *,
        limit: int | None = None,
        actual: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.limit = limit
        self.actual = actual

    def _attributes(self) -> dict[str, Any]:
        return {**super()._attributes(), "limit": self.limit, "actual": self.actual}


class ModelNotFoundError(ModelportError):
    """No such model, connection or alias."""


class UpstreamError(ModelportError):
    """The upstream answered with a status no other class covers."""

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status in RETRYABLE_STATUSES


class ParseError(ModelportError):
    """The upstream sent data that is not what its format promises."""


class PluginError(ModelportError):
    """A plugin crashed, hung, or broke the plugin protocol."""

    def __init__(self, message: str, *, plugin: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.plugin = plugin

    def _context(self) -> list[str]:
        return ([f"plugin {self.plugin!r}"] if self.plugin else []) + super()._context()

    def _attributes(self) -> dict[str, Any]:
        return {**super()._attributes(), "plugin": self.plugin}


class ConfigError(ModelportError):
    """The configuration cannot work as written."""


_CLASSES: dict[str, type[ModelportError]] = {
    cls.__name__: cls
    for cls in (
        ModelportError,
        NetworkError,
        AuthError,
        RateLimitError,
        BudgetExceededError,
        InvalidRequestError,
        ContextTooLongError,
        ModelNotFoundError,
        UpstreamError,
        ParseError,
        PluginError,
        ConfigError,
    )
}


def error_from_dict(data: dict[str, Any]) -> ModelportError:
    """Rebuild an error from :meth:`ModelportError.to_dict` (unknown classes become the base)."""
    cls = _CLASSES.get(str(data.get("class")), ModelportError)
    message = str(data.get("message") or "error")
    known = {"connection", "url", "model", "status", "body", "retry_after"}
    if cls is ContextTooLongError:
        known |= {"limit", "actual"}
    if cls is PluginError:
        known |= {"plugin"}
    return cls(message, **{k: v for k, v in data.items() if k in known})
