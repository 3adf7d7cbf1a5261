"""The agent SDK: what an agent author writes against.

Flyte's verbs are kept (flytekit's `AsyncAgentBase.create / get / delete`, `SyncAgentBase.do`,
`BaseSensor.poke`); only the transport changes. The runtime decodes the task's `LiteralMap` into Python
values before calling the agent and encodes the `Resource.outputs` it returns, so an agent sees
`task.inputs["sql"]`, not protobuf. Methods may be plain or `async def`.

Nothing here registers anything: the manifest (`agents.toml`) names the agents a deployment runs.

`ResourceMetadata` is a pydantic model, defined in `serverless_agents.agent_metadata` and loaded from here
at its first use (PEP 562): a sensor's or a sync agent's function never imports pydantic.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    from flyteidl.admin.agent_pb2 import TaskExecutionMetadata
    from flyteidl.core.literals_pb2 import LiteralMap
    from flyteidl.core.tasks_pb2 import TaskTemplate
    from flyteidl2.connector.connector_pb2 import CreateTaskRequest as Flyte2CreateTaskRequest

    from serverless_agents.agent_metadata import ResourceMetadata

__all__ = [
    "AgentKind",
    "AsyncAgentBase",
    "BaseSensor",
    "LogLink",
    "Phase",
    "Resource",
    "ResourceMetadata",
    "SyncAgentBase",
    "TaskContext",
]


class Phase(enum.Enum):
    """flyteidl `TaskExecution.Phase`, by name: the same names travel on the wire and in the tasks table."""

    UNDEFINED = 0
    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    ABORTED = 4
    FAILED = 5
    INITIALIZING = 6
    WAITING_FOR_RESOURCES = 7
    RETRYABLE_FAILED = 8

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({Phase.SUCCEEDED, Phase.ABORTED, Phase.FAILED, Phase.RETRYABLE_FAILED})


class AgentKind(enum.Enum):
    ASYNC = "async"
    SYNC = "sync"
    SENSOR = "sensor"


@dataclass(frozen=True)
class LogLink:
    """A link Flyte's UI shows next to the task (flyteidl `TaskLog`)."""

    name: str
    uri: str


#: The custom_info keys the runtime adds to what Flyte shows (runtime.service: the execution, its polls and
#: their cost in state transitions, a sensor's pokes). An agent's Resource may not use them: it fails naming
#: the key, rather than have its value replaced silently.
RESERVED_CUSTOM_INFO = frozenset({"execution_arn", "polls", "state_transitions", "pokes"})


@dataclass
class Resource:
    """What an agent reports about its job (flyteidl `admin.Resource`, with Python-valued outputs).

    `outputs` holds Python values keyed by the task interface's output names; the runtime encodes them
    with the interface. An agent that already has a `LiteralMap` may return it as-is.
    """

    phase: Phase
    message: str = ""
    log_links: list[LogLink] = field(default_factory=list)
    outputs: Mapping[str, Any] | LiteralMap | None = None
    #: Shown in Flyte's UI; keys in `RESERVED_CUSTOM_INFO` are the runtime's and fail the call.
    custom_info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskContext:
    """One task as an agent sees it: the template, decoded inputs, and Flyte's raw messages."""

    task_id: str
    template: TaskTemplate
    inputs: Mapping[str, Any]
    literals: LiteralMap
    output_prefix: str = ""
    execution_metadata: TaskExecutionMetadata | None = None
    #: The request as a Flyte 2 executor sent it, when one created the task (its `Connection.secrets`
    #: values removed): what a Flyte 2 connector gets, unchanged (variable order, `metadata.timeouts`).
    flyte2_request: Flyte2CreateTaskRequest | None = None
    #: The Secrets Manager secret holding the values the executor sent in `Connection.secrets`, if any
    #: (read with `secrets.get_connection_secrets`; see `serverless_agents.aws.connection_secrets`).
    connection_secret: str | None = None

    @property
    def task_type(self) -> str:
        return str(self.template.type)

    @property
    def custom(self) -> dict[str, Any]:
        """The template's `custom` Struct as a dict: where flytekit plugins put their configuration."""
        from google.protobuf.json_format import MessageToDict

        return dict(MessageToDict(self.template.custom)) if self.template.HasField("custom") else {}


M = TypeVar("M", bound="ResourceMetadata")
T = TypeVar("T")


class _AgentBase:
    """What every kind of agent declares: the Flyte task category it serves."""

    kind: ClassVar[AgentKind]
    #: Flyte's task type (`TaskTemplate.type`, `TaskCategory.name`), e.g. "snowflake".
    task_type: ClassVar[str]
    #: `TaskCategory.version`; flytekit writes `task_type_version` into the template.
    task_type_version: ClassVar[int] = 0

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        #: The agent's `config` table from agents.toml: deployment-wide settings (an endpoint, a
        #: cluster name), never secrets (those are `get_agent_secret`'s).
        self.config: dict[str, Any] = dict(config or {})


