import time
import uuid

import pytest

from common.tokens import TOKEN_LENGTH, TokenError, TokenSigner

SECRET = b"0123456789abcdef0123456789abcdef"


def test_round_trip_and_alert_signer_agree() -> None:
    signer = TokenSigner(SECRET)
    alert = uuid.uuid4()
    expires = int(time.time()) + 3600
    token = signer.sign(alert, 42, expires)
    assert len(token) == TOKEN_LENGTH
    assert signer.signer_for(alert, expires).sign(42) == token
    parsed = signer.verify(token, time.time())
    assert (parsed.alert_id, parsed.subscriber_id, parsed.expires) == (alert, 42, expires)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],  # truncated
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # mac altered
        lambda t: ("B" if t[0] != "B" else "C") + t[1:],  # alert altered
        lambda t: "!" * len(t),  # not base64
        lambda t: "",
    ],
)
def test_forged_or_truncated_tokens_are_refused(mangle: object) -> None:
    signer = TokenSigner(SECRET)
    token = signer.sign(uuid.uuid4(), 7, int(time.time()) + 60)
    with pytest.raises(TokenError):
        signer.verify(mangle(token), time.time())  # type: ignore[operator]


def test_other_key_and_expiry_are_refused() -> None:
    token = TokenSigner(SECRET).sign(uuid.uuid4(), 7, 1000)
    with pytest.raises(TokenError, match="signature"):
        TokenSigner(b"another-secret-of-32-bytes-long!").verify(token, 0)
    with pytest.raises(TokenError, match="expired"):
        TokenSigner(SECRET).verify(token, 1001)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        TokenSigner(b"short")
