"""flytekit connectors written the way flytekitplugins write theirs (flytekitplugins/snowflake/connector.py):
an `AsyncConnectorBase` subclass with a `ResourceMeta` dataclass, the task category given in `__init__`,
inputs read with flytekit's TypeEngine, a secret read with `get_connector_secret`, and registration with
flytekit's `ConnectorRegistry` at import. Nothing here knows about this project.

Their "platform" is `JOBS`, a dict in this module: the local stack runs every Lambda in the test's process,
so the test sees what the connector did (gets, deletes, what it was given)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from flyteidl.core.execution_pb2 import TaskExecution, TaskLog
from flytekit import FlyteContextManager
from flytekit.core.type_engine import TypeEngine
from flytekit.exceptions.user import FlyteUserException
from flytekit.extend.backend.base_agent import AsyncAgentBase
from flytekit.extend.backend.base_connector import (
    AsyncConnectorBase,
    ConnectorRegistry,
    Resource,
    ResourceMeta,
)
from flytekit.extend.backend.utils import get_connector_secret
from flytekit.models.literals import LiteralMap
from flytekit.models.task import TaskExecutionMetadata, TaskTemplate

JOBS: dict[str, dict[str, Any]] = {}
logger = logging.getLogger(__name__)


@dataclass
class CountdownMeta(ResourceMeta):
    """Several field types, as plugins' metadata has them: all must survive encode / decode."""

    job_id: str
    polls: int
    ratio: float
    has_output: bool
    tags: list[str]
    limits: dict[str, int]
    note: str | None = None
    labels: list[str] = field(default_factory=list)


class CountdownConnector(AsyncConnectorBase):
    name = "Countdown Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="fk_countdown", metadata_type=CountdownMeta)

    async def create(
        self,
        task_template: TaskTemplate,
        output_prefix: str,
        inputs: LiteralMap | None = None,
        task_execution_metadata: TaskExecutionMetadata | None = None,
        **kwargs: Any,
    ) -> CountdownMeta:
        ctx = FlyteContextManager.current_context()
        values = TypeEngine.literal_map_to_kwargs(ctx, inputs, literal_types=task_template.interface.inputs)
        token = get_connector_secret("token")
        # A careless connector: it logs its credential. The project masks it.
        logger.warning("connecting with token %s", token)
        job_id = uuid.uuid4().hex
        JOBS[job_id] = {
            "values": values,
            "output_prefix": output_prefix,
            "run": task_execution_metadata.task_execution_id.node_execution_id.execution_id.name
            if task_execution_metadata
            else "",
            "token": token,
            "polls": int(task_template.custom.get("polls", 2)),
            "gets": 0,
            "deletes": 0,
            "metas": [],
        }
        return CountdownMeta(
            job_id=job_id,
            polls=JOBS[job_id]["polls"],
            ratio=0.25,
            has_output=bool(task_template.interface.outputs),
            tags=["a", "b"],
            limits={"rows": 10},
            labels=["x"],
        )

    async def get(self, resource_meta: CountdownMeta, **kwargs: Any) -> Resource:
        job = JOBS[resource_meta.job_id]
        job["gets"] += 1
        job["metas"].append(resource_meta)
        links = [TaskLog(name="Countdown", uri=f"https://countdown.invalid/jobs/{resource_meta.job_id}")]
        if job["gets"] < resource_meta.polls:
            return Resource(phase=TaskExecution.RUNNING, message=f"{job['gets']} of {resource_meta.polls}")
        values = job["values"]
        return Resource(
            phase=TaskExecution.SUCCEEDED,
            message=f"done with {job['token']}",
            log_links=links,
            outputs={
                "greeting": f"{values['greeting']}!",
                "xs": [x * 2 for x in values["xs"]],
                "echo": job["token"],
            },
            custom_info={"job_id": resource_meta.job_id},
        )

    async def delete(self, resource_meta: CountdownMeta, **kwargs: Any) -> None:
        JOBS[resource_meta.job_id]["deletes"] += 1


class RefusedConnector(AsyncAgentBase):  # type: ignore[misc]
    """flytekit's older name for the base class; a plain (not async) create that raises a user error."""

    name = "Refused Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="fk_refused", metadata_type=CountdownMeta)

    def create(self, task_template: TaskTemplate, output_prefix: str, **kwargs: Any) -> CountdownMeta:
        raise FlyteUserException("the warehouse refused the query:\n  syntax error at line 1")

    def get(self, resource_meta: CountdownMeta, **kwargs: Any) -> Resource:
        raise AssertionError("never created")

    def delete(self, resource_meta: CountdownMeta, **kwargs: Any) -> None:
        raise AssertionError("never created")


ConnectorRegistry.register(CountdownConnector())
ConnectorRegistry.register(RefusedConnector())
