"""Page cursors of the gateway's lists: a keyset position packed in fixed-size bytes, base64url.

Every string of a cursor's pattern is a position to page from (an alert list's: a creation
time and an alert id; the audit log's: a row id), so the OpenAPI document states exactly
which cursors the gateway takes: a client generated from it checks them, and the gateway
refuses none it documents. Any other string is a 422 naming the `cursor` query field,
like any other invalid field (FastAPI checks the pattern).
"""

from __future__ import annotations

import base64
import math
import struct
import uuid
from datetime import UTC, datetime, timedelta

_ALERTS = struct.Struct(">q16s")  # microseconds since the Unix epoch, the alert id's bytes
_AUDIT = struct.Struct(">q")  # the audit row id
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# a time outside what datetime holds pages like the nearest one inside: no alert lies beyond
_EARLIEST = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
_LATEST = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND


def _pattern(size: int) -> str:
    return f"^[A-Za-z0-9_-]{{{math.ceil(size * 4 / 3)}}}$"  # unpadded base64url of `size` bytes


ALERTS_PATTERN = _pattern(_ALERTS.size)
AUDIT_PATTERN = _pattern(_AUDIT.size)


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> bytes:
    # the bits past the last whole byte of an unpadded cursor are ignored, as by any decoder
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def encode_alerts(created_at: datetime, alert_id: uuid.UUID) -> str:
    """The cursor of the alerts after (older than) this one."""
    return _encode(_ALERTS.pack((created_at - _EPOCH) // _MICROSECOND, alert_id.bytes))


def decode_alerts(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position of a cursor that matches `ALERTS_PATTERN`."""
    micros, alert_id = _ALERTS.unpack(_decode(cursor))
    micros = min(max(micros, _EARLIEST), _LATEST)
    return _EPOCH + micros * _MICROSECOND, uuid.UUID(bytes=alert_id)


def encode_audit(before: int) -> str:
    """The cursor of the audit rows before row `before`."""
    return _encode(_AUDIT.pack(before))


def decode_audit(cursor: str) -> int:
    """The row id of a cursor that matches `AUDIT_PATTERN`."""
    (before,) = _AUDIT.unpack(_decode(cursor))
    return int(before)


_SUBSCRIBER = struct.Struct(">q")  # the last subscriber id of the page
RECIPIENTS_PATTERN = _pattern(_SUBSCRIBER.size)


def encode_recipients(after: int) -> str:
    """The cursor of an alert's recipients after subscriber `after`."""
    return _encode(_SUBSCRIBER.pack(after))


def decode_recipients(cursor: str) -> int:
    """The subscriber id of a cursor that matches `RECIPIENTS_PATTERN`."""
    (after,) = _SUBSCRIBER.unpack(_decode(cursor))
    return int(after)
