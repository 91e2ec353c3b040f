"""``auth``, ``[connections.X.oauth]`` and keys written inline: every accepted key has an effect."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.config import ConnectionConfig, OAuthConfig, load_config, modelport_home
from modelport.errors import ConfigError

CORP = """
[connections.corp]
compat = "openai"
base_url = "https://llm.corp.example/v1"
auth = "{auth}"

[connections.corp.oauth]
authorize_url = "https://login.corp.example/authorize"
token_url = "https://login.corp.example/token"
client_id = "modelport"
scopes = ["llm", "offline_access"]
redirect_port = 1455
params = {{ audience = "https://llm.corp.example" }}
"""


def _write(text: str) -> Path:
    path = modelport_home() / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("auth", ["oauth", "auto"])
def test_an_oauth_connection_is_read_whole(auth: str) -> None:
    _write(CORP.format(auth=auth))
    corp = load_config().connections["corp"]
    assert corp.auth == auth
    assert corp.oauth == OAuthConfig(
        authorize_url="https://login.corp.example/authorize",
        token_url="https://login.corp.example/token",
        client_id="modelport",
        scopes=["llm", "offline_access"],
        redirect_port=1455,
        params={"audience": "https://llm.corp.example"},
    )
    assert corp.options == {}  # neither auth nor oauth is left for a provider to ignore


def test_without_auth_a_connection_uses_keys() -> None:
    _write('[connections.work]\ncompat = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n')
    assert load_config().connections["work"] == ConnectionConfig(
        compat="openai", base_url="http://127.0.0.1:9/v1"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[connections.w]\nauth = "oauth"\n', r'auth = "oauth" needs a \[connections.w.oauth\]'),
        ('[connections.w]\nauth = "oath"\n', "auth must be one of key, oauth, auto, not 'oath'"),
        (
            CORP.format(auth="key"),
            r'used only when \[connections.corp\] sets auth = "oauth"',
        ),
        (
            CORP.format(auth="oauth").replace('auth = "oauth"\n', ""),
            r'used only when \[connections.corp\] sets auth = "oauth"',
        ),
        (
            CORP.format(auth="oauth").replace("scopes =", "scope ="),
            r"unknown key 'scope'. Did you mean 'scopes'\?",
        ),
        (
            CORP.format(auth="oauth").replace('client_id = "modelport"\n', ""),
            r"\[connections.corp.oauth\] needs client_id",
        ),
        (
            CORP.format(auth="oauth").replace(
                'client_id = "modelport"', 'client_id = "m"\nclient_secret = "cs-1"'
            ),
            "client_secret must not be written in the file; .* client_secret_env",
        ),
        (
            CORP.format(auth="oauth").replace(
                "https://login.corp.example/token", "http://login.corp.example/token"
            ),
            r"token_url must start with https:// \(plain http:// only to this machine\)",
        ),
        (
            CORP.format(auth="oauth").replace(
                'client_id = "modelport"',
                'client_id = "modelport"\nrevocation_url = "http://login.corp.example/revoke"',
            ),
            r"revocation_url must start with https:// \(plain http:// only to this machine\)",
        ),
        (
            CORP.format(auth="oauth").replace("redirect_port = 1455", 'redirect_host = "0.0.0.0"'),
            "redirect_host must be 127.0.0.1 or localhost",
        ),
        (
            CORP.format(auth="oauth").replace("redirect_port = 1455", "redirect_port = 70000"),
            "redirect_port",
        ),
    ],
)
def test_credential_settings_that_cannot_work_are_refused(text: str, message: str) -> None:
    path = _write(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config()
    assert str(path) in str(caught.value)


def test_an_oauth_endpoint_on_this_machine_may_be_plain_http() -> None:
    _write(CORP.format(auth="oauth").replace("https://login.corp.example", "http://127.0.0.1:8123"))
    oauth = load_config().connections["corp"].oauth
    assert oauth is not None and oauth.token_url == "http://127.0.0.1:8123/token"


def test_a_plugin_connection_may_choose_oauth_without_a_table() -> None:
    # The plugin's registration brings the endpoints (docs/oauth.md).
    _write('[connections.acme]\ncompat = "plugin:acme"\nauth = "oauth"\n')
    assert load_config().connections["acme"].auth == "oauth"


# --- a key written inline ------------------------------------------------------


@pytest.mark.parametrize("key", ["api_key", "apiKey", "token"])
def test_an_inline_key_is_refused_with_its_line_and_the_command_to_store_it(key: str) -> None:
    path = _write(
        "# my connections\n"
        'default_model = "work/m"\n'
        "\n"
        "[connections.work]\n"
        'compat = "openai"\n'
        'base_url = "https://llm.example/v1"\n'
        f'{key} = "sk-inline-secret-0123456789"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config()
    message = str(caught.value)
    assert f"{path}, line 7" in message
    assert f"[connections.work] sets {key!r}" in message
    assert "modelport keys set work" in message
    assert 'api_key_env = "WORK_API_KEY"' in message
    assert "sk-inline-secret" not in message


def test_an_inline_key_in_a_dotted_assignment_is_found_too() -> None:
    path = _write('connections.work.compat = "anthropic"\nconnections.work.api_key = "sk-x"\n')
    with pytest.raises(ConfigError, match=f"{path}, line 2: "):
        load_config()


def test_a_plugin_password_field_written_inline_is_used_not_refused() -> None:
    # DESIGN.md: a plugin's configFields values come from its connection's table.
    _write('[connections.acme]\ncompat = "plugin:acme"\napiKey = "k-1"\n')
    assert load_config().connections["acme"].options == {"apiKey": "k-1"}
