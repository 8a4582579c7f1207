"""named users, keys that belong to them, sign-in sessions, and alert approval

- `users`: a person (or a machine feed's owner) with one role (viewer, operator, approver,
  admin), an argon2 password hash for signing in (NULL: signs in with keys only), and the
  sign-in throttle's state (wrong passwords in a row, locked until).
- `api_keys.user_id`: every key belongs to a user. Each existing key becomes a user of its
  own, named after the key (with the key's prefix added when the name is taken) and
  holding the key's role; the key's own `role` column goes, since the user's role decides.
  `api_keys.machine_feed` marks a key that a system (a CAP source) uses; its alerts may skip
  approval when the deployment allows it.
- `web_sessions`: a signed-in person's session; the cookie holds a random token whose
  SHA-256 is the row's id, so a stolen database does not hold usable cookies.
- `alerts`: `author_id` (who created it), `approval` (required, machine_feed, exempt,
  off: why it needed approval or not), `decided_by_id` and `decided_at` (who approved or
  rejected it, and when), and `test_of` (a test send's parent alert).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES = "('viewer', 'operator', 'approver', 'admin')"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_signins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"role IN {ROLES}", name="ck_users_role"),
    )
    op.add_column("api_keys", sa.Column("user_id", sa.Integer(), nullable=True))
    op.add_column(
        "api_keys",
        sa.Column("machine_feed", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    connection = op.get_bind()
    keys = connection.execute(sa.text("SELECT id, name, role, prefix FROM api_keys ORDER BY id"))
    taken: set[str] = set()
    for key in keys.all():
        name = key.name if key.name not in taken else f"{key.name} ({key.prefix})"
        taken.add(name)
        user_id = connection.execute(
            sa.text("INSERT INTO users (name, role) VALUES (:name, :role) RETURNING id"),
            {"name": name, "role": key.role if key.role in ("operator", "viewer") else "viewer"},
        ).scalar_one()
        connection.execute(
            sa.text("UPDATE api_keys SET user_id = :user WHERE id = :id"),
            {"user": user_id, "id": key.id},
        )
    op.alter_column("api_keys", "user_id", nullable=False)
    op.create_foreign_key("fk_api_keys_user", "api_keys", "users", ["user_id"], ["id"])
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.drop_column("api_keys", "role")

    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])

    op.add_column("alerts", sa.Column("author_id", sa.Integer(), nullable=True))
    op.add_column(
        "alerts", sa.Column("approval", sa.String(16), server_default="off", nullable=False)
    )
    op.add_column("alerts", sa.Column("decided_by_id", sa.Integer(), nullable=True))
    op.add_column("alerts", sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alerts", sa.Column("test_of", sa.UUID(), nullable=True))
    op.create_foreign_key("fk_alerts_author", "alerts", "users", ["author_id"], ["id"])
    op.create_foreign_key("fk_alerts_decided_by", "alerts", "users", ["decided_by_id"], ["id"])
    op.create_foreign_key(
        "fk_alerts_test_of", "alerts", "alerts", ["test_of"], ["id"], ondelete="CASCADE"
    )
    op.create_index(
        "ix_alerts_test_of", "alerts", ["test_of"], postgresql_where=sa.text("test_of IS NOT NULL")
    )
    # the expiry sweep's walk: only alerts that wait for approval
    op.create_index(
        "ix_alerts_pending_expires",
        "alerts",
        ["expires_at"],
        postgresql_where=sa.text("status = 'pending_approval'"),
    )


def downgrade() -> None:
    op.drop_index("ix_alerts_pending_expires", table_name="alerts")
    op.drop_index("ix_alerts_test_of", table_name="alerts")
    op.drop_constraint("fk_alerts_test_of", "alerts", type_="foreignkey")
    op.drop_constraint("fk_alerts_decided_by", "alerts", type_="foreignkey")
    op.drop_constraint("fk_alerts_author", "alerts", type_="foreignkey")
    for column in ("test_of", "decided_at", "decided_by_id", "approval", "author_id"):
        op.drop_column("alerts", column)
    op.drop_index("ix_web_sessions_user_id", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.add_column("api_keys", sa.Column("role", sa.String(16), nullable=True))
    # a role the old schema knows: those who could send keep sending, the rest read
    op.execute(
        "UPDATE api_keys SET role = CASE WHEN users.role IN ('operator', 'approver') "
        "THEN 'operator' ELSE 'viewer' END FROM users WHERE users.id = api_keys.user_id"
    )
    op.alter_column("api_keys", "role", nullable=False)
    op.drop_index("ix_api_keys_user_id", table_name="api_keys")
    op.drop_constraint("fk_api_keys_user", "api_keys", type_="foreignkey")
    op.drop_column("api_keys", "machine_feed")
    op.drop_column("api_keys", "user_id")
    op.drop_table("users")
