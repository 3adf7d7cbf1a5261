"""The async agent's three Lambdas, as the state machine calls them: create, get (one poll) and delete.

State machine state (`TaskState`): `{"task_id", "agent", "request" | "request_ref", "job": StepResult}`.
`request` is the `CreateTaskRequest` in protobuf JSON, or `request_ref` an `s3://` reference when it is large.
A Flyte 2 connector's task also carries the executor's own request (`flyte2_request` | `flyte2_request_ref`)
and the name of its connection secret (`connection_secret`, see `serverless_agents.aws.connection_secrets`).

A task is a chain of executions (continue as new): an execution's history holds 25,000 events at most, so
after the agent's `polls_per_execution` gets the get names a successor (`job.continues`, `job.successor`),
points the tasks table at it (conditionally: the task must still run and not be aborted), and the state
machine's Continue state starts it with the whole state as its input; the successor starts at Wait, not
Create. `job` carries the chain through: the execution's number, the polls done before it began, and the
task's deadline (its start plus `execution_timeout`): a get past it raises `TaskTimedOut`, so the task's
timeout counts from its start, whatever the number of executions.

Events end the wait (an agent that declares them, `serverless_agents.deployment.job_events`): the state
machine waits in its Listen state, a `.waitForTaskToken` invocation of the get function (`listen`) that stores
the wait's token in the task's record and ends at the poll wait's timeout, or at once when the get function,
receiving a matching EventBridge event (`wake`), sends the token back. Every hand-over is a conditional write
on the task's record (`TasksTable.wake`, `TasksTable.listen`): the get runs only in the state machine, one at
a time, and an event that arrives during a get ends the next wait at once (`job.wakes`, the count of events
the get saw before it asked the agent). docs/deploy.md tells why this design.

Nothing leaks a job: create reuses a job an earlier attempt recorded, and deletes the job it made if it
cannot record it (or the task was aborted meanwhile); delete runs the agent's delete exactly once, guarded
by the tasks table, and never for a job that ended on its own.

flyteidl is imported where a message is built (the request, for create and for a job's outputs): a get
that finds the job still running, and a delete, move JSON only and load no protobuf.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from serverless_agents import aws
from serverless_agents.agent import Phase, Resource
from serverless_agents.aws.payloads import ITEM_PAYLOAD_LIMIT, payload_key
from serverless_agents.aws.tasks_table import AsyncTask, wake_value
from serverless_agents.deployment.compiled_manifest import DEFAULT_POLLS_PER_EXECUTION
from serverless_agents.deployment.naming import (
    chain_execution_name,
    execution_arn,
    state_machine_of_execution,
)
from serverless_agents.exceptions import InvalidRequest, TaskTimedOut
from serverless_agents.flyte import wire
from serverless_agents.runtime.boundary import call_agent
from serverless_agents.runtime.endings import one_line, phase_for_error_name

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from flyteidl.admin import agent_pb2
    from flyteidl.core.literals_pb2 import LiteralMap
    from flyteidl.core.tasks_pb2 import TaskTemplate
    from mypy_boto3_stepfunctions import SFNClient

    from serverless_agents.agent import AsyncAgentBase, ResourceMetadata, TaskContext
    from serverless_agents.aws.payloads import PayloadStore
    from serverless_agents.aws.tasks_table import TasksTable
    from serverless_agents.deployment.job_events import JobEvents
    from serverless_agents.deployment.manifest import PollBackoff


class StepResult(TypedDict):
    """What create and get return to the state machine: its `$.job` (the Create and Get states'
    ResultSelector keeps these keys), which the next Get receives."""

    metadata: str
    polls: int
    wait_seconds: int
    done: bool
    phase: str
    message: str
    #: The chain: this execution's number (1, the first), the gets done before it began, the time the
    #: task must end by (0: no bound but the execution's own timeout), and whether it continues now as
    #: the execution named `successor` ("" otherwise).
    execution: int
    first_poll: int
    deadline: float
    continues: bool
    successor: str
    #: The events that had concerned the task when this step asked the agent (`TasksTable.wake`): the
    #: next wait ends at once if there were more since.
    wakes: int


class ListenEvent(TypedDict):
    """The Listen state's invocation (`.waitForTaskToken`): the wait's token and the state's `job`."""

    task_id: str
    wait_token: str
    job: StepResult


