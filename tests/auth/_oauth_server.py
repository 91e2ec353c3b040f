"""A real OAuth 2.0 authorization server (and the API it protects) on 127.0.0.1, for tests.

Built from authlib's server-side parts — :class:`authlib.oauth2.rfc6749.AuthorizationServer`
with the authorization-code grant (PKCE S256 required) and the refresh-token
grant (rotating: every refresh issues a new refresh token and revokes the old
one) — on a small Starlette app served by uvicorn in a thread of its own, so
the CLI's own event loop and the test's can both reach it.

Routes:

- ``GET /authorize``: a consent page with an "Allow" button (a form posting
  back), or, with ``auto_approve``, straight to the redirect;
- ``POST /authorize``: the user's consent → ``302`` to the client's callback;
- ``POST /token``: codes and refresh tokens for tokens (short-lived as set);
- ``POST /revoke``: RFC 7009 revocation (authlib's ``RevocationEndpoint``), each
  request recorded in :attr:`OAuthTestServer.revocations`; ``revoke_status``
  makes it answer that status instead (a provider that is down);
- ``GET /v1/models``, ``POST /v1/chat/completions``: an OpenAI-compatible API that
  answers only a valid, unexpired, unrevoked ``Authorization: Bearer`` token
  and answers ``401`` (OpenAI's error shape) otherwise.

Time is the server's :attr:`clock` (a :class:`Clock` a test may move), shared
with the client's :class:`~modelport.auth.session.TokenBroker`, so "at expiry"
needs no sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, grants
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, OAuth2Request
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CLIENT_ID = "modelport-cli"
USER = "ada@example.com"


class Clock:
    """Unix time plus an offset a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class _Client(ClientMixin):
    client_id: str
    client_secret: str | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # RFC 8252 §7.3: a native app's loopback redirect may use any port.
        return redirect_uri.startswith(("http://127.0.0.1:", "http://localhost:"))

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(
            client_secret, self.client_secret
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.client_secret is None:
            return method == "none"
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class _Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class _Token:
    access_token: str
    refresh_token: str | None
    client_id: str
    scope: str
    user: str
    issued_at: float
    expires_in: int
    revoked: bool = False  # the refresh token (rotated away, or revoked)
    access_revoked: bool = False

    def check_client(self, client: _Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def is_expired(self) -> bool:
        return False  # a refresh token does not expire here; revocation ends it

    def get_user(self) -> str:
        return self.user

    def get_client(self) -> _Client:
        raise NotImplementedError


@dataclass
class _State:
    clients: dict[str, _Client] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    tokens: list[_Token] = field(default_factory=list)
    token_requests: list[str] = field(default_factory=list)  # grant types, in order
    api_tokens: list[str] = field(default_factory=list)  # tokens the API was shown
    #: Each revocation request: (token_type_hint, the token sent, whether it matched one issued).
    revocations: list[tuple[str | None, str, bool]] = field(default_factory=list)


class _CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic"]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.server.state.codes[code] = _Code(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=data.get("redirect_uri", ""),
            scope=request.scope or "",
            user=request.user,
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
        found = self.server.state.codes.get(code)
        return found if found is not None and found.client_id == client.client_id else None

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        self.server.state.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: _Code) -> str:
        return authorization_code.user


class _RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token: str) -> _Token | None:
        for token in self.server.state.tokens:
            if token.refresh_token == refresh_token and not token.revoked:
                return token
        return None

    def authenticate_user(self, refresh_token: _Token) -> str:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: _Token) -> None:
        refresh_token.revoked = True


