"""A plugin's provider as a :class:`~modelport.providers.Provider`.

:class:`PluginProvider` turns a :class:`~modelport.types.ChatRequest` into a
``provider.stream`` / ``provider.complete`` call (the request in OpenAI form
plus ``providerConfig``; for a provider that logs in with OAuth, the current
access token in its ``oauth`` field, see :meth:`PluginProvider.with_access_token`)
and the ``provider.chunk`` notifications and final
answer back into canonical events, through the one OpenAI chunk decoder in
:mod:`modelport.wire.openai_chat`; ``provider.embed`` (optional) takes an
OpenAI ``/embeddings`` body and answers an embeddings ``list``. A caller that
goes away sends the plugin ``$/cancelRequest``.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelport import plugin_protocol
from modelport._redact import remember_secret
from modelport.aggregate import aaggregate
from modelport.config import OAuthConfig, parse_oauth
from modelport.errors import (
    AuthError,
    ConfigError,
    InvalidRequestError,
    ModelportError,
    PluginError,
)
from modelport.events import StreamEvent
from modelport.plugin_host.process import PluginProcess
from modelport.plugin_protocol import ConfigField, RegisterParams
from modelport.types import (
    Capabilities,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    ModelPrices,
)

__all__ = [
    "CAPABILITIES",
    "PluginProvider",
    "DEFAULT_OAUTH_FIELD",
    "Registration",
    "normalise_provider_id",
    "parse_registration",
    "resolve_provider_config",
]

_PROVIDER_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
#: The ``providerConfig`` key of the access token when a provider declares no ``oauth`` field.
DEFAULT_OAUTH_FIELD = "accessToken"
#: A registration's ``oauth`` block (camelCase, as on the wire) → ``[connections.X.oauth]`` keys.
_OAUTH_KEYS = {
    "authorizeUrl": "authorize_url",
    "tokenUrl": "token_url",
    "clientId": "client_id",
    "scopes": "scopes",
    "redirectPort": "redirect_port",
    "redirectPath": "redirect_path",
    "redirectHost": "redirect_host",
    "params": "params",
}
_request_ids = itertools.count(1)


def normalise_provider_id(raw: object) -> str:
    """Lower case, spaces to ``-``; :class:`InvalidRequestError` for anything unusable."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidRequestError("provider.register needs a non-empty string 'providerId'")
    provider_id = re.sub(r"\s+", "-", raw.strip().lower())
    if not _PROVIDER_ID.match(provider_id):
        raise InvalidRequestError(
            f"Provider id {raw!r} may hold only letters, digits, '.', '_' and '-' "
            "(it becomes the first part of model addresses such as '<providerId>/<model>')"
        )
    return provider_id


@dataclass(frozen=True, kw_only=True)
class Registration:
    """What a plugin declared in ``provider.register``.

    ``capabilities`` are the known capability names the provider declared (as
    the wire spells them); ``warnings`` are what was ignored (an unknown
    capability), for the plugin's ``problems``.
    """

    provider_id: str
    plugin: str
    name: str
    description: str = ""
    capabilities: tuple[str, ...] = ()
    requires_key: bool = False
    config_fields: tuple[ConfigField, ...] = ()
    models: tuple[ModelInfo, ...] = ()
    warnings: tuple[str, ...] = ()
    #: Where its users log in, from the registration's ``oauth`` block.
    oauth: OAuthConfig | None = None

    @property
    def oauth_field(self) -> str | None:
        """The ``configFields`` key of type ``oauth``, if the provider declared one."""
        for spec in self.config_fields:
            if spec.get("type") == "oauth":
                return spec["key"]
        return None

    @property
    def wants_oauth(self) -> bool:
        """Whether the provider asked for OAuth (an ``oauth`` block or an ``oauth`` field)."""
        return self.oauth is not None or self.oauth_field is not None

    @property
    def has_password(self) -> bool:
        return any(spec.get("type") == "password" for spec in self.config_fields)


