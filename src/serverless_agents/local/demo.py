"""The short demo `serverless-agents up --demo` runs: Flyte's side of the conversation, through the adapter.

It speaks flyteidl's gRPC agent services with their generated stubs, exactly as flytepropeller does:
ListAgents; CreateTask then GetTask until the job ends, outputs read back; ExecuteTaskSync; a second job
stopped mid-run with DeleteTask; and a FileSensor that a file upload completes (when `upload` is given:
the one step that needs the emulated S3 rather than the adapter).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

from serverless_agents.agent import Phase
from serverless_agents.flyte.literals import decode_literal_map
from serverless_agents.testing import task_request

#: The task types the demo creates tasks of (the example manifest's job and echo agents).
TASK_TYPES = ("example_job", "example_echo")


class FlyteClient:
    """flyteidl's stubs over one channel, with the deadline propeller's connector plugin gives every call
    unless configured otherwise (`defaultTimeout`, 10 s: flyteplugins/go/tasks/plugins/webapi/connector/
    config.go); `sync_timeout` stands for `timeouts.ExecuteTaskSync`."""

    def __init__(self, address: str, sync_timeout: float = 10.0) -> None:
        self.sync_timeout = sync_timeout
        self.channel = grpc.insecure_channel(address)
        self.tasks = agent_pb2_grpc.AsyncAgentServiceStub(self.channel)
        self.sync = agent_pb2_grpc.SyncAgentServiceStub(self.channel)
        self.metadata = agent_pb2_grpc.AgentMetadataServiceStub(self.channel)

    def create(self, request: agent_pb2.CreateTaskRequest) -> bytes:
        return bytes(self.tasks.CreateTask(request, timeout=10).resource_meta)

    def get(self, resource_meta: bytes, task_type: str) -> agent_pb2.Resource:
        request = agent_pb2.GetTaskRequest(
            task_type=task_type,
            task_category=agent_pb2.TaskCategory(name=task_type),
            resource_meta=resource_meta,
        )
        return self.tasks.GetTask(request, timeout=10).resource

    def delete(self, resource_meta: bytes, task_type: str) -> None:
        request = agent_pb2.DeleteTaskRequest(
            task_type=task_type,
            task_category=agent_pb2.TaskCategory(name=task_type),
            resource_meta=resource_meta,
        )
        self.tasks.DeleteTask(request, timeout=10)

    def execute_sync(self, request: agent_pb2.CreateTaskRequest) -> agent_pb2.Resource:
        header = agent_pb2.CreateRequestHeader(
            template=request.template,
            output_prefix=request.output_prefix,
            task_execution_metadata=request.task_execution_metadata,
        )
        stream = iter(
            [
                agent_pb2.ExecuteTaskSyncRequest(header=header),
                agent_pb2.ExecuteTaskSyncRequest(inputs=request.inputs),
            ]
        )
        (response,) = list(self.sync.ExecuteTaskSync(stream, timeout=self.sync_timeout))
        return response.header.resource

    def wait(
        self, resource_meta: bytes, task_type: str, on_change: Callable[[str], None], timeout: float = 60
    ) -> agent_pb2.Resource:
        """GetTask until the task ends, as propeller's poll loop does."""
        deadline = time.monotonic() + timeout
        seen = ""
        while True:
            resource = self.get(resource_meta, task_type)
            line = f"{Phase(resource.phase).name}: {resource.message}"
            if line != seen:
                on_change(f"    {line}")
                seen = line
            if Phase(resource.phase).is_terminal:
                return resource
            if time.monotonic() > deadline:
                raise TimeoutError(f"task still {Phase(resource.phase).name} after {timeout}s")
            time.sleep(0.25)

    def close(self) -> None:
        self.channel.close()


def run_demo(
    adapter_address: str,
    say: Callable[[str], None] = print,
    upload: Callable[[str], None] | None = None,
    sensor_bucket: str = "",
) -> None:
    flyte = FlyteClient(adapter_address)
    run = f"demo-{int(time.time())}"
    try:
        agents = flyte.metadata.ListAgents(agent_pb2.ListAgentsRequest(), timeout=10).agents
        listing = ", ".join(
            f"{a.name} ({a.supported_task_types[0]}, {'sync' if a.is_sync else 'async'})" for a in agents
        )
        say(f"ListAgents: {listing}")

        say("1. an async job (example_job): CreateTask, GetTask until it ends, read its outputs")
        inputs = {"greeting": "hello from Flyte", "n": 3}
        request = task_request(
            "example_job", inputs, {"greeting": str, "n": int, "polls": int}, {"polls": 3}, execution=run
        )
        resource_meta = flyte.create(request)
        say(f"    resource_meta {resource_meta.decode()}")
        resource = flyte.wait(resource_meta, "example_job", say)
        outputs = decode_literal_map(
            resource.outputs, request.template.interface.outputs.variables, prefix="outputs"
        )
        say(f"    outputs: {json.dumps(outputs)}")
        say(f"    log links: {', '.join(link.name for link in resource.log_links)}")

        say("2. a sync task (example_echo): ExecuteTaskSync")
        request = task_request("example_echo", {"text": "ping"}, {"text": str}, execution=run)
        resource = flyte.execute_sync(request)
        echoed = decode_literal_map(resource.outputs, request.template.interface.outputs.variables)
        say(f"    {Phase(resource.phase).name}: {json.dumps(echoed)}")

        say("3. a long job, stopped mid-run with DeleteTask")
        request = task_request("example_job", {"n": 1}, {"n": int}, {"polls": 1000}, execution=run, node="n1")
        resource_meta = flyte.create(request)
        time.sleep(2)
        flyte.delete(resource_meta, "example_job")
        flyte.wait(resource_meta, "example_job", say)

        if upload is not None:
            say("4. a FileSensor (flytekit's) waits for a file; its upload completes it (an S3 event)")
            path = f"s3://{sensor_bucket}/incoming/{run}.csv"
            custom = {"sensor_module": "flytekit.sensor.file_sensor", "sensor_name": "FileSensor"}
            request = task_request("sensor", {"path": path}, {}, custom, execution=run, node="n2")
            resource_meta = flyte.create(request)
            time.sleep(0.5)
            say(f"    {Phase(flyte.get(resource_meta, 'sensor').phase).name}: waiting for {path}")
            uploaded = time.monotonic()
            upload(path)
            resource = flyte.wait(resource_meta, "sensor", lambda line: None)
            elapsed = time.monotonic() - uploaded
            say(f"    {Phase(resource.phase).name}: {resource.message} ({elapsed:.2f} s after the upload)")
    finally:
        flyte.close()