class _Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["none", "client_secret_basic"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        state = self.server.state
        for token in state.tokens:
            if token_string in (token.access_token, token.refresh_token):
                state.revocations.append((token_type_hint, token_string, True))
                return token
        state.revocations.append((token_type_hint, token_string, False))
        return None

    def revoke_token(self, token: _Token, request: OAuth2Request) -> None:
        if request.form.get("token") == token.refresh_token:
            # Ending the grant ends its access token too (RFC 7009 §2.1 SHOULD).
            token.revoked = token.access_revoked = True
        else:
            token.access_revoked = True


class _Request(OAuth2Request):
    def __init__(self, method: str, url: str, headers: Any, args: dict[str, str], form: dict):
        super().__init__(method, url, headers=headers)
        self._args = args
        self._form = form
        self.payload = BasicOAuth2Payload({**args, **form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _Server(AuthorizationServer):
    def __init__(self, state: _State, clock: Clock, expires_in: int) -> None:
        super().__init__()
        self.state = state
        self.clock = clock
        self.expires_in = expires_in
        self.register_token_generator("default", self._generate)
        self.register_grant(_CodeGrant, [CodeChallenge(required=True)])
        self.register_grant(_RefreshGrant)
        self.register_endpoint(_Revocation)

    def query_client(self, client_id: str) -> _Client | None:
        return self.state.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.state.tokens.append(
            _Token(
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                client_id=request.client.client_id,
                scope=token.get("scope", ""),
                user=request.user,
                issued_at=self.clock(),
                expires_in=token["expires_in"],
            )
        )

    def _generate(
        self,
        grant_type: str,
        client: _Client,
        user: str | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        token = {
            "token_type": "Bearer",
            "access_token": f"at-{secrets.token_urlsafe(24)}",
            "expires_in": self.expires_in,
            "scope": scope or "",
            "id_token": _id_token({"sub": "user-1", "email": user}),
        }
        if include_refresh_token:
            token["refresh_token"] = f"rt-{secrets.token_urlsafe(24)}"
        return token

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        headers = dict(headers or [])
        if isinstance(body, dict):
            return JSONResponse(body, status_code=status, headers=headers)
        return Response(body or "", status_code=status, headers=headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


def _id_token(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


class OAuthTestServer:
    """The authorization server and its API on a free loopback port (see the module docstring).

    ``expires_in`` is the access tokens' lifetime; ``client_secret`` makes the
    client confidential; ``auto_approve`` skips the consent page.
    """

    def __init__(
        self,
        *,
        expires_in: int = 3600,
        client_secret: str | None = None,
        auto_approve: bool = True,
        token_delay: float = 0.0,
        revoke_status: int | None = None,
    ) -> None:
        self.clock = Clock()
        self.state = _State()
        self.state.clients[CLIENT_ID] = _Client(CLIENT_ID, client_secret)
        self.server = _Server(self.state, self.clock, expires_in)
        self.auto_approve = auto_approve
        self.token_delay = token_delay
        self.revoke_status = revoke_status
        self._lock = threading.Lock()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._thread: threading.Thread | None = None
        self._uvicorn: Any = None
        #: Called (in the server's thread) with each token the API is shown.
        self.on_api_request: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def oauth_table(self, **extra: Any) -> str:
        """The ``[connections.X.oauth]`` lines for this server."""
        lines = [
            f'authorize_url = "{self.url}/authorize"',
            f'token_url = "{self.url}/token"',
            f'client_id = "{CLIENT_ID}"',
            'scopes = ["llm", "offline_access"]',
        ]
        lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
        return "\n".join(lines) + "\n"

    # --- what tests inspect and change -----------------------------------------

    @property
    def revocations(self) -> list[tuple[str | None, str, bool]]:
        with self._lock:
            return list(self.state.revocations)

    @property
    def refreshes(self) -> int:
        return self.state.token_requests.count("refresh_token")

    def current(self) -> _Token:
        with self._lock:
            return next(t for t in reversed(self.state.tokens) if not t.revoked)

    def revoke_all(self) -> None:
        with self._lock:
            for token in self.state.tokens:
                token.revoked = token.access_revoked = True

    def expire_access_tokens(self) -> None:
        """Make every issued access token expired (the refresh tokens stay good)."""
        with self._lock:
            for token in self.state.tokens:
                token.issued_at -= token.expires_in + 1

    def _valid_access(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            return False
        if self.on_api_request is not None:
            self.on_api_request(value)
        with self._lock:
            self.state.api_tokens.append(value)
            for token in self.state.tokens:
                if token.access_token == value:
                    return not token.access_revoked and (
                        self.clock() < token.issued_at + token.expires_in
                    )
        return False

    # --- the app -----------------------------------------------------------------

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/authorize", self._authorize, methods=["GET", "POST"]),
                Route("/token", self._token, methods=["POST"]),
                Route("/revoke", self._revoke, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ]
        )

    async def _request(self, request: Request) -> _Request:
        # A form body, parsed by hand: Starlette's form() needs python-multipart.
        form = dict(parse_qsl((await request.body()).decode())) if request.method == "POST" else {}
        return _Request(
            request.method, str(request.url), request.headers, dict(request.query_params), form
        )

    async def _authorize(self, request: Request) -> Response:
        oauth_request = await self._request(request)
        if request.method == "GET" and not self.auto_approve:
            with self._lock:
                try:
                    self.server.get_consent_grant(oauth_request)
                except Exception as exc:  # noqa: BLE001 - shown to the test as a page
                    return HTMLResponse(f"<p id=error>{html.escape(str(exc))}</p>", 400)
            fields = "".join(
                f"<input type=hidden name={html.escape(k)} value='{html.escape(v)}'>"
                for k, v in request.query_params.items()
            )
            return HTMLResponse(
                "<!doctype html><title>Sign in to Example LLM</title>"
                f"<h1>Allow modelport to use Example LLM as {USER}?</h1>"
                f"<form method=post action=/authorize>{fields}"
                "<button id=allow type=submit>Allow</button></form>"
            )
        with self._lock:
            grant = self.server.get_consent_grant(oauth_request)
            return self.server.create_authorization_response(oauth_request, USER, grant)

    async def _token(self, request: Request) -> Response:
        oauth_request = await self._request(request)
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        with self._lock:
            self.state.token_requests.append(oauth_request.form.get("grant_type", ""))
            return self.server.create_token_response(oauth_request)

    async def _revoke(self, request: Request) -> Response:
        oauth_request = await self._request(request)
        if self.revoke_status is not None:
            return JSONResponse(
                {"error": "temporarily_unavailable", "error_description": "try again later"},
                status_code=self.revoke_status,
            )
        with self._lock:
            return self.server.create_endpoint_response("revocation", oauth_request)

    def _unauthorized(self) -> Response:
        return JSONResponse(
            {
                "error": {
                    "message": "Invalid or expired access token",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
            status_code=401,
        )

    async def _models(self, request: Request) -> Response:
        if not self._valid_access(request.headers.get("authorization", "")):
            return self._unauthorized()
        return JSONResponse({"object": "list", "data": [{"id": "corp-large", "object": "model"}]})

    async def _embeddings(self, request: Request) -> Response:
        if not self._valid_access(request.headers.get("authorization", "")):
            return self._unauthorized()
        body = await request.json()
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), 0.5]}
            for i, text in enumerate(body["input"])
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": 2, "total_tokens": 2},
            }
        )

    async def _chat(self, request: Request) -> Response:
        if not self._valid_access(request.headers.get("authorization", "")):
            return self._unauthorized()
        body = await request.json()
        model = body.get("model", "corp-large")
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "Hello from corp"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
                }
            )

        async def events() -> Any:
            for piece in ("Hello", " from", " corp"):
                chunk = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
            done = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
            }
            yield f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    # --- running -------------------------------------------------------------------

    def start(self) -> OAuthTestServer:
        import uvicorn

        config = uvicorn.Config(
            self._app(), lifespan="off", log_config=None, access_log=False, loop="asyncio"
        )
        self._uvicorn = uvicorn.Server(config)
        self._socket.listen(64)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._uvicorn.serve(sockets=[self._socket])),
            name="oauth-test-server",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._uvicorn.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the OAuth test server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._socket.close()

    def __enter__(self) -> OAuthTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