#: Capability names a registration may declare, as the wire spells them, and
#: the :class:`~modelport.types.Capabilities` field each sets (None: accepted,
#: nothing to record: every provider chats).
CAPABILITIES: dict[str, str | None] = {
    "chat": None,
    "completion": None,
    "promptCache": "prompt_cache",
    "reasoning": "reasoning",
    "streaming": "streaming",
    "tools": "tools",
    "vision": "vision",
}
_ALIASES = {"prompt_cache": "promptCache"}
_DEFAULTS = {
    "tools": True,
    "vision": False,
    "reasoning": False,
    "promptCache": False,
    "streaming": True,
}
_CAPABILITIES_SHAPE = (
    'a list of names such as ["chat", "streaming"] or an object of booleans such as {"tools": true}'
)


def _capabilities(raw: Any, where: str, warnings: list[str]) -> dict[str, bool] | None:
    """``capabilities`` in either shape, as known wire name → bool; None when absent.

    A list names what there is, so a known name it leaves out is ``False``; an
    object sets only the names it holds. Unknown names become warnings.
    """
    if raw is None:
        return None
    if isinstance(raw, list):
        if not all(isinstance(name, str) for name in raw):
            raise InvalidRequestError(f"{where}: 'capabilities' must be {_CAPABILITIES_SHAPE}")
        names = [_ALIASES.get(name, name) for name in raw]
        pairs = [(name, name in names) for name in CAPABILITIES]
        unknown = [name for name in raw if _ALIASES.get(name, name) not in CAPABILITIES]
    elif isinstance(raw, dict):
        pairs = [(_ALIASES.get(str(k), str(k)), bool(v)) for k, v in raw.items()]
        unknown = [str(k) for k in raw if _ALIASES.get(str(k), str(k)) not in CAPABILITIES]
        pairs = [(name, value) for name, value in pairs if name in CAPABILITIES]
    else:
        raise InvalidRequestError(f"{where}: 'capabilities' must be {_CAPABILITIES_SHAPE}")
    known = ", ".join(sorted(CAPABILITIES))
    warnings.extend(
        f"{where}: unknown capability {name!r} ignored (known: {known})"
        for name in dict.fromkeys(unknown)
    )
    return dict(pairs)


