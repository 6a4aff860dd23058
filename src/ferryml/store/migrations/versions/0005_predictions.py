"""The prediction log: an index of its Parquet partitions, and feedback labels.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_partitions",
        sa.Column("digest", sa.String(80), primary_key=True),
        sa.Column("deployment", sa.String(256), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("min_time", sa.BigInteger, nullable=False),
        sa.Column("max_time", sa.BigInteger, nullable=False),
        sa.Column("min_id", sa.LargeBinary, nullable=False),
        sa.Column("max_id", sa.LargeBinary, nullable=False),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_prediction_partitions_deployment_time",
        "prediction_partitions",
        ["deployment", "max_time"],
    )
    op.create_index("ix_prediction_partitions_max_id", "prediction_partitions", ["max_id"])
    op.create_table(
        "prediction_feedback",
        sa.Column("prediction_id", sa.Text, primary_key=True),
        sa.Column("deployment", sa.String(256), nullable=False),
        sa.Column("prediction_time", sa.BigInteger, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_prediction_feedback_deployment_time",
        "prediction_feedback",
        ["deployment", "prediction_time"],
    )


def downgrade() -> None:
    op.drop_table("prediction_feedback")
    op.drop_table("prediction_partitions")
