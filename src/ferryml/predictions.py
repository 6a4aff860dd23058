"""Logged predictions and their ground truth (``load``, ``scan``, ``record_feedback``,
``import_feedback``) and the log's compaction (``compact``) under the short name the README
uses: ``from ferryml import predictions``. The code lives with the prediction log, in
``ferryml.serving.predictions`` and ``ferryml.serving.compaction``."""

from __future__ import annotations

from ferryml.serving.compaction import CompactionReport, compact
from ferryml.serving.predictions import (
    FeedbackReport,
    import_feedback,
    load,
    record_feedback,
    scan,
)

__all__ = [
    "CompactionReport",
    "FeedbackReport",
    "compact",
    "import_feedback",
    "load",
    "record_feedback",
    "scan",
]
