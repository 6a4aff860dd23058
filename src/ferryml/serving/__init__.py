"""Serving: the model runtime, micro-batching, deployments (canary, shadow, rollback), the
prediction log with feedback, batch inference and packaging for production."""
