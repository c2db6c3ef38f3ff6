"""actions (outbound engagement writes), their events, private replies per comment, profiles

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("account", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_action_at", sa.DateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", sa.DateTime()),
        sa.Column("lease_token", sa.String(64)),
        sa.Column("result_id", sa.String(64)),
        sa.Column("result", sa.JSON()),
        sa.Column("source", sa.String(120), nullable=False),
        sa.Column("sent_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_actions"),
        sa.UniqueConstraint("key", name="uq_actions_key"),
    )
    op.create_index("ix_actions_state_next", "actions", ["state", "next_action_at"])
    op.create_index("ix_actions_account_kind_sent", "actions", ["account", "kind", "sent_at"])
    op.create_index("ix_actions_account_target", "actions", ["account", "target"])
    op.create_table(
        "action_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("from_state", sa.String(16)),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("actor", sa.String(200)),
        sa.PrimaryKeyConstraint("id", name="pk_action_events"),
        sa.ForeignKeyConstraint(["action_id"], ["actions.id"], ondelete="CASCADE",
                                name="fk_action_events_action_id_actions"),
    )
    op.create_index("ix_action_events_action", "action_events", ["action_id", "at"])
    op.create_table(
        "private_replies",
        sa.Column("comment_id", sa.String(64), nullable=False),
        sa.Column("account", sa.String(100), nullable=False),
        sa.Column("action_key", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("comment_id", name="pk_private_replies"),
    )
    op.create_table(
        "profiles",
        sa.Column("igsid", sa.String(64), nullable=False),
        sa.Column("account", sa.String(100), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("username", sa.Text()),
        sa.Column("profile_pic", sa.Text()),
        sa.Column("fetched_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("igsid", name="pk_profiles"),
    )


def downgrade() -> None:
    op.drop_table("profiles")
    op.drop_table("private_replies")
    op.drop_index("ix_action_events_action", table_name="action_events")
    op.drop_table("action_events")
    op.drop_index("ix_actions_account_target", table_name="actions")
    op.drop_index("ix_actions_account_kind_sent", table_name="actions")
    op.drop_index("ix_actions_state_next", table_name="actions")
    op.drop_table("actions")
