"""Prometheus metrics of the controller, registered on the registry the server serves."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ControllerMetrics"]


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "fabrica_reconcile_total", "Reconciles finished, by kind and result",
            ["kind", "result"], registry=registry)
        self.errors = Counter(
            "fabrica_reconcile_errors_total", "Reconciles that raised", ["kind"],
            registry=registry)
        self.duration = Histogram(
            "fabrica_reconcile_duration_seconds", "Time spent in one reconcile", ["kind"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
            registry=registry)
        self.depth = Gauge(
            "fabrica_workqueue_depth", "Keys waiting for a worker", ["kind"], registry=registry)
        self.retries = Counter(
            "fabrica_workqueue_retries_total", "Keys requeued with backoff after an error",
            ["kind"], registry=registry)
