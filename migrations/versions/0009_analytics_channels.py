"""analytics per channel: what the SMS/LMS fallback delivered, and who read it

- `alert_stats.sms_delivered`, `sms_failed`: the recipients the SMS/LMS fallback's batches
  delivered and failed, from the `channel` of the delivery events; KakaoTalk's are the
  totals less these.
- `alert_stats.sms_readers`: readers whose first tap was on a link sent by SMS/LMS.
- `alert_sms_reached`: the subscribers the fallback delivered to, per alert, so a reader is
  told apart by the channel that sent the link they first tapped, whichever event analytics
  sees first (the tap or the delivery).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 14:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ("sms_delivered", "sms_failed", "sms_readers")


def upgrade() -> None:
    for column in COUNTS:
        op.add_column(
            "alert_stats",
            sa.Column(column, sa.BigInteger(), server_default="0", nullable=False),
        )
    op.create_table(
        "alert_sms_reached",
        sa.Column("alert_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("subscriber_id", sa.BigInteger(), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("alert_sms_reached")
    for column in COUNTS:
        op.drop_column("alert_stats", column)