@dataclass(frozen=True)
class Chain:
    """Where an execution stands in its task's chain (`StepResult`'s chain fields)."""

    execution: int = 1
    first_poll: int = 0
    deadline: float = 0.0

    @classmethod
    def of(cls, job: StepResult) -> Chain:
        # `get` fills every field; a job from before the chain existed (a deploy mid-task) has none of them.
        return cls(int(job.get("execution", 1)), int(job.get("first_poll", 0)), float(job.get("deadline", 0)))

    def successor(self, polls: int) -> Chain:
        return replace(self, execution=self.execution + 1, first_poll=polls)


class TaskState(TypedDict):
    """The execution's state: its input (`runtime.service` starts it), and `job` once Create answered."""

    task_id: str
    agent: str
    request: NotRequired[dict[str, Any]]
    request_ref: NotRequired[str]
    #: A Flyte 2 connector's: the executor's own CreateTaskRequest (protobuf JSON, without secret values).
    flyte2_request: NotRequired[dict[str, Any]]
    flyte2_request_ref: NotRequired[str]
    #: The Secrets Manager secret holding the executor's `Connection.secrets` (its name, never a value).
    connection_secret: NotRequired[str]
    job: NotRequired[StepResult]


class CaughtError(TypedDict, total=False):
    """What a Catch puts at its ResultPath: the error's name and cause."""

    Error: str
    Cause: str


class DeleteEvent(TypedDict):
    """The delete function's event: from the Cleanup state (`error`, as Catch put it) or finalize (`phase`
    and `message`, from `endings`)."""

    task_id: str
    error: NotRequired[CaughtError]
    phase: NotRequired[str]
    message: NotRequired[str]


@dataclass(frozen=True)
class CleanupReason:
    phase: Phase
    message: str

    @classmethod
    def from_event(cls, event: DeleteEvent) -> CleanupReason:
        """From the Cleanup state (`error`: Error and Cause, as Catch puts them) or finalize (`phase`)."""
        if "phase" in event:
            return cls(Phase[event["phase"]], str(event.get("message", "")))
        error: CaughtError = event.get("error") or {}
        cause = str(error.get("Cause", ""))
        try:
            detail = json.loads(cause)
            cause = str(detail.get("errorMessage", cause)) if isinstance(detail, dict) else cause
        except ValueError:
            pass
        return cls.of_error(str(error.get("Error", "Unknown")), cause)

    @classmethod
    def of_error(cls, name: str, message: str) -> CleanupReason:
        """How a task ends when a step raised the error `name` (Lambda's `errorType`, what Catch matches)
        with `message` (its `errorMessage`), its retries run out: the phase its name says, one line."""
        return cls(phase_for_error_name(name), one_line(f"{name}: {message}" if message else name))


def job_ending(
    resource: Resource, template: Callable[[], TaskTemplate]
) -> tuple[Resource, LiteralMap | None]:
    """What the task ends with when a get reports `resource` (terminal): a succeeded job's outputs
    encoded with the task's interface (outputs that do not match it fail the task); no other ending
    keeps outputs. `template()` is called only when there are outputs (it may read a payload)."""
    if resource.phase is not Phase.SUCCEEDED or resource.outputs is None:
        return resource, None
    # Loaded by a job's last get only: the literal conversions are most of what a step would import.
    from serverless_agents.runtime.translate import checked_outputs

    return checked_outputs(resource, template())


