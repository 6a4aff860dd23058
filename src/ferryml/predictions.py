"""Logged predictions and their ground truth (``load``, ``record_feedback``,
``import_feedback``) under the short name the README uses: ``from ferryml import
predictions``. The code lives with the prediction log, in ``ferryml.serving.predictions``."""

from __future__ import annotations

from ferryml.serving.predictions import FeedbackReport, import_feedback, load, record_feedback

__all__ = ["FeedbackReport", "import_feedback", "load", "record_feedback"]
