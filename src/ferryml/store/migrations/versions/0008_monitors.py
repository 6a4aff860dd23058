"""Monitors: a spec per name, and the stored result of every window each one checked.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("name", sa.String(250), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "monitor_results",
        sa.Column("monitor", sa.String(250), nullable=False),
        sa.Column("window_start", sa.BigInteger, nullable=False),
        sa.Column("window_end", sa.BigInteger, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("drift", sa.Text, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("monitor", "window_start", "window_end", name="pk_monitor_results"),
    )


def downgrade() -> None:
    op.drop_table("monitor_results")
    op.drop_table("monitors")
