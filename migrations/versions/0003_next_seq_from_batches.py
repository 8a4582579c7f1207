"""a shard's next batch number comes from its batches, not a column updated per batch

`shards.next_seq` was raised by every batch written, an extra row update in the statement
that begins each batch. The batches of a shard hold their numbers already: the next one is
`max(seq) + 1` over them, read once when a sender starts the shard.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 14:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("shards", "next_seq")


def downgrade() -> None:
    op.add_column("shards", sa.Column("next_seq", sa.Integer(), server_default="0", nullable=False))
    op.execute(
        "UPDATE shards s SET next_seq = COALESCE((SELECT max(b.seq) + 1 FROM batches b"
        " WHERE b.alert_id = s.alert_id AND b.shard_no = s.shard_no), 0)"
    )
