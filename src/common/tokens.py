"""Tracking-link tokens: (alert, subscriber, expiry) signed with HMAC-SHA256.

A token is `base64url(alert uuid 16 bytes | subscriber id 8 bytes | expiry 4 bytes | mac 12 bytes)`,
54 characters, so a link stays short inside a 500-character button.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass

_BODY = struct.Struct(">16sQI")
_MAC_BYTES = 12
TOKEN_LENGTH = 54


class TokenError(ValueError):
    """A token that is malformed, forged or expired."""


@dataclass(frozen=True)
class TrackingToken:
    """Who a tracking link was sent to, for which alert, and until when it is valid."""

    alert_id: uuid.UUID
    subscriber_id: int
    expires: int  # unix seconds


class TokenSigner:
    """Signs and verifies tracking tokens with one secret key."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("The tracking secret must be at least 16 bytes long.")
        self._key = secret

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]

    def sign(self, alert_id: uuid.UUID, subscriber_id: int, expires: int) -> str:
        """The token for one recipient of one alert."""
        body = _BODY.pack(alert_id.bytes, subscriber_id, expires)
        return base64.urlsafe_b64encode(body + self._mac(body)).decode().rstrip("=")

    def signer_for(self, alert_id: uuid.UUID, expires: int) -> AlertTokenSigner:
        """A signer bound to one alert, for the sender's hot loop."""
        return AlertTokenSigner(self._key, alert_id, expires)

    def verify(self, token: str, now: float) -> TrackingToken:
        """The token's contents; `TokenError` when it is malformed, forged or expired."""
        if len(token) != TOKEN_LENGTH:
            raise TokenError("Tracking token has the wrong length.")
        try:
            raw = base64.urlsafe_b64decode(token + "==")
        except (binascii.Error, ValueError) as exc:
            raise TokenError("Tracking token is not base64url.") from exc
        if base64.urlsafe_b64encode(raw).decode().rstrip("=") != token:
            # the last character carries unused bits: only the canonical spelling is valid
            raise TokenError("Tracking token is not in canonical form.")
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, self._mac(body)):
            raise TokenError("Tracking token signature does not match.")
        alert_bytes, subscriber_id, expires = _BODY.unpack(body)
        if expires < now:
            raise TokenError("Tracking token has expired.")
        return TrackingToken(uuid.UUID(bytes=alert_bytes), subscriber_id, expires)


class AlertTokenSigner:
    """Signs tokens of one alert: the HMAC state of the shared prefix is computed once."""

    def __init__(self, key: bytes, alert_id: uuid.UUID, expires: int) -> None:
        self._alert = alert_id.bytes
        self._expires = expires
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def sign(self, subscriber_id: int) -> str:
        """The token for one subscriber."""
        body = _BODY.pack(self._alert, subscriber_id, self._expires)
        mac = self._base.copy()
        mac.update(body)
        return base64.urlsafe_b64encode(body + mac.digest()[:_MAC_BYTES]).decode().rstrip("=")
