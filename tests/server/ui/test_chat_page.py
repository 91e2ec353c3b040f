"""The chat page in Chromium: picking a model, streaming, Stop, errors, XSS, keyboard."""

from __future__ import annotations

import time
from typing import Any

from modelport.testing import FakeUpstream, Reply
from tests.server.ui.conftest import Served, chunk, last_chat, screenshot, sse, streamed_reply


def _answer(page: Any) -> Any:
    return page.locator("#chat-log .message.assistant").last


def test_a_model_picked_on_the_models_page_streams_token_by_token(
    page: Any, served: Served, upstream: FakeUpstream
) -> None:
    pieces = ["Hello", " there", ", this", " arrives", " a piece", " at a", " time."]
    upstream.route("POST", "/v1/chat/completions", streamed_reply(pieces, delay=0.25))
    page.goto("/#/models")
    row = page.locator('tr[data-address="up/m1"]')
    row.wait_for()
    screenshot(page, "models")
    page.get_by_role("link", name="Chat with up/m1").click()
    page.wait_for_url("**/#/chat?model=up%2Fm1")
    assert page.locator("#chat-model").input_value() == "up/m1"

    page.get_by_label("Message", exact=True).fill("Say hello")
    page.get_by_role("button", name="Send").click()
    seen: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        text = _answer(page).locator(".body").inner_text()
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        if "time." in text and page.locator("#chat-send").is_enabled():
            break
        time.sleep(0.03)
    final = "".join(pieces)
    assert seen[-1].strip() == final
    # The answer grew piece by piece, each view a prefix of the next.
    partial = [text.strip() for text in seen if text.strip() != final]
    assert len(partial) >= 3, seen
    assert all(final.startswith(text) for text in partial)
    body = last_chat(upstream).json()
    assert body["model"] == "m1" and body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "Say hello"}]
    screenshot(page, "chat")
    assert page.errors == []  # type: ignore[attr-defined]


def test_stop_aborts_and_the_upstream_sees_the_disconnect(
    page: Any, served: Served, upstream: FakeUpstream
) -> None:
    upstream.route(
        "POST", "/v1/chat/completions", streamed_reply([f"word{i} " for i in range(60)], delay=0.3)
    )
    page.goto("/#/chat?model=up/m1")
    page.get_by_label("Message", exact=True).fill("Talk for a long time")
    page.get_by_label("Message", exact=True).press("Enter")
    _answer(page).get_by_text("word1").wait_for()
    stop = page.get_by_role("button", name="Stop")
    assert stop.is_enabled()
    stop.click()
    _answer(page).get_by_text("Stopped.").wait_for()
    request = last_chat(upstream)
    # The gateway cancelled the upstream request: its connection closed long before
    # the 18 s the whole answer takes.
    assert request.closed.wait(5)
    text = _answer(page).inner_text()
    assert "word1" in text and "word59" not in text
    assert page.get_by_role("button", name="Send").is_enabled()


def test_an_error_shows_in_place_with_the_gateways_message(
    page: Any, served: Served, upstream: FakeUpstream
) -> None:
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply.json({"error": {"message": "Incorrect API key provided", "type": "auth"}}, 401),
    )
    page.goto("/#/chat?model=up/m1")
    page.get_by_label("Message", exact=True).fill("hi")
    page.get_by_role("button", name="Send").click()
    alert = _answer(page).get_by_role("alert")
    alert.wait_for()
    assert "Incorrect API key provided" in alert.inner_text()
    # An unknown model: the gateway's own one-line message, in place too.
    page.goto("/#/chat?model=nowhere/m9")
    page.get_by_label("Message", exact=True).fill("hi again")
    page.get_by_role("button", name="Send").click()
    _answer(page).get_by_role("alert").wait_for()
    assert "There is no connection named 'nowhere'" in _answer(page).inner_text()


def test_model_output_is_text_never_markup(
    page: Any, served: Served, upstream: FakeUpstream
) -> None:
    attack = [
        "<img src=x onerror=alert(1)>",
        " **bold** and `code`",
        "\n\n```html\n<script>alert(2)</script>\n```\n",
        "[click](javascript:alert(3)) <svg onload=alert(4)>",
    ]
    reasoning = chunk({"reasoning_content": "<b>thinking</b> about <img src=y onerror=alert(5)>"})
    tool = chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "<i>Paris</i>"}'},
                }
            ]
        }
    )
    body, sizes = sse(
        chunk({"role": "assistant", "content": ""}),
        reasoning,
        *(chunk({"content": piece}) for piece in attack),
        tool,
        chunk({}, "tool_calls"),
    )
    upstream.route(
        "POST",
        "/v1/chat/completions",
        Reply(body=body, content_type="text/event-stream", chunks=sizes),
    )
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/#/chat?model=up/m1")
    page.get_by_label("Message", exact=True).fill("attack me")
    page.get_by_role("button", name="Send").click()
    answer = _answer(page)
    answer.locator(".tool-call").wait_for()
    page.wait_for_timeout(300)
    text = answer.inner_text()
    assert "<img src=x onerror=alert(1)>" in text
    assert "<script>alert(2)</script>" in text and "<svg onload=alert(4)>" in text
    assert answer.locator("img, script, svg, iframe, b, i").count() == 0
    assert answer.locator("strong").inner_text() == "bold"
    assert answer.locator("code").first.inner_text() == "code"
    assert answer.locator("a").count() == 0  # a javascript: link stays text
    # Reasoning in a collapsible block, closed until asked for; the tool call with its arguments.
    reasoning_block = answer.locator("details.reasoning")
    assert reasoning_block.get_attribute("open") is None
    reasoning_block.locator("summary").click()
    assert "<b>thinking</b>" in reasoning_block.inner_text()
    assert "get_weather" in answer.locator(".tool-call summary").inner_text()
    assert '"city": "<i>Paris</i>"' in answer.locator(".tool-call pre").inner_text()
    page.wait_for_timeout(300)
    assert dialogs == []
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_conversation_stays_in_the_browser_until_cleared(
    page: Any, served: Served, upstream: FakeUpstream
) -> None:
    upstream.route("POST", "/v1/chat/completions", streamed_reply(["Kept", " here."]))
    page.goto("/#/chat?model=up/m1")
    page.get_by_label("Message", exact=True).fill("remember me")
    page.get_by_role("button", name="Send").click()
    _answer(page).get_by_text("Kept here.").wait_for()
    page.reload()
    assert page.locator("#chat-log .message.user").inner_text().endswith("remember me")
    assert "Kept here." in _answer(page).inner_text()
    # The next turn sends the history along.
    page.get_by_label("Message", exact=True).fill("and again")
    page.get_by_role("button", name="Send").click()
    page.locator("#chat-log .message.assistant").nth(1).get_by_text("Kept here.").wait_for()
    assert [m["content"] for m in last_chat(upstream).json()["messages"]] == [
        "remember me",
        "Kept here.",
        "and again",
    ]
    page.get_by_role("button", name="Clear conversation").click()
    assert page.locator("#chat-log .message").count() == 0
    page.reload()
    page.locator("#chat-model").wait_for()
    assert page.locator("#chat-log .message").count() == 0
