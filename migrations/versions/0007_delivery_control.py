"""delivery control: pausing an alert, who each batch was sent to, follow-ups, deadlines

- `alerts.paused_at`: set while an operator holds the alert paused; the status the API
  shows is `paused` then. The broadcaster's own status (`queued`, `scheduled`, `sending`)
  is left as it is, so its transitions need no exception for a pause.
- `batches.sent_ids`: the subscribers a settled batch was sent to, in the order of its
  request and parallel to `result_codes`, the dealer's answer for each, packed
  (`common.packing`: runs of consecutive ids, and the codes other than 1000). Written by
  the settlement that marks the batch `done`, in the same statement, so every settled batch
  says exactly who it reached and how, whatever the subscribers table says later; packed,
  a range batch's record is a few bytes. `allim_ids`, `allim_id_count`, `allim_codes` and
  `allim_sent` (each recipient with their code) unpack them for the queries that read them.
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

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# a batch's record, packed (common.packing): ids as runs of (first id, count) 8-byte pairs,
# codes as the exceptions to 1000, (position, code) 4-byte pairs
UNPACK = [
    """
CREATE FUNCTION allim_ids(packed bytea) RETURNS bigint[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(id ORDER BY run, id), '{}')
    FROM generate_series(0, length(packed) / 16 - 1) AS run,
    LATERAL generate_series(
        ('x' || encode(substring(packed FROM run * 16 + 1 FOR 8), 'hex'))::bit(64)::bigint,
        ('x' || encode(substring(packed FROM run * 16 + 1 FOR 8), 'hex'))::bit(64)::bigint
        + ('x' || encode(substring(packed FROM run * 16 + 9 FOR 8), 'hex'))::bit(64)::bigint
        - 1
    ) AS id
$$
""",
    """
CREATE FUNCTION allim_id_count(packed bytea) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(sum(
        ('x' || encode(substring(packed FROM run * 16 + 9 FOR 8), 'hex'))::bit(64)::bigint
    ), 0)::integer
    FROM generate_series(0, length(packed) / 16 - 1) AS run
$$
""",
    """
CREATE FUNCTION allim_codes(packed bytea, total integer) RETURNS integer[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(coalesce(e.code, 1000) ORDER BY p), '{}')
    FROM generate_series(1, total) AS p
    LEFT JOIN (
        SELECT ('x' || encode(substring(packed FROM i * 8 + 1 FOR 4), 'hex'))::bit(32)::integer
                   AS position,
               ('x' || encode(substring(packed FROM i * 8 + 5 FOR 4), 'hex'))::bit(32)::integer
                   AS code
        FROM generate_series(0, length(packed) / 8 - 1) AS i
    ) e ON e.position = p
$$
""",
    """
CREATE FUNCTION allim_sent(ids bytea, codes bytea) RETURNS TABLE (sid bigint, code integer)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT * FROM unnest(allim_ids(ids), allim_codes(codes, allim_id_count(ids)))
$$
""",
]


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
    op.add_column("batches", sa.Column("sent_ids", sa.LargeBinary(), nullable=True))
    op.add_column("batches", sa.Column("result_codes", sa.LargeBinary(), nullable=True))
    for function in UNPACK:
        op.execute(function)


def downgrade() -> None:
    op.execute("DROP FUNCTION allim_sent(bytea, bytea)")
    op.execute("DROP FUNCTION allim_codes(bytea, integer)")
    op.execute("DROP FUNCTION allim_id_count(bytea)")
    op.execute("DROP FUNCTION allim_ids(bytea)")
    op.drop_table("alert_recipients")
    op.drop_index("ix_alerts_parent_id", table_name="alerts")
    op.drop_constraint("fk_alerts_parent", "alerts", type_="foreignkey")
    for column in ("deliver_within", "relation", "parent_id"):
        op.drop_column("alerts", column)
    op.drop_column("batches", "result_codes")
    op.drop_column("batches", "sent_ids")
    op.drop_column("alerts", "paused_at")
