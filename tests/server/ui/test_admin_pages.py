"""The plugins, settings and usage pages in Chromium, against a real gateway and plugin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from modelport.testing import FakeUpstream
from tests.server.ui.conftest import PLUGIN, Served, last_chat, screenshot, streamed_reply

SECRET = "sk-typed-into-the-ui-0123456789abcdef"


def _card(page: Any) -> Any:
    return page.locator(f"#plugin-{PLUGIN}")


def test_a_plugin_is_stopped_and_started_from_the_panel(page: Any, served: Served) -> None:
    assert served.wait_plugin(PLUGIN)["state"] == "running"
    page.goto("/#/plugins")
    card = _card(page)
    state = card.locator(".badge").first
    state.get_by_text("running").wait_for()
    first_pid = int(card.locator("dd").first.inner_text())
    # The live log shows the run marker the host writes for each run.
    card.locator("pre.log").get_by_text("--- run 1 ---").wait_for()
    screenshot(page, "plugins")

    page.get_by_role("button", name=f"Stop {PLUGIN}").click()
    state.get_by_text("stopped").wait_for()
    assert httpx.get(f"{served.url}/plugins/{PLUGIN}").json()["state"] == "stopped"
    assert card.locator("dd").first.inner_text() == "—"

    page.get_by_role("button", name=f"Start {PLUGIN}", exact=True).click()
    state.get_by_text("running").wait_for()
    info = httpx.get(f"{served.url}/plugins/{PLUGIN}").json()
    assert info["state"] == "running" and info["pid"] != first_pid
    card.locator("pre.log").get_by_text("--- run 2 ---").wait_for()
    assert page.errors == []  # type: ignore[attr-defined]


def test_plugin_models_appear_without_a_page_reload(page: Any, served: Served) -> None:
    served.wait_plugin(PLUGIN)
    httpx.post(f"{served.url}/plugins/{PLUGIN}/stop").raise_for_status()
    page.goto("/#/models")
    page.locator('tr[data-address="up/m1"]').wait_for()
    plugin_row = page.locator(f'tr[data-address="{PLUGIN}/gpt-4o-mini"]')
    assert plugin_row.count() == 0
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    # Started from elsewhere (a script, the CLI): the open page notices on its own.
    httpx.post(f"{served.url}/plugins/{PLUGIN}/start").raise_for_status()
    plugin_row.wait_for(timeout=10_000)
    assert "128,000" in plugin_row.inner_text()  # the context window the plugin registered
    assert navigations == []
    # Filtering as you type.
    page.get_by_label("Filter models").fill("gpt-4o")
    page.locator('tr[data-address="up/m1"]').wait_for(state="detached")
    assert plugin_row.is_visible()


def test_the_config_form_stores_a_key_that_is_used_upstream_and_never_shown_again(
    page: Any, served: Served, upstream: FakeUpstream
) -> None:
    served.wait_plugin(PLUGIN)
    upstream.route("POST", "/v1/chat/completions", streamed_reply(["via", " the plugin"]))
    page.goto("/#/settings")
    form = page.locator(f"#provider-{PLUGIN}-form")
    form.wait_for()
    assert form.locator(".key-status").inner_text() == "not set"
    form.get_by_label("API key").fill(SECRET)
    form.get_by_label("Base URL").fill(f"{upstream.url}/v1")
    form.get_by_role("button", name=f"Save {PLUGIN} settings").click()
    page.locator("#settings-status").get_by_text(f"Saved the settings of {PLUGIN}.").wait_for()
    form = page.locator(f"#provider-{PLUGIN}-form")
    form.locator(".key-status").get_by_text("set (stored)").wait_for()
    assert form.get_by_label("API key").input_value() == ""
    assert form.get_by_label("Base URL").input_value() == f"{upstream.url}/v1"
    screenshot(page, "settings")

    # Stored where `modelport keys set` stores it (no keyring here: the owner-only file),
    # the text field in config.toml, its comment kept.
    keys = json.loads((served.home / "keys.json").read_text())
    assert keys["keys"][PLUGIN] == SECRET
    config = (served.home / "config.toml").read_text()
    assert config.startswith("# written by the UI tests")
    assert f"[connections.{PLUGIN}]" in config and SECRET not in config

    # The running gateway uses it at once: the plugin gets the key and calls the upstream.
    page.goto(f"/#/chat?model={PLUGIN}/gpt-4o-mini")
    page.get_by_label("Message", exact=True).fill("through the plugin")
    page.get_by_role("button", name="Send").click()
    page.locator("#chat-log .message.assistant").get_by_text("via the plugin").wait_for()
    sent = [r for r in upstream.requests if r.path == "/v1/chat/completions"][-1]
    assert sent.headers["authorization"] == f"Bearer {SECRET}"

    # Never shown again: not in any page, not in any answer the UI reads.
    page.goto("/#/settings")
    page.locator(f"#provider-{PLUGIN}-form .key-status").get_by_text("set (stored)").wait_for()
    assert SECRET not in page.content()
    listing = httpx.get(f"{served.url}/admin/connections").text
    assert SECRET not in listing and '"set":true' in listing.replace(" ", "")
    assert SECRET not in served.output()


def test_a_connection_added_in_settings_is_used_by_the_running_gateway(
    page: Any, served: Served, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", streamed_reply(["from", " work"]))
    page.goto("/#/settings")
    page.get_by_role("button", name="Add connection").click()
    form = page.locator("#connection-form")
    form.get_by_label("Name").fill("work")
    form.get_by_label("Compat").select_option("openai")
    form.get_by_label("Base URL").fill(f"{upstream.url}/v1")
    form.get_by_label("Max retries").fill("0")
    form.get_by_label("API key", exact=True).fill(SECRET)
    form.get_by_role("button", name="Save connection").click()
    row = page.locator('tr[data-connection="work"]')
    row.wait_for()
    assert row.locator(".key-status").inner_text() == "set (stored)"
    assert SECRET not in page.content()
    config = (served.home / "config.toml").read_text()
    assert "[connections.work]" in config and "# written by the UI tests" in config

    page.get_by_role("button", name="Test work").click()
    page.get_by_role("list", name="Test of work").get_by_text(
        "work: reachable, 1 models"
    ).wait_for()

    page.goto("/#/chat?model=work/m1")
    page.get_by_label("Message", exact=True).fill("hi work")
    page.get_by_role("button", name="Send").click()
    page.locator("#chat-log .message.assistant").get_by_text("from work").wait_for()
    assert last_chat(upstream).headers["authorization"] == f"Bearer {SECRET}"

    # Edit: the key is kept when the field stays empty; delete removes the table.
    page.goto("/#/settings")
    page.get_by_role("button", name="Edit work").click()
    assert form.get_by_label("API key", exact=True).input_value() == ""
    form.get_by_label("Timeout (seconds)").fill("12")
    form.get_by_role("button", name="Save connection").click()
    form.wait_for(state="hidden")
    assert "timeout = 12" in (served.home / "config.toml").read_text()
    assert json.loads((served.home / "keys.json").read_text())["keys"]["work"] == SECRET
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete work").click()
    row.wait_for(state="detached")
    assert "[connections.work]" not in (served.home / "config.toml").read_text()


def test_the_usage_page_shows_the_call_just_made(
    page: Any, served: Served, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", streamed_reply(["counted"]))
    page.goto("/#/chat?model=up/m1")
    page.get_by_label("Message", exact=True).fill("count me")
    page.get_by_role("button", name="Send").click()
    page.locator("#chat-log .message.assistant").get_by_text("counted").wait_for()
    page.get_by_role("link", name="Usage").click()
    recent = page.get_by_role("table", name="Recent calls")
    recent.wait_for()
    first = recent.locator("tbody tr").first
    assert "up/m1" in first.inner_text() and "ok" in first.inner_text()
    # 11 tokens in, 1 out, at $1 and $2 per million: the ledger priced it.
    cells = first.locator("td")
    assert cells.nth(2).inner_text() == "11" and cells.nth(3).inner_text() == "1"
    assert cells.nth(4).inner_text() == "$0.000013"
    assert page.locator("#usage-chart svg rect").count() >= 1
    totals = page.get_by_role("table", name="Totals by model")
    assert "up/m1" in totals.inner_text()
    page.get_by_label("Group by").select_option("connection")
    page.get_by_role("table", name="Totals by connection").get_by_text("up").wait_for()
    screenshot(page, "usage")


def test_every_page_labels_its_controls_and_passes_axe(page: Any, served: Served) -> None:
    from axe_playwright_python.sync_playwright import Axe

    served.wait_plugin(PLUGIN)
    axe = Axe()
    for name in ("models", "chat", "plugins", "settings", "usage", "team"):
        page.goto(f"/#/{name}")
        page.locator(f"#page-{name} h1").wait_for()
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea, button, a[href]')]
              .filter((el) => el.offsetParent !== null || el.closest('[hidden]') === null)
              .filter((el) => !el.closest('[hidden]'))
              .filter((el) => !((el.labels && el.labels.length) || el.getAttribute('aria-label')
                                || el.textContent.trim()))
              .map((el) => el.outerHTML.slice(0, 120))"""
        )
        assert unlabelled == [], name
        results = axe.run(page)
        assert results.violations_count == 0, f"{name}: {results.generate_report()}"


