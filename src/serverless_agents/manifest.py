"""`agents.toml`: which agents a deployment runs, and with what settings.

The manifest is the one place agents are named. The CDK app turns it into resources, the local stack into
emulated ones, and the Lambdas read it (bundled beside their code) to load their agent's class. Loading
the manifest imports nothing; `AgentSettings.load_class()` imports exactly one agent module.

    [deployment]
    name = "serverless-agents"          # prefix of every resource name
    code_path = ["../my-agents"]        # folders of agent code outside this project, from the manifest's
                                        # folder: importable under `up`, copied into the Lambda bundles

    [agents.job]
    class = "serverless_agents.examples:JobAgent"
    memory = 256                        # MB, each of the agent's Lambdas
    timeout = 30                        # s, each Lambda invocation
    execution_timeout = 86400           # s, the whole task (state machine TimeoutSeconds)
    poll = { initial = 5, factor = 2.0, cap = 300 }
    end_within = 3600                   # s, a task whose delete keeps failing is ended FAILED by then
    secrets = { token = "arn:aws:secretsmanager:..." }
    config = { endpoint = "https://..." }
    tracing = false                     # Powertools' Tracer (X-Ray SDK) in its functions: slower cold starts
    snapstart = false                   # Lambda SnapStart on its functions (published versions)

    [agents.files]                      # a sensor: poked on a schedule and by matching events
    class = "serverless_agents.agents.file_sensor:FileSensor"
    schedule = "rate(1 minute)"
    sensor_timeout = 86400              # s, when the task template sets no timeout
    max_poke_errors = 3                 # pokes raising in a row before the task fails
    events = [{ source = ["aws.s3"], detail-type = ["Object Created"], detail = {bucket = {name = ["x"]}} }]

    [[agents.files.permissions]]        # IAM grants for the agent's own AWS calls, to its functions only
    actions = ["s3:GetObject"]          # each action named: no wildcards
    resources = ["arn:aws:s3:::x/*"]    # ARNs; "*" only alone, for actions IAM cannot scope

    [[agents.files.permissions]]
    actions = ["s3:ListBucket"]
    resources = ["arn:aws:s3:::x"]
"""

from __future__ import annotations

import importlib
import re
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serverless_agents.exceptions import ManifestError
from serverless_agents.identity import AGENT_NAME

if TYPE_CHECKING:
    from serverless_agents.agent import AsyncAgentBase, BaseSensor, SyncAgentBase

    AgentClass = type[AsyncAgentBase] | type[SyncAgentBase] | type[BaseSensor]  # type: ignore[type-arg]

