"""posts.late_cause and posts.hold: facts the pipeline kept as prose in events and reasons

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (nullable, no default) works the same on SQLite and PostgreSQL
    op.add_column("posts", sa.Column("late_cause", sa.Text()))
    op.add_column("posts", sa.Column("hold", sa.String(24)))


def downgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.drop_column("hold")
        batch.drop_column("late_cause")
