"""The async agent's three Lambdas, as the state machine calls them: create, get (one poll) and delete.

State machine state (`TaskState`): `{"task_id", "agent", "request" | "request_ref", "job": StepResult}`.
`request` is the `CreateTaskRequest` in protobuf JSON, or `request_ref` an `s3://` reference when it is large.
A Flyte 2 connector's task also carries the executor's own request (`flyte2_request` | `flyte2_request_ref`)
and the name of its connection secret (`connection_secret`, see `serverless_agents.connection_secrets`).

Nothing leaks a job: create reuses a job an earlier attempt recorded, and deletes the job it made if it
cannot record it (or the task was aborted meanwhile); delete runs the agent's delete exactly once, guarded
by the tasks table, and never for a job that ended on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from flyteidl.admin import agent_pb2

from serverless_agents import wire
from serverless_agents.agent import Phase, Resource
from serverless_agents.exceptions import InvalidRequest, LiteralConversionError
from serverless_agents.failures import one_line, phase_for_error_name
from serverless_agents.payloads import ITEM_PAYLOAD_LIMIT, payload_key
from serverless_agents.runtime.boundary import call_agent
from serverless_agents.runtime.translate import encode_outputs, task_context

if TYPE_CHECKING:
    from serverless_agents.agent import AsyncAgentBase, ResourceMetadata, TaskContext
    from serverless_agents.manifest import PollBackoff
    from serverless_agents.payloads import PayloadStore
    from serverless_agents.tasks_table import TasksTable


class StepResult(TypedDict):
    """What create and get return to the state machine: its `$.job` (the Create and Get states'
    ResultSelector keeps these keys), which the next Get receives."""

    metadata: str
    polls: int
    wait_seconds: int
    done: bool
    phase: str
    message: str


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
        name = str(error.get("Error", "Unknown"))
        cause = str(error.get("Cause", ""))
        try:
            detail = json.loads(cause)
            cause = str(detail.get("errorMessage", cause)) if isinstance(detail, dict) else cause
        except ValueError:
            pass
        return cls(phase_for_error_name(name), one_line(f"{name}: {cause}" if cause else name))


class AsyncAgentSteps:
    def __init__(
        self,
        agent: AsyncAgentBase[Any],
        backoff: PollBackoff,
        table: TasksTable,
        payloads: PayloadStore,
    ) -> None:
        self.agent = agent
        self.backoff = backoff
        self.table = table
        self.payloads = payloads

    def create(self, state: TaskState) -> StepResult:
        task_id = state["task_id"]
        record = self.table.get(task_id)
        if record.metadata is not None:
            # An earlier attempt created the job and recorded it before failing to answer: reuse it.
            return self._waiting(record.metadata, polls=0, phase=record.phase, message=record.message)
        metadata = call_agent(self.agent.create, self._task(task_id, state))
        metadata_json = metadata.model_dump_json()
        try:
            recorded = self.table.record_progress(
                task_id, Resource(Phase.RUNNING, "job created"), metadata=metadata_json
            )
        except Exception:
            self._delete_quietly(metadata)
            raise
        if not recorded:
            # Aborted while we were creating: cleanup found no job to delete, so delete it here.
            self._delete_quietly(metadata)
            return self._ended(metadata_json, 0, Phase.ABORTED, "aborted during create")
        return self._waiting(metadata_json, polls=0, phase=Phase.RUNNING, message="job created")

    def get(self, state: TaskState) -> StepResult:
        task_id = state["task_id"]
        job = state["job"]
        metadata = self._metadata(job["metadata"])
        polls = int(job["polls"]) + 1
        resource = call_agent(self.agent.get, metadata)
        if not resource.phase.is_terminal:
            if not self.table.record_progress(task_id, resource, polls=polls):
                return self._ended(job["metadata"], polls, Phase.ABORTED, "task ended elsewhere")
            return self._waiting(job["metadata"], polls, resource.phase, resource.message)
        ending, outputs, outputs_ref = self._ending(task_id, state, resource)
        self.table.record_job_finished(task_id, ending, polls=polls, outputs=outputs, outputs_ref=outputs_ref)
        return self._ended(job["metadata"], polls, ending.phase, ending.message)

    def delete(self, task_id: str, reason: CleanupReason) -> bool:
        """Delete the job unless it ended on its own or was cleaned up already; True if delete ran."""
        record = self.table.claim_cleanup(task_id)
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
        if resource.phase is not Phase.SUCCEEDED or resource.outputs is None:
            return resource, None, None
        template = self._request(state).template
        try:
            literal_map = encode_outputs(resource.outputs, template)
        except LiteralConversionError as e:
            failed = f"the agent's outputs do not match the task interface: {e}"
            return replace(resource, phase=Phase.FAILED, message=failed), None, None
        assert literal_map is not None
        outputs, ref = self.payloads.offload(
            payload_key("outputs", state["agent"], task_id), wire.to_dict(literal_map), ITEM_PAYLOAD_LIMIT
        )
        return resource, outputs, ref

    def _waiting(self, metadata: str, polls: int, phase: Phase, message: str) -> StepResult:
        wait = self.backoff.wait_after(polls)
        return StepResult(
            metadata=metadata, polls=polls, wait_seconds=wait, done=False, phase=phase.name, message=message
        )

    @staticmethod
    def _ended(metadata: str, polls: int, phase: Phase, message: str) -> StepResult:
        return StepResult(
            metadata=metadata, polls=polls, wait_seconds=0, done=True, phase=phase.name, message=message
        )

    def _metadata(self, metadata_json: str) -> ResourceMetadata:
        return self.agent.metadata_type.model_validate_json(metadata_json)

    def _task(self, task_id: str, state: TaskState) -> TaskContext:
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
