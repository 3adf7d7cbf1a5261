"""Sensors: tasks that wait for a condition, poked by EventBridge instead of a polling loop.

A sensor task is a tasks-table item (kind `sensor`) plus one EventBridge Scheduler schedule. Its sensor's
poke function is invoked three ways, and all three land in `SensorSteps.handle`:

- once at registration (`{"task_ids": [id]}`, asynchronously), so a condition already true ends at once;
- by the task's schedule, with the same input: the fallback that needs no event;
- by EventBridge rules from the manifest with the event itself: the sensor names the keys the event
  concerns (`event_keys`) and only the tasks watching those keys are poked (one index query, no scan).

Endings: the condition met -> SUCCEEDED; past the deadline -> FAILED; `max_poke_errors` pokes raising in
a row -> FAILED; DELETE -> ABORTED. Each ending removes the task's schedule, and its `watch` key from the
index; the conditional writes of the tasks table make concurrent pokes end a task once.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flyteidl.admin import agent_pb2

from serverless_agents import aws
from serverless_agents.agent import Phase, Resource
from serverless_agents.aws.payloads import ITEM_PAYLOAD_LIMIT, payload_key
from serverless_agents.aws.s3uri import check_text
from serverless_agents.aws.tasks_table import SensorTask
from serverless_agents.deployment.naming import sensor_schedule_group, sensor_schedule_name
from serverless_agents.exceptions import InvalidRequest, TaskNotFound
from serverless_agents.flyte import wire
from serverless_agents.runtime.boundary import call_agent
from serverless_agents.runtime.endings import failure_phase, one_line
from serverless_agents.runtime.translate import task_context

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient

    from serverless_agents.agent import BaseSensor, TaskContext
    from serverless_agents.aws.payloads import PayloadStore
    from serverless_agents.aws.tasks_table import TasksTable
    from serverless_agents.deployment.manifest import AgentSettings

logger = logging.getLogger(__name__)
#: DynamoDB's limit on a partition key, in bytes: the `watch` attribute is the index's.
WATCH_KEY_MAX_BYTES = 2048


class SensorSchedules:
    """One EventBridge Scheduler schedule per waiting task, in its sensor's schedule group."""

    def __init__(self, group: str, client: EventBridgeSchedulerClient) -> None:
        self.group = group
        self._client = client

    @classmethod
    def of_agent(cls, deployment: str, agent: str, client: EventBridgeSchedulerClient) -> SensorSchedules:
        """The schedules of sensor `agent`, in its schedule group (`naming.sensor_schedule_group`)."""
        return cls(sensor_schedule_group(deployment, agent), client)

    def create(self, name: str, expression: str, target_arn: str, role_arn: str, task_id: str) -> None:
        try:
            with aws.transient_errors_as_unavailable("EventBridge Scheduler"):
                self._client.create_schedule(
                    Name=name,
                    GroupName=self.group,
                    ScheduleExpression=expression,
                    FlexibleTimeWindow={"Mode": "OFF"},
                    Target={
                        "Arn": target_arn,
                        "RoleArn": role_arn,
                        "Input": json.dumps({"task_ids": [task_id]}),
                    },
                )
        except self._client.exceptions.ConflictException:
            pass  # a repeated registration: the schedule exists already

    def remove(self, name: str | None) -> None:
        if not name:
            return
        try:
            with aws.transient_errors_as_unavailable("EventBridge Scheduler"):
                self._client.delete_schedule(Name=name, GroupName=self.group)
        except self._client.exceptions.ResourceNotFoundException:
            pass  # removed already (an earlier ending, or a repeated one)


@dataclass(frozen=True)
class SensorRegistration:
    """What the api needs to start a sensor task: where its schedule goes and what it targets."""

    schedules: SensorSchedules
    expression: str
    poke_function_arn: str
    scheduler_role_arn: str
    lambda_client: LambdaClient


