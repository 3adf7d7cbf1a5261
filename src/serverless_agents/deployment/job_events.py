"""The events that end an async task's wait: what an agent declares, and which jobs an event names.

An async agent declares the EventBridge patterns whose events mean one of its jobs changed, and where an
event names the job: its class (`AsyncAgentBase.events`, `event_job_id`, `job_id(metadata)`) and the
manifest (`events` adds patterns, `event_job_id` replaces the path). The plan turns the patterns into rules
targeting the agent's get function (`serverless_agents.deployment.plan`); the runtime finds the tasks an event
concerns by the job id (`runtime.async_steps`, the tasks table's `waking` index). An agent declaring no
pattern is polled only, as before: its state machine keeps the plain Wait (`statemachine`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serverless_agents.exceptions import ManifestError

if TYPE_CHECKING:
    from serverless_agents.deployment.manifest import AgentClass, AgentSettings


@dataclass(frozen=True)
class JobEvents:
    """An async agent's declared events: the rules' patterns, and the dotted path to the job id."""

    patterns: tuple[Mapping[str, Any], ...]
    job_id_path: str

    def job_ids(self, event: Mapping[str, Any]) -> list[str]:
        """The job ids `event` names at `job_id_path` (a string, or a list of them); none if it names none."""
        value: Any = event
        for part in self.job_id_path.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return []
            value = value[part]
        values = value if isinstance(value, list) else [value]
        return [v for v in values if isinstance(v, str) and v]


def job_events(name: str, agent_cls: AgentClass, settings: AgentSettings) -> JobEvents | None:
    """Agent `name`'s declared events (its class's and its manifest's), or None when it declares none.

    Only async agents have them here (a sensor's `events` poke it: `runtime.sensors`). Patterns without a
    path to the job id could wake nothing: a ManifestError at load, not a rule that fires in vain."""
    from serverless_agents.agent import AsyncAgentBase

    if not issubclass(agent_cls, AsyncAgentBase):
        return None
    patterns = (*agent_cls.events, *settings.events)
    if not patterns:
        return None
    path = settings.event_job_id or agent_cls.event_job_id
    if not path:
        raise ManifestError(
            f"agents.{name}.events: the agent declares event patterns but not where an event names its job: "
            'set event_job_id (e.g. event_job_id = "detail.jobId"), and have the class\'s job_id(metadata) '
            "return that id"
        )
    return JobEvents(patterns, path)
