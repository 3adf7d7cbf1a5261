"""A Flyte 2 connector written the way flyteplugins 2.x write theirs (flyteplugins/bigquery/connector.py):
an `AsyncConnector` subclass with a `ResourceMeta` dataclass, async create / get / delete, secrets as keyword
arguments, and registration with flyte's `ConnectorRegistry` at import. Nothing here knows about this project.

Its "platform" is `JOBS`, a dict in this module: the local stack runs every Lambda in the test's process,
so the test sees what the connector did (gets, deletes, what it was given)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from flyte.connectors import AsyncConnector, ConnectorRegistry, Resource, ResourceMeta
from flyteidl2.connector.connector_pb2 import TaskExecutionMetadata
from flyteidl2.core.execution_pb2 import TaskExecution, TaskLog
from flyteidl2.core.tasks_pb2 import TaskTemplate
from google.protobuf import json_format

JOBS: dict[str, dict[str, Any]] = {}


def fingerprint(secret: str) -> str:
    """What the connector reports of the secret it was given: enough to compare, nothing to leak."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def fingerprints(kwargs: dict[str, Any]) -> dict[str, str]:
    return {key: fingerprint(str(value)) for key, value in kwargs.items()}


@dataclass
class CountdownMetadata(ResourceMeta):
    job_id: str
    region: str


class CountdownConnector(AsyncConnector[CountdownMetadata]):
    name = "Countdown Connector"
    task_type_name = "countdown"
    metadata_type = CountdownMetadata

    async def create(
        self,
        task_template: TaskTemplate,
        output_prefix: str,
        inputs: dict[str, Any] | None = None,
        task_execution_metadata: TaskExecutionMetadata | None = None,
        **kwargs: Any,
    ) -> CountdownMetadata:
        custom = json_format.MessageToDict(task_template.custom)
        job_id = uuid.uuid4().hex
        JOBS[job_id] = {
            "polls": int(custom.get("polls", 2)),
            "inputs": dict(inputs or {}),
            "output_prefix": output_prefix,
            "run": task_execution_metadata.task_execution_id.node_execution_id.execution_id.name
            if task_execution_metadata
            else "",
            "token": fingerprint(kwargs.get("token", "")),
            "gets": 0,
            "deletes": 0,
            # What it was given, as given: the template, and a fingerprint of each keyword argument at
            # each call (the executor's Connection.secrets arrive that way, flyte/connectors/_server.py).
            "template": task_template,
            "kwargs": {"create": fingerprints(kwargs)},
        }
        return CountdownMetadata(job_id=job_id, region=kwargs.get("region", ""))

    async def get(self, resource_meta: CountdownMetadata, **kwargs: Any) -> Resource:
        job = JOBS[resource_meta.job_id]
        job["gets"] += 1
        job["kwargs"]["get"] = fingerprints(kwargs)
        links = [TaskLog(name="Countdown", uri=f"https://countdown.invalid/{resource_meta.region}/jobs/x")]
        if job["gets"] < job["polls"]:
            return Resource(
                phase=TaskExecution.RUNNING, message=f"{job['gets']} of {job['polls']}", log_links=links
            )
        inputs = job["inputs"]
        return Resource(
            phase=TaskExecution.SUCCEEDED,
            message="lift-off",
            log_links=links,
            outputs={"greeting": f"{inputs['greeting']}!", "total": sum(inputs["xs"]), "token": job["token"]},
            custom_info={"job_id": resource_meta.job_id, "region": resource_meta.region},
        )

    async def delete(self, resource_meta: CountdownMetadata, **kwargs: Any) -> None:
        JOBS[resource_meta.job_id]["deletes"] += 1
        JOBS[resource_meta.job_id]["kwargs"]["delete"] = fingerprints(kwargs)


ConnectorRegistry.register(CountdownConnector())
