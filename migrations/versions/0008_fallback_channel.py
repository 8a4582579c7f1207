"""the SMS/LMS fallback: what an alert says by SMS, and which channel each batch went by

- `alerts.fallback_codes`: the KakaoTalk result codes whose recipients get the alert again
  by SMS or LMS (NULL: no fallback), decided when the alert was created.
- `alerts.sms_kind`, `sms_subject`, `sms_text`: the SMS or LMS composed then (`#{link}`
  stands for each recipient's tracked link).
- `batches.channel`: `kakao` or `sms`; a fallback batch lists its recipients like a
  follow-up and is settled like any batch.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09 15:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "alerts", sa.Column("fallback_codes", postgresql.ARRAY(sa.Integer()), nullable=True)
    )
    op.add_column("alerts", sa.Column("sms_kind", sa.String(3), nullable=True))
    op.add_column("alerts", sa.Column("sms_subject", sa.String(80), nullable=True))
    op.add_column("alerts", sa.Column("sms_text", sa.Text(), nullable=True))
    op.add_column(
        "batches",
        sa.Column("channel", sa.String(8), server_default="kakao", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("batches", "channel")
    for column in ("sms_text", "sms_subject", "sms_kind", "fallback_codes"):
        op.drop_column("alerts", column)
