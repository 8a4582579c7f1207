"""the audience check and CAP duplicates by instant

- `ix_subscribers_district` on every subscriber's district (opted out too): the gateway
  refuses an alert whose audience names a district no subscriber has, with one index probe
  per district, and lists the known districts with a loose index scan instead of a read of
  every subscriber. The partial index `ix_subscribers_district_id` holds only the active.
- `alerts.cap_sent` is stored as the instant in UTC (`2026-03-01T11:00:00+00:00`), so one CAP
  alert written with `+09:00`, `+00:00` or `-00:00` is one alert. Existing rows are rewritten
  the same way; a row whose instant another row of the same sender and identifier already
  holds keeps its text (the two were stored as two alerts, and both stay findable).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 11:00:00+00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant(sent: str) -> str | None:
    try:
        parsed = datetime.fromisoformat(sent)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC).isoformat()


def upgrade() -> None:
    op.create_index("ix_subscribers_district", "subscribers", ["district"], unique=False)
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT id, cap_sender, cap_identifier, cap_sent FROM alerts "
            "WHERE cap_sent IS NOT NULL ORDER BY created_at, id"
        )
    ).all()
    taken = {(row.cap_sender, row.cap_identifier, row.cap_sent) for row in rows}
    for row in rows:
        instant = _instant(row.cap_sent)
        if instant is None or instant == row.cap_sent:
            continue
        if (row.cap_sender, row.cap_identifier, instant) in taken:
            continue
        taken.add((row.cap_sender, row.cap_identifier, instant))
        connection.execute(
            sa.text("UPDATE alerts SET cap_sent = :sent WHERE id = :id"),
            {"sent": instant, "id": row.id},
        )


def downgrade() -> None:
    # the original spelling of `sent` is not kept: rows stay in UTC
    op.drop_index("ix_subscribers_district", table_name="subscribers")
