"""The model registry: models, versions, aliases, tags and the audit trail.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.Column("last_update_time", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(256), sa.ForeignKey("registered_models.name"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("package_digest", sa.String(80), nullable=False),
        sa.Column("flavor", sa.String(32), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="READY"),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("signature", sa.Text, nullable=True),
        sa.Column("data_versions", sa.Text, nullable=False, server_default="[]"),
        sa.Column("profile_digest", sa.String(80), nullable=True),
        sa.Column("metrics", sa.Text, nullable=False, server_default="{}"),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.Column("last_update_time", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name="pk_model_versions"),
    )
    op.create_table(
        "model_tags",
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),  # 0: the registered model itself
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", "version", "key", name="pk_model_tags"),
    )
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(256), sa.ForeignKey("registered_models.name"), nullable=False),
        sa.Column("alias", sa.String(250), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("name", "alias", name="pk_model_aliases"),
    )
    op.create_table(
        "registry_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("alias", sa.String(250), nullable=True),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("evidence", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("ix_registry_events_name", "registry_events", ["name", "id"])


def downgrade() -> None:
    for table in (
        "registry_events",
        "model_aliases",
        "model_tags",
        "model_versions",
        "registered_models",
    ):
        op.drop_table(table)
