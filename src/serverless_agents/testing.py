"""Helpers for testing agents and clients: Flyte requests shaped the way flytepropeller sends them, and two
tiers of test client, which take the same tasks and give the same results (`TaskResult`):

- `LocalAgent`: one agent of a manifest, called in this process as its functions call it, with no emulator:
  create / get / delete, do, poke. Each call goes through the runtime's own code (`runtime.boundary.
  call_agent`, the decoding and output encoding of `runtime.translate`, `runtime.sync.execute_sync`,
  `runtime.sensors.poke_once`), with the agent's function environment bound, its secrets handed in as a
  dict (masked, and bound to their destinations by the outbound client, as in Lambda), and its failures
  ending the task as the state machine ends it (`CleanupReason.of_error`). Fast: for an agent's own tests.
- `AgentTestClient`: a manifest's whole deployment on the embedded stack (moto): the state machine, the
  HTTP API, schedules and events. For what only the deployment does: polling waits, aborts, events.

Importing this module costs nothing extra: the embedded stack (moto, the `local` extra) is imported only when
an `AgentTestClient` is made.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict, Unpack

from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2, interface_pb2, literals_pb2, tasks_pb2, types_pb2

from serverless_agents.agent import AgentKind, LogLink, Phase
from serverless_agents.api.client import ApiClient
from serverless_agents.aws.s3uri import parse_s3_uri
from serverless_agents.exceptions import ManifestError, TaskNotFound
from serverless_agents.flyte.literals import decode_literal_map, encode_literal_map
from serverless_agents.flyte.resource_meta import task_id_from_resource_meta

if TYPE_CHECKING:
    from serverless_agents.agent import Resource, TaskContext
    from serverless_agents.deployment.manifest import AgentSettings

#: A task as both clients take it: a task type (inputs and outputs given beside it), or a whole request
#: (`task_request`'s, or one a plugin's own task class serialized).
Task: TypeAlias = str | agent_pb2.CreateTaskRequest


class TaskParts(TypedDict, total=False):
    """What goes with a task type: its inputs (values), outputs (types) and the template's `custom`."""

    inputs: Mapping[str, Any]
    outputs: Mapping[str, type]
    custom: Mapping[str, Any]


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
    custom_info: dict[str, Any] = field(default_factory=dict)
    #: The outputs as Flyte receives them (`outputs` is them decoded): for a reader of its own (flytekit's
    #: `TypeEngine`, the flyte SDK's).
    literals: literals_pb2.LiteralMap = field(default_factory=literals_pb2.LiteralMap, repr=False)


