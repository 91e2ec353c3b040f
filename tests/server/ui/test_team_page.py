"""The Team page in Chromium: virtual keys issued, used by the OpenAI SDK, revoked; budgets,
rate limits and the audit log, against a real ``modelport serve`` (its catalog and ledger
share the SQLite database under MODELPORT_HOME)."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import openai
import pytest

from modelport.testing import FakeUpstream, Reply
from tests.server.ui.conftest import Served, screenshot

COMPLETION = {
    "id": "chatcmpl-team",
    "object": "chat.completion",
    "created": 1,
    "model": "m1",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
}


def _ask(served: Served, secret: str) -> str | None:
    # Closed here: an SDK client is freed only by the garbage collector (it is a
    # reference cycle), and its pooled socket's ResourceWarning then failed some later test.
    with openai.OpenAI(base_url=f"{served.url}/v1", api_key=secret, max_retries=0) as sdk:
        answer = sdk.chat.completions.create(
            model="up/m1", messages=[{"role": "user", "content": "hello"}]
        )
    return answer.choices[0].message.content


def _issue_in_the_ui(page: Any, name: str, **fields: str) -> str:
    page.get_by_role("button", name="Issue a key").click()
    form = page.locator("#key-form")
    form.get_by_label("Name").fill(name)
    for label, value in fields.items():
        form.get_by_label(label).fill(value)
    form.get_by_role("button", name="Issue key").click()
    value = page.locator("#key-secret-value")
    value.wait_for()
    return str(value.inner_text())


def _until(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def _key_row(page: Any, key_id: str) -> Any:
    return page.locator(f'#key-table tr[data-key="{key_id}"]')


def test_a_key_issued_in_the_ui_works_with_the_sdk_until_revoked_there(
    page: Any, served: Served, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.json(COMPLETION))
    gets: list[str] = []
    page.on("request", lambda r: gets.append(r.url) if r.method == "GET" else None)
    page.goto("/#/team")
    page.locator("#key-table").get_by_text("No virtual keys yet").wait_for()

    secret = _issue_in_the_ui(
        page, "ci job", User="ana", Team="platform", **{"Allowed models": "up/m1"}
    )
    assert secret.startswith("mpvk-")
    keys = httpx.get(f"{served.url}/admin/keys").json()["keys"]
    assert [(k["name"], k["user"], k["team"], k["models"]) for k in keys] == [
        ("ci job", "ana", "platform", ["up/m1"])
    ]
    key_id = keys[0]["id"]
    row = _key_row(page, key_id)
    row.wait_for()
    assert "active" in row.inner_text() and "platform" in row.inner_text()
    assert f"…{secret[-4:]}" in row.inner_text()  # the hint, not the secret
    # The copy button puts the secret on the clipboard (and says so).
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy secret").click()
    page.locator("#toast").get_by_text("Secret copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    screenshot(page, "team-secret")

    # The SDK uses the key; an unknown key is refused.
    assert _ask(served, secret) == "hi"
    with pytest.raises(openai.AuthenticationError):
        _ask(served, "mpvk-not-a-key-0123456789")

    # Closing the panel forgets the secret: nothing the page keeps or reads holds it.
    page.get_by_role("button", name="Done, hide the secret").click()
    assert page.locator("#key-secret").is_hidden()
    assert secret not in page.content()
    stored = page.evaluate(
        "() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])"
    )
    assert secret not in stored
    page.goto("/#/chat")
    page.goto("/#/team")
    row.wait_for()
    for url in set(gets):
        assert secret not in httpx.get(url).text, url
    assert any("/admin/keys" in url for url in gets) and any("/admin/audit" in url for url in gets)

    # Revoke, after a confirm that names the key; the SDK is refused at once.
    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    row.get_by_role("button", name=f"Revoke ci job ({key_id})").click()
    assert _until(lambda: dialogs) and "ci job" in dialogs[0]
    assert not httpx.get(f"{served.url}/admin/keys/{key_id}").json()["revoked_at"]
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"Revoke ci job ({key_id})").click()
    row.locator(".badge").get_by_text("revoked").wait_for()
    assert row.get_by_role("button", name=f"Revoke ci job ({key_id})").is_disabled()
    # The row is drawn before the page's refresh finishes, and the focus moves after it.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'team-status'")
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        _ask(served, secret)

    # The audit log shows what was done, newest first, with the key's name.
    audit = page.locator("#audit-log tbody tr")
    audit.first.get_by_text("key.revoke").wait_for()
    actions = [audit.nth(i).locator("th").inner_text() for i in range(audit.count())]
    assert actions == ["key.revoke", "key.create"]
    assert "ci job" in audit.first.inner_text()
    assert page.errors == []  # type: ignore[attr-defined]


def test_rotating_in_the_ui_shows_a_new_secret_once_and_the_old_one_stops(
    page: Any, served: Served, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.json(COMPLETION))
    page.goto("/#/team")
    first = _issue_in_the_ui(page, "laptop")
    key_id = httpx.get(f"{served.url}/admin/keys").json()["keys"][0]["id"]
    page.once("dialog", lambda dialog: dialog.accept())
    _key_row(page, key_id).get_by_role("button", name=f"Rotate laptop ({key_id})").click()
    page.locator("#key-secret-title").get_by_text("Rotated laptop").wait_for()
    second = page.locator("#key-secret-value").inner_text()
    assert second != first and second.startswith("mpvk-")
    with pytest.raises(openai.AuthenticationError):
        _ask(served, first)
    assert _ask(served, second) == "hi"
    # Leaving the page closes the panel: coming back shows no secret.
    page.goto("/#/usage")
    page.goto("/#/team")
    assert page.locator("#key-secret").is_hidden() and second not in page.content()
    page.locator("#audit-log tbody tr").first.get_by_text("key.rotate").wait_for()


def test_budgets_and_limits_set_in_the_ui_are_the_gateways_and_show_spend(
    page: Any, served: Served, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.json(COMPLETION))
    page.goto("/#/team")
    secret = _issue_in_the_ui(page, "ci", Team="platform")
    page.get_by_role("button", name="Done, hide the secret").click()
    key_id = httpx.get(f"{served.url}/admin/keys").json()["keys"][0]["id"]
    # A key without a budget still shows what it spent (nothing yet).
    _key_row(page, key_id).get_by_text("no budget").wait_for()
    _key_row(page, key_id).get_by_text("$0 · 0 tokens this month").wait_for()

    form = page.locator("#budget-form")
    form.get_by_label("Applies to").select_option("team")
    form.get_by_label("Team").fill("platform")
    form.get_by_label("Period").select_option("month")
    form.get_by_label("Dollars").fill("5")
    form.get_by_role("button", name="Set budget").click()
    page.locator("#budget-table tbody tr").first.wait_for()
    budgets = httpx.get(f"{served.url}/admin/budgets").json()["budgets"]
    assert [(b["scope"], b["subject"], b["period"], b["max_cost"]) for b in budgets] == [
        ("team", "platform", "month", 5.0)
    ]
    assert budgets[0]["spent"]["cost"] == 0

    limits = page.locator("#limit-form")
    limits.get_by_label("Applies to").select_option("key")
    limits.get_by_label("Key").select_option(key_id)
    limits.get_by_label("Requests per minute").fill("100")
    limits.get_by_role("button", name="Set rate limit").click()
    page.locator("#limit-table tbody tr").first.wait_for()
    assert [
        (r["scope"], r["subject"], r["rpm"], r["tpm"])
        for r in httpx.get(f"{served.url}/admin/limits").json()["limits"]
    ] == [("key", key_id, 100, None)]

    # A call with the key is spent against the team's budget; the page shows it on reload.
    assert _ask(served, secret) == "hi"
    cost = 10 * 1.0 / 1e6 + 20 * 2.0 / 1e6
    spent = _until(
        lambda: httpx.get(f"{served.url}/admin/budgets").json()["budgets"][0]["spent"]["cost"]
    )
    assert spent == pytest.approx(cost)
    page.goto("/#/chat")
    page.goto("/#/team")
    cell = _key_row(page, key_id).locator("td.spend-cell")
    cell.get_by_text("$0.00005 of $5 this month").wait_for()
    cell.get_by_text("$0.00005 · 30 tokens this month").wait_for()  # the key's own
    assert "team platform" in cell.inner_text()
    screenshot(page, "team")

    # Editing fills the form; setting again changes the one budget, not a second.
    budget_row = page.locator("#budget-table tbody tr").first
    budget_row.get_by_role("button", name=re.compile("^Edit budget")).click()
    assert form.get_by_label("Dollars").input_value() == "5"
    form.get_by_label("Dollars").fill("7.5")
    form.get_by_role("button", name="Set budget").click()
    page.locator("#budget-table").get_by_text("$7.5", exact=False).first.wait_for()
    budgets = httpx.get(f"{served.url}/admin/budgets").json()["budgets"]
    assert [b["max_cost"] for b in budgets] == [7.5]

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#limit-table tbody tr").first.get_by_role(
        "button", name=re.compile("^Remove rate limit")
    ).click()
    page.locator("#limit-table").get_by_text("No rate limits.").wait_for()
    assert httpx.get(f"{served.url}/admin/limits").json()["limits"] == []
    actions = [e["action"] for e in httpx.get(f"{served.url}/admin/audit").json()["entries"]]
    assert actions == ["limit.remove", "budget.set", "limit.set", "budget.set", "key.create"]
    page.locator("#audit-log tbody tr").first.get_by_text("limit.remove").wait_for()
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_audit_log_pages_back_and_forth(page: Any, served: Served) -> None:
    for n in range(30):
        httpx.post(f"{served.url}/admin/keys", json={"name": f"key {n}"}).raise_for_status()
    page.goto("/#/team")
    rows = page.locator("#audit-log tbody tr")
    rows.first.wait_for()
    assert rows.count() == 25 and "key 29" in rows.first.inner_text()
    newer = page.get_by_role("button", name="Newer entries")
    older = page.get_by_role("button", name="Older entries")
    assert newer.is_disabled() and older.is_enabled()
    older.click()
    page.locator("#audit-position").get_by_text("Page 2: entries 26–30").wait_for()
    assert rows.count() == 5 and "key 4" in rows.first.inner_text()
    assert "key 0" in rows.last.inner_text() and older.is_disabled()
    newer.focus()
    page.keyboard.press("Enter")
    page.locator("#audit-position").get_by_text("Page 1: entries 1–25").wait_for()
    assert "key 29" in rows.first.inner_text()


def test_the_team_page_passes_axe_with_keys_budgets_and_a_secret_shown(
    page: Any, served: Served
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    page.goto("/#/team")
    _issue_in_the_ui(page, "first")
    httpx.put(
        f"{served.url}/admin/budgets",
        json={"scope": "user", "subject": "ana", "period": "day", "max_tokens": 1000},
    ).raise_for_status()
    page.goto("/#/chat")
    page.goto("/#/team")
    _issue_in_the_ui(page, "second", User="ana")
    page.get_by_role("button", name="Issue a key").click()  # the form open too
    page.locator("#budget-table tbody tr").first.wait_for()
    page.wait_for_load_state("networkidle")
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()
    # The form is reachable and usable by keyboard alone.
    page.locator("#key-form").get_by_label("Name").focus()
    page.keyboard.type("by keyboard")
    page.keyboard.press("Enter")
    page.locator("#key-secret-title").get_by_text("Issued by keyboard").wait_for()
    assert page.evaluate("document.activeElement.id") == "key-secret-copy"


def test_a_key_past_its_expiry_date_shows_expired_and_is_refused(
    page: Any, served: Served, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", Reply.json(COMPLETION))
    page.goto("/#/team")
    secret = _issue_in_the_ui(page, "old", **{"Expires on": "2020-01-31"})
    key = httpx.get(f"{served.url}/admin/keys").json()["keys"][0]
    assert key["expires_at"].startswith("2020-01-31T00:00:00")
    row = _key_row(page, key["id"])
    row.locator(".badge").get_by_text("expired").wait_for()
    with pytest.raises(openai.AuthenticationError):
        _ask(served, secret)
