"""``modelport login`` / ``logout``, and logins in ``connections list`` and ``doctor``."""

from __future__ import annotations

import os
import subprocess
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path

import pytest

from modelport.auth.tokens import load_tokens
from tests.auth._oauth_server import USER, OAuthTestServer
from tests.auth.conftest import Browser
from tests.cli.conftest import RunCli

WriteConfig = Callable[[str], Path]


def _corp(server: OAuthTestServer, auth: str = "oauth", **oauth: str) -> str:
    return (
        "[connections.corp]\n"
        'compat = "openai"\n'
        f'base_url = "{server.url}/v1"\n'
        f'auth = "{auth}"\n\n'
        "[connections.corp.oauth]\n" + server.oauth_table(**oauth)
    )


def test_login_without_a_browser_prints_the_url_and_stores_the_tokens(
    oauth_server: OAuthTestServer, write_config: WriteConfig
) -> None:
    write_config(_corp(oauth_server))
    lines: list[str] = []
    browser = Browser()
    with subprocess.Popen(
        [sys.executable, "-m", "modelport", "login", "corp", "--no-browser", "--timeout", "60"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if line.strip().startswith(f"{oauth_server.url}/authorize?"):
                browser(line.strip())  # the user copies the URL into a browser
                break
        rest = process.stderr.read()
        assert process.wait(60) == 0, "".join(lines) + rest
    output = "".join(lines) + rest
    assert "Open this URL to sign in to 'corp':" in output
    assert f"Logged in to 'corp': logged in as {USER}, expires in 59 min" in output
    assert "refresh available" in output
    assert "stored in the file" in output and "tokens.json" in output
    assert "Signed in to modelport" in browser.join().text
    tokens = load_tokens("corp")
    assert tokens is not None
    assert tokens.access_token not in output and str(tokens.refresh_token) not in output


def test_login_opens_the_browser(
    cli: RunCli,
    oauth_server: OAuthTestServer,
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_config(_corp(oauth_server))
    browser = Browser()
    monkeypatch.setattr(webbrowser, "open", browser)

    result = cli("login", "corp")

    assert result.exit_code == 0, result.stderr
    assert "Opening your browser to sign in to 'corp'" in result.stderr
    assert f"logged in as {USER}" in result.stderr
    browser.join()
    assert load_tokens("corp") is not None


def test_over_ssh_the_browser_is_not_opened_and_a_timeout_says_what_to_do(
    cli: RunCli,
    oauth_server: OAuthTestServer,
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_config(_corp(oauth_server))
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.2 52000 10.0.0.1 22")

    result = cli("login", "corp", "--timeout", "1")

    assert result.exit_code == 1
    assert opened == []
    assert "Open this URL to sign in to 'corp':" in result.stderr
    assert "No login callback arrived within 1 s" in " ".join(result.stderr.split())
    assert load_tokens("corp") is None


def test_login_for_a_connection_without_oauth_says_what_to_add(
    cli: RunCli, write_config: WriteConfig
) -> None:
    write_config('[connections.work]\ncompat = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n')
    result = cli("login", "work")
    assert result.exit_code == 1
    assert "connection 'work' has no OAuth login configured" in result.stderr
    assert "[connections.work.oauth]" in result.stderr


def test_login_to_a_plugin_provider_uses_its_registration(
    cli: RunCli,
    oauth_server: OAuthTestServer,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.auth.test_oauth_plugins import _install

    _install(oauth_server)
    browser = Browser()
    monkeypatch.setattr(webbrowser, "open", browser)

    result = cli("login", "acme")

    assert result.exit_code == 0, result.stderr
    browser.join()
    assert f"Logged in to 'acme': logged in as {USER}" in result.stderr
    assert load_tokens("acme") is not None


def test_logout_forgets_the_login(
    cli: RunCli,
    oauth_server: OAuthTestServer,
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_config(_corp(oauth_server))
    monkeypatch.setattr(webbrowser, "open", Browser())
    assert cli("login", "corp").exit_code == 0

    result = cli("logout", "corp")
    assert result.exit_code == 0, result.stderr
    assert "Logged out of 'corp'" in result.stderr
    assert load_tokens("corp") is None
    again = cli("logout", "corp")
    assert again.exit_code == 1 and "'corp' is not logged in" in again.stderr
    assert oauth_server.revocations == []  # no revocation_url: nothing to ask


def test_logout_revokes_the_tokens_at_the_providers_revocation_endpoint(
    cli: RunCli,
    oauth_server: OAuthTestServer,
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx

    write_config(_corp(oauth_server, revocation_url=f"{oauth_server.url}/revoke"))
    monkeypatch.setattr(webbrowser, "open", Browser())
    assert cli("login", "corp").exit_code == 0
    tokens = load_tokens("corp")
    assert tokens is not None and tokens.refresh_token
    bearer = {"authorization": f"Bearer {tokens.access_token}"}
    assert httpx.get(f"{oauth_server.url}/v1/models", headers=bearer).status_code == 200

    result = cli("logout", "corp")

    assert result.exit_code == 0, result.stderr
    assert "the provider revoked its tokens" in result.stderr
    # RFC 7009: the refresh token first (it ends the grant), then the access token.
    assert oauth_server.revocations == [
        ("refresh_token", tokens.refresh_token, True),
        ("access_token", tokens.access_token, True),
    ]
    assert httpx.get(f"{oauth_server.url}/v1/models", headers=bearer).status_code == 401
    assert load_tokens("corp") is None
    assert tokens.access_token not in result.stderr + result.stdout


@pytest.mark.parametrize("down", ["503", "unreachable"])
def test_a_failed_revocation_says_so_in_one_line_and_still_forgets_the_tokens(
    cli: RunCli,
    oauth_servers: Callable[..., OAuthTestServer],
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
    down: str,
) -> None:
    from tests.server.ui.conftest import free_port

    server = oauth_servers(revoke_status=503)
    url = f"{server.url}/revoke" if down == "503" else f"http://127.0.0.1:{free_port()}/revoke"
    write_config(_corp(server, revocation_url=url))
    monkeypatch.setattr(webbrowser, "open", Browser())
    assert cli("login", "corp").exit_code == 0
    tokens = load_tokens("corp")
    assert tokens is not None

    result = cli("logout", "corp")

    assert result.exit_code == 0, result.stderr
    [failure] = [line for line in result.stderr.splitlines() if line.startswith("Could not revoke")]
    assert failure.startswith("Could not revoke the tokens of 'corp' at the provider: ")
    if down == "503":
        assert "answered 503 (temporarily_unavailable: try again later)" in failure
    assert "removed from this machine" in result.stderr
    assert load_tokens("corp") is None
    output = result.stderr + result.stdout
    assert tokens.access_token not in output and str(tokens.refresh_token) not in output


def test_connections_list_and_doctor_show_the_login(
    cli: RunCli,
    oauth_server: OAuthTestServer,
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_config(_corp(oauth_server))
    listed = cli("connections", "list")
    assert listed.exit_code == 0, listed.stderr
    assert "login" in listed.stdout.splitlines()[0]
    assert "not logged in" in listed.stdout

    doctor = cli("doctor")
    text = " ".join(doctor.stdout.split())
    assert doctor.exit_code == 1
    assert "login: not logged in" in text
    assert "corp: login missing or refused" in text and "fix: `modelport login corp`" in text

    monkeypatch.setattr(webbrowser, "open", Browser())
    assert cli("login", "corp").exit_code == 0

    listed = " ".join(cli("connections", "list").stdout.split())
    assert f"logged in as {USER}, expires in 59 min, refresh available" in listed
    doctor = cli("doctor")
    text = " ".join(doctor.stdout.split())
    assert doctor.exit_code == 0, doctor.stdout
    assert f"login: logged in as {USER}, expires in 59 min, refresh available" in text
    assert "corp: reachable, 1 models" in text
    tokens = load_tokens("corp")
    assert tokens is not None and tokens.access_token not in doctor.stdout + listed


def test_the_login_command_is_listed_in_help(cli: RunCli) -> None:
    result = cli("--help")
    assert "login" in result.stdout and "logout" in result.stdout
