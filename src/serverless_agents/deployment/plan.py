"""What a manifest deploys, free of CDK: every function, state machine, rule and schedule group.

One description, two readers: the CDK app (`infra/cdk`) turns it into constructs, and the local stack
(`serverless_agents.local.stack`) creates it on moto. Names, handler strings, sizes, timeouts, log groups and
environments are computed here and nowhere else, so the template and the local wiring cannot drift apart
(`tests/infra/test_one_plan.py` compares them; `tests/rehearsal` deploys the synthesized template itself).

What stays with each reader is what only it has: the CDK adds IAM, alarms, the dashboard, dead-letter
queues and API Gateway; the local stack stands in for EventBridge (status-change events, schedules, event
rules) with drivers. Physical names CloudFormation chooses (the tasks table, the payload bucket: a retained
one must not block the next deploy) reach the functions as environment values from either reader, through
`DeploymentPlan.shared_environment`.

The plan is built the way the api Lambda builds its registry (`AgentRegistry.from_manifest`), so a manifest
the deployed api would reject (a class that does not import, two agents serving one task type) fails the
plan, and with it the synth or `up`, instead of the first request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from serverless_agents.agent import AgentKind
from serverless_agents.deployment import naming
from serverless_agents.deployment.job_events import JobEvents, job_events
from serverless_agents.deployment.manifest import AgentSettings, Manifest, load_manifest, use_code_path
from serverless_agents.deployment.registry import AgentRegistry
from serverless_agents.exceptions import ManifestError
from serverless_agents.handlers import handler_string
from serverless_agents.runtime import settings as env_names
from serverless_agents.runtime.endings import ENDED_STATUSES, STATUS_CHANGE_DETAIL_TYPE, STATUS_CHANGE_SOURCE

#: `handlers.ROLES`, as a type (tests/unit/test_plan.py checks they name the same functions).
HandlerName = naming.SharedRole | naming.FunctionRole

#: The functions each kind of agent gets, named `<deployment>-<agent>-<role>`.
FUNCTIONS_BY_KIND: Mapping[AgentKind, tuple[naming.FunctionRole, ...]] = {
    AgentKind.ASYNC: ("create", "get", "delete"),
    AgentKind.SYNC: ("sync",),
    AgentKind.SENSOR: ("poke",),
}
#: What the bundles are built for (infra/cdk bundles.py: pip --python-version 3.12).
RUNTIME: Final = "python3.12"
API_MEMORY = 512
#: finalize handles one ending: a describe and a synchronous delete invocation.
FINALIZE_MEMORY, FINALIZE_TIMEOUT = 256, 60
#: A sweep lists, describes and finalizes every ending of its window one after another, where finalize
#: handles one: the longer timeout.
SWEEPER_MEMORY, SWEEPER_TIMEOUT = 256, 300
SWEEP_PERIOD_MINUTES = 15
#: SA_SWEEP_LOOKBACK_MINUTES: four periods, so every ending is looked at by four sweeps, and a sweep that
#: does not run or fails part-way (a throttle, a deploy, a delete that raised and stopped that sweep) is
#: made up by the next three, while the error alarm calls a person. Not longer: each sweep finalizes
#: every ending in the window again (a DescribeExecution and a delete invocation apiece, a no-op for a
#: task already cleaned up), so the window multiplies that cost.
SWEEP_LOOKBACK_MINUTES = 4 * SWEEP_PERIOD_MINUTES
#: Powertools' Tracer records neither a handler's response (a task's outputs, for Flyte) nor its exception
#: (which may quote task data) in X-Ray: no task data in traces, and no response too large to send.
TRACER_WITHOUT_TASK_DATA = {
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    "POWERTOOLS_TRACER_CAPTURE_ERROR": "false",
}


@dataclass(frozen=True)
class Place:
    """Where a deployment lives. The CDK passes its tokens (`Stack.partition` ...), the local stack moto's."""

    partition: str
    region: str
    account: str

    def function_arn_prefix(self) -> str:
        return f"arn:{self.partition}:lambda:{self.region}:{self.account}:function:"

    def state_machine_arn_prefix(self, deployment: str) -> str:
        return naming.state_machine_arn_prefix(self.partition, self.region, self.account, deployment)


