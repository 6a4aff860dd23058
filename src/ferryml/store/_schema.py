"""Table definitions of the metadata store. Migrations in ``migrations/`` create them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("lifecycle_stage", String(16), nullable=False, server_default="active"),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    UniqueConstraint("name", name="uq_experiments_name"),
)

experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("experiment_id", "key", name="pk_experiment_tags"),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("run_name", String(250), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("lifecycle_stage", String(16), nullable=False, server_default="active"),
    Column("parent_run_id", String(32), nullable=True),
    Column("user_id", String(256), nullable=False, server_default=""),
    Column("description", Text, nullable=False, server_default=""),
    Column("failure", Text, nullable=True),
    Index("ix_runs_experiment_start", "experiment_id", "start_time"),
)


def _key_value(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("run_id", String(32), ForeignKey("runs.run_id"), nullable=False),
        Column("key", String(250), nullable=False),
        Column("value", Text, nullable=False),
        PrimaryKeyConstraint("run_id", "key", name=f"pk_{name}"),
        sqlite_with_rowid=False,  # a run's rows together: a search reads them in one pass
    )


params = _key_value("params")
Index("ix_params_key_value", params.c.key, params.c.value)
tags = _key_value("tags")


def _metric_columns() -> list[Column[Any]]:
    return [
        Column("run_id", String(32), ForeignKey("runs.run_id"), nullable=False),
        Column("key", String(250), nullable=False),
        Column("step", BigInteger, nullable=False),
        Column("timestamp", BigInteger, nullable=False),
        Column("value", Float(precision=53), nullable=False),
        # SQLite cannot store NaN in a REAL column; NaN is stored as 0 with is_nan set.
        Column("is_nan", Boolean, nullable=False),
    ]


# Every logged value. The key spans all columns so that replaying a journal is idempotent.
metrics = Table(
    "metrics",
    metadata,
    *_metric_columns(),
    PrimaryKeyConstraint(
        "run_id", "key", "step", "timestamp", "value", "is_nan", name="pk_metrics"
    ),
    sqlite_with_rowid=False,
)

# The value at the highest (step, timestamp) per run and key: what search filters on.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    *_metric_columns(),
    PrimaryKeyConstraint("run_id", "key", name="pk_latest_metrics"),
    Index("ix_latest_metrics_key_value", "key", "value"),
    sqlite_with_rowid=False,
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), nullable=False),
    Column("path", String(1000), nullable=False),
    Column("digest", String(80), nullable=False),
    Column("size", BigInteger, nullable=False),
    PrimaryKeyConstraint("run_id", "path", name="pk_run_artifacts"),
)

run_inputs = Table(
    "run_inputs",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("version", String(64), nullable=False),
    Column("digest", String(80), nullable=False, server_default=""),
    Column("context", String(64), nullable=False, server_default=""),
    PrimaryKeyConstraint("run_id", "name", "version", "context", name="pk_run_inputs"),
)

datasets = Table(
    "datasets",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("creation_time", BigInteger, nullable=False),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("name", String(256), ForeignKey("datasets.name"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # file | folder | table
    Column("manifest_digest", String(80), nullable=False),
    Column("files", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("source", Text, nullable=False, server_default=""),
    Column("rows", BigInteger, nullable=True),
    Column("schema", Text, nullable=True),  # JSON, for tables
    Column("profile_digest", String(80), nullable=True),  # a JSON blob, for tables
    Column("run_id", String(32), nullable=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("deleted_time", BigInteger, nullable=True),  # a tombstone keeps the number
    PrimaryKeyConstraint("name", "version", name="pk_dataset_versions"),
    Index("ix_dataset_versions_manifest", "name", "manifest_digest"),
)

# A finished step's output by cache key: digest(code, inputs, params, dependencies).
step_cache = Table(
    "step_cache",
    metadata,
    Column("cache_key", String(80), primary_key=True),
    Column("step", String(250), nullable=False),
    Column("digest", String(80), nullable=False),
    Column("format", String(16), nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("creation_time", BigInteger, nullable=False),
)

schedules = Table(
    "schedules",
    metadata,
    Column("name", String(250), primary_key=True),
    Column("target", String(1000), nullable=False),  # module:pipeline
    Column("cron", String(250), nullable=False),
    Column("params", Text, nullable=False, server_default="{}"),  # JSON
    Column("next_run_time", BigInteger, nullable=False),  # ms; claimed by compare-and-set
    Column("last_run_time", BigInteger, nullable=True),
    Column("last_run_id", String(32), nullable=True),
    Column("last_status", String(16), nullable=True),
    Column("creation_time", BigInteger, nullable=False),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("deleted_time", BigInteger, nullable=True),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(256), ForeignKey("registered_models.name"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("package_digest", String(80), nullable=False),  # the package's metadata blob
    Column("flavor", String(32), nullable=False),
    Column("source", Text, nullable=False),  # runs:/<id>/<path>
    Column("run_id", String(32), nullable=True),
    Column("status", String(16), nullable=False, server_default="READY"),
    Column("description", Text, nullable=False, server_default=""),
    Column("signature", Text, nullable=True),  # JSON
    Column("data_versions", Text, nullable=False, server_default="[]"),  # JSON refs
    Column("profile_digest", String(80), nullable=True),  # reference profile, for monitoring
    Column("metrics", Text, nullable=False, server_default="{}"),  # JSON, latest evaluation
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("deleted_time", BigInteger, nullable=True),  # a tombstone keeps the number
    PrimaryKeyConstraint("name", "version", name="pk_model_versions"),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column("name", String(256), nullable=False),
    Column("version", Integer, nullable=False),  # 0: the registered model itself
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("name", "version", "key", name="pk_model_tags"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(256), ForeignKey("registered_models.name"), nullable=False),
    Column("alias", String(250), nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("name", "alias", name="pk_model_aliases"),
)

# Every alias move and state change: who, when, from, to, why, and the evidence.
registry_events = Table(
    "registry_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", BigInteger, nullable=False),
    Column("user_id", String(256), nullable=False),
    Column("name", String(256), nullable=False),
    Column("action", String(32), nullable=False),
    Column("version", Integer, nullable=True),
    Column("alias", String(250), nullable=True),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("reason", Text, nullable=False, server_default=""),
    Column("evidence", Text, nullable=False, server_default="{}"),
    Index("ix_registry_events_name", "name", "id"),
)

# One Parquet blob of logged predictions per flush and deployment (the rows live in the
# artifact store). Times in ms, widened to whole ms around the rows' microsecond times;
# ids as UTF-8 bytes, whose order is the same in Python, SQLite and PostgreSQL whatever the
# collation, so feedback can find the blobs that may hold an id.
prediction_partitions = Table(
    "prediction_partitions",
    metadata,
    Column("digest", String(80), primary_key=True),
    Column("deployment", String(256), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("min_time", BigInteger, nullable=False),
    Column("max_time", BigInteger, nullable=False),
    Column("min_id", LargeBinary, nullable=False),
    Column("max_id", LargeBinary, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Index("ix_prediction_partitions_deployment_time", "deployment", "max_time"),
    Index("ix_prediction_partitions_max_id", "max_id"),
)

# The true label of a logged prediction (JSON), the last one given; the prediction's
# deployment and time are copied here so a window of predictions finds its labels.
prediction_feedback = Table(
    "prediction_feedback",
    metadata,
    Column("prediction_id", Text, primary_key=True),
    Column("deployment", String(256), nullable=False),
    Column("prediction_time", BigInteger, nullable=False),
    Column("label", Text, nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("user_name", String(64), nullable=False, server_default=""),  # who gave the label
    Index("ix_prediction_feedback_deployment_time", "deployment", "prediction_time"),
)

deployments = Table(
    "deployments",
    metadata,
    Column("name", String(250), primary_key=True),
    Column("spec", Text, nullable=False),  # JSON: model, routes, rollback policy
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
)

deployment_events = Table(
    "deployment_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", BigInteger, nullable=False),
    Column("user_id", String(256), nullable=False),
    Column("name", String(250), nullable=False),
    Column("action", String(32), nullable=False),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
    Column("reason", Text, nullable=False, server_default=""),
    Index("ix_deployment_events_name", "name", "id"),
)

# Every alert a monitor's rules fired or resolved; times in ms (``time`` when recorded,
# the window's bounds as the monitor gave them).
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", BigInteger, nullable=False),
    Column("monitor", String(250), nullable=False),
    Column("rule", String(250), nullable=False),
    Column("metric", String(250), nullable=False),
    Column("op", String(16), nullable=False),
    Column("value", Float(precision=53), nullable=False),
    Column("threshold", Float(precision=53), nullable=False),
    Column("reference", Float(precision=53), nullable=True),  # for dropped_by / rose_by
    Column("state", String(16), nullable=False),  # fired | resolved
    Column("message", Text, nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Index("ix_alerts_monitor_id", "monitor", "id"),
)

# The outcome of sending an alert to one channel, after every attempt.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("alert_id", Integer, ForeignKey("alerts.id"), nullable=False),
    Column("channel", String(250), nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("error", Text, nullable=True),
    PrimaryKeyConstraint("alert_id", "channel", name="pk_alert_deliveries"),
)

# Where each (monitor, rule) stands, so a restarted monitor carries on counting windows.
alert_state = Table(
    "alert_state",
    metadata,
    Column("monitor", String(250), nullable=False),
    Column("rule", String(250), nullable=False),
    Column("consecutive", Integer, nullable=False),
    Column("firing", Boolean, nullable=False),
    Column("last_fired", BigInteger, nullable=True),  # window_end of the last alert fired
    Column("reference", Float(precision=53), nullable=True),  # first value, for dropped_by
    Column("last_window_end", BigInteger, nullable=True),
    PrimaryKeyConstraint("monitor", "rule", name="pk_alert_state"),
)

# A monitor's spec (JSON: deployment, reference, window, task, rules, channels).
monitors = Table(
    "monitors",
    metadata,
    Column("name", String(250), primary_key=True),
    Column("spec", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
)

# What a monitor found in one window of predictions; window bounds in ms since the epoch.
monitor_results = Table(
    "monitor_results",
    metadata,
    Column("monitor", String(250), nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("metrics", Text, nullable=False),  # JSON: {metric: number}
    Column("drift", Text, nullable=False),  # JSON: DriftReport.to_dict()
    Column("created", BigInteger, nullable=False),
    PrimaryKeyConstraint("monitor", "window_start", "window_end", name="pk_monitor_results"),
)

# A retraining decision: one policy's answer to one trigger, carried step by step by the
# agent; ``context`` (JSON) holds what each finished step produced, so a restarted agent
# picks up at ``state``.
decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("policy", String(250), nullable=False),
    Column("deployment", String(250), nullable=False),
    Column("state", String(32), nullable=False),
    Column("outcome", String(32), nullable=True),  # set once the decision is over
    Column("context", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Index("ix_decisions_policy_created", "policy", "created"),
)

# The audit trail of a decision: one row per step taken, oldest first.
decision_events = Table(
    "decision_events",
    metadata,
    Column("decision_id", Integer, ForeignKey("decisions.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("details", Text, nullable=False),  # JSON
    PrimaryKeyConstraint("decision_id", "seq", name="pk_decision_events"),
)

# Each policy's watermarks (JSON): the last alert, schedule occurrence and label count it
# acted on.
policy_state = Table(
    "policy_state",
    metadata,
    Column("policy", String(250), primary_key=True),
    Column("state", Text, nullable=False),
)

# Who may act: an agent holds a lease until ``expires`` (ms) and renews it while it runs.
agent_leases = Table(
    "agent_leases",
    metadata,
    Column("name", String(250), primary_key=True),
    Column("holder", String(250), nullable=False),
    Column("expires", BigInteger, nullable=False),
)

# The team server's accounts: a role per user, and API tokens stored as a SHA-256 of
# their secret (tokens are random, so a slow hash would add nothing).
users = Table(
    "users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=false()),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_id", String(16), primary_key=True),
    Column("user_name", String(64), ForeignKey("users.name"), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("label", String(250), nullable=False, server_default=""),
    Column("creation_time", BigInteger, nullable=False),
    Column("revoked_time", BigInteger, nullable=True),
    Index("ix_tokens_user", "user_name"),
)

# Maintainers named by a registered model or deployment, beside the maintainer role.
maintainers = Table(
    "maintainers",
    metadata,
    Column("kind", String(16), nullable=False),  # "model" | "deployment"
    Column("name", String(250), nullable=False),
    Column("user_name", String(64), ForeignKey("users.name"), nullable=False),
    PrimaryKeyConstraint("kind", "name", "user_name", name="pk_maintainers"),
)

# What MLflow's clients log beyond ferryml's own records (server/mlflow/): MLflow 3's
# logged models with their files by digest, and the datasets runs read.
logged_models = Table(
    "logged_models",
    metadata,
    Column("model_id", String(64), primary_key=True),
    Column("experiment_id", Integer, nullable=False),
    Column("name", String(250), nullable=False),
    Column("source_run_id", String(32), nullable=True),
    Column("status", String(32), nullable=False),
    Column("model_type", String(250), nullable=False, server_default=""),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("tags", Text, nullable=False, server_default="{}"),  # JSON
    Column("params", Text, nullable=False, server_default="{}"),  # JSON
    Index("ix_logged_models_experiment_name", "experiment_id", "name"),
    Index("ix_logged_models_run", "source_run_id"),
)

logged_model_files = Table(
    "logged_model_files",
    metadata,
    Column("model_id", String(64), nullable=False),
    Column("path", String(1000), nullable=False),
    Column("digest", String(80), nullable=False),
    Column("size", BigInteger, nullable=False),
    PrimaryKeyConstraint("model_id", "path", name="pk_logged_model_files"),
)

mlflow_datasets = Table(
    "mlflow_datasets",
    metadata,
    Column("name", String(500), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("source_type", String(64), nullable=False, server_default=""),
    Column("source", Text, nullable=False, server_default=""),
    Column("schema", Text, nullable=False, server_default=""),
    Column("profile", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint("name", "digest", name="pk_mlflow_datasets"),
)

# The tags of a run's dataset input (its context among them), as JSON.
mlflow_inputs = Table(
    "mlflow_inputs",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("name", String(500), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("tags", Text, nullable=False, server_default="{}"),
    PrimaryKeyConstraint("run_id", "name", "digest", name="pk_mlflow_inputs"),
)

# Each deployment's review queue: how predictions are chosen for a person to label.
review_queues = Table(
    "review_queues",
    metadata,
    Column("deployment", String(256), primary_key=True),
    Column("spec", Text, nullable=False),  # JSON: strategy, size, lookback, choices
    Column("last_update_time", BigInteger, nullable=False),
    Column("user_name", String(64), nullable=False, server_default=""),
)

# A prediction chosen for review; its label, once given, is in prediction_feedback too.
review_items = Table(
    "review_items",
    metadata,
    Column("deployment", String(256), nullable=False),
    Column("prediction_id", Text, nullable=False),
    Column("prediction_time", BigInteger, nullable=False),
    Column("reason", String(16), nullable=False),
    Column("score", Float, nullable=True),
    Column("body", Text, nullable=False),  # JSON: features, prediction, model, version, shadow
    Column("added_time", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # open | labelled | skipped
    Column("label", Text, nullable=True),
    Column("user_name", String(64), nullable=False, server_default=""),
    Column("resolved_time", BigInteger, nullable=True),
    PrimaryKeyConstraint("deployment", "prediction_id", name="pk_review_items"),
    Index("ix_review_items_state", "deployment", "state", "added_time"),
)


# Failed prediction requests, counted per second (``store.request_errors``); kept apart
# from the prediction log so what reads predictions never meets a failure.
request_errors = Table(
    "request_errors",
    metadata,
    Column("batch", String(64), nullable=False),  # the write-ahead segment that counted them
    Column("deployment", String(256), nullable=False),
    Column("route", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", Integer, nullable=False),
    Column("time", BigInteger, nullable=False),  # the second's start, ms
    Column("count", BigInteger, nullable=False),
    Column("error", String(200), nullable=False),
    PrimaryKeyConstraint(
        "batch", "deployment", "route", "version", "status", "time", name="pk_request_errors"
    ),
    Index("ix_request_errors_deployment_time", "deployment", "time"),
)
