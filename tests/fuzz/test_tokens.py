"""Fuzz of tracking-token verification: any string is a valid token or a `TokenError`."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from common.tokens import TOKEN_LENGTH, TokenError, TokenSigner

SIGNER = TokenSigner(b"fuzz-tracking-secret-0123456789")
OTHER = TokenSigner(b"another-secret-that-signs-0123456")
ALERT = uuid.UUID("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")
NOW = 1_800_000_000
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _refused(token: str) -> bool:
    try:
        SIGNER.verify(token, NOW)
    except TokenError:
        return True
    return False


@settings(max_examples=250, deadline=None, database=None)
@given(st.text(max_size=120))
def test_arbitrary_text_is_refused_cleanly(token: str) -> None:
    assert _refused(token)


@settings(max_examples=250, deadline=None, database=None)
@given(st.text(alphabet=B64URL + "=+/.%~ ", min_size=TOKEN_LENGTH, max_size=TOKEN_LENGTH))
def test_random_tokens_of_the_right_length_are_refused(token: str) -> None:
    assert _refused(token)


@settings(max_examples=250, deadline=None, database=None)
@given(
    subscriber=st.integers(min_value=0, max_value=2**63 - 1),
    position=st.integers(min_value=0, max_value=TOKEN_LENGTH - 1),
    replacement=st.sampled_from(B64URL),
)
def test_any_changed_character_is_refused(subscriber: int, position: int, replacement: str) -> None:
    token = SIGNER.sign(ALERT, subscriber, NOW + 3600)
    assert SIGNER.verify(token, NOW).subscriber_id == subscriber
    forged = token[:position] + replacement + token[position + 1 :]
    if forged != token:
        assert _refused(forged)


@settings(max_examples=200, deadline=None, database=None)
@given(subscriber=st.integers(min_value=0, max_value=2**63 - 1), cut=st.integers(1, 53))
def test_truncated_extended_and_foreign_tokens_are_refused(subscriber: int, cut: int) -> None:
    token = SIGNER.sign(ALERT, subscriber, NOW + 3600)
    assert _refused(token[:cut])
    assert _refused(token + token[:cut])
    assert _refused(OTHER.sign(ALERT, subscriber, NOW + 3600))
    assert _refused(SIGNER.sign(ALERT, subscriber, NOW - 1))
