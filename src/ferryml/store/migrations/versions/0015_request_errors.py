"""Failed prediction requests, counted per second beside the prediction log.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_errors",
        sa.Column("batch", sa.String(64), nullable=False),
        sa.Column("deployment", sa.String(256), nullable=False),
        sa.Column("route", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("error", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint(
            "batch", "deployment", "route", "version", "status", "time", name="pk_request_errors"
        ),
        sa.Index("ix_request_errors_deployment_time", "deployment", "time"),
    )


def downgrade() -> None:
    op.drop_table("request_errors")
