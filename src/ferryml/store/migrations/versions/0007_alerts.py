"""Alerts: their history, each delivery's outcome, and each rule's state per monitor.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.Column("monitor", sa.String(250), nullable=False),
        sa.Column("rule", sa.String(250), nullable=False),
        sa.Column("metric", sa.String(250), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("threshold", sa.Float(precision=53), nullable=False),
        sa.Column("reference", sa.Float(precision=53), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("window_start", sa.BigInteger, nullable=False),
        sa.Column("window_end", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_alerts_monitor_id", "alerts", ["monitor", "id"])
    op.create_table(
        "alert_deliveries",
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), nullable=False),
        sa.Column("channel", sa.String(250), nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("alert_id", "channel", name="pk_alert_deliveries"),
    )
    op.create_table(
        "alert_state",
        sa.Column("monitor", sa.String(250), nullable=False),
        sa.Column("rule", sa.String(250), nullable=False),
        sa.Column("consecutive", sa.Integer, nullable=False),
        sa.Column("firing", sa.Boolean, nullable=False),
        sa.Column("last_fired", sa.BigInteger, nullable=True),
        sa.Column("reference", sa.Float(precision=53), nullable=True),
        sa.Column("last_window_end", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("monitor", "rule", name="pk_alert_state"),
    )


def downgrade() -> None:
    op.drop_table("alert_state")
    op.drop_table("alert_deliveries")
    op.drop_table("alerts")