def register_sensor_task(
    table: TasksTable,
    payloads: PayloadStore,
    registration: SensorRegistration,
    agent_name: str,
    sensor: BaseSensor,
    settings: AgentSettings,
    task: TaskContext,
    request: agent_pb2.CreateTaskRequest,
) -> None:
    """Record the task, give it a schedule and poke it once; a repeated call starts nothing new. `task` is
    the request decoded once by the caller (which checked its inputs against `poke`)."""
    task_id = task.task_id
    watch = watch_key(sensor, task.inputs)  # before any write: a key the index cannot hold is a 400
    timeout = request.template.metadata.timeout.ToTimedelta().total_seconds() or settings.sensor_timeout
    request_json, request_ref = payloads.offload(
        payload_key("requests", agent_name, task_id), wire.to_dict(request), ITEM_PAYLOAD_LIMIT
    )
    schedule = sensor_schedule_name(task_id)
    deadline = time.time() + timeout
    created = table.create(
        SensorTask(
            task_id,
            agent_name,
            phase=Phase.RUNNING,
            message="waiting for the condition",
            request=request_json,
            request_ref=request_ref,
            watch=watch,
            deadline=deadline,
            schedule=schedule,
            # A poke ends the task by its deadline; should the pokes stop (a poke function that fails
            # before it runs, a schedule deleted by hand), the sweeper ends it `end_within` later.
            end_within=settings.end_within,
            end_by=deadline + settings.end_within,
        )
    )
    if not created and table.get(task_id).phase.is_terminal:
        return
    registration.schedules.create(
        schedule,
        registration.expression,
        registration.poke_function_arn,
        registration.scheduler_role_arn,
        task_id,
    )
    if created:
        with aws.transient_errors_as_unavailable("Lambda"):
            registration.lambda_client.invoke(
                FunctionName=registration.poke_function_arn,
                InvocationType="Event",
                Payload=json.dumps({"task_ids": [task_id]}).encode(),
            )


def watch_key(sensor: BaseSensor, inputs: Mapping[str, Any]) -> str | None:
    """The sensor's watch key for these inputs, fit to be the tasks table's index key: UTF-8 of at most
    DynamoDB's 2,048 bytes for a partition key (a longer one would fail the write as a 500); an empty one
    is no key (DynamoDB takes no empty key)."""
    key = call_agent(sensor.watch_key, **inputs)
    if not key:
        return None
    check_text(
        key,
        "inputs",
        f"the watch key {type(sensor).__name__} derives from them",
        WATCH_KEY_MAX_BYTES,
        "DynamoDB's ",
    )
    return key