@dataclass(frozen=True)
class FunctionPlan:
    name: str
    handler_name: HandlerName
    memory: int
    timeout: int
    log_group: str
    #: This function's own variables; `DeploymentPlan.environment` adds the ones every function shares.
    own_environment: Mapping[str, str]
    #: The manifest name of the agent it serves; None for the shared api, finalize and sweeper.
    agent: str | None = None
    snapstart: bool = False

    @property
    def handler(self) -> str:
        """Lambda's handler setting: the entry point `functions/<handler>/handler.py` in every bundle."""
        return handler_string(self.handler_name)

    def environment(self, shared: Mapping[str, str]) -> dict[str, str]:
        """Its whole environment: what every function shares (`DeploymentPlan.shared_environment`), and
        its own."""
        return {**shared, **self.own_environment}

    @property
    def invocable(self) -> str:
        """What callers invoke (the state machine, rules, schedules, finalize): the SnapStart alias or the
        function."""
        return naming.invocable_name(self.name, self.snapstart)

    @property
    def description(self) -> str:
        return f"functions/{self.handler_name}/handler.py"


@dataclass(frozen=True)
class EventRule:
    """An EventBridge rule on the default bus: events matching `pattern` -> the function `target`."""

    #: None: CloudFormation names it (the status-change rules, which nothing looks up by name).
    name: str | None
    target: str
    description: str
    pattern: Mapping[str, Any]


@dataclass(frozen=True)
class ScheduleRule:
    """An EventBridge rule on a schedule (`rate(...)`) -> the function `target`."""

    name: str
    target: str
    description: str
    schedule: str


@dataclass(frozen=True)
class PlannedAgent:
    name: str
    kind: AgentKind
    settings: AgentSettings
    #: One log group for all of the agent's functions, so a task's logs are behind one link.
    log_group: str
    functions: Mapping[naming.FunctionRole, FunctionPlan]
    #: Async agents: the state machine running create, the get loop and delete.
    state_machine: str | None = None
    #: Sensors: the schedule group the api fills with one schedule per waiting task. Sensors and async
    #: agents: one rule per event pattern (a sensor's `events`, targeting its poke function; an async
    #: agent's declared events, `job_events`, targeting its get function), passed to EventBridge as written.
    schedule_group: str | None = None
    rules: tuple[EventRule, ...] = ()

    @property
    def listens(self) -> bool:
        """An async agent whose events end its tasks' waits: its state machine waits in Listen."""
        return self.kind is AgentKind.ASYNC and bool(self.rules)

    def function(self, role: naming.FunctionRole) -> FunctionPlan:
        return self.functions[role]


