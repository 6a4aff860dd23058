"""Review queues: predictions chosen for a person to label, per deployment.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_queues",
        sa.Column("deployment", sa.String(256), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("last_update_time", sa.BigInteger, nullable=False),
        sa.Column("user_name", sa.String(64), nullable=False, server_default=""),
    )
    op.create_table(
        "review_items",
        sa.Column("deployment", sa.String(256), nullable=False),
        sa.Column("prediction_id", sa.Text, nullable=False),
        sa.Column("prediction_time", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("added_time", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("label", sa.Text, nullable=True),
        sa.Column("user_name", sa.String(64), nullable=False, server_default=""),
        sa.Column("resolved_time", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("deployment", "prediction_id", name="pk_review_items"),
        sa.Index("ix_review_items_state", "deployment", "state", "added_time"),
    )


def downgrade() -> None:
    op.drop_table("review_items")
    op.drop_table("review_queues")