def check_poke_inputs(sensor: BaseSensor, inputs: Mapping[str, Any]) -> None:
    """Inputs the sensor's `poke` cannot take fail the create (a 400 naming the input), not the first poke:
    names `poke` lacks, missing ones, values of another type than a `str`, `int`, `float` or `bool`
    annotation (an interface typing FileSensor's `path` as INTEGER), and what `sensor.check_inputs`
    refuses."""
    parameters = list(inspect.signature(sensor.poke).parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        named: set[str] | None = None  # **inputs: any name is welcome
    else:
        named = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    shown = ", ".join(str(p).split(":")[0].split("=")[0] for p in parameters)
    signature = f"{type(sensor).__name__}.poke({shown})"
    for name in sorted(inputs):
        if named is not None and name not in named:
            raise InvalidRequest(f"inputs.{name}", f"not a parameter of {signature}")
    for p in parameters:
        keyword = p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        if keyword and p.default is p.empty and p.name not in inputs:
            raise InvalidRequest(f"inputs.{p.name}", f"missing: {signature} requires it")
    hints = _scalar_hints(sensor.poke)
    for name, value in inputs.items():
        expected = hints.get(name)
        if expected is not None and not _is_a(value, expected):
            raise InvalidRequest(
                f"inputs.{name}",
                f"must be a {_FLYTE_TYPES[expected]} ({expected.__name__}): {signature} takes it, and the "
                f"task's interface gives {type(value).__name__}",
            )
    call_agent(sensor.check_inputs, **inputs)


#: Annotations `check_poke_inputs` holds inputs to, with the Flyte type an interface gives them.
_FLYTE_TYPES = {str: "STRING", bool: "BOOLEAN", int: "INTEGER", float: "FLOAT"}
_SCALARS = tuple(_FLYTE_TYPES)


def _scalar_hints(function: Any) -> dict[str, type]:
    """The parameters of `function` annotated with a plain scalar type."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation naming what its module cannot resolve: nothing to check by
        return {}
    return {name: hint for name, hint in hints.items() if name != "return" and hint in _SCALARS}


def _is_a(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def stop_sensor_task(table: TasksTable, schedules: SensorSchedules, record: SensorTask) -> None:
    """DELETE of a waiting sensor task: ABORTED, schedule removed. No sensor code runs."""
    if table.claim_cleanup(record.task_id, SensorTask) is not None:
        table.finish_cleanup(record.task_id, Phase.ABORTED, "aborted: DeleteTask was called")
    schedules.remove(record.schedule)


@dataclass(frozen=True)
class PokeOutcome:
    """What one poke says of its task: it ends (`ending`, the phase) or waits on, `errors` pokes having
    failed in a row; `message` is the task's message either way."""

    ending: Phase | None
    message: str
    errors: int = 0


def poke_once(sensor: BaseSensor, task: TaskContext, errors: int, max_errors: int) -> PokeOutcome:
    """Poke `task` once, `errors` earlier pokes having failed in a row: the condition met -> SUCCEEDED;
    inputs refused -> FAILED at once; the `max_errors`-th failure in a row -> its error's phase."""
    try:
        met = bool(call_agent(sensor.poke, **task.inputs))
    except InvalidRequest as e:
        # The task's own inputs are refused (a path no longer allowed): no later poke can do better.
        return PokeOutcome(Phase.FAILED, one_line(f"{type(e).__name__}: {e}"))
    except Exception as e:
        errors += 1
        reason = f"{type(e).__name__}: {e}"
        if errors >= max_errors:
            return PokeOutcome(failure_phase(e), one_line(f"poke failed {errors} times in a row: {reason}"))
        logger.warning("poke of %s failed (%d of %d): %s", task.task_id, errors, max_errors, reason)
        return PokeOutcome(None, f"poke failed ({errors} of {max_errors}): {reason}", errors)
    if met:
        return PokeOutcome(Phase.SUCCEEDED, "the condition is met")
    return PokeOutcome(None, "waiting for the condition")


class SensorSteps:
    """The poke function's work."""

    def __init__(
        self,
        agent: str,
        sensor: BaseSensor,
        settings: AgentSettings,
        table: TasksTable,
        payloads: PayloadStore,
        schedules: SensorSchedules,
    ) -> None:
        #: The sensor's manifest name: an event finds this agent's waiting tasks only.
        self.agent = agent
        self.sensor = sensor
        self.settings = settings
        self.table = table
        self.payloads = payloads
        self.schedules = schedules

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """A scheduled or initial poke (`{"task_ids": [...]}`), or an EventBridge event."""
        if "task_ids" in event:
            task_ids = [str(task_id) for task_id in event["task_ids"]]
        else:
            keys = call_agent(self.sensor.event_keys, event)
            found = (task_id for key in keys for task_id in self.table.tasks_watching(self.agent, key))
            task_ids = list(dict.fromkeys(found))
        phases = {task_id: self.poke(task_id) for task_id in task_ids}
        return {"poked": len(phases), "phases": phases}

    def poke(self, task_id: str) -> str:
        """Poke one task; returns its phase afterwards."""
        try:
            record = self.table.get(task_id, SensorTask)
        except TaskNotFound:
            return "UNKNOWN"
        if record.job_done or record.cleanup is not None:
            self.schedules.remove(record.schedule)  # a schedule outliving its task: remove it
            return record.phase.name
        if record.deadline is not None and time.time() > record.deadline:
            waited = int(record.deadline - record.created_at)
            return self._end(
                record, Phase.FAILED, f"timed out: the condition was not met within {waited} s", poked=False
            )
        task = task_context(task_id, self._request(record))
        outcome = poke_once(self.sensor, task, record.poke_errors, self.settings.max_poke_errors)
        if outcome.ending is not None:
            return self._end(record, outcome.ending, outcome.message)
        self.table.record_poke(task_id, outcome.message, outcome.errors)
        return record.phase.name

    def _end(self, record: SensorTask, phase: Phase, message: str, *, poked: bool = True) -> str:
        pokes = record.pokes + int(poked)
        ended = self.table.record_job_finished(record.task_id, Resource(phase, message), pokes=pokes)
        self.schedules.remove(record.schedule)
        return phase.name if ended else self.table.get(record.task_id).phase.name

    def _request(self, record: SensorTask) -> agent_pb2.CreateTaskRequest:
        data = (
            record.request if record.request is not None else self.payloads.get_json(record.request_ref or "")
        )
        return wire.from_dict(agent_pb2.CreateTaskRequest, data, field="request")
