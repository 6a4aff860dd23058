"""Automation: retraining decisions and their audit trail, each policy's watermarks, and
the lease that lets one agent act at a time.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("policy", sa.String(250), nullable=False),
        sa.Column("deployment", sa.String(250), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.Index("ix_decisions_policy_created", "policy", "created"),
    )
    op.create_table(
        "decision_events",
        sa.Column("decision_id", sa.Integer, sa.ForeignKey("decisions.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("decision_id", "seq", name="pk_decision_events"),
    )
    op.create_table(
        "policy_state",
        sa.Column("policy", sa.String(250), primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
    )
    op.create_table(
        "agent_leases",
        sa.Column("name", sa.String(250), primary_key=True),
        sa.Column("holder", sa.String(250), nullable=False),
        sa.Column("expires", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agent_leases")
    op.drop_table("policy_state")
    op.drop_table("decision_events")
    op.drop_table("decisions")