class AsyncAgentSteps:
    def __init__(
        self,
        agent: AsyncAgentBase[Any],
        backoff: PollBackoff,
        table: TasksTable,
        payloads: PayloadStore,
        sfn_client: SFNClient,
        *,
        polls_per_execution: int = DEFAULT_POLLS_PER_EXECUTION,
        execution_timeout: int | None = None,
        name: str = "",
        events: JobEvents | None = None,
    ) -> None:
        self.agent = agent
        #: The manifest's name of the agent, which its tasks' keys start with; its declared events (None:
        #: polled only) and the Step Functions client that ends a wait.
        self.name = name
        self.events = events
        self._sfn = sfn_client
        self.backoff = backoff
        self.table = table
        self.payloads = payloads
        self.polls_per_execution = polls_per_execution
        self.execution_timeout = execution_timeout

    def create(self, state: TaskState) -> StepResult:
        task_id = state["task_id"]
        record = self.table.get(task_id, AsyncTask)
        # The task's timeout counts from its start (the api's create), across every execution of its chain.
        chain = Chain(deadline=record.created_at + self.execution_timeout if self.execution_timeout else 0.0)
        if record.metadata is not None:
            # An earlier attempt created the job and recorded it before failing to answer: reuse it.
            return self._waiting(record.metadata, 0, record.phase, record.message, chain, record.wakes)
        metadata = call_agent(self.agent.create, self._task(task_id, state))
        metadata_json = metadata.model_dump_json()
        try:
            recorded = self.table.record_progress(
                task_id,
                Resource(Phase.RUNNING, "job created"),
                metadata=metadata_json,
                wake=self._wake(metadata),
            )
        except Exception:
            self._delete_quietly(metadata)
            raise
        if not recorded:
            # Aborted while we were creating: cleanup found no job to delete, so delete it here.
            self._delete_quietly(metadata)
            return self._ended(metadata_json, 0, Phase.ABORTED, "aborted during create")
        # No event can have named a job that did not exist when this step read the task.
        return self._waiting(metadata_json, 0, Phase.RUNNING, "job created", chain, record.wakes)

    def get(self, state: TaskState) -> StepResult:
        task_id = state["task_id"]
        job = state["job"]
        chain = Chain.of(job)
        metadata = self._metadata(job["metadata"])
        polls = int(job["polls"]) + 1
        if chain.deadline and time.time() > chain.deadline:
            raise TaskTimedOut(
                f"timed out: the task ran past its execution_timeout ({self.execution_timeout} s from its "
                f"start) after {polls - 1} polls in {chain.execution} execution(s)"
            )
        # The events so far, read before the agent is asked: one arriving after this read is one the
        # agent's answer may not reflect, and it ends the next wait at once (`listen`).
        wakes = self.table.get(task_id, AsyncTask).wakes if self.events is not None else 0
        resource = call_agent(self.agent.get, metadata)
        if not resource.phase.is_terminal:
            record = self.table.record_progress(task_id, resource, polls=polls)
            if record is None:
                return self._ended(job["metadata"], polls, Phase.ABORTED, "task ended elsewhere")
            if polls - chain.first_poll >= self.polls_per_execution:
                successor = chain.successor(polls)
                return self._continue(record, job["metadata"], polls, resource, successor, wakes)
            return self._waiting(job["metadata"], polls, resource.phase, resource.message, chain, wakes)
        ending, outputs, outputs_ref = self._ending(task_id, state, resource)
        self.table.record_job_finished(task_id, ending, polls=polls, outputs=outputs, outputs_ref=outputs_ref)
        return self._ended(job["metadata"], polls, ending.phase, ending.message)

    def listen(self, event: ListenEvent) -> None:
        """The Listen state: park the wait's token where an event finds it, or, if an event came since the
        last get read the count, end the wait now. The state's timeout (the poll wait) ends it otherwise."""
        task_id, token = event["task_id"], event["wait_token"]
        # A job from an execution started before events were declared carries no count: 0.
        if self.table.listen(task_id, token, int(event["job"].get("wakes", 0))):
            self._end_wait(token)

    def wake(self, event: Mapping[str, Any]) -> int:
        """An EventBridge event matched one of the agent's rules: end the wait of each running task whose
        job it names (its get runs now), or, for one in the middle of a get, its next wait. Returns the
        waits ended."""
        if self.events is None:
            raise InvalidRequest("event", f"agent {self.name!r} declares no events: no rule should target it")
        woken = 0
        for job_id in self.events.job_ids(event):
            for task_id in self.table.tasks_waking(self.name, job_id):
                token = self.table.wake(task_id)
                if token is not None and self._end_wait(token):
                    woken += 1
        return woken

    def _end_wait(self, token: str) -> bool:
        """End the wait holding `token` (its get runs next); False if it ended already (timed out, or a
        repeated event sent it first): the get that follows it sees the event all the same."""
        client = self._sfn
        gone = (
            client.exceptions.TaskTimedOut,
            client.exceptions.TaskDoesNotExist,
            client.exceptions.InvalidToken,
        )
        try:
            with aws.transient_errors_as_unavailable("Step Functions"):
                client.send_task_success(taskToken=token, output='{"woken":true}')
        except gone:
            return False
        return True

    def _wake(self, metadata: ResourceMetadata) -> str | None:
        """The `waking` index's key of this job, when the agent declares events and names the job."""
        if self.events is None:
            return None
        job_id = self.agent.job_id(metadata)
        return wake_value(self.name, job_id) if job_id else None

    def delete(self, task_id: str, reason: CleanupReason) -> bool:
        """Delete the job unless it ended on its own or was cleaned up already; True if delete ran."""
        record = self.table.claim_cleanup(task_id, AsyncTask)
        if record is None:
            return False
        if record.abort_requested and reason.phase is not Phase.ABORTED:
            # Flyte aborted the task: a failure racing the abort (a step failing as StopExecution lands)
            # does not turn Flyte's abort into a task failure.
            reason = CleanupReason(Phase.ABORTED, "aborted: DeleteTask was called")
        if record.metadata is not None:
            try:
                call_agent(self.agent.delete, self._metadata(record.metadata))
            except Exception as e:
                self.table.release_cleanup(task_id, reason.phase, reason.message, " ".join(str(e).split()))
                raise
        self.table.finish_cleanup(task_id, reason.phase, reason.message)
        return record.metadata is not None

    def _ending(
        self, task_id: str, state: TaskState, resource: Resource
    ) -> tuple[Resource, dict[str, Any] | None, str | None]:
        """The job's last report, and its outputs encoded: inline `LiteralMap` JSON, or an s3:// reference."""
        resource, literal_map = job_ending(resource, lambda: self._request(state).template)
        if literal_map is None:
            return resource, None, None
        outputs, ref = self.payloads.offload(
            payload_key("outputs", state["agent"], task_id), wire.to_dict(literal_map), ITEM_PAYLOAD_LIMIT
        )
        return resource, outputs, ref

    def _continue(
        self, record: AsyncTask, metadata: str, polls: int, resource: Resource, successor: Chain, wakes: int
    ) -> StepResult:
        """Point the task (`record`, as the progress write returned it) at its next execution, which the
        state machine's Continue state then starts."""
        name = chain_execution_name(record.task_id, successor.execution)
        if record.execution_arn is None or not self.table.continue_execution(
            record, execution_arn(state_machine_of_execution(record.execution_arn), name)
        ):
            return self._ended(metadata, polls, Phase.ABORTED, "task ended elsewhere")
        result = self._waiting(metadata, polls, resource.phase, resource.message, successor, wakes)
        result["continues"] = True
        result["successor"] = name
        return result

    def _waiting(
        self, metadata: str, polls: int, phase: Phase, message: str, chain: Chain, wakes: int
    ) -> StepResult:
        wait = self.backoff.wait_after(polls)
        return StepResult(
            metadata=metadata,
            polls=polls,
            wait_seconds=wait,
            done=False,
            phase=phase.name,
            message=message,
            execution=chain.execution,
            first_poll=chain.first_poll,
            deadline=chain.deadline,
            continues=False,
            successor="",
            wakes=wakes,
        )

    @staticmethod
    def _ended(metadata: str, polls: int, phase: Phase, message: str) -> StepResult:
        return StepResult(
            metadata=metadata,
            polls=polls,
            wait_seconds=0,
            done=True,
            phase=phase.name,
            message=message,
            execution=0,
            first_poll=0,
            deadline=0.0,
            continues=False,
            successor="",
            wakes=0,
        )

    def _metadata(self, metadata_json: str) -> ResourceMetadata:
        return self.agent.metadata_type.model_validate_json(metadata_json)

    def _task(self, task_id: str, state: TaskState) -> TaskContext:
        from serverless_agents.runtime.translate import task_context

        flyte2_data = self._payload(state, "flyte2_request", required=False)
        flyte2_request = None
        if flyte2_data is not None:
            # Only a Flyte 2 connector's tasks carry one, and only its bundle has flyteidl2.
            from flyteidl2.connector import connector_pb2

            flyte2_request = wire.from_dict(
                connector_pb2.CreateTaskRequest, flyte2_data, field="flyte2_request"
            )
        return task_context(
            task_id,
            self._request(state),
            flyte2_request=flyte2_request,
            connection_secret=state.get("connection_secret"),
        )

    def _request(self, state: TaskState) -> agent_pb2.CreateTaskRequest:
        from flyteidl.admin import agent_pb2

        data = self._payload(state, "request")
        return wire.from_dict(agent_pb2.CreateTaskRequest, data, field="request")

    def _payload(self, state: TaskState, key: str, *, required: bool = True) -> Any:
        """`state[key]`, or the payload `state[key + "_ref"]` names."""
        data = state.get(key)
        ref = state.get(f"{key}_ref")
        if data is None and ref:
            data = self.payloads.get_json(str(ref))
        if data is None and required:
            raise InvalidRequest(key, f"the state carries neither {key} nor {key}_ref")
        return data

    def _delete_quietly(self, metadata: ResourceMetadata) -> None:
        try:
            call_agent(self.agent.delete, metadata)
        except Exception:
            import logging

            logging.getLogger(__name__).exception("could not delete job %s", metadata.model_dump_json())
