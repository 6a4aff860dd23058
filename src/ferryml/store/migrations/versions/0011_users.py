"""The team server's users, their API tokens (hashed) and the maintainers that a
registered model or deployment names.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "tokens",
        sa.Column("token_id", sa.String(16), primary_key=True),
        sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name"), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(250), nullable=False, server_default=""),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.Column("revoked_time", sa.BigInteger, nullable=True),
        sa.Index("ix_tokens_user", "user_name"),
    )
    op.create_table(
        "maintainers",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name"), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", "user_name", name="pk_maintainers"),
    )


def downgrade() -> None:
    op.drop_table("maintainers")
    op.drop_table("tokens")
    op.drop_table("users")