#: The example manifest (the built-in agents and two examples), package data so that an installed wheel
#: has it: `up` runs it given no `--manifest` and no ./agents.toml; the CDK app deploys it by default.
EXAMPLE_MANIFEST = Path(__file__).with_name("example_agents.toml")
#: API Gateway's default integration timeout for REST APIs, in seconds.
API_GATEWAY_TIMEOUT = 29
# EventBridge Scheduler's rate expressions; AWS accepts nothing shorter than one minute.
_RATE = re.compile(r"^rate\((?P<value>[1-9][0-9]*) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}
#: Step Functions Standard: an execution's history holds at most this many events.
HISTORY_EVENT_LIMIT = 25_000
#: History events of one poll in `statemachines/async_agent.asl.json`: Wait (WaitStateEntered,
#: WaitStateExited), Get (TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited)
#: and Ended? (ChoiceStateEntered, ChoiceStateExited): 2 + 5 + 2.
HISTORY_EVENTS_PER_POLL = 9
#: The events an execution keeps for what is not a plain poll. Its own events are under 60 without
#: retries (ExecutionStarted, Started?: 2, Create: 5, the first Ended?: 2, Continue: 6, Continued and
#: ExecutionSucceeded: 3; or Cleanup and Fail); the rest is for retries, each adding TaskFailed,
#: TaskScheduled and TaskStarted (3 events): over 2,300 retried gets fit, more than one in every poll. (A
#: get retried to its limits, 3 + 8 attempts, 33 events, on every poll is a job that fails long before.)
HISTORY_MARGIN = 7_000
#: The gets one execution makes before it continues as a new one: (25,000 - 7,000) / 9 = 2,000.
DEFAULT_POLLS_PER_EXECUTION = (HISTORY_EVENT_LIMIT - HISTORY_MARGIN) // HISTORY_EVENTS_PER_POLL
#: The most `polls_per_execution` allows: room for an execution's own events (700), none for retries.
MAX_POLLS_PER_EXECUTION = (HISTORY_EVENT_LIMIT - 700) // HISTORY_EVENTS_PER_POLL
# Actions the built-in agents need that IAM cannot scope to a resource (the Service Authorization Reference
# lists no resource type for them), so `"*"` is their only resource.
_UNSCOPED_ACTIONS = frozenset(
    {"ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions"}
)
#: A PEP 508 requirement as pip reads it from a requirements file line: a project name first (so never a pip
#: option such as `--extra-index-url`), then versions, extras, markers or a direct URL, on one line.
_REQUIREMENT = r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._, -]*\])?([ ]*[<>=!~;@(][^\n\r]*)?$"
# An IAM action named in full: `service:Action`, no wildcard.
_ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")


class PollBackoff(BaseModel):
    """How long the state machine waits between two `get`s: initial * factor**n, at most cap seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial: Annotated[int, Field(ge=0, le=3600)] = 5
    factor: Annotated[float, Field(ge=1.0, le=10.0)] = 2.0
    cap: Annotated[int, Field(ge=0, le=86400)] = 300

    def wait_after(self, polls: int) -> int:
        """Seconds to wait before poll number `polls + 1` (polls counts the gets done so far)."""
        try:
            return int(min(self.cap, self.initial * self.factor ** max(polls, 0)))
        except OverflowError:  # factor**polls outgrows a float on a long job long after reaching cap
            return self.cap


class Permission(BaseModel):
    """One IAM Allow statement for the calls an agent makes itself (ECS RunTask, S3 HeadObject on a user's
    bucket): the deployment cannot guess these, so the manifest names them, and the CDK app grants them to
    that agent's functions alone. Least privilege is checked where it is cheap: every action is named
    (`service:Action`, no wildcard), and every resource is an ARN; `"*"` only for actions AWS offers no
    resource-level permission for (such as ecs:RegisterTaskDefinition), alone in their statement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: Annotated[list[str], Field(min_length=1)]
    resources: Annotated[list[str], Field(min_length=1)]

    @field_validator("actions")
    @classmethod
    def _actions_are_named(cls, actions: list[str]) -> list[str]:
        for action in actions:
            if not _ACTION.match(action):
                raise ValueError(
                    f"action {action!r}: name each action as service:Action (e.g. s3:GetObject); "
                    "wildcards such as '*' or 's3:Get*' are not allowed"
                )
        return actions

    @model_validator(mode="after")
    def _resources_are_arns(self) -> Permission:
        unscoped = all(action in _UNSCOPED_ACTIONS for action in self.actions)
        for resource in self.resources:
            if resource.strip() == "*":
                if unscoped and self.resources == ["*"]:
                    continue
                unscoped_list = ", ".join(sorted(_UNSCOPED_ACTIONS))
                raise ValueError(
                    "resource '*' would reach every resource of the account: name the ARN instead "
                    "(e.g. arn:aws:s3:::my-bucket/*, arn:aws:iam::123456789012:role/my-role); '*' is "
                    f"accepted alone, only for actions that allow nothing narrower: {unscoped_list}"
                )
            if not resource.startswith("arn:"):
                raise ValueError(f"resource {resource!r}: expected an ARN (arn:partition:service:...)")
        return self


class AgentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    class_path: Annotated[str, Field(alias="class", pattern=r"^[\w.]+:\w+$")]
    memory: Annotated[int, Field(ge=128, le=10240)] = 256
    #: Seconds for each Lambda invocation; for a sync agent also the call's limit, which must fit API
    #: Gateway's integration timeout (`[deployment] api_timeout`). The default, 29, is the most API
    #: Gateway allows by default, so one default fits every kind.
    timeout: Annotated[int, Field(ge=1, le=900)] = 29
    execution_timeout: Annotated[int, Field(ge=1, le=31_536_000)] = 86_400
    poll: PollBackoff = PollBackoff()
    #: Async agents: the gets one Step Functions execution makes before it continues the task as a new
    #: execution (its history holds 25,000 events at most); the default leaves a margin for retries.
    polls_per_execution: Annotated[int, Field(ge=1, le=MAX_POLLS_PER_EXECUTION)] = DEFAULT_POLLS_PER_EXECUTION
    #: Seconds a task may stay open once its job should stop (its cleanup began, or its execution ended
    #: or timed out): then the sweeper ends it FAILED, naming the job that may still run. The default
    #: lets finalize's and the sweeper's retries of `delete` run first (docs/manifest.md#end_within). For
    #: a sensor: seconds past its deadline after which the sweeper ends a task whose pokes stopped.
    end_within: Annotated[int, Field(ge=1, le=604_800)] = 3600
    secrets: dict[str, str] = {}
    #: Free-form settings handed to the agent class as `self.config` (no secrets: they go in `secrets`).
    config: dict[str, str | int | float | bool | list[str]] = {}
    # Sensors only.
    schedule: str = "rate(1 minute)"
    sensor_timeout: Annotated[int, Field(ge=1, le=31_536_000)] = 86_400
    max_poke_errors: Annotated[int, Field(ge=1, le=100)] = 3
    #: EventBridge event patterns (as in a rule) whose events poke this sensor's waiting tasks.
    events: list[dict[str, Any]] = []
    #: IAM statements for the agent's own AWS calls, granted to this agent's functions only.
    permissions: list[Permission] = []
    #: Powertools' Tracer (the X-Ray SDK: a subsegment per AWS call) in this agent's functions. Off, Lambda's
    #: active tracing still traces each invocation; on, every cold start imports the SDK (~0.25 s).
    tracing: Annotated[bool, Field(strict=True)] = False
    #: Lambda SnapStart for this agent's functions: each deploy publishes a version, and callers invoke it.
    snapstart: Annotated[bool, Field(strict=True)] = False
    #: pip requirements of the agent's own code (a class outside this project importing a library), added
    #: to its functions' bundle. Requirement specifiers only: never a pip option (`--index-url ...`).
    requirements: list[Annotated[str, Field(pattern=_REQUIREMENT)]] = []

    @field_validator("schedule")
    @classmethod
    def _schedule_is_a_rate(cls, schedule: str) -> str:
        if not _RATE.match(schedule):
            raise ValueError(
                f"{schedule!r}: expected rate(N minute|minutes|hour|hours|day|days), N at least 1 (AWS's "
                "shortest is a minute); to poke faster locally: up --schedule-period SECONDS"
            )
        return schedule

    @field_validator("events")
    @classmethod
    def _events_are_patterns(cls, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for pattern in events:
            if not isinstance(pattern.get("source"), list) or not pattern["source"]:
                raise ValueError('each event pattern needs a `source` list, e.g. source = ["aws.s3"]')
        return events

    @property
    def schedule_seconds(self) -> int:
        match = _RATE.match(self.schedule)
        assert match is not None  # the field's pattern guarantees it
        return int(match["value"]) * _UNIT_SECONDS[match["unit"].rstrip("s")]

    def load_class(self) -> AgentClass:
        """Import the agent class named by `class` ("package.module:Class")."""
        from serverless_agents.agent import AsyncAgentBase, BaseSensor, SyncAgentBase

        module_name, _, attr = self.class_path.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ManifestError(f"cannot load agent class {self.class_path!r}: {e}") from e
        # A Flyte 2 connector's module imported flyte's: only then can `cls` be one, and need wrapping.
        connectors = sys.modules.get("flyte.connectors")
        if connectors is not None and isinstance(cls, type) and issubclass(cls, connectors.AsyncConnector):
            from serverless_agents.agents.flyte2_connector import connector_agent

            cls = connector_agent(cls)
        if not (isinstance(cls, type) and issubclass(cls, AsyncAgentBase | SyncAgentBase | BaseSensor)):
            raise ManifestError(
                f"{self.class_path!r} is not an AsyncAgentBase, SyncAgentBase or BaseSensor subclass "
                "(or a flyte.connectors.AsyncConnector)"
            )
        if not getattr(cls, "task_type", ""):
            raise ManifestError(f"{self.class_path!r} declares no task_type")
        return cls


class DeploymentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,19}$")] = "serverless-agents"
    #: API Gateway's integration timeout in seconds: 29 unless the account's quota for Regional REST APIs
    #: was raised (a Service Quotas request), then up to that quota. It bounds every sync agent's `timeout`.
    api_timeout: Annotated[int, Field(ge=1, le=900)] = API_GATEWAY_TIMEOUT
    #: Folders holding agent code kept outside this project, relative to the manifest (`use_code_path`).
    code_path: list[Annotated[str, Field(min_length=1)]] = []


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment: DeploymentSettings = DeploymentSettings()
    agents: dict[str, AgentSettings]

    @field_validator("agents")
    @classmethod
    def _names_fit_resource_names(cls, agents: dict[str, AgentSettings]) -> dict[str, AgentSettings]:
        for name in agents:
            if not AGENT_NAME.fullmatch(name):
                problem = f"must match {AGENT_NAME.pattern} (it is part of AWS names)"
                raise ValueError(f"agent name {name!r} {problem}")
        return agents

    def agent(self, name: str) -> AgentSettings:
        from serverless_agents.exceptions import AgentNotFound

        try:
            return self.agents[name]
        except KeyError:
            raise AgentNotFound(f"agents.toml has no agent named {name!r}") from None


def parse_manifest(text: str, *, source: str = "agents.toml") -> Manifest:
    try:
        return Manifest.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"{source}: {e}") from e
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors(include_url=False)
        )
        raise ManifestError(f"{source}: {problems}") from e


def load_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ManifestError(f"cannot read manifest {path}: {e.strerror}") from e
    return parse_manifest(text, source=str(path))


def use_code_path(manifest: Manifest, manifest_path: str | Path) -> None:
    """Make the manifest's `deployment.code_path` folders importable (first on `sys.path`), as `up`, the
    bundler and the CDK app need before they load agent classes. Lambdas do not call it: their bundle
    already holds the agents' code at its root."""
    base = Path(manifest_path).resolve().parent
    for entry in reversed(manifest.deployment.code_path):
        folder = (base / entry).resolve()
        if not folder.is_dir():
            raise ManifestError(
                f"{manifest_path}: deployment.code_path: {entry!r} is not a folder ({folder})"
            )
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
