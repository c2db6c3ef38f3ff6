"""Publish-path indexes: posts whose publish is in flight, by account, so that the quota's
count at every publish reads this account's rows in the window and in flight, not its whole
history nor every post in flight on every account; and posts by media id, so that the bulk
permalink read sets each post through one index entry, not a walk over every published post

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# the same text as scheduler/store/schema.py (a partial index is used only for a query that
# holds its predicate word for word)
FLYING = "state IN ('publishing', 'verifying')"
HAS_MEDIA_ID = "media_id IS NOT NULL"


def upgrade() -> None:
    op.create_index("ix_posts_account_flying", "posts", ["account"],
                    sqlite_where=sa.text(FLYING), postgresql_where=sa.text(FLYING))
    op.create_index("ix_posts_media_id", "posts", ["media_id"],
                    sqlite_where=sa.text(HAS_MEDIA_ID), postgresql_where=sa.text(HAS_MEDIA_ID))


def downgrade() -> None:
    op.drop_index("ix_posts_media_id", "posts")
    op.drop_index("ix_posts_account_flying", "posts")
