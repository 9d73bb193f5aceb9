"""Metrics: per-sample error functions (pure) and balanced / shot / region aggregation."""
