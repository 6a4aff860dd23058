"""The model server's routers, one per protocol: health and metrics, ferryml's own JSON
(/v1), the Open Inference Protocol (/v2), MLflow's scoring (/invocations) and feedback.
``ferryml.server.app.create_app`` puts them together."""

from ferryml.server.model import feedback, ferry, health, inference, mlflow

__all__ = ["feedback", "ferry", "health", "inference", "mlflow"]
