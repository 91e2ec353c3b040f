"""An SDK plugin whose provider logs in with OAuth: ``python _oauth_plugin.py URL [ID]``.

It registers ``acme`` (or ID) with an ``oauth`` block pointing at the test authorization
server at URL, a config field of type ``oauth`` (``token``) and a password field
(``apiKey``, the dual mode), and answers each request by calling that server's
API itself with whichever credential ``providerConfig`` carries, as a real
plugin would. A 401 from its upstream becomes an AuthError with status 401.
Carelessly, it prints the ``providerConfig`` it received to stderr.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request

from modelport.errors import AuthError
from modelport.plugin_sdk import Request, llm_provider, plugin

SERVER = sys.argv[1]
PROVIDER = sys.argv[2] if len(sys.argv) > 2 else "acme"


@plugin.on_start
async def start(info):
    await llm_provider.register(
        PROVIDER,
        name="Acme LLM",
        models=[{"id": "corp-large"}],
        config_fields=[
            {"key": "token", "label": "Sign in", "type": "oauth"},
            {"key": "apiKey", "label": "API key", "type": "password"},
        ],
        oauth={
            "authorizeUrl": f"{SERVER}/authorize",
            "tokenUrl": f"{SERVER}/token",
            "clientId": "modelport-cli",
            "scopes": ["llm", "offline_access"],
        },
    )


def _call(credential: str, options: dict) -> dict:
    body = json.dumps({**options, "stream": False}).encode()
    request = urllib.request.Request(
        f"{SERVER}/v1/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {credential}", "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise AuthError("the Acme API refused the credential", status=401) from None
        raise


@llm_provider.on_completion_request
async def complete(request: Request):
    print(f"providerConfig: {json.dumps(request.config)}", file=sys.stderr, flush=True)
    credential = request.config.get("token") or request.config.get("apiKey") or ""
    return await asyncio.to_thread(_call, credential, request.options)


if __name__ == "__main__":
    plugin.run()
