"""the audit log: who did what to which alert, append-only

Every operator action (alert create and cancel, API key creation and revocation,
subscriber opt-out and import) adds one row in the transaction of the action itself.
A statement trigger refuses UPDATE, DELETE and TRUNCATE on the table, so neither a mistaken
script nor a malicious one can rewrite the history through ordinary statements.

`user_id` stays empty until allim has named users; `key_id` is the API key used, if any.
Neither `key_id` nor `alert_id` is a foreign key: the history outlives the rows it names,
and a cascade would have to rewrite the log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSE_CHANGES = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is refused', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'Audit rows are only ever inserted; history cannot be changed.';
END
$$
"""
# FOR EACH STATEMENT: also a statement that matches no row is refused, and TRUNCATE
# (which fires no row trigger) is caught by the same trigger
REFUSE_TRIGGER = """
CREATE TRIGGER audit_log_append_only
BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
"""


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.UUID(), nullable=True),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_audit_log_alert_id",
        "audit_log",
        ["alert_id", "id"],
        unique=False,
        postgresql_where=sa.text("alert_id IS NOT NULL"),
    )
    op.create_index("ix_audit_log_actor_id", "audit_log", ["actor", "id"], unique=False)
    op.create_index("ix_audit_log_action_id", "audit_log", ["action", "id"], unique=False)
    op.execute(REFUSE_CHANGES)
    op.execute(REFUSE_TRIGGER)


def downgrade() -> None:
    # DROP TABLE is not refused: taking the whole log away is a schema change, not a rewrite
    op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION audit_log_append_only()")
    op.drop_index("ix_audit_log_action_id", table_name="audit_log")
    op.drop_index("ix_audit_log_actor_id", table_name="audit_log")
    op.drop_index(
        "ix_audit_log_alert_id",
        table_name="audit_log",
        postgresql_where=sa.text("alert_id IS NOT NULL"),
    )
    op.drop_table("audit_log")
