"""Helpers for testing agents and clients: Flyte requests shaped the way flytepropeller sends them, and a
test client that runs a manifest's agents on the embedded stack (`AgentTestClient`).

Importing this module costs nothing extra: the embedded stack (moto, the `local` extra) is imported only when
a test client is made.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2, interface_pb2, tasks_pb2, types_pb2

from serverless_agents.agent import AgentKind, LogLink, Phase
from serverless_agents.client import ApiClient
from serverless_agents.literals import decode_literal_map, encode_literal_map
from serverless_agents.resource_meta import task_id_from_resource_meta
from serverless_agents.s3uri import parse_s3_uri

_TYPES = {int: types_pb2.INTEGER, str: types_pb2.STRING, float: types_pb2.FLOAT, bool: types_pb2.BOOLEAN}


def interface_for(types: Mapping[str, type]) -> interface_pb2.VariableMap:
    """Flyte variables for simple types: `{"n": int, "text": str}` (int, float, str, bool)."""
    for name, kind in types.items():
        if kind not in _TYPES:
            raise TypeError(
                f"{name!r}: expected one of int, float, str, bool (a type, not a value), found {kind!r}"
            )
    return interface_pb2.VariableMap(
        variables={
            name: interface_pb2.Variable(type=types_pb2.LiteralType(simple=_TYPES[kind]))
            for name, kind in types.items()
        }
    )


def task_request(
    task_type: str,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, type] | None = None,
    custom: Mapping[str, Any] | None = None,
    execution: str = "demo",
    node: str = "n0",
    attempt: int = 0,
    output_prefix: str | None = None,
) -> agent_pb2.CreateTaskRequest:
    """A CreateTaskRequest shaped like propeller's, for a task with simple typed inputs and outputs:
    `inputs` maps names to values (their types make the interface), `outputs` names to types, as
    `AgentTestClient.run` takes them.

    The output prefix is propeller's unless given: `<node data dir>/<retry attempt>`, the data dir under the
    execution's (flytepropeller/pkg/controller/nodes/task/handler.go, `ioutils.NewRemoteFileOutputPaths`).
    """
    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(
            project="demo", domain="development", name=f"demo.{task_type}", version="1"
        ),
        type=task_type,
        interface=interface_pb2.TypedInterface(
            inputs=interface_for({name: type(value) for name, value in inputs.items()}),
            outputs=interface_for(outputs or {}),
        ),
    )
    if custom:
        template.custom.update(dict(custom))
    literal_inputs = encode_literal_map(inputs, template.interface.inputs.variables, prefix="inputs")
    execution_id = identifier_pb2.TaskExecutionIdentifier(
        task_id=template.id,
        node_execution_id=identifier_pb2.NodeExecutionIdentifier(
            node_id=node,
            execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                project="demo", domain="development", name=execution
            ),
        ),
        retry_attempt=attempt,
    )
    return agent_pb2.CreateTaskRequest(
        template=template,
        inputs=literal_inputs,
        output_prefix=output_prefix
        if output_prefix is not None
        else f"s3://demo/metadata/propeller/demo-development-{execution}/{node}/data/{attempt}",
        task_execution_metadata=agent_pb2.TaskExecutionMetadata(task_execution_id=execution_id),
    )


@dataclass(frozen=True)
class TaskResult:
    """How a task ended (or stands): its phase, message, decoded outputs and log links."""

    phase: Phase
    message: str
    outputs: dict[str, Any]
    #: As an agent's `Resource` carries them: name and URI, in order.
    log_links: list[LogLink]
    task_id: str | None = None


class AgentTestClient:
    """A manifest's agents on the embedded stack, driven as Flyte would: for agent authors' tests.

        with AgentTestClient("my-agents.toml") as client:
            result = client.run("square", inputs={"n": 7}, outputs={"square": int})
            assert result.phase is Phase.SUCCEEDED and result.outputs == {"square": 49}

    `run` takes any kind of agent: a sync one answers at once; an async one or a sensor is created and
    polled until it ends. `start` / `wait` / `cancel` split that up, and `upload` drops a file into the
    emulated S3 (its bucket created, with EventBridge notifications on) so that a sensor's event fires.
    Inputs and outputs are of simple types (`int`, `float`, `str`, `bool`); `outputs` maps names to types.
    Nothing reaches AWS: the stack is moto in this process, with fake credentials.
    """

    def __init__(self, manifest: str | Path, *, schedule_period: float | None = 0.5) -> None:
        from serverless_agents.local.stack import LocalStack

        self.stack = LocalStack(manifest, driver_interval=0.1, schedule_period=schedule_period)
        self._api: ApiClient | None = None
        self._runs = itertools.count()

    def __enter__(self) -> AgentTestClient:
        from serverless_agents.local.stack import quiet_local_observability

        quiet_local_observability()
        self.stack.start()
        self._api = ApiClient(self.stack.api_url)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stack.stop()

    @property
    def api(self) -> ApiClient:
        assert self._api is not None, "use the client in a `with` block"
        return self._api

    def run(
        self,
        task_type: str,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, type] | None = None,
        *,
        custom: Mapping[str, Any] | None = None,
        timeout: float = 60.0,
    ) -> TaskResult:
        request = self._request(task_type, inputs, outputs, custom)
        agent = next((a for a in self.stack.registry if a.task_type == task_type), None)
        if agent is not None and agent.kind is AgentKind.SYNC:
            resource = self.api.execute_sync(agent.name, request, timeout=timeout).resource
            return _result(resource, request)
        return self.wait(self._create(request), timeout=timeout)

    def start(
        self,
        task_type: str,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, type] | None = None,
        *,
        custom: Mapping[str, Any] | None = None,
    ) -> str:
        """Create an async or sensor task and return its id, without waiting."""
        return self._create(self._request(task_type, inputs, outputs, custom))

    def wait(self, task_id: str, timeout: float = 60.0) -> TaskResult:
        """GetTask until the task ends, as propeller's resync does; TimeoutError if it does not in time."""
        return _result(wait_for_task(self.api, task_id, timeout=timeout), None, task_id)

    def cancel(self, task_id: str) -> None:
        self.api.delete_task(task_id)

    def upload(self, uri: str, body: bytes = b"") -> None:
        """Put an object at `s3://bucket/key` in the emulated S3: a sensor watching it gets its event."""
        bucket, key = parse_s3_uri(uri)
        s3 = self.stack.client("s3")
        if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            self.stack.create_bucket(bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    def _request(
        self,
        task_type: str,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, type] | None,
        custom: Mapping[str, Any] | None,
    ) -> agent_pb2.CreateTaskRequest:
        return task_request(task_type, inputs, outputs, custom, execution=f"test-{next(self._runs)}")

    def _create(self, request: agent_pb2.CreateTaskRequest) -> str:
        return task_id_from_resource_meta(self.api.create_task(request).resource_meta)


def wait_for_task(
    api: ApiClient,
    task_id: str,
    *,
    until: Callable[[Phase], bool] = lambda phase: phase.is_terminal,
    timeout: float = 60.0,
) -> agent_pb2.Resource:
    """GetTask every 0.1 s until the task's phase satisfies `until` (by default: it ended); TimeoutError if
    it does not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        resource = api.get_task(task_id).resource
        if until(Phase(resource.phase)):
            return resource
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} is still {Phase(resource.phase).name} after {timeout} s")
        time.sleep(0.1)


def _result(
    resource: agent_pb2.Resource, request: agent_pb2.CreateTaskRequest | None, task_id: str | None = None
) -> TaskResult:
    variables = request.template.interface.outputs.variables if request is not None else None
    return TaskResult(
        Phase(resource.phase),
        resource.message,
        decode_literal_map(resource.outputs, variables, prefix="outputs"),
        [LogLink(link.name, link.uri) for link in resource.log_links],
        task_id,
    )
