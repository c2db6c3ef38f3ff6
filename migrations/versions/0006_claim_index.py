"""Claim indexes: one partial index per claim lane (publishing work, other work) in
next_action_at order, and one over leased posts, so a claim and the next wake-up read only
the rows they need, however many posts are planned

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# the same text as scheduler/store/schema.py (a partial index is used only for a query that
# holds its predicate word for word)
LANE_PUBLISHING = "state IN ('ready', 'deferred', 'publishing', 'verifying')"
LANE_OTHER = "(state IN ('planned', 'staging', 'waiting') OR (state = 'published' AND followup_pending))"
LEASED = "lease_until IS NOT NULL"


def _where(predicate: str) -> dict[str, sa.TextClause]:
    return {"sqlite_where": sa.text(predicate), "postgresql_where": sa.text(predicate)}


def upgrade() -> None:
    op.create_index("ix_posts_claim_publishing", "posts", ["next_action_at"], **_where(LANE_PUBLISHING))
    op.create_index("ix_posts_claim_other", "posts", ["next_action_at"], **_where(LANE_OTHER))
    op.create_index("ix_posts_lease", "posts", ["lease_until"], **_where(LEASED))


def downgrade() -> None:
    op.drop_index("ix_posts_lease", "posts")
    op.drop_index("ix_posts_claim_other", "posts")
    op.drop_index("ix_posts_claim_publishing", "posts")