class AgentTestClient:
    """A manifest's agents on the embedded stack, driven as Flyte would: for agent authors' tests.

        with AgentTestClient("my-agents.toml", secrets={"api_key": "sk-test-0123456789"}) as client:
            result = client.run("square", inputs={"n": 7}, outputs={"square": int})
            assert result.phase is Phase.SUCCEEDED and result.outputs == {"square": 49}

    `run` takes any kind of agent: a sync one answers at once; an async one or a sensor is created and
    polled until it ends. `start` / `wait` / `cancel` split that up, and `upload` drops a file into the
    emulated S3 (its bucket created, with EventBridge notifications on) so that a sensor's event fires.
    A task is a task type with its inputs (values) and outputs (types: `int`, `float`, `str`, `bool`), or
    a whole `CreateTaskRequest`. `secrets` maps the manifest's secret names to values: each secret id the
    manifest gives that name is created with that value in the emulated Secrets Manager.
    Nothing reaches AWS: the stack is moto in this process, with fake credentials.
    """

    def __init__(
        self,
        manifest: str | Path,
        *,
        schedule_period: float | None = 0.5,
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        from serverless_agents.local.stack import LocalStack

        self.stack = LocalStack(manifest, driver_interval=0.1, schedule_period=schedule_period)
        self._secrets = _secret_ids_given(
            {agent.name: agent.settings for agent in self.stack.registry}, secrets or {}
        )
        self._api: ApiClient | None = None

    def __enter__(self) -> AgentTestClient:
        from serverless_agents.local.stack import quiet_local_observability

        quiet_local_observability()
        self.stack.start()
        for secret_id, value in self._secrets.items():
            self.stack.client("secretsmanager").create_secret(Name=secret_id, SecretString=value)
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
        task: Task,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, type] | None = None,
        *,
        custom: Mapping[str, Any] | None = None,
        timeout: float = 60.0,
    ) -> TaskResult:
        request = _request_for(task, inputs, outputs, custom)
        template = request.template
        agent = next((a for a in self.stack.registry if a.task_type == template.type), None)
        if agent is not None and agent.kind is AgentKind.SYNC:
            resource = self.api.execute_sync(agent.name, request, timeout=timeout).resource
            return _result(resource, request)
        task_id = self._create(request)
        return _result(self._wait(task_id, lambda phase: phase.is_terminal, timeout), request, task_id)

    def start(
        self,
        task: Task,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, type] | None = None,
        *,
        custom: Mapping[str, Any] | None = None,
    ) -> str:
        """Create an async or sensor task and return its id, without waiting."""
        return self._create(_request_for(task, inputs, outputs, custom))

    def wait(self, task_id: str, timeout: float = 60.0, *, until: Phase | None = None) -> TaskResult:
        """GetTask until the task ends (or is in phase `until`), as propeller's resync does; TimeoutError if
        it does not in time."""
        reached: Callable[[Phase], bool] = (
            (lambda phase: phase.is_terminal) if until is None else (lambda phase: phase is until)
        )
        return _result(self._wait(task_id, reached, timeout), None, task_id)

    def cancel(self, task_id: str) -> None:
        self.api.delete_task(task_id)

    def upload(self, uri: str, body: bytes = b"") -> None:
        """Put an object at `s3://bucket/key` in the emulated S3: a sensor watching it gets its event."""
        bucket, key = parse_s3_uri(uri)
        s3 = self.stack.client("s3")
        if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            self.stack.create_bucket(bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    def _create(self, request: agent_pb2.CreateTaskRequest) -> str:
        return task_id_from_resource_meta(self.api.create_task(request).resource_meta)

    def _wait(self, task_id: str, until: Callable[[Phase], bool], timeout: float) -> agent_pb2.Resource:
        return wait_for_task(self.api, task_id, until=until, timeout=timeout)


class LocalAgent:
    """One agent of a manifest, called in this process as its functions call it: no emulator, no AWS.

        square = LocalAgent("my-agents.toml", "square")
        result = square.run("square", inputs={"n": 7}, outputs={"square": int})
        assert result.phase is Phase.SUCCEEDED and result.outputs == {"square": 49}

    The calls are the functions' steps, each through the runtime's own code: `create` (the create
    function: a RUNNING result, "job created"), `get` (one poll of the get function), `delete` (the
    cleanup), `do` (a sync agent's function) and `poke` (one poke of a sensor's task). `run` does what the
    deployment does with a task of any kind: create, then get until the task ends (a failed step followed
    by delete, as the state machine's Cleanup does), do, or poke until the condition is met. Gets and pokes
    follow one another at once: the waits between them are the state machine's and the schedule's, and
    what only the deployment adds (its log links, `custom_info`'s polls and execution) is not there.

    A task is a task type with its inputs and outputs, or a whole request, as `AgentTestClient` takes it.
    An error the agent raises ends the task as the runtime ends it: RETRYABLE_FAILED for `RetryableAgentError`
    and transient trouble (there, after the state machine's retries), FAILED otherwise, the error's class
    name and message on one line. A request the api would refuse raises `InvalidRequest` here too.

    Each call runs with the environment the plan gives the agent's functions (`get_agent_secret`, the
    agent's `config`, the outbound client's rules read it) and `secrets` (the manifest's secret names ->
    values) answering secret reads in place of Secrets Manager: a secret not given is Secrets Manager's
    "not found". Values read are masked in what leaves the agent, and go only where the manifest's
    `destinations` let them, as in Lambda. An agent that calls AWS itself still calls it: give it an
    emulator (moto) of its own.
    """

    def __init__(self, manifest: str | Path, agent: str, *, secrets: Mapping[str, str] | None = None) -> None:
        from serverless_agents.deployment.naming import LOCAL_ACCOUNT
        from serverless_agents.deployment.plan import Place, plan_deployment
        from serverless_agents.runtime.loading import load_agent

        plan = plan_deployment(manifest)
        self.registry = plan.registry
        self.name = self.registry.by_name(agent).name
        planned = next(a for a in plan.agents if a.name == agent)
        self.settings: AgentSettings = planned.settings
        self.kind = planned.kind
        # Names of the deployment's table and bucket as an agent reads them; no call here uses either.
        shared = plan.shared_environment(
            Place("aws", "us-east-1", LOCAL_ACCOUNT),
            tasks_table=f"{plan.deployment}-tasks",
            payload_bucket=f"{plan.deployment}-payloads",
            scheduler_role_arn=f"arn:aws:iam::{LOCAL_ACCOUNT}:role/{plan.deployment}-scheduler",
            manifest=str(plan.manifest_path),
        )
        self.environment = next(iter(planned.functions.values())).environment(shared)
        self._secrets = _secret_ids_given({agent: self.settings}, secrets or {})
        with self._in_function():  # as its function loads it: its constructor may read a secret
            self.agent: Any = load_agent(plan.manifest_path, agent).instance
        #: What the tasks table keeps of each task: its request, its job's metadata, how it ended.
        self._tasks: dict[str, _LocalTask] = {}

    def create(self, task: Task, **parts: Unpack[TaskParts]) -> TaskResult:
        """The create function's step: RUNNING once the job exists. A repeated create of the same task (the
        same execution, node and attempt) starts no second job."""
        from serverless_agents.runtime.boundary import call_agent

        request = _request_of(task, parts)
        context = self._admit(request, AgentKind.ASYNC)
        task_id = context.task_id
        if task_id not in self._tasks:
            try:
                with self._in_function():
                    metadata = call_agent(self.agent.create, context)
            except Exception as e:
                self._tasks[task_id] = _LocalTask(request, ending=_failure(e, request, task_id))
            else:
                self._tasks[task_id] = _LocalTask(request, metadata=metadata.model_dump_json())
        return self._standing(task_id)

    def get(self, task_id: str) -> TaskResult:
        """One poll: the agent's report, its outputs encoded and decoded with the task's interface once the
        job succeeded. A task that ended answers its ending, asking the agent nothing."""
        from serverless_agents.runtime.async_steps import job_ending
        from serverless_agents.runtime.boundary import call_agent

        local = self._task(task_id)
        if local.ending is not None or local.metadata is None:
            return self._standing(task_id)
        try:
            with self._in_function():
                resource = call_agent(self.agent.get, self._metadata(local.metadata))
        except Exception as e:
            local.ending, local.raised = _failure(e, local.request, task_id), True
            return local.ending
        reported, outputs = job_ending(resource, lambda: local.request.template)
        local.reported = _local_result(reported, outputs, local.request, task_id)
        if local.reported.phase.is_terminal:
            local.ending = local.reported
        return local.reported

    def delete(self, task_id: str) -> bool:
        """The cleanup: the agent's delete, unless the job ended on its own (a get reported its end) or was
        deleted already. The task ends ABORTED. True if delete ran."""
        from serverless_agents.runtime.boundary import call_agent

        local = self._task(task_id)
        if local.metadata is None or local.deleted or (local.ending is not None and not local.raised):
            return False
        with self._in_function():
            call_agent(self.agent.delete, self._metadata(local.metadata))
        local.deleted = True
        if local.ending is None:
            local.ending = _local_result(
                _resource(Phase.ABORTED, "aborted: DeleteTask was called"), None, local.request, task_id
            )
        return True

    def do(self, task: Task, **parts: Unpack[TaskParts]) -> TaskResult:
        """A sync agent's call, as its function makes it (within its `timeout`)."""
        from serverless_agents.runtime.settings import current_settings
        from serverless_agents.runtime.sync import execute_sync
        from serverless_agents.runtime.wiring import sync_agent

        request = _request_of(task, parts)
        self._check_kind(AgentKind.SYNC)
        with self._in_function():
            header = execute_sync(sync_agent(current_settings()), request)
        return _result(header.resource, request)

    def poke(self, task: Task, **parts: Unpack[TaskParts]) -> TaskResult:
        """One poke of a sensor's task (its inputs checked first, as the api checks them at create):
        SUCCEEDED once the condition is met, RUNNING while it waits; a poke that raised counts towards
        the manifest's `max_poke_errors` in a row, the task's message says so."""
        from serverless_agents.runtime.sensors import check_poke_inputs, poke_once, watch_key

        request = _request_of(task, parts)
        context = self._admit(request, AgentKind.SENSOR)
        local = self._tasks.setdefault(context.task_id, _LocalTask(request))
        if local.ending is not None:
            return local.ending
        with self._in_function():
            check_poke_inputs(self.agent, context.inputs)
            watch_key(self.agent, context.inputs)
            outcome = poke_once(self.agent, context, local.poke_errors, self.settings.max_poke_errors)
        local.poke_errors = outcome.errors
        phase = outcome.ending or Phase.RUNNING
        result = _local_result(_resource(phase, outcome.message), None, request, context.task_id)
        if outcome.ending is not None:
            local.ending = result
        return result

    def run(self, task: Task, *, max_steps: int = 100, **parts: Unpack[TaskParts]) -> TaskResult:
        """The task to its end, as the deployment runs it; TimeoutError after `max_steps` gets or pokes."""
        request = _request_of(task, parts)
        if self.kind is AgentKind.SYNC:
            return self.do(request)
        sensor = self.kind is AgentKind.SENSOR
        result = self.poke(request) if sensor else self.create(request)
        task_id = str(result.task_id)
        for _ in range(max_steps):
            if result.phase.is_terminal:
                break
            result = self.poke(request) if sensor else self.get(task_id)
        else:
            raise TimeoutError(f"task {task_id} is still {result.phase.name} after {max_steps} steps")
        if not sensor and self._task(task_id).raised:
            self.delete(task_id)  # the state machine's Cleanup, after a step failed
        return result

    def _admit(self, request: agent_pb2.CreateTaskRequest, kind: AgentKind) -> TaskContext:
        """The api's checks of a new task (`runtime.service.admit_task`), and that this agent serves it."""
        from serverless_agents.exceptions import InvalidRequest
        from serverless_agents.runtime.service import admit_task

        self._check_kind(kind)
        with self._in_function():
            agent, context = admit_task(self.registry, request)
        if agent.name != self.name:
            raise InvalidRequest(
                "template.type",
                f"{request.template.type!r} is served by agent {agent.name!r}, not {self.name!r}",
            )
        return context

    def _check_kind(self, kind: AgentKind) -> None:
        if self.kind is not kind:
            verbs = {AgentKind.ASYNC: "create / get / delete", AgentKind.SYNC: "do", AgentKind.SENSOR: "poke"}
            raise ManifestError(
                f"agent {self.name!r} is a {self.kind.value} agent: call {verbs[self.kind]}, or run"
            )

    @contextmanager
    def _in_function(self) -> Iterator[None]:
        from serverless_agents.runtime.settings import lambda_environment
        from serverless_agents.security import redaction
        from serverless_agents.security.secrets import handed_in_secrets

        # What the handlers' entry does at every invocation: what the agent logs and prints is masked.
        redaction.install()
        with lambda_environment(self.environment), handed_in_secrets(self._secrets):
            yield

    def _task(self, task_id: str) -> _LocalTask:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFound(f"no task {task_id!r} was created here") from None

    def _metadata(self, metadata_json: str) -> Any:
        # Through JSON, as the tasks table and the state machine carry it between the functions.
        return self.agent.metadata_type.model_validate_json(metadata_json)

    def _standing(self, task_id: str) -> TaskResult:
        """Where the task stands, as GetTask would answer: its ending, or the last get's report."""
        local = self._task(task_id)
        if local.ending is not None:
            return local.ending
        if local.reported is not None:
            return local.reported
        return _local_result(_resource(Phase.RUNNING, "job created"), None, local.request, task_id)


@dataclass
class _LocalTask:
    request: agent_pb2.CreateTaskRequest
    metadata: str | None = None
    ending: TaskResult | None = None
    #: The last get's report.
    reported: TaskResult | None = None
    #: The ending came from an error a step raised (delete still runs), not from the agent's report.
    raised: bool = False
    deleted: bool = False
    poke_errors: int = 0


def _secret_ids_given(agents: Mapping[str, AgentSettings], values: Mapping[str, str]) -> dict[str, str]:
    """Secret id -> value, for each secret of these agents whose manifest name `values` gives; a name no
    agent has is a mistake in the test."""
    given: dict[str, str] = {}
    for settings in agents.values():
        for name, secret_id in settings.secret_ids.items():
            if name in values:
                given[secret_id] = values[name]
    known = {name for settings in agents.values() for name in settings.secret_ids}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ManifestError(
            f"no agent here has secret(s) {', '.join(unknown)} in the manifest (they have: {sorted(known)})"
        )
    return given


_runs = itertools.count()


def _request_of(task: Task, parts: TaskParts) -> agent_pb2.CreateTaskRequest:
    return _request_for(task, parts.get("inputs"), parts.get("outputs"), parts.get("custom"))


def _request_for(
    task: Task,
    inputs: Mapping[str, Any] | None,
    outputs: Mapping[str, type] | None,
    custom: Mapping[str, Any] | None,
) -> agent_pb2.CreateTaskRequest:
    """The request itself, or `task_request`'s for a task type, each in an execution of its own."""
    if isinstance(task, agent_pb2.CreateTaskRequest):
        if inputs is not None or outputs is not None or custom is not None:
            raise TypeError("a CreateTaskRequest carries its own inputs, outputs and custom")
        return task
    return task_request(task, inputs or {}, outputs, custom, execution=f"test-{next(_runs)}")


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


def _resource(phase: Phase, message: str) -> Resource:
    from serverless_agents.agent import Resource

    return Resource(phase, message)


def _failure(error: Exception, request: agent_pb2.CreateTaskRequest, task_id: str) -> TaskResult:
    """How the task ends when a step raised `error` (its masked copy, as Lambda reports it)."""
    from serverless_agents.runtime.async_steps import CleanupReason

    reason = CleanupReason.of_error(type(error).__name__, str(error))
    return _local_result(_resource(reason.phase, reason.message), None, request, task_id)


def _local_result(
    resource: Resource,
    outputs: literals_pb2.LiteralMap | None,
    request: agent_pb2.CreateTaskRequest,
    task_id: str,
) -> TaskResult:
    from serverless_agents.runtime.translate import to_resource_message

    message = to_resource_message(
        resource.phase, resource.message, resource.log_links, resource.custom_info, outputs
    )
    return _result(message, request, task_id)


def _result(
    resource: agent_pb2.Resource, request: agent_pb2.CreateTaskRequest | None, task_id: str | None = None
) -> TaskResult:
    from google.protobuf.json_format import MessageToDict

    variables = request.template.interface.outputs.variables if request is not None else None
    return TaskResult(
        Phase(resource.phase),
        resource.message,
        decode_literal_map(resource.outputs, variables, prefix="outputs"),
        [LogLink(link.name, link.uri) for link in resource.log_links],
        task_id,
        MessageToDict(resource.custom_info),
        resource.outputs,
    )
