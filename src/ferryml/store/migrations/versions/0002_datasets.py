"""Datasets and their versions.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("name", sa.String(256), sa.ForeignKey("datasets.name"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("manifest_digest", sa.String(80), nullable=False),
        sa.Column("files", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("rows", sa.BigInteger, nullable=True),
        sa.Column("schema", sa.Text, nullable=True),
        sa.Column("profile_digest", sa.String(80), nullable=True),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name="pk_dataset_versions"),
    )
    op.create_index("ix_dataset_versions_manifest", "dataset_versions", ["name", "manifest_digest"])


def downgrade() -> None:
    op.drop_table("dataset_versions")
    op.drop_table("datasets")