def test_the_chat_page_is_reachable_by_keyboard_in_order(page: Any, served: Served) -> None:
    page.goto("/#/chat?model=up/m1")
    page.locator("#chat-model option").first.wait_for(state="attached")
    names = []
    for _ in range(11):
        page.keyboard.press("Tab")
        names.append(
            page.evaluate(
                """() => { const el = document.activeElement;
                   return (el.labels && el.labels[0] ? el.labels[0].textContent
                           : el.getAttribute('aria-label') || el.textContent).trim(); }"""
            )
        )
    assert names[:11] == [
        "Skip to content",
        "Models",
        "Chat",
        "Plugins",
        "Settings",
        "Usage",
        "Team",
        "Model",
        "Message",
        "Send",
        "Clear conversation",  # Stop is disabled until a stream runs
    ]
    # Typing and Enter send; while the answer streams, Stop takes the keyboard too.
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "chat-input"


def test_ui_assets_are_small_and_served_with_a_strict_policy(served: Served) -> None:
    page = httpx.get(f"{served.url}/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "require-trusted-types-for 'script'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    static = Path(__file__).resolve().parents[3] / "src/modelport/server/ui/static"
    first_page = sum(f.stat().st_size for f in static.iterdir() if f.name != "login.html")
    assert first_page < 150_000, first_page
    for asset in static.iterdir():
        answer = httpx.get(f"{served.url}/ui/static/{asset.name}")
        assert answer.status_code == 200, asset.name
        assert answer.headers["content-security-policy"] == policy
        assert answer.content == asset.read_bytes()
    # Scripts never build markup from strings.
    for script in static.glob("*.js"):
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, (script.name, sink)
