"""The one redaction: key shapes, and every key the process holds, whole or cut."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelport._redact import mask_secrets, public_text, remember_secret
from modelport.providers import ConnectionSettings


def test_a_remembered_key_of_any_shape_is_masked_whole_and_by_prefix() -> None:
    key = "odd:SHAPE.key/0123456789"
    remember_secret(key)
    assert public_text(f"bad key {key}!") == "bad key ***!"
    assert public_text(f"bad key {key[:8]}...") == "bad key ***..."
    assert public_text(f"bad key {key[:15]}") == "bad key ***"
    assert public_text(f"almost {key[:7]}") == f"almost {key[:7]}"  # 7 characters say nothing
    remember_secret("ollama")  # a placeholder, not a key: too short to remember
    assert public_text("run ollama pull") == "run ollama pull"


def test_connection_settings_remember_their_key_and_secret_headers() -> None:
    ConnectionSettings(
        name="x",
        compat="openai",
        api_key="zz-settings-key-0001",
        headers={"X-Custom-Auth": "Bearer tok.en.value.0002", "X-Trace": "visible-value-0003"},
    )
    text = "zz-settings-key-0001 tok.en.value.0002 visible-value-0003"
    assert public_text(text) == "*** *** visible-value-0003"


def test_short_secrets_only_whole_and_tiny_ones_never() -> None:
    assert mask_secrets("pin 12345 in 123456", ["12345"]) == "pin *** in ***6"
    assert mask_secrets("ab is ab", ["ab"]) == "ab is ab"


_KEYISH = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.:/", max_size=40)


@given(_KEYISH.filter(lambda s: len(s) >= 8), _KEYISH, _KEYISH, _KEYISH)
def test_no_eight_character_prefix_survives_as_a_token(
    secret: str, other: str, before: str, after: str
) -> None:
    # Another key that may share a beginning with this one, remembered in either order;
    # the cut stands apart (a space, a quote, dots), as an echoed key does.
    for secrets in ([secret, other], [other, secret]):
        for cut in range(8, len(secret) + 1):
            masked = mask_secrets(f"{before} '{secret[:cut]}...' {after}", secrets)
            assert f"'{secret[:8]}" not in masked
            assert mask_secrets(before + secret + after, secrets).count(secret) == 0


def test_a_word_that_begins_like_a_key_is_left_alone() -> None:
    # The key's first eight characters inside a longer word are no cut of the key.
    key = "embed-test-secret-0123456789"
    text = "run `ollama pull nomic-embed-text` first"
    assert mask_secrets(text, [key]) == text
    assert mask_secrets(f"bad key {key[:10]}...", [key]) == "bad key ***..."


def test_keys_sharing_a_beginning_leave_no_tail_of_either() -> None:
    a, b = "sk-proj-AAAA1234", "sk-proj-BBBB5678"
    assert mask_secrets(f"x {a[:12]} y", [b, a]) == "x *** y"
    assert mask_secrets(f"x {a} {b} y", [a, b]) == "x *** *** y"


@pytest.mark.parametrize("count", [10_000])
def test_the_remembered_set_is_bounded(count: int) -> None:
    from modelport import _redact

    for n in range(count):
        remember_secret(f"per-call-key-{n:08d}")
    assert len(_redact._known) == _redact.MAX_KNOWN_SECRETS
    assert public_text(f"per-call-key-{count - 1:08d}") == "***"