@dataclass(frozen=True)
class DeploymentPlan:
    manifest_path: Path
    deployment: str
    #: API Gateway's integration timeout (`[deployment] api_timeout`), which every sync agent fits.
    api_timeout: int
    agents: tuple[PlannedAgent, ...]
    api: FunctionPlan
    finalize: FunctionPlan
    #: None with sync agents only: nothing to sweep.
    sweeper: FunctionPlan | None
    sweep_rule: ScheduleRule | None
    registry: AgentRegistry = field(compare=False, repr=False)

    @property
    def async_agents(self) -> tuple[PlannedAgent, ...]:
        return tuple(a for a in self.agents if a.kind is AgentKind.ASYNC)

    @property
    def sync_agents(self) -> tuple[PlannedAgent, ...]:
        return tuple(a for a in self.agents if a.kind is AgentKind.SYNC)

    @property
    def sensor_agents(self) -> tuple[PlannedAgent, ...]:
        return tuple(a for a in self.agents if a.kind is AgentKind.SENSOR)

    @property
    def functions(self) -> tuple[FunctionPlan, ...]:
        shared = (self.api, self.finalize, *((self.sweeper,) if self.sweeper else ()))
        return (*shared, *(f for a in self.agents for f in a.functions.values()))

    @property
    def schedule_groups(self) -> tuple[str, ...]:
        return tuple(a.schedule_group for a in self.sensor_agents if a.schedule_group)

    def shared_environment(
        self,
        place: Place,
        *,
        tasks_table: str,
        payload_bucket: str,
        scheduler_role_arn: str | None,
        manifest: str | None = None,
    ) -> dict[str, str]:
        """What every function reads (`settings.current_settings`). `manifest`: SA_MANIFEST, unset on AWS,
        where the bundle carries the manifest at $LAMBDA_TASK_ROOT/agents.toml."""
        variables = {
            env_names.TASKS_TABLE: tasks_table,
            env_names.PAYLOAD_BUCKET: payload_bucket,
            env_names.DEPLOYMENT: self.deployment,
            env_names.STATE_MACHINE_ARN_PREFIX: place.state_machine_arn_prefix(self.deployment),
            env_names.TASK_TTL_DAYS: str(env_names.DEFAULT_TASK_TTL_DAYS),
            # Sensor schedules target `<prefix><deployment>-<agent>-poke`.
            env_names.FUNCTION_ARN_PREFIX: place.function_arn_prefix(),
            # What the handlers name in code (handlers/observability.py), said by the environment too.
            "POWERTOOLS_SERVICE_NAME": env_names.POWERTOOLS_SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": env_names.POWERTOOLS_NAMESPACE,
            **TRACER_WITHOUT_TASK_DATA,
        }
        # Only a deployment with sensors has schedules, and so a role for them to run as.
        if self.sensor_agents:
            if scheduler_role_arn is None:
                raise ValueError("a deployment with sensors needs the role its schedules run as")
            variables[env_names.SCHEDULER_ROLE_ARN] = scheduler_role_arn
        if manifest is not None:
            variables[env_names.MANIFEST] = manifest
        return variables


def status_change_rule(finalize: FunctionPlan, state_machine_arns: list[str]) -> EventRule:
    """The endings of these state machines, by exact ARN (a prefix would also match a deployment named
    `<name>-dev`, whose tasks finalize would then look up in the wrong table) -> finalize."""
    return EventRule(
        name=None,
        target=finalize.name,
        description=f"{', '.join(ENDED_STATUSES)} executions of {len(state_machine_arns)} agent state "
        "machine(s) -> finalize (runs the agent's delete once)",
        pattern={
            "source": [STATUS_CHANGE_SOURCE],
            "detail-type": [STATUS_CHANGE_DETAIL_TYPE],
            "detail": {"status": list(ENDED_STATUSES), "stateMachineArn": state_machine_arns},
        },
    )


def plan_deployment(manifest_path: str | Path, manifest: Manifest | None = None) -> DeploymentPlan:
    """The deployment of the manifest at `manifest_path` (`manifest`: that manifest, read already)."""
    path = Path(manifest_path).resolve()
    manifest = load_manifest(path) if manifest is None else manifest
    use_code_path(manifest, path)
    registry = AgentRegistry.from_manifest(manifest)
    deployment = manifest.deployment.name
    agents = tuple(
        _agent(deployment, a.name, a.kind, a.settings, job_events(a.name, a.cls, a.settings))
        for a in registry
    )
    # Async tasks end by their execution's timeout, sensor tasks by a poke: the sweeper ends those whose
    # ending did not come (a lost status change, pokes that stopped), so either kind brings it.
    has_async_or_sensor = any(a.kind is not AgentKind.SYNC for a in agents)
    sweeper = (
        _shared(
            deployment,
            "sweeper",
            SWEEPER_MEMORY,
            SWEEPER_TIMEOUT,
            {env_names.SWEEP_LOOKBACK_MINUTES: str(SWEEP_LOOKBACK_MINUTES)},
        )
        if has_async_or_sensor
        else None
    )
    plan = DeploymentPlan(
        manifest_path=path,
        deployment=deployment,
        api_timeout=manifest.deployment.api_timeout,
        agents=agents,
        # The api's timeout is API Gateway's integration timeout: a longer one could never be used.
        api=_shared(deployment, "api", API_MEMORY, manifest.deployment.api_timeout),
        finalize=_shared(deployment, "finalize", FINALIZE_MEMORY, FINALIZE_TIMEOUT),
        sweeper=sweeper,
        sweep_rule=ScheduleRule(
            name=sweeper.name,
            target=sweeper.name,
            description=f"every {SWEEP_PERIOD_MINUTES} minutes -> sweeper: finalizes "
            f"{', '.join(ENDED_STATUSES)} executions of the last {SWEEP_LOOKBACK_MINUTES} minutes whose "
            "status-change event was lost, ends tasks past their bound",
            schedule=f"rate({SWEEP_PERIOD_MINUTES} minutes)",
        )
        if sweeper
        else None,
        registry=registry,
    )
    _check_names(plan)
    return plan


