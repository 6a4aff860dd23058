"""Pipelines: the step cache and schedules.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_cache",
        sa.Column("cache_key", sa.String(80), primary_key=True),
        sa.Column("step", sa.String(250), nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(250), primary_key=True),
        sa.Column("target", sa.String(1000), nullable=False),
        sa.Column("cron", sa.String(250), nullable=False),
        sa.Column("params", sa.Text, nullable=False, server_default="{}"),
        sa.Column("next_run_time", sa.BigInteger, nullable=False),
        sa.Column("last_run_time", sa.BigInteger, nullable=True),
        sa.Column("last_run_id", sa.String(32), nullable=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("schedules")
    op.drop_table("step_cache")
