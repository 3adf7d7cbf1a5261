"""The cold-start benchmark's flytekit connector (bench/cold_start.py, row "create (flytekit connector)").

A team's own `AsyncConnectorBase`, written the flytekit way (a `ResourceMeta` dataclass, registration with
flytekit's `ConnectorRegistry` at import) and named in bench/flytekit_connectors.toml: the create function
runs it from the `flytekit` bundle, through `serverless_agents.agents.flytekit_connector`, as any flytekit
connector named in agents.toml runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flyteidl.core.execution_pb2 import TaskExecution
from flytekit.extend.backend.base_connector import (
    AsyncConnectorBase,
    ConnectorRegistry,
    Resource,
    ResourceMeta,
)

TASK_TYPE = "bench_fk_job"


@dataclass
class JobMeta(ResourceMeta):  # type: ignore[misc]
    job_id: str


class JobConnector(AsyncConnectorBase):  # type: ignore[misc]  # flytekit has no py.typed
    name = "Bench Job Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name=TASK_TYPE, metadata_type=JobMeta)

    async def create(self, task_template: Any, output_prefix: str, **kwargs: Any) -> JobMeta:
        return JobMeta(job_id=output_prefix)

    async def get(self, resource_meta: JobMeta, **kwargs: Any) -> Resource:
        return Resource(phase=TaskExecution.SUCCEEDED)

    async def delete(self, resource_meta: JobMeta, **kwargs: Any) -> None:
        return None


ConnectorRegistry.register(JobConnector())
