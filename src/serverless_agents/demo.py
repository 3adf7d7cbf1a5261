"""The short demo `serverless-agents up --demo` runs against a live API: the lifecycle a user cares about.

An async job created, polled to SUCCEEDED with its outputs; a sync call; a second job aborted mid-run.
Everything goes over HTTP with flyteidl messages, the way the adapter (and so Flyte) will call it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2, interface_pb2, tasks_pb2, types_pb2

from serverless_agents.agent import Phase
from serverless_agents.client import ApiClient, task_id_from_resource_meta
from serverless_agents.literals import decode_literal_map, encode_literal_map

_TYPES = {int: types_pb2.INTEGER, str: types_pb2.STRING, float: types_pb2.FLOAT, bool: types_pb2.BOOLEAN}


def interface_for(values: Mapping[str, Any]) -> interface_pb2.VariableMap:
    return interface_pb2.VariableMap(
        variables={
            name: interface_pb2.Variable(type=types_pb2.LiteralType(simple=_TYPES[type(value)]))
            for name, value in values.items()
        }
    )


def task_request(
    task_type: str,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    custom: Mapping[str, Any] | None = None,
    execution: str = "demo",
    node: str = "n0",
) -> agent_pb2.CreateTaskRequest:
    """A CreateTaskRequest shaped like propeller's, for a task with simple typed inputs and outputs."""
    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(
            project="demo", domain="development", name=f"demo.{task_type}", version="1"
        ),
        type=task_type,
        interface=interface_pb2.TypedInterface(inputs=interface_for(inputs), outputs=interface_for(outputs)),
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
    )
    return agent_pb2.CreateTaskRequest(
        template=template,
        inputs=literal_inputs,
        output_prefix="s3://demo/outputs",
        task_execution_metadata=agent_pb2.TaskExecutionMetadata(task_execution_id=execution_id),
    )


def wait_for(
    client: ApiClient, task_id: str, timeout: float = 60, on_change: Callable[[str], None] = print
) -> agent_pb2.Resource:
    """Poll GetTask (as propeller does) until the task reaches a terminal phase."""
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        resource = client.get_task(task_id).resource
        line = f"{Phase(resource.phase).name}: {resource.message}"
        if line != seen:
            on_change(f"    {line}")
            seen = line
        if Phase(resource.phase).is_terminal:
            return resource
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} still {Phase(resource.phase).name} after {timeout}s")
        time.sleep(0.25)


def run_demo(api_url: str, say: Callable[[str], None] = print) -> None:
    client = ApiClient(api_url)
    run = f"demo-{int(time.time())}"
    agents = client.list_agents().agents
    listing = ", ".join(
        f"{a.name} ({a.supported_task_types[0]}, {'sync' if a.is_sync else 'async'})" for a in agents
    )
    say(f"deployed agents: {listing}")

    say("1. an async job (example_job): create, poll to the end, read its outputs")
    inputs = {"greeting": "hello from Flyte", "n": 3}
    request = task_request("example_job", inputs, {**inputs, "polls": 0}, {"polls": 3}, execution=run)
    task_id = task_id_from_resource_meta(client.create_task(request).resource_meta)
    say(f"    task {task_id}")
    resource = wait_for(client, task_id, on_change=say)
    outputs = decode_literal_map(
        resource.outputs, request.template.interface.outputs.variables, prefix="outputs"
    )
    say(f"    outputs: {json.dumps(outputs)}")

    say("2. a sync call (example_echo)")
    header = client.execute_sync(
        "echo", task_request("example_echo", {"text": "ping"}, {"text": ""}, execution=run)
    )
    echoed = decode_literal_map(
        header.resource.outputs,
        {"text": interface_pb2.Variable(type=types_pb2.LiteralType(simple=types_pb2.STRING))},
    )
    say(f"    {Phase(header.resource.phase).name}: {json.dumps(echoed)}")

    say("3. a long job, aborted mid-run with DeleteTask")
    request = task_request("example_job", {"n": 1}, {"n": 0}, {"polls": 1000}, execution=run, node="n1")
    task_id = task_id_from_resource_meta(client.create_task(request).resource_meta)
    time.sleep(2)
    client.delete_task(task_id)
    wait_for(client, task_id, on_change=say)