def _pick(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in data:
            return data[key]
    return None


def _typed(value: Any, kinds: tuple[type, ...], what: str, label: str) -> Any:
    """``value`` if it is None or one of ``kinds`` (never a bool for a number), else a refusal."""
    if value is None or (isinstance(value, kinds) and not isinstance(value, bool)):
        return value
    raise InvalidRequestError(f"{label}: {what} (got {value!r:.60})")


def _model(
    data: Any, provider_id: str, defaults: dict[str, bool] | None, warnings: list[str]
) -> ModelInfo:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise InvalidRequestError("each entry of 'models' needs a string 'id'")
    label = f"model {data['id']!r}"
    prices = data.get("prices") or {}
    if not isinstance(prices, dict):
        raise InvalidRequestError(f"{label}: 'prices' must be an object of numbers")
    own = _capabilities(data.get("capabilities"), label, warnings)
    if own is not None and isinstance(data.get("capabilities"), list):
        caps = {**_DEFAULTS, **own}  # the model's own list is the whole story
    else:
        caps = {**_DEFAULTS, **(defaults or {}), **(own or {})}
    whole = "must be a whole number of tokens"
    price = "must be a number of dollars per million tokens"
    number = (int, float)
    return ModelInfo(
        id=data["id"],
        connection=provider_id,
        name=_typed(data.get("name"), (str,), "'name' must be a string", label),
        context_window=_typed(
            _pick(data, "contextWindow", "context_window"),
            (int,),
            f"'contextWindow' {whole}",
            label,
        ),
        max_output_tokens=_typed(
            _pick(data, "maxOutputTokens", "max_output_tokens"),
            (int,),
            f"'maxOutputTokens' {whole}",
            label,
        ),
        prices=ModelPrices(
            **{
                field_name: _typed(
                    _pick(prices, wire, field_name), number, f"prices '{wire}' {price}", label
                )
                for wire, field_name in (
                    ("input", "input"),
                    ("output", "output"),
                    ("cacheRead", "cache_read"),
                    ("cacheWrite", "cache_write"),
                )
            }
        ),
        capabilities=Capabilities(
            **{
                field_name: caps[wire]
                for wire, field_name in CAPABILITIES.items()
                if field_name is not None
            }
        ),
    )


def parse_registration(params: Any, *, plugin: str) -> Registration:
    """Validate ``provider.register`` params (the plugin's input is untrusted)."""
    if not isinstance(params, dict):
        raise InvalidRequestError("provider.register params must be an object")
    raw: RegisterParams = params  # type: ignore[assignment]
    provider_id = normalise_provider_id(raw.get("providerId"))
    fields = raw.get("configFields") or []
    if not isinstance(fields, list) or not all(
        isinstance(f, dict) and isinstance(f.get("key"), str) and f.get("key") for f in fields
    ):
        raise InvalidRequestError("'configFields' must be a list of objects with a string 'key'")
    models = raw.get("models") or []
    if not isinstance(models, list):
        raise InvalidRequestError("'models' must be a list")
    warnings: list[str] = []
    capabilities = _capabilities(raw.get("capabilities"), f"provider {provider_id!r}", warnings)
    requires_key = bool(raw.get("requiresKey", False))
    if requires_key and not any(f.get("type") == "password" for f in fields):
        raise InvalidRequestError(
            f"Provider {provider_id!r} sets requiresKey but declares no password field, so "
            "no key could ever reach it: add a configFields entry such as "
            '{"key": "apiKey", "label": "API key", "type": "password"}, '
            "or drop requiresKey"
        )
    kinds = {f.get("type", "text") for f in fields}
    if not kinds <= {"text", "password", "oauth"}:
        raise InvalidRequestError("a configFields 'type' must be text, password or oauth")
    if sum(f.get("type") == "oauth" for f in fields) > 1:
        raise InvalidRequestError("'configFields' may hold one field of type oauth at most")
    oauth = _oauth_block(raw.get("oauth"), provider_id)
    parsed = [_model(m, provider_id, capabilities, warnings) for m in models]
    ids = [m.id for m in parsed]
    if len(ids) != len(set(ids)):
        raise InvalidRequestError(f"'models' lists a model id twice: {ids}")
    return Registration(
        provider_id=provider_id,
        plugin=plugin,
        name=str(raw.get("name") or provider_id),
        description=str(raw.get("description") or ""),
        capabilities=tuple(name for name, on in (capabilities or {}).items() if on),
        requires_key=requires_key,
        config_fields=tuple(fields),
        models=tuple(parsed),
        warnings=tuple(warnings),
        oauth=oauth,
    )


def _oauth_block(block: Any, provider_id: str) -> OAuthConfig | None:
    """A registration's ``oauth`` block, checked as strictly as the user's own table."""
    if block is None:
        return None
    if not isinstance(block, dict):
        raise InvalidRequestError("'oauth' must be an object")
    unknown = sorted(set(block) - set(_OAUTH_KEYS))
    if unknown:
        raise InvalidRequestError(
            f"'oauth' has unknown keys {unknown} (known: {', '.join(sorted(_OAUTH_KEYS))}); "
            "a client secret never travels in a registration: the user sets "
            f"client_secret_env under [connections.{provider_id}.oauth]"
        )
    try:
        return parse_oauth(
            {_OAUTH_KEYS[key]: value for key, value in block.items()},
            f"the 'oauth' block of provider {provider_id!r}",
        )
    except ConfigError as exc:
        raise InvalidRequestError(exc.message) from None


def resolve_provider_config(
    registration: Registration,
    options: Mapping[str, Any],
    *,
    get_key: Callable[[str], str | None],
    environ: Mapping[str, str] | None = None,
    access_token: str | None = None,
) -> dict[str, Any]:
    """The ``providerConfig`` for one request, from ``[connections.<providerId>]``.

    A password field comes from the environment variable ``<key>_env`` names
    (the host fills that in from the connection's ``api_key_env``), else the
    table itself, else the keyring (``get_key(providerId)``). A
    provider with ``requiresKey`` and no password value fails with an
    :class:`AuthError` that says what to fill in. With an OAuth
    ``access_token``, the call logs in with it instead: the token goes in the
    provider's ``oauth`` field (:data:`DEFAULT_OAUTH_FIELD` when it declared
    none), and no key is sent.
    """
    environ = os.environ if environ is None else environ
    pid = registration.provider_id
    config: dict[str, Any] = {}
    missing: list[str] = []
    passwords: list[str] = []
    if access_token is not None:
        config[registration.oauth_field or DEFAULT_OAUTH_FIELD] = access_token
    for spec in registration.config_fields:
        key = spec["key"]
        value: Any = options.get(key)
        if spec.get("type") == "oauth":
            continue  # filled with the access token above, or not at all in key mode
        if spec.get("type") == "password" and access_token is not None:
            continue  # an OAuth call carries the token, never also a key
        if spec.get("type") == "password":
            passwords.append(key)
            env_name = options.get(f"{key}_env")
            if isinstance(env_name, str) and environ.get(env_name):
                value = environ[env_name]
            if value in (None, ""):
                value = get_key(pid)
        if value in (None, ""):
            if spec.get("required"):
                missing.append(key)
            continue
        if spec.get("type") == "password" and isinstance(value, str):
            remember_secret(value)  # masked wherever an error is written, as every key is
        config[key] = value
    if (
        access_token is None
        and registration.requires_key
        and not any(config.get(k) for k in passwords)
    ):
        raise AuthError(
            f"The provider {pid!r} (plugin {registration.plugin!r}) needs a key: run "
            f"'modelport keys set {pid}', or name an environment variable with "
            f'api_key_env = "VAR" under [connections.{pid}] in config.toml',
            connection=pid,
        )
    if missing:
        raise InvalidRequestError(
            f"The provider {pid!r} needs {', '.join(missing)}: set "
            + ", ".join(f"{k} = ..." for k in missing)
            + f' under [connections.{pid}] (compat = "plugin:{pid}") in config.toml',
            connection=pid,
        )
    return config


class PluginProvider:
    """One registered provider of one plugin, reached through ``process()``.

    ``process`` returns the plugin's live process or raises :class:`PluginError`;
    ``provider_config`` builds ``providerConfig`` (or raises :class:`AuthError`);
    it is called with ``access_token=`` when the call logs in with OAuth.
    """

    def __init__(
        self,
        registration: Registration,
        *,
        process: Callable[[], PluginProcess],
        provider_config: Callable[..., dict[str, Any]],
        timeout: float = 120.0,
        access_token: str | None = None,
    ) -> None:
        self.registration = registration
        self._process = process
        self._provider_config = provider_config
        self.timeout = timeout
        self._access_token = access_token

    def with_access_token(self, token: str) -> PluginProvider:
        """This provider for calls that carry ``token`` in ``providerConfig``
        (what :class:`~modelport.auth.provider.OAuthProvider` builds per token)."""
        return PluginProvider(
            self.registration,
            process=self._process,
            provider_config=self._provider_config,
            timeout=self.timeout,
            access_token=token,
        )

    def _config(self) -> dict[str, Any]:
        """This request's ``providerConfig``: the access token too, for an OAuth call."""
        if self._access_token is None:
            return self._provider_config(self.registration)
        return self._provider_config(self.registration, access_token=self._access_token)

    @property
    def provider_id(self) -> str:
        return self.registration.provider_id

    async def list_models(self) -> list[ModelInfo]:
        return list(self.registration.models)

    def _params(self, request: ChatRequest, *, stream: bool) -> tuple[str, dict[str, Any]]:
        from modelport.wire.openai_chat import build_request

        options = build_request(request, stream=stream)
        options["providerConfig"] = self._config()
        request_id = f"req-{next(_request_ids)}"
        return request_id, {
            "requestId": request_id,
            "providerId": self.provider_id,
            "options": options,
        }

    def _context(self, exc: ModelportError, request: ChatRequest) -> ModelportError:
        exc.connection = exc.connection or self.provider_id
        exc.model = exc.model or request.model
        if isinstance(exc, PluginError) and exc.plugin is None:
            exc.plugin = self.registration.plugin
        return exc

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        from modelport.plugin_host._answer import AnswerFold

        try:
            process = self._process()
            request_id, params = self._params(request, stream=True)
            call = await process.call(
                plugin_protocol.PROVIDER_STREAM, params, request_id=request_id
            )
        except ModelportError as exc:
            raise self._context(exc, request) from None
        fold = AnswerFold()
        finished = False
        try:
            while True:
                kind, value = await process.next(call, self.timeout)
                if kind == "result":
                    break
                for event in fold.chunk(value):
                    yield event
            finished = True
            for event in fold.final(
                value, plugin=self.registration.plugin, method=plugin_protocol.PROVIDER_STREAM
            ):
                yield event
        except ModelportError as exc:
            raise self._context(exc, request) from None
        finally:
            if not finished:
                await process.cancel(call)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        from modelport.plugin_host._answer import AnswerFold, is_completion
        from modelport.wire.openai_chat import decode_completion

        try:
            process = self._process()
            request_id, params = self._params(request, stream=False)
            call = await process.call(
                plugin_protocol.PROVIDER_COMPLETE, params, request_id=request_id
            )
        except ModelportError as exc:
            raise self._context(exc, request) from None
        done = False
        chunks: list[Any] = []
        try:
            while True:
                kind, value = await process.next(call, self.timeout)
                if kind == "result":
                    done = True
                    break
                chunks.append(value)
            if is_completion(value):
                events = decode_completion(value)
            else:
                # No chat.completion: the answer is what the chunks add up to.
                fold = AnswerFold()
                events = [event for chunk in chunks for event in fold.chunk(chunk)]
                events += fold.final(
                    value,
                    plugin=self.registration.plugin,
                    method=plugin_protocol.PROVIDER_COMPLETE,
                )
        except ModelportError as exc:
            raise self._context(exc, request) from None
        finally:
            if not done:
                await process.cancel(call)

        async def _replay() -> AsyncIterator[StreamEvent]:
            for event in events:
                yield event

        body = value if isinstance(value, dict) else {}
        if not isinstance(body.get("id"), str):
            body = next((c for c in chunks if isinstance(c, dict)), {})
        response_id = body.get("id") if isinstance(body.get("id"), str) else None
        return await aaggregate(_replay(), model=request.model, id=response_id)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """``provider.embed`` with the request as an OpenAI ``/embeddings`` body.

        A plugin that has no such method (it answers METHOD_NOT_FOUND) does not
        offer embeddings: that is the caller's :class:`InvalidRequestError`.
        """
        from modelport.wire.embeddings import decode_openai, openai_body

        options = openai_body(request)
        try:
            process = self._process()
            options["providerConfig"] = self._config()
            request_id = f"req-{next(_request_ids)}"
            params = {"requestId": request_id, "providerId": self.provider_id, "options": options}
            call = await process.call(plugin_protocol.PROVIDER_EMBED, params, request_id=request_id)
        except ModelportError as exc:
            raise self._context(exc, request) from None
        done = False
        try:
            while True:
                kind, value = await process.next(call, self.timeout)
                if kind == "result":
                    done = True
                    break
            embedded = decode_openai(value if isinstance(value, dict) else {})
        except PluginError as exc:
            if exc.message.endswith(_NO_SUCH_METHOD):
                raise InvalidRequestError(
                    f"Connection {self.provider_id!r} does not offer embeddings: its plugin "
                    f"{self.registration.plugin!r} has no provider.embed",
                    connection=self.provider_id,
                    model=request.model,
                ) from None
            raise self._context(exc, request) from None
        except ModelportError as exc:
            raise self._context(exc, request) from None
        finally:
            if not done:
                await process.cancel(call)
        if len(embedded.vectors) != len(request.input):
            raise self._context(
                PluginError(
                    f"The plugin answered {len(embedded.vectors)} embeddings for "
                    f"{len(request.input)} inputs",
                    plugin=self.registration.plugin,
                ),
                request,
            )
        return EmbeddingResponse(
            model=request.model, embeddings=embedded.vectors, usage=embedded.usage
        )

    async def aclose(self) -> None:
        return None


#: How :func:`~modelport.plugin_protocol.error_from_rpc` ends the message of a
#: METHOD_NOT_FOUND answer (no error class named): the plugin lacks the method.
_NO_SUCH_METHOD = f"(JSON-RPC error {plugin_protocol.METHOD_NOT_FOUND})"
