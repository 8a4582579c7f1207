"""delivery control: pausing an alert, and who each batch was sent to

- `alerts.paused_at`: set while an operator holds the alert paused; the status the API
  shows is `paused` then. The broadcaster's own status (`queued`, `scheduled`, `sending`)
  is left as it is, so its transitions need no exception for a pause.
- `batches.sent_ids`: the subscribers a settled batch was sent to, in the order of its
  request and parallel to `result_codes`, the dealer's answer for each. Written by the
  settlement that marks the batch `done`, in the same statement, so every settled batch
  says exactly who it reached and how, whatever the subscribers table says later.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09 12:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "batches", sa.Column("sent_ids", postgresql.ARRAY(sa.BigInteger()), nullable=True)
    )
    op.add_column(
        "batches", sa.Column("result_codes", postgresql.ARRAY(sa.Integer()), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("batches", "result_codes")
    op.drop_column("batches", "sent_ids")
    op.drop_column("alerts", "paused_at")