class AsyncAgentBase(_AgentBase, Generic[M]):
    """A job that runs elsewhere: `create` starts it, `get` reports on it, `delete` cancels it.

    Here each becomes a Lambda in a Step Functions loop; `get` is called with the agent's backoff until it
    returns a terminal phase. `delete` is called exactly once if the job did not finish on its own
    (abort, timeout, repeated failures), and never after it finished.
    """

    kind = AgentKind.ASYNC
    metadata_type: ClassVar[type[ResourceMetadata]]
    #: EventBridge event patterns (as in a rule) whose events mean one of this agent's jobs changed: a
    #: matching event runs the get of the task whose job it names at once, instead of at the next poll
    #: (polling stays the fallback). The manifest's `events` add to these (docs/writing-agents.md).
    events: ClassVar[list[dict[str, Any]]] = []
    #: Where a matching event names the job: a dotted path into the event (`detail.taskArn`), compared
    #: with `job_id(metadata)`. The manifest's `event_job_id` replaces it.
    event_job_id: ClassVar[str | None] = None

    def job_id(self, metadata: M) -> str | None:
        """The id this job's events name it by (what `event_job_id` finds in them); None: no event ever
        wakes it, it is polled only."""
        return None

    def create(self, task: TaskContext) -> M | Awaitable[M]:
        raise NotImplementedError

    def get(self, metadata: M) -> Resource | Awaitable[Resource]:
        raise NotImplementedError

    def delete(self, metadata: M) -> Awaitable[None] | None:
        raise NotImplementedError


class SyncAgentBase(_AgentBase):
    """A call that answers at once (an API request): one Lambda behind API Gateway."""

    kind = AgentKind.SYNC

    def do(self, task: TaskContext) -> Resource | Awaitable[Resource]:
        raise NotImplementedError


class BaseSensor(_AgentBase):
    """Waits for a condition elsewhere; `poke` receives the task's inputs as keyword arguments.

    The shape is flytekit's `BaseSensor.poke(self, **inputs) -> bool`, so existing sensors port unchanged.
    Here a sensor costs nothing while it waits: it is poked on a schedule, and at once when an event it
    watches for arrives (e.g. S3 "Object Created"). `watch_key` names what a task waits for and
    `event_keys` what an event concerns; the runtime pokes only the tasks whose keys match.
    """

    kind = AgentKind.SENSOR
    #: Flyte's task type for sensors. A sensor may declare its own, then it is routed like any agent.
    task_type = "sensor"
    #: The (module, class) flytekit writes into `custom.sensor_module` / `custom.sensor_name` for the
    #: flytekit sensor this one serves; by default this class's own.
    flytekit_sensor: ClassVar[tuple[str, str] | None] = None

    # `*args` only so that type checkers accept overrides naming their inputs, as flytekit's do.
    def poke(self, *args: Any, **inputs: Any) -> bool | Awaitable[bool]:
        raise NotImplementedError

    def check_inputs(self, **inputs: Any) -> None:
        """Refuse inputs this sensor must never poke with: raise `InvalidRequest` naming `inputs.<name>`.
        Called at create (the task is refused, nothing written); a poke raising `InvalidRequest` ends its
        task FAILED at once."""

    def watch_key(self, **inputs: Any) -> str | None:
        """What a task with these inputs waits for, as `event_keys` names it; None: poked on schedule only."""
        return None

    def event_keys(self, event: Mapping[str, Any]) -> list[str]:
        """What an EventBridge event concerns. S3 "Object Created" events name `s3://bucket/key`."""
        detail = event.get("detail") or {}
        if event.get("source") == "aws.s3" and "bucket" in detail and "object" in detail:
            return [f"s3://{detail['bucket']['name']}/{detail['object']['key']}"]
        return []

    @classmethod
    def sensor_identity(cls) -> tuple[str, str]:
        return cls.flytekit_sensor or (cls.__module__, cls.__name__)


def resolve(result: T | Awaitable[T]) -> T:
    """Run an agent method's result to completion whether the method was plain or `async def`."""
    if inspect.isawaitable(result):
        import asyncio

        async def _await() -> T:
            return await result

        return asyncio.run(_await())
    return result


def __getattr__(name: str) -> Any:
    if name == "ResourceMetadata":  # pydantic, loaded with the first agent whose metadata is a model
        from serverless_agents.agent_metadata import ResourceMetadata

        return ResourceMetadata
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
