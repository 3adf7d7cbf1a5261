"""Prometheus metrics with the names and labels of flytekit's connector service, so its dashboards work."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Summary

PREFIX = "flyte_connector_"


class AdapterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.success = Counter(
            f"{PREFIX}requests_success_total",
            "Total number of successful requests",
            ["task_type", "operation"],
            registry=self.registry,
        )
        self.failure = Counter(
            f"{PREFIX}requests_failure_total",
            "Total number of failed requests",
            ["task_type", "operation", "error_code"],
            registry=self.registry,
        )
        self.latency = Summary(
            f"{PREFIX}request_latency_seconds",
            "Time spent processing connector request",
            ["task_type", "operation"],
            registry=self.registry,
        )
        self.input_bytes = Summary(
            f"{PREFIX}input_literal_bytes", "Size of input literal", ["task_type"], registry=self.registry
        )
