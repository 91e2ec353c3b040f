"""The OAuth 2.0 client side: the authorization request with PKCE, the code exchange, refresh.

authlib does the protocol's parts — the PKCE verifier and its S256 challenge,
the ``state`` value and its check, the token request bodies, client
authentication (``client_secret_basic`` with a secret from
``client_secret_env``, else a public client's ``client_id``) and the token
answer as an ``OAuth2Token``. The two HTTP calls to the token endpoint go
through the pooled :class:`~modelport.providers._http_client.HttpClient`
inside :func:`~modelport.providers._http.upstream_errors`, like every other
upstream call, so a token endpoint that cannot be reached is a
:class:`~modelport.errors.NetworkError` that says what to check, and redirects
are never followed (a code or a refresh token must reach only the configured
URL).

:meth:`OAuthClient.revoke` asks the provider's RFC 7009 revocation endpoint
(``revocation_url``) to end the login, refresh token first (which ends the
grant), then the access token.

A refresh the server refuses with ``invalid_grant`` (the refresh token was
revoked or has expired) is an :class:`~modelport.errors.AuthError` saying
``run `modelport login NAME```. No token, code or secret is ever part of a
message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec

from modelport._redact import public_text
from modelport.auth.tokens import TokenSet
from modelport.config import OAuthConfig
from modelport.errors import AuthError, ConfigError, UpstreamError
from modelport.providers._http import upstream_errors
from modelport.providers._http_client import HttpClient

__all__ = ["AuthorizationRequest", "OAuthClient", "login_hint"]

#: Statuses of a token endpoint worth another try later (the router's retries see them).
_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
_FORM = "application/x-www-form-urlencoded;charset=UTF-8"


def login_hint(name: str) -> str:
    """The command that fixes a missing or dead login."""
    return f"run `modelport login {name}`"


@dataclass(frozen=True, kw_only=True)
class AuthorizationRequest:
    """One login attempt: the URL to open, and what the callback must match.

    ``state`` and ``code_verifier`` never leave this process except as the
    authorization server expects (``state`` in the URL, the verifier in the
    code exchange); ``repr`` hides them.
    """

    url: str
    redirect_uri: str
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)


class OAuthClient:
    """The client of one connection's authorization server.

    ``env`` is where ``client_secret_env`` is read (at each token request,
    never stored); ``clock`` gives Unix time (tests move it).
    """

    def __init__(
        self,
        name: str,
        config: OAuthConfig,
        *,
        http: HttpClient,
        env: Mapping[str, str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.config = config
        self._http = http
        self._env = env
        self._clock = clock

    # --- the authorization request ------------------------------------------

    def authorization_request(self, redirect_uri: str) -> AuthorizationRequest:
        """A fresh authorization URL with PKCE (S256) and a random ``state``."""
        from authlib.common.security import generate_token
        from authlib.oauth2.client import OAuth2Client

        verifier = generate_token(64)
        client = OAuth2Client(
            None,
            client_id=self.config.client_id,
            scope=self.config.scopes or None,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        )
        url, state = client.create_authorization_url(
            self.config.authorize_url, code_verifier=verifier, **self.config.params
        )
        return AuthorizationRequest(
            url=url, redirect_uri=redirect_uri, state=state, code_verifier=verifier
        )

    def code_from_callback(self, request: AuthorizationRequest, callback_url: str) -> str:
        """The authorization code of the callback, after checking its ``state``.

        A callback with ``error`` (the user said no, the server refused) or a
        ``state`` that is not this attempt's (a forged or stale callback) is an
        :class:`AuthError`.
        """
        from authlib.oauth2.rfc6749.errors import MismatchingStateException, MissingCodeException
        from authlib.oauth2.rfc6749.parameters import parse_authorization_code_response

        query = dict(parse_qsl(urlsplit(callback_url).query))
        if "error" in query:
            raise AuthError(
                _refusal(self.name, "The authorization server", query), connection=self.name
            )
        try:
            params = parse_authorization_code_response(callback_url, state=request.state)
        except MismatchingStateException:
            raise AuthError(
                f"The login callback for {self.name!r} carried a state that does not match "
                f"this login (a stale or forged callback); {login_hint(self.name)} again",
                connection=self.name,
            ) from None
        except MissingCodeException:
            raise AuthError(
                f"The login callback for {self.name!r} carried no authorization code; "
                f"{login_hint(self.name)} again",
                connection=self.name,
            ) from None
        if not request.state or params.get("state") != request.state:
            # authlib skips the comparison when no state was expected; we always expect one.
            raise AuthError(
                f"The login callback for {self.name!r} carried no matching state; "
                f"{login_hint(self.name)} again",
                connection=self.name,
            )
        return str(params["code"])

    # --- the token endpoint ----------------------------------------------------

    async def exchange(self, request: AuthorizationRequest, code: str) -> TokenSet:
        """Trade the authorization code (and the PKCE verifier) for tokens."""
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=request.redirect_uri,
            code_verifier=request.code_verifier,
        )
        answer = await self._token_request(body, action="exchanging the login code")
        return TokenSet.from_response(answer, now=self._clock())

    async def refresh(self, tokens: TokenSet) -> TokenSet:
        """New tokens for ``tokens.refresh_token``; a rotated refresh token replaces the old."""
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        if not tokens.refresh_token:
            raise AuthError(
                f"The login of {self.name!r} has expired and the server gave no refresh token; "
                f"{login_hint(self.name)}",
                connection=self.name,
                status=401,
            )
        body = prepare_token_request("refresh_token", refresh_token=tokens.refresh_token)
        answer = await self._token_request(body, action="refreshing the login")
        return TokenSet.from_response(answer, now=self._clock(), previous=tokens)

    async def revoke(self, tokens: TokenSet) -> None:
        """Revoke ``tokens`` at ``revocation_url`` (RFC 7009); raises when it is not confirmed.

        The refresh token goes first: revoking it ends the grant, and a server
        that revokes its access tokens with it makes the second call a formality.
        A server answers 200 even for a token it no longer knows (RFC 7009 §2.2).
        """
        from authlib.oauth2.rfc7009.parameters import prepare_revoke_token_request

        url = self.config.revocation_url
        if url is None:
            raise ConfigError(
                f"[connections.{self.name}.oauth] names no revocation_url", connection=self.name
            )
        pairs = [(tokens.refresh_token, "refresh_token"), (tokens.access_token, "access_token")]
        for token, hint in pairs:
            if not token:
                continue
            body, _ = prepare_revoke_token_request(token, token_type_hint=hint)
            status, answer = await self._post(url, body, "revocation_url")
            if status != 200:
                raise UpstreamError(
                    _not_revoked(self.name, answer, status), connection=self.name, status=status
                )

    async def _post(self, url: str, body: str, setting: str) -> tuple[int, dict[str, Any]]:
        """POST a form ``body`` to one of the server's endpoints, authenticated as the client."""
        from authlib.oauth2.auth import ClientAuth

        secret = self._client_secret()
        auth = ClientAuth(
            self.config.client_id, secret, "client_secret_basic" if secret else "none"
        )
        headers = {"Accept": "application/json", "Content-Type": _FORM}
        url, headers, body = auth.prepare("POST", url, headers, body)
        with upstream_errors(
            url=url,
            connection=self.name,
            hint=f"is the {setting} in [connections.{self.name}.oauth] right?",
        ):
            response = await self._http.request(
                "POST", url, headers=headers, content=body.encode(), timeout=30.0
            )
        return response.status, _json_object(response.content)

    async def _token_request(self, body: str, *, action: str) -> dict[str, Any]:
        from authlib.oauth2.rfc6749.wrappers import OAuth2Token

        status, answer = await self._post(self.config.token_url, body, "token_url")

        if status >= 300 or "error" in answer or not answer.get("access_token"):
            raise self._token_error(status, answer, action)
        return dict(OAuth2Token.from_dict(answer))

    def _client_secret(self) -> str | None:
        variable = self.config.client_secret_env
        if variable is None:
            return None
        value = self._env.get(variable)
        if not value:
            raise ConfigError(
                f"Connection {self.name!r} is a confidential OAuth client: set the environment "
                f"variable {variable} (client_secret_env) to its client secret",
                connection=self.name,
            )
        return value

    def _token_error(self, status: int, answer: dict[str, Any], action: str) -> Exception:
        error = answer.get("error")
        if error == "invalid_grant" and action.startswith("refreshing"):
            return AuthError(
                f"The authorization server refused to renew the login of {self.name!r} "
                f"(the refresh token was revoked or has expired); {login_hint(self.name)}",
                connection=self.name,
                status=401,
            )
        if status in _RETRYABLE:
            return UpstreamError(
                f"The token endpoint of {self.name!r} answered {status} while {action}; "
                "it may be down for a moment",
                connection=self.name,
                status=status,
            )
        if error or 400 <= status < 500:
            return AuthError(
                _refusal(self.name, "The token endpoint", answer, status),
                connection=self.name,
                status=401,
            )
        return UpstreamError(
            f"The token endpoint of {self.name!r} answered {status} without tokens while "
            f"{action} — is token_url right?",
            connection=self.name,
            status=status,
        )


def _json_object(content: bytes) -> dict[str, Any]:
    try:
        answer = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _not_revoked(name: str, answer: Mapping[str, Any], status: int) -> str:
    """``the revocation endpoint … answered 503 (error: description)`` — no token in it."""
    error = answer.get("error")
    description = answer.get("error_description")
    detail = f"{error}: {description}" if error and isinstance(description, str) else error
    shown = f" ({str(detail)[:300]})" if detail else ""
    return public_text(
        f"The revocation endpoint of {name!r} answered {status}{shown} instead of confirming"
    )


def _refusal(name: str, who: str, answer: Mapping[str, Any], status: int | None = None) -> str:
    """``who refused …: error (description); run modelport login NAME`` — no secrets."""
    error = str(answer.get("error") or (f"status {status}" if status else "no reason given"))
    description = answer.get("error_description")
    detail = f"{error}: {description}" if isinstance(description, str) and description else error
    return public_text(f"{who} refused the login of {name!r} ({detail[:300]}); {login_hint(name)}")
