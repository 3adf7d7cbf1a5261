"""Prometheus metrics with the names and labels of flytekit's connector service, so its dashboards work.

Every label value is one of a known set: a series lives as long as the process, so a label a caller chooses
(a task type of 4 MB, a new one per call) would grow memory without end. `task_type` is a deployed agent's
task type (from the last ListAgents answer the adapter got, `AgentDirectory`) or `other`; `operation` and
`error_code` are the adapter's own.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Summary

PREFIX = "flyte_connector_"
#: The `task_type` label of a call whose task type no deployed agent serves.
OTHER_TASK_TYPE = "other"


class AdapterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # Discovery calls carry no task type: "" is theirs.
        self._known_task_types: frozenset[str] = frozenset({""})
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

    def know_task_types(self, task_types: Iterable[str]) -> None:
        """The deployed agents' task types, as the last agent listing said (series of types no longer
        deployed stay: they are few, and their counts are history)."""
        self._known_task_types = frozenset({"", *task_types})

    def task_type_label(self, task_type: str) -> str:
        return task_type if task_type in self._known_task_types else OTHER_TASK_TYPE
