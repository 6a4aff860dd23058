"""Who gave each feedback label: the team server records the token's user.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_feedback") as batch:
        batch.add_column(sa.Column("user_name", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("prediction_feedback") as batch:
        batch.drop_column("user_name")
