"""delivery control: pausing an alert, who each batch was sent to, follow-ups, deadlines

- `alerts.paused_at`: set while an operator holds the alert paused; the status the API
  shows is `paused` then. The broadcaster's own status (`queued`, `scheduled`, `sending`)
  is left as it is, so its transitions need no exception for a pause.
- `batches.sent_ids`: the subscribers a settled batch was sent to, in the order of its
  request and parallel to `result_codes`, the dealer's answer for each. Written by the
  settlement that marks the batch `done`, in the same statement, so every settled batch
  says exactly who it reached and how, whatever the subscribers table says later.
- `alerts.parent_id` and `alerts.relation` (`resend`, `correction`, `update`): a follow-up
  alert and the alert it follows. `alert_recipients` holds a follow-up's audience, frozen
  when it was created (`Audience.recipients_of` names the alert whose rows it is).
- `alerts.deliver_within`: seconds the sender promised to deliver within; the broadcaster
  tells when its estimate says it will miss that.

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
    op.add_column("alerts", sa.Column("parent_id", sa.UUID(), nullable=True))
    op.add_column("alerts", sa.Column("relation", sa.String(16), nullable=True))
    op.add_column("alerts", sa.Column("deliver_within", sa.Integer(), nullable=True))
    op.create_foreign_key(
        "fk_alerts_parent", "alerts", "alerts", ["parent_id"], ["id"], ondelete="CASCADE"
    )
    op.create_index(
        "ix_alerts_parent_id",
        "alerts",
        ["parent_id"],
        postgresql_where=sa.text("parent_id IS NOT NULL"),
    )
    op.create_table(
        "alert_recipients",
        sa.Column(
            "alert_id",
            sa.UUID(),
            sa.ForeignKey("alerts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("subscriber_id", sa.BigInteger(), primary_key=True),
    )
    op.add_column(
        "batches", sa.Column("sent_ids", postgresql.ARRAY(sa.BigInteger()), nullable=True)
    )
    op.add_column(
        "batches", sa.Column("result_codes", postgresql.ARRAY(sa.Integer()), nullable=True)
    )


def downgrade() -> None:
    op.drop_table("alert_recipients")
    op.drop_index("ix_alerts_parent_id", table_name="alerts")
    op.drop_constraint("fk_alerts_parent", "alerts", type_="foreignkey")
    for column in ("deliver_within", "relation", "parent_id"):
        op.drop_column("alerts", column)
    op.drop_column("batches", "result_codes")
    op.drop_column("batches", "sent_ids")
    op.drop_column("alerts", "paused_at")
