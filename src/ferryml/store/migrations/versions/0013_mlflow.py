"""What MLflow's clients log that ferryml's own tables do not hold: logged models (MLflow
3's model records, with their files by digest), and the datasets runs read with their
source, schema and profile.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "logged_models",
        sa.Column("model_id", sa.String(64), primary_key=True),
        sa.Column("experiment_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("source_run_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("model_type", sa.String(250), nullable=False, server_default=""),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.Column("last_update_time", sa.BigInteger, nullable=False),
        sa.Column("tags", sa.Text, nullable=False, server_default="{}"),
        sa.Column("params", sa.Text, nullable=False, server_default="{}"),
        sa.Index("ix_logged_models_experiment_name", "experiment_id", "name"),
        sa.Index("ix_logged_models_run", "source_run_id"),
    )
    op.create_table(
        "logged_model_files",
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("model_id", "path", name="pk_logged_model_files"),
    )
    op.create_table(
        "mlflow_datasets",
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("source_type", sa.String(64), nullable=False, server_default=""),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("schema", sa.Text, nullable=False, server_default=""),
        sa.Column("profile", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("name", "digest", name="pk_mlflow_datasets"),
    )
    op.create_table(
        "mlflow_inputs",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("tags", sa.Text, nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("run_id", "name", "digest", name="pk_mlflow_inputs"),
    )


def downgrade() -> None:
    op.drop_table("mlflow_inputs")
    op.drop_table("mlflow_datasets")
    op.drop_table("logged_model_files")
    op.drop_table("logged_models")
