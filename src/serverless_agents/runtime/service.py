"""What the HTTP API does: create, get and delete tasks (Flyte's verbs), read a task's own log lines and
measures (`runtime.task_logs`, `runtime.task_metrics`), and list the deployed agents.

Creating is idempotent per Flyte task attempt: the task id derives from its `TaskExecutionIdentifier`,
the table insert is conditional, and the execution (or a sensor's schedule) is named after the task, so a
repeated create (or a retry after a crash between two writes) starts at most one job.

A create starts nothing once its caller has stopped waiting: propeller and Flyte 2's executor count a Create
that failed (a missed deadline too) as a failed attempt and retry with the next attempt, a new task, so a
job started for the attempt they gave up on would run with nobody to get or delete it. The caller's
deadline (`deadline`, from the HTTP API) is checked before the first write, with room for the writes
(`_ROOM_TO_CREATE`); a deadline that passes during them leaves the task whole, and the same attempt's
next create finds it and starts no second job.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from flyteidl.admin import agent_pb2
from google.protobuf.json_format import MessageToDict

from serverless_agents import aws
from serverless_agents.agent import AgentKind, Phase
from serverless_agents.aws.connection_secrets import secret_names, take_secret_values
from serverless_agents.aws.console import execution_link, log_group_link, task_links
from serverless_agents.aws.payloads import STATE_PAYLOAD_LIMIT, payload_key
from serverless_agents.aws.tasks_table import AsyncTask, SensorTask
from serverless_agents.deployment.naming import (
    agent_function_name,
    agent_log_group,
    execution_arn,
    invocable_name,
)
from serverless_agents.exceptions import DeadlineExceeded, InvalidRequest, TaskNotFound
from serverless_agents.flyte import wire
from serverless_agents.flyte.identity import task_id_for
from serverless_agents.flyte.resource_meta import encode_resource_meta
from serverless_agents.runtime.sensors import (
    SensorRegistration,
    SensorSchedules,
    check_poke_inputs,
    register_sensor_task,
    stop_sensor_task,
)
from serverless_agents.runtime.task_logs import MAX_LINES, LogPage, TaskLogs
from serverless_agents.runtime.task_metrics import check_queries, measure, metric_results, state_transitions
from serverless_agents.runtime.translate import (
    check_create_request,
    literal_map_from_json,
    task_context,
    to_resource_message,
)
from serverless_agents.security.secrets import mask_secrets

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_stepfunctions import SFNClient

    from serverless_agents.agent import BaseSensor, TaskContext
    from serverless_agents.aws.connection_secrets import ConnectionSecretStore
    from serverless_agents.aws.payloads import PayloadStore
    from serverless_agents.aws.tasks_table import TasksTable
    from serverless_agents.deployment.manifest import AgentSettings
    from serverless_agents.deployment.registry import AgentRegistry, RegisteredAgent
    from serverless_agents.runtime.async_steps import TaskState
    from serverless_agents.runtime.task_logs import LogsClient


#: Seconds a create's writes (secret, payload, table item, StartExecution) take at most, in the usual case.
_ROOM_TO_CREATE = 0.5


@dataclass(frozen=True)
class SensorTargets:
    """Where sensor schedules point: `<function_arn_prefix><deployment>-<agent>-poke`, assumed by a role."""

    function_arn_prefix: str
    scheduler_role_arn: str


def admit_task(
    registry: AgentRegistry, request: agent_pb2.CreateTaskRequest
) -> tuple[RegisteredAgent, TaskContext]:
    """The async agent or sensor that serves the task, and the task decoded: any bad input is a 400,
    before any write (the api's create; `serverless_agents.testing.LocalAgent` too)."""
    check_create_request(request)
    template = request.template
    custom = MessageToDict(template.custom) if template.HasField("custom") else {}
    agent = registry.for_task(template.type, template.task_type_version, custom)
    if agent.kind is AgentKind.SYNC:
        raise InvalidRequest(
            "template.type",
            f"{template.type!r} is served by the sync agent {agent.name!r}: POST /v1/sync/{agent.name}",
        )
    if not request.task_execution_metadata.HasField("task_execution_id"):
        raise InvalidRequest("taskExecutionMetadata.taskExecutionId", "required: it identifies the task")
    task_id = task_id_for(
        agent.name, request.task_execution_metadata.task_execution_id, request.output_prefix
    )
    return agent, task_context(task_id, request)


class TaskService:
    """Flyte's create, get and delete, and a task's logs and metrics. Its clients: Step Functions starts and
    stops an async task's execution (and gives its history), Lambda gives a new sensor task its first poke,
    EventBridge Scheduler its schedule, CloudWatch Logs the task's lines."""

    def __init__(
        self,
        registry: AgentRegistry,
        table: TasksTable,
        payloads: PayloadStore,
        state_machine_arn_prefix: str,
        deployment: str,
        region: str,
        *,
        sfn_client: SFNClient,
        lambda_client: LambdaClient,
        scheduler_client: EventBridgeSchedulerClient,
        sensor_targets: SensorTargets | None = None,
        logs_client: LogsClient,
        connection_secrets: ConnectionSecretStore | None = None,
    ) -> None:
        self.registry = registry
        self.deployment = deployment
        self.region = region
        self.table = table
        self.payloads = payloads
        self.state_machine_arn_prefix = state_machine_arn_prefix
        self.sensor_targets = sensor_targets
        self.connection_secrets = connection_secrets
        self._sfn = sfn_client
        self._lambda = lambda_client
        self._scheduler = scheduler_client
        self._logs = TaskLogs(deployment, logs_client)

    def create(
        self,
        request: agent_pb2.CreateTaskRequest,
        flyte2_request: dict[str, Any] | None = None,
        *,
        deadline: float | None = None,
    ) -> agent_pb2.CreateTaskResponse:
        """Create the task `request` describes. A Flyte 2 executor's CreateTask also gives its own request
        (`flyte2_request`, protobuf JSON; `request` is then its translation, which routes and names the
        task and serves the project's own agents): a Flyte 2 connector gets it unchanged, its
        `connection.secrets` values go to Secrets Manager only, and the execution carries the secret's
        name (see `serverless_agents.aws.connection_secrets`). With a `deadline` (epoch seconds: when the
        caller stops waiting) too close to create the task in, nothing is written (DeadlineExceeded)."""
        original, values = take_secret_values(flyte2_request or {})
        mask_secrets(values)  # from now on nothing this process logs or answers shows them
        agent, task = admit_task(self.registry, request)
        if deadline is not None and time.time() > deadline - _ROOM_TO_CREATE:
            raise DeadlineExceeded(
                f"task {task.task_id} was not created: its caller's deadline left less than "
                f"{_ROOM_TO_CREATE:g} s to create it (nothing was written)"
            )
        takes_flyte2 = bool(getattr(agent.cls, "takes_flyte2_request", False))
        if values and not takes_flyte2:
            raise InvalidRequest(
                "connection.secrets",
                f"agent {agent.name!r} is not a Flyte 2 connector: it takes its secrets from agents.toml",
            )
        if agent.kind is AgentKind.SENSOR:
            self._register_sensor(agent, task, request)
        else:
            self._start_execution(
                agent.name,
                task.task_id,
                wire.to_dict(request),
                agent.settings,
                flyte2_request=original if flyte2_request is not None and takes_flyte2 else None,
                connection_secret=self._keep_connection_secrets(agent, task, values) if values else None,
            )
        return agent_pb2.CreateTaskResponse(resource_meta=encode_resource_meta(task.task_id, agent.name))

    def _register_sensor(
        self, agent: RegisteredAgent, task: TaskContext, request: agent_pb2.CreateTaskRequest
    ) -> None:
        sensor: BaseSensor = agent.cls(config=agent.settings.config)  # type: ignore[assignment]
        check_poke_inputs(sensor, task.inputs)
        register_sensor_task(
            self.table,
            self.payloads,
            self._sensor_registration(agent),
            agent.name,
            sensor,
            agent.settings,
            task,
            request,
        )

    def _keep_connection_secrets(
        self, agent: RegisteredAgent, task: TaskContext, values: dict[str, str]
    ) -> str:
        """Write the executor's secret values to the agent's connection secret for the task's project and
        domain; its name."""
        names = secret_names(values, task.custom)
        clashing = sorted(set(values) & set(agent.settings.secrets))
        if clashing:
            raise InvalidRequest(
                "connection.secrets",
                f"{', '.join(clashing)}: agent {agent.name!r} has secret(s) of these names in agents.toml",
            )
        if self.connection_secrets is None:
            raise InvalidRequest("connection.secrets", "this deployment keeps no connection secrets")
        assert task.execution_metadata is not None  # `admit_task` required its task_execution_id
        scope = task.execution_metadata.task_execution_id.node_execution_id.execution_id
        return self.connection_secrets.put(
            agent.name,
            scope.project,
            scope.domain,
            names,
            values,
            agent.settings.execution_timeout + agent.settings.end_within,
        )

    def _start_execution(
        self,
        agent: str,
        task_id: str,
        request: dict[str, Any],
        settings: AgentSettings,
        flyte2_request: dict[str, Any] | None = None,
        connection_secret: str | None = None,
    ) -> None:
        """Start the task's execution. Its input carries `request` (Flyte 1's, as JSON), a Flyte 2
        connector's `flyte2_request` too, each inline or in the payload bucket when large, and the name
        of the task's connection secret."""
        state_machine_arn = f"{self.state_machine_arn_prefix}{agent}"
        execution = execution_arn(state_machine_arn, task_id)
        # Two requests share the state's room.
        limit = STATE_PAYLOAD_LIMIT if flyte2_request is None else STATE_PAYLOAD_LIMIT // 2
        request_json, request_ref = self.payloads.offload(
            payload_key("requests", agent, task_id), request, limit
        )
        # Every task ends: by its execution's timeout, and if its cleanup fails, by `end_within` after that.
        end_by = time.time() + settings.execution_timeout + settings.end_within
        self.table.create(
            AsyncTask(
                task_id,
                agent,
                execution_arn=execution,
                end_within=settings.end_within,
                end_by=end_by,
            )
        )
        execution_input: TaskState = {"task_id": task_id, "agent": agent}
        if request_ref:
            execution_input["request_ref"] = request_ref
        else:
            execution_input["request"] = request_json
        if flyte2_request is not None:
            flyte2_json, flyte2_ref = self.payloads.offload(
                payload_key("requests", agent, f"{task_id}-flyte2"), flyte2_request, limit
            )
            if flyte2_ref:
                execution_input["flyte2_request_ref"] = flyte2_ref
            else:
                execution_input["flyte2_request"] = flyte2_json
        if connection_secret:
            execution_input["connection_secret"] = connection_secret
        try:
            with aws.transient_errors_as_unavailable("Step Functions"):
                self._sfn.start_execution(
                    stateMachineArn=state_machine_arn,
                    name=task_id,
                    input=json.dumps(execution_input, separators=(",", ":")),
                )
        except self._sfn.exceptions.ExecutionAlreadyExists:
            pass  # a repeated create: the task's one execution runs already (or ran)

    def _sensor_registration(self, agent: RegisteredAgent) -> SensorRegistration:
        if self.sensor_targets is None:
            raise InvalidRequest("template.type", "this deployment has no sensor schedules configured")
        return SensorRegistration(
            schedules=self._schedules(agent.name),
            expression=agent.settings.schedule,
            # The alias of a SnapStart poke function: every scheduled poke restores its snapshot.
            poke_function_arn=self.sensor_targets.function_arn_prefix
            + invocable_name(
                agent_function_name(self.deployment, agent.name, "poke"), agent.settings.snapstart
            ),
            scheduler_role_arn=self.sensor_targets.scheduler_role_arn,
            lambda_client=self._lambda,
        )

    def _schedules(self, agent: str) -> SensorSchedules:
        return SensorSchedules.of_agent(self.deployment, agent, self._scheduler)

    def get(self, task_id: str) -> agent_pb2.GetTaskResponse:
        record = self.table.get(task_id)
        outputs_json = None
        custom_info = dict(record.custom_info)
        log_links = list(record.log_links)
        log_group = agent_log_group(self.deployment, record.agent)
        # What Flyte's UI shows: where the task runs, and what it has cost so far.
        if isinstance(record, SensorTask):
            custom_info |= {"pokes": record.pokes}
            log_links.append(log_group_link(self.region, log_group))
        else:
            outputs_json = record.outputs
            if outputs_json is None and record.outputs_ref:
                outputs_json = self.payloads.get_json(record.outputs_ref)
            if record.execution_arn:
                custom_info |= {
                    "execution_arn": record.execution_arn,
                    "polls": record.polls,
                    "state_transitions": state_transitions(record),
                }
                log_links += task_links(record.execution_arn, log_group)
                # The earlier executions of its chain, newest first: their histories hold the earlier polls.
                for number, earlier in reversed(list(enumerate(record.earlier_executions, start=1))):
                    link = execution_link(earlier)
                    log_links.append(replace(link, name=f"Step Functions execution {number}"))
        resource = to_resource_message(
            record.phase,
            record.message,
            log_links,
            custom_info,
            literal_map_from_json(outputs_json) if outputs_json is not None else None,
        )
        return agent_pb2.GetTaskResponse(resource=resource)

    def logs(self, task_id: str, token: str = "", limit: int = MAX_LINES) -> LogPage:
        """A page of the task's own log lines (`runtime.task_logs`), after `token` (the previous page's)."""
        record = self.table.get(task_id)
        return self._logs.page(record.agent, task_id, token, limit)

    def metrics(self, task_id: str, queries: list[str]) -> list[dict[str, Any]]:
        """The task's measures (`runtime.task_metrics`), as `ExecutionMetricResult`s in protobuf JSON."""
        check_queries(queries)
        record = self.table.get(task_id)
        memory = self.registry.by_name(record.agent).settings.memory
        return metric_results(task_id, measure(record, memory, self._sfn), queries)

    def delete(self, task_id: str) -> None:
        """Stop the task: its execution (finalize then runs the agent's delete, once), or its schedule.

        Idempotent, as Flyte's delete is: propeller retries an abort that failed every round and gives up
        after `max-workflow-retries` (10) rounds (flytepropeller/pkg/controller/handler.go). A task that is
        unknown (never created here, or expired from the table) has nothing left to stop: a success.
        """
        try:
            record = self.table.get(task_id)
        except TaskNotFound:
            return
        if record.phase.is_terminal or record.job_done or record.cleanup is not None:
            return
        if isinstance(record, SensorTask):
            stop_sensor_task(self.table, self._schedules(record.agent), record)
            return
        if not self.table.request_abort(task_id):
            return  # it ended (or its cleanup began) since we read it
        # The task's current execution: a chain (continue as new) may have moved on since we read it.
        record = self.table.get(task_id, AsyncTask)
        stopped = record.execution_arn is not None and self._stop_execution(record.execution_arn)
        if stopped or record.metadata is not None:
            # A job exists and its execution was not found: the chain's next one is starting. Its first
            # get finds the abort requested and ends the task (and the status change runs delete, once).
            return
        # Never started, so no job exists: end the task here.
        if self.table.claim_cleanup(task_id, AsyncTask) is not None:
            self.table.finish_cleanup(task_id, Phase.ABORTED, "aborted before it started")

    def _stop_execution(self, execution: str) -> bool:
        """Stop the execution; False if it does not exist."""
        try:
            with aws.transient_errors_as_unavailable("Step Functions"):
                self._sfn.stop_execution(
                    executionArn=execution, error="Aborted", cause="DeleteTask was called"
                )
        except self._sfn.exceptions.ExecutionDoesNotExist:
            return False
        return True

    def list_agents(self) -> agent_pb2.ListAgentsResponse:
        return agent_pb2.ListAgentsResponse(
            agents=[
                agent_pb2.Agent(
                    name=agent.name,
                    is_sync=agent.kind is AgentKind.SYNC,
                    supported_task_types=[agent.task_type],
                    supported_task_categories=[
                        agent_pb2.TaskCategory(name=agent.task_type, version=agent.version)
                    ],
                )
                for agent in self.registry
            ]
        )
