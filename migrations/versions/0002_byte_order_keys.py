"""byte-order collation for the text keys analytics inserts per tap

The keys of `processed_events` (consumer, event_id) and `alert_readers` (reader_id) are
identifiers, compared for equality and kept in a btree: they need no linguistic order.
With COLLATE "C" PostgreSQL compares them byte by byte instead of through the locale,
which makes the unique-index inserts and the sorts analytics does for every tap cheaper.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 10:30:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("processed_events", "consumer", 32),
    ("processed_events", "event_id", 100),
    ("alert_readers", "reader_id", 64),
)


def upgrade() -> None:
    for table, column, length in COLUMNS:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar({length}) COLLATE "C"')


def downgrade() -> None:
    for table, column, length in COLUMNS:
        op.execute(
            f'ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar({length}) COLLATE "default"'
        )