def _check_names(plan: DeploymentPlan) -> None:
    """Two owners of one name would fail the deploy half-way (or, locally, share a log group): an agent
    named `api`, `finalize` or `sweeper` takes the shared functions' log group names, say."""
    owners: dict[tuple[str, str], str] = {}

    def claim(kind: str, name: str | None, owner: str) -> None:
        if name is None:
            return
        taken = owners.setdefault((kind, name), owner)
        if taken != owner:
            raise ManifestError(f"{owner} and {taken} would both make the {kind} {name!r}: rename the agent")

    for function in plan.functions:
        owner = f"agent {function.agent!r}" if function.agent else f"the {function.handler_name} function"
        claim("function", function.name, owner)
        claim("log group", function.log_group, owner)
    for agent in plan.agents:
        claim("state machine", agent.state_machine, f"agent {agent.name!r}")
        claim("schedule group", agent.schedule_group, f"agent {agent.name!r}")
        for rule in agent.rules:
            claim("rule", rule.name, f"agent {agent.name!r}")
    if plan.sweep_rule is not None:
        claim("rule", plan.sweep_rule.name, "the sweeper")


def _shared(
    deployment: str,
    handler: naming.SharedRole,
    memory: int,
    timeout: int,
    own_environment: Mapping[str, str] | None = None,
) -> FunctionPlan:
    name = naming.shared_function_name(deployment, handler)
    return FunctionPlan(
        name=name,
        handler_name=handler,
        memory=memory,
        timeout=timeout,
        log_group=naming.function_log_group(name),
        own_environment=dict(own_environment or {}),
    )


def _agent(
    deployment: str, name: str, kind: AgentKind, settings: AgentSettings, events: JobEvents | None
) -> PlannedAgent:
    log_group = naming.agent_log_group(deployment, name)
    own = {env_names.AGENT: name, **({env_names.TRACING: "true"} if settings.tracing else {})}
    functions = {
        role: FunctionPlan(
            name=naming.agent_function_name(deployment, name, role),
            handler_name=role,
            memory=settings.memory,
            timeout=settings.timeout,
            log_group=log_group,
            own_environment=own,
            agent=name,
            snapstart=settings.snapstart,
        )
        for role in FUNCTIONS_BY_KIND[kind]
    }
    is_sensor = kind is AgentKind.SENSOR
    job_id_path = events.job_id_path if events is not None else ""
    rules = tuple(
        EventRule(
            name=naming.agent_rule_name(deployment, name, number),
            target=functions["poke"].name,
            description=f"events matching [agents.{name}] events[{number}] -> its poke function "
            "(pokes the tasks watching what an event concerns)",
            pattern=pattern,
        )
        for number, pattern in (enumerate(settings.events) if is_sensor else ())
    ) + tuple(
        EventRule(
            name=naming.agent_rule_name(deployment, name, number),
            target=functions["get"].name,
            description=f"events of agent {name}'s jobs (event pattern {number}) -> its get function "
            f"(ends the wait of the task whose job {job_id_path} names)",
            pattern=pattern,
        )
        for number, pattern in (enumerate(events.patterns) if events is not None else ())
    )
    return PlannedAgent(
        name,
        kind,
        settings,
        log_group,
        functions,
        state_machine=naming.state_machine_name(deployment, name) if kind is AgentKind.ASYNC else None,
        schedule_group=naming.sensor_schedule_group(deployment, name) if is_sensor else None,
        rules=rules,
    )
