"""The tasks table (DynamoDB): one item per task, the readable projection of its progress.

The state machine is the source of truth for an async task; its Lambdas write here and GetTask reads.
Every write is conditional, so late or repeated writers cannot undo an ending:

- a final record never changes: every ending (`record_job_finished`, `finish_cleanup`, `end_unconfirmed`)
  writes the phase, message, links and outputs in one write, together with the final marker `ended_at`,
  on the condition that the marker is absent, so only the first ending wins; every other write (progress,
  pokes, abort requests, cleanup claims and releases) carries the same condition, so nothing written after
  an ending reaches the record;
- progress (`record_progress`) is written only while the task is open;
- the job's own ending (`record_job_finished`) sets `job_done`, after which cleanup never runs;
- cleanup is claimed once (`claim_cleanup`), so the agent's delete runs exactly once, and released
  (`release_cleanup`) if delete itself failed, so a retry may claim it again;
- a task whose cleanup kept failing past its bound is ended by `end_unconfirmed`, after which nobody
  claims cleanup again.

Every task ends. An async task carries `end_by`, the time it must be final by: at creation its
execution_timeout plus its agent's `end_within`, lowered to `end_within` after the first cleanup claim.
While it is open it also carries `open` (its kind); every ending removes it. The sparse index `open`
(key `open`, sort key `end_by`) holds open tasks only, so the sweeper finds those past their bound with
one query (`overdue`), whatever happened to their executions.

A waiting sensor task carries `watch` (what it waits for, e.g. `s3://bucket/key`), indexed by the sparse
global secondary index `watching`: an event finds the tasks it concerns with one query, never a scan.
Every ending removes `watch`, so only waiting tasks are in the index.

An async task whose agent declares events (`serverless_agents.deployment.job_events`) carries `wake`, its
job's id as events name it, indexed by the sparse index `waking`: an event finds the task its job belongs to
with one query. Its wait is woken through the table, by conditional writes only (docs/deploy.md, "Events end
the wait"): `wakes` counts the events that concerned it, `wake_token` is the Step Functions task token of the
wait in progress. Each event adds one to `wakes` and takes the token in the same write (`wake`: only one
sender per token); a wait stores its token only if `wakes` is still what the last get saw (`listen`), so an
event that came during that get is not lost: the wait ends at once instead. Every ending removes `wake` and
`wake_token`.

Each agent is a tenant of the table, and IAM keeps it to its own items by their keys' first characters
(`dynamodb:LeadingKeys`): a task id starts with its agent's name (`identity.task_id_from`), and so does
the stored `watch` (`<agent>_s3://bucket/key`, the index's partition key) and `wake`
(`<agent>_<job id>`), so a query of either index is scoped like the agent's reads and writes.
`SensorTask.watch` is the sensor's own key; the table adds and strips the agent's prefix.

A task reads back typed by its item's `kind` (`TaskRecord`): an `AsyncTask` holds its job's metadata,
outputs, executions, polls and cleanup's history, a `SensorTask` its request, watch, deadline, schedule
and pokes; both hold what every task does (phase, message, bound, ending). Both kinds share one item
format: each field is one attribute, written once it has a value and read as its default while absent,
so an item written by an earlier version loads as it is.

Structured fields (log links, custom info, metadata, outputs) are stored as JSON strings: DynamoDB's
number type would turn floats into Decimals, and nothing queries inside them.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, TypeVar, overload

from serverless_agents import aws
from serverless_agents.agent import AgentKind, LogLink, Phase
from serverless_agents.exceptions import TaskNotFound
from serverless_agents.flyte.identity import agent_key_prefix
from serverless_agents.runtime.settings import DEFAULT_TASK_TTL_DAYS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient

    from serverless_agents.agent import Resource

#: The final marker: the time the task's one ending was written. Its absence is part of every condition.
ENDED = "ended_at"
_NOT_ENDED = f"attribute_exists(id) AND attribute_not_exists({ENDED})"
_OPEN = f"{_NOT_ENDED} AND attribute_not_exists(job_done) AND attribute_not_exists(cleanup)"
# Progress of an async task's job: also not once Flyte asked to abort it, so that a get of an execution
# the abort's StopExecution missed (a successor in the chain starting just then) ends the task instead.
_RUNNING = f"{_OPEN} AND attribute_not_exists(abort_requested)"
# Only the holder of the cleanup claim finishes or releases it; `cleanup` is "claimed" while it runs.
_CLAIMED = f"{_NOT_ENDED} AND cleanup = :claimed"
_NAME = re.compile(r"#(\w+)")
WATCH_INDEX = "watching"
OPEN_INDEX = "open"
WAKE_INDEX = "waking"
#: What every ending removes: the sparse indexes' keys of a waiting task, and a wait's token.
_WAITING = ("watch", "open", "wake", "wake_token")


#: A DynamoDB key attribute's type: string or number.
AttributeType = Literal["S", "N"]


@dataclass(frozen=True)
class Key:
    """A key attribute of the table or of an index."""

    name: str
    type: AttributeType


@dataclass(frozen=True)
class Index:
    """A global secondary index of the tasks table: its keys, and what it projects."""

    name: str
    partition: Key
    sort: Key | None = None
    projection: Literal["KEYS_ONLY", "ALL"] = "KEYS_ONLY"

    @property
    def keys(self) -> tuple[Key, ...]:
        return (self.partition, self.sort) if self.sort else (self.partition,)


@dataclass(frozen=True)
class TableSchema:
    """The tasks table's schema, in one place: the local stack creates it from `table_definition`, and
    infra/cdk's `TasksTable` construct reads the same fields; neither parses the other's form."""

    partition: Key
    indexes: tuple[Index, ...]
    #: The attribute holding an item's expiry (epoch seconds), which DynamoDB's TTL deletes it by.
    ttl_attribute: str
    #: On demand: the one mode both readers make (provisioned would need capacities for the table and
    #: each index).
    billing: Literal["PAY_PER_REQUEST"] = "PAY_PER_REQUEST"

    @property
    def attributes(self) -> dict[str, AttributeType]:
        """Every key attribute of the table and its indexes, with its type, each once."""
        keys = (self.partition, *(key for index in self.indexes for key in index.keys))
        return {key.name: key.type for key in keys}


#: The table's schema: one item per task by its id; indexes, as the CDK construct and the local stack both
#: make them: the waiting sensor tasks by what they watch, the open tasks by kind, oldest bound first, and
#: the running async tasks by the id their job's events name.
SCHEMA = TableSchema(
    partition=Key("id", "S"),
    indexes=(
        Index(WATCH_INDEX, Key("watch", "S")),
        Index(OPEN_INDEX, Key("open", "S"), Key("end_by", "N")),
        Index(WAKE_INDEX, Key("wake", "S")),
    ),
    ttl_attribute="expires_at",
)
_TTL = SCHEMA.ttl_attribute


def table_definition(table_name: str) -> dict[str, Any]:
    """`CreateTable`'s arguments for the tasks table (the local stack's; TTL is `UpdateTimeToLive`'s)."""
    return {
        "TableName": table_name,
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": type_} for name, type_ in SCHEMA.attributes.items()
        ],
        "KeySchema": [{"AttributeName": SCHEMA.partition.name, "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": key.name, "KeyType": key_type}
                    for key, key_type in zip(index.keys, ("HASH", "RANGE"), strict=False)
                ],
                "Projection": {"ProjectionType": index.projection},
            }
            for index in SCHEMA.indexes
        ],
        "BillingMode": SCHEMA.billing,
    }


def create_table(client: DynamoDBClient, table_name: str) -> None:
    """Create the tasks table with its expiry on (the local stack's; on AWS, the CDK construct's)."""
    client.create_table(**table_definition(table_name))
    client.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": _TTL}
    )


def wake_value(agent: str, job_id: str) -> str:
    """The stored `wake` of `agent`'s task whose job is `job_id`: the `waking` index's key, agent first."""
    return agent_key_prefix(agent) + job_id


def watch_value(agent: str, key: str) -> str:
    """The stored `watch` of `agent`'s task waiting for `key`: the `watching` index's key, agent first."""
    return agent_key_prefix(agent) + key


@dataclass
class _Record:
    """What every task's item holds, whatever its kind."""

    #: The item's `kind`: which of the task kinds below it is.
    kind: ClassVar[AgentKind]

    task_id: str
    agent: str
    phase: Phase = Phase.QUEUED
    message: str = ""
    log_links: list[LogLink] = field(default_factory=list)
    custom_info: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    version: int = 0
    job_done: bool = False
    cleanup: str | None = None
    #: The agent's `end_within` (s), and when the task must be final by (the `open` index's sort key).
    end_within: int | None = None
    end_by: float | None = None
    #: When the task's ending was written (the final marker); None while it is open.
    ended_at: float | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Self:
        """The task an item of this kind holds (`record_from_item` reads any item)."""
        return cls(**_Record._fields(item), **cls._fields(item))

    @staticmethod
    def _fields(item: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor's arguments for this class's own fields, from an item."""
        return {
            "task_id": item["id"]["S"],
            "agent": item["agent"]["S"],
            "phase": Phase[item["phase"]["S"]],
            "message": _string(item, "message") or "",
            "log_links": [LogLink(**link) for link in json.loads(_string(item, "log_links") or "[]")],
            "custom_info": json.loads(_string(item, "custom_info") or "{}"),
            "created_at": float(item["created_at"]["N"]),
            "updated_at": float(item["updated_at"]["N"]),
            "version": int(item["version"]["N"]),
            "job_done": item.get("job_done", {}).get("BOOL", False),
            "cleanup": _string(item, "cleanup"),
            "end_within": int(item["end_within"]["N"]) if "end_within" in item else None,
            "end_by": _number(item, "end_by"),
            "ended_at": _number(item, ENDED),
        }


@dataclass
class AsyncTask(_Record):
    """An async agent's task: its job, the executions of its state machine that poll it, its cleanup."""

    kind: ClassVar[AgentKind] = AgentKind.ASYNC

    #: The agent's resource metadata, as its pydantic model's JSON.
    metadata: str | None = None
    #: The outputs `LiteralMap` in protobuf JSON, or `outputs_ref` (s3://) when too large for an item.
    outputs: dict[str, Any] | None = None
    outputs_ref: str | None = None
    #: The current execution of the task's chain (continue as new), and the earlier ones, oldest first.
    execution_arn: str | None = None
    earlier_executions: list[str] = field(default_factory=list)
    #: How many times the agent's get ran: the state machine's cost so far follows from it.
    polls: int = 0
    #: Once a delete failed: why cleanup ran (the phase and message the task ends with), the delete's
    #: last error, and how many times cleanup was claimed.
    ending_phase: Phase | None = None
    ending_message: str = ""
    cleanup_error: str = ""
    cleanup_attempts: int = 0
    #: DeleteTask was called: whatever cleanup ends the task afterwards, it ends ABORTED.
    abort_requested: bool = False
    #: Tasks whose agent declares events: the events that concerned the task so far.
    wakes: int = 0

    @staticmethod
    def _fields(item: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "metadata": _string(item, "metadata"),
            "outputs": json.loads(_string(item, "outputs") or "null"),
            "outputs_ref": _string(item, "outputs_ref"),
            "execution_arn": _string(item, "execution_arn"),
            "earlier_executions": json.loads(_string(item, "earlier_executions") or "[]"),
            "polls": _count(item, "polls"),
            "ending_phase": Phase[item["ending_phase"]["S"]] if "ending_phase" in item else None,
            "ending_message": _string(item, "ending_message") or "",
            "cleanup_error": _string(item, "cleanup_error") or "",
            "cleanup_attempts": _count(item, "cleanup_attempts"),
            "abort_requested": item.get("abort_requested", {}).get("BOOL", False),
            "wakes": _count(item, "wakes"),
        }


@dataclass
class SensorTask(_Record):
    """A sensor's task: what it waits for, its schedule of pokes, and by when."""

    kind: ClassVar[AgentKind] = AgentKind.SENSOR

    #: The request: inline JSON, or an s3:// reference when too large for an item.
    request: dict[str, Any] | None = None
    request_ref: str | None = None
    #: What the task waits for (the sensor's own key: the table adds and strips the agent's prefix).
    watch: str | None = None
    #: When it times out, its schedule's name, and how many pokes ran and failed in a row.
    deadline: float | None = None
    schedule: str | None = None
    pokes: int = 0
    poke_errors: int = 0

    @staticmethod
    def _fields(item: Mapping[str, Any]) -> dict[str, Any]:
        watch = _string(item, "watch")
        return {
            "request": json.loads(_string(item, "request") or "null"),
            "request_ref": _string(item, "request_ref"),
            "watch": watch.removeprefix(agent_key_prefix(item["agent"]["S"])) if watch else None,
            "deadline": _number(item, "deadline"),
            "schedule": _string(item, "schedule"),
            "pokes": _count(item, "pokes"),
            "poke_errors": _count(item, "poke_errors"),
        }


#: A task as its item holds it: `isinstance` tells the kinds apart, and a field of one kind is not
#: read off the other.
TaskRecord = AsyncTask | SensorTask
#: One of the kinds, as a parameter: `TasksTable.get(task_id, SensorTask)` is a `SensorTask`.
RecordClass = type[AsyncTask] | type[SensorTask]
K = TypeVar("K", bound=_Record)
_KINDS: dict[str, RecordClass] = {cls.kind.value: cls for cls in (AsyncTask, SensorTask)}


def record_from_item(item: Mapping[str, Any]) -> TaskRecord:
    """The task an item holds, typed by the item's `kind`."""
    return _KINDS[item["kind"]["S"]].from_item(item)


def _string(item: Mapping[str, Any], name: str) -> str | None:
    return item[name]["S"] if name in item else None


def _number(item: Mapping[str, Any], name: str) -> float | None:
    return float(item[name]["N"]) if name in item else None


def _count(item: Mapping[str, Any], name: str) -> int:
    return int(item.get(name, {}).get("N", 0))


@dataclass(frozen=True)
class TaskPhase:
    """Where a task stands, as its item says: what the local stack's watcher (`local.task_events`) reads."""

    task_id: str
    agent: str
    phase: Phase
    message: str


class TasksTable:
    def __init__(
        self, table_name: str, *, client: DynamoDBClient, ttl_days: int = DEFAULT_TASK_TTL_DAYS
    ) -> None:
        self.table_name = table_name
        self._ttl_seconds = ttl_days * 86_400
        self._client = client

    def create(self, record: TaskRecord) -> bool:
        """Insert a new task; False if one with this id exists already (a repeated create)."""
        now = time.time()
        item: dict[str, Any] = {
            "id": {"S": record.task_id},
            "agent": {"S": record.agent},
            "kind": {"S": record.kind.value},
            "phase": {"S": record.phase.name},
            "message": {"S": record.message},
            "created_at": {"N": repr(now)},
            "updated_at": {"N": repr(now)},
            _TTL: {"N": str(int(now) + self._ttl_seconds)},
            "version": {"N": "1"},
        }
        optional: dict[str, str | None]
        if isinstance(record, AsyncTask):
            optional = {"execution_arn": record.execution_arn}
        else:
            optional = {
                "request": json.dumps(record.request, separators=(",", ":"))
                if record.request is not None
                else None,
                "request_ref": record.request_ref,
                "watch": watch_value(record.agent, record.watch) if record.watch else None,
                "schedule": record.schedule,
            }
            if record.deadline is not None:
                item["deadline"] = {"N": repr(record.deadline)}
        item |= {name: {"S": value} for name, value in optional.items() if value}
        if record.end_by is not None:
            item |= {"end_by": {"N": repr(record.end_by)}, "open": {"S": record.kind.value}}
        if record.end_within is not None:
            item["end_within"] = {"N": str(record.end_within)}
        try:
            with aws.transient_errors_as_unavailable("DynamoDB"):
                self._client.put_item(
                    TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(id)"
                )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    @overload
    def get(self, task_id: str) -> TaskRecord: ...
    @overload
    def get(self, task_id: str, kind: type[K]) -> K: ...
    def get(self, task_id: str, kind: type[_Record] | None = None) -> _Record:
        """The task; with `kind`, the task of that kind (TaskNotFound if the id names one of another)."""
        with aws.transient_errors_as_unavailable("DynamoDB"):
            item = self._client.get_item(
                TableName=self.table_name, Key={"id": {"S": task_id}}, ConsistentRead=True
            ).get("Item")
        if item is None:
            raise TaskNotFound(f"no task with id {task_id!r}")
        record = record_from_item(item)
        if kind is not None and not isinstance(record, kind):
            raise TaskNotFound(f"no {kind.kind.value} task with id {task_id!r}")
        return record

    def record_progress(
        self,
        task_id: str,
        resource: Resource,
        *,
        metadata: str | None = None,
        polls: int | None = None,
        wake: str | None = None,
    ) -> AsyncTask | None:
        """Write a running task's report (its resource's phase, message, log links and custom info); the
        task as written, or None if it has ended or was asked to abort meanwhile (nothing written).
        `wake`: the `waking` index's key of the task's job (`wake_value`), written with its metadata."""
        values = self._report(resource)
        if metadata is not None:
            values["metadata"] = {"S": metadata}
        if wake is not None:
            values["wake"] = {"S": wake}
        if polls is not None:
            values["polls"] = {"N": str(polls)}
        return self._update_returning(task_id, AsyncTask, values, condition=_RUNNING)

    def continue_execution(self, record: AsyncTask, successor_arn: str) -> bool:
        """Point a running task (`record`, as its last write returned it) at the next execution of its
        chain, keeping the current one among the earlier ones; False if it ended, was asked to abort, or
        moved on otherwise meanwhile. A repeat (a retried get) finds it pointing there already: True."""
        if record.execution_arn == successor_arn:
            return True
        if record.execution_arn is None:
            return False
        earlier = json.dumps([*record.earlier_executions, record.execution_arn])
        return self._update(
            record.task_id,
            {"execution_arn": {"S": successor_arn}, "earlier_executions": {"S": earlier}},
            condition=f"{_RUNNING} AND execution_arn = :current",
            extra_values={":current": {"S": record.execution_arn}},
        )

    def tasks_watching(self, agent: str, key: str) -> list[str]:
        """The ids of `agent`'s waiting tasks whose `watch` is `key` (one query on the sparse index)."""
        return self._query_ids(
            IndexName=WATCH_INDEX,
            KeyConditionExpression="watch = :key",
            ExpressionAttributeValues={":key": {"S": watch_value(agent, key)}},
            ProjectionExpression="id",
        )

    def tasks_waking(self, agent: str, job_id: str) -> list[str]:
        """The ids of `agent`'s running tasks whose job is `job_id` (one query on the sparse index)."""
        return self._query_ids(
            IndexName=WAKE_INDEX,
            KeyConditionExpression="wake = :key",
            ExpressionAttributeValues={":key": {"S": wake_value(agent, job_id)}},
            ProjectionExpression="id",
        )

    def wake(self, task_id: str) -> str | None:
        """An event concerned the running task: count it, and take the token of its wait in progress, in
        one write. The token (to end that wait), or None: no wait in progress (the next one ends at once,
        `listen`), or the task ended or was asked to abort."""
        old = self._wait_write(
            task_id,
            "ADD wakes :one REMOVE wake_token",
            _RUNNING,
            {":one": {"N": "1"}},
            returning="UPDATED_OLD",
        )
        return None if old is None else old.get("wake_token", {}).get("S")

    def listen(self, task_id: str, token: str, wakes_seen: int) -> bool:
        """Park a wait: store its task token, if the running task had no event since the last get read
        `wakes` (`wakes_seen`). True if one came meanwhile: the wait must end now. False otherwise: the
        token is parked, or the task ended or is being aborted (its poll, or the StopExecution on its way,
        ends the wait; ending it now would only race that stop)."""
        seen = "attribute_not_exists(wakes)" if wakes_seen == 0 else "wakes = :seen"
        values = {":token": {"S": token}, **({":seen": {"N": str(wakes_seen)}} if wakes_seen else {})}
        if self._wait_write(task_id, "SET wake_token = :token", f"{_RUNNING} AND {seen}", values) is not None:
            return False
        record = self.get(task_id, AsyncTask)
        running = not (record.ended_at or record.job_done or record.cleanup or record.abort_requested)
        return running and record.wakes != wakes_seen

    def _wait_write(
        self,
        task_id: str,
        expression: str,
        condition: str,
        values: dict[str, Any],
        *,
        returning: Literal["NONE", "UPDATED_OLD"] = "NONE",
    ) -> dict[str, Any] | None:
        """One conditional write of a wait's attributes (`wakes`, `wake_token`): not the task's record
        (no version, no update time), so `_update`'s bookkeeping stays out. The attributes `returning`
        asks for, or None if the condition failed."""
        with aws.transient_errors_as_unavailable("DynamoDB"):
            try:
                response = self._client.update_item(
                    TableName=self.table_name,
                    Key={"id": {"S": task_id}},
                    UpdateExpression=expression,
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                    ReturnValues=returning,
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                return None
        return dict(response.get("Attributes", {}))

    def record_poke(self, task_id: str, message: str, poke_errors: int) -> bool:
        """A poke found the condition unmet (or failed, `poke_errors` in a row); False if the task ended."""
        values = {"message": {"S": message}, "poke_errors": {"N": str(poke_errors)}}
        return self._update(task_id, values, condition=_OPEN, add={"pokes": 1})

    def record_job_finished(
        self,
        task_id: str,
        resource: Resource,
        *,
        polls: int | None = None,
        outputs: Mapping[str, Any] | None = None,
        outputs_ref: str | None = None,
        pokes: int | None = None,
    ) -> bool:
        """The job ended on its own: after this, cleanup never runs. False if cleanup or another ending got
        there first (nothing written). An async task's last count is `polls`, a sensor task's `pokes`.

        The resource's outputs are stored encoded: `outputs` is the task's `LiteralMap` in protobuf JSON, or
        `outputs_ref` its s3:// reference when too large for an item."""
        values = self._report(resource)
        values["job_done"] = {"BOOL": True}
        if polls is not None:
            values["polls"] = {"N": str(polls)}
        if pokes is not None:
            values["pokes"] = {"N": str(pokes)}
        if outputs is not None:
            values["outputs"] = {"S": json.dumps(outputs, separators=(",", ":"))}
        if outputs_ref is not None:
            values["outputs_ref"] = {"S": outputs_ref}
        return self._update(task_id, values, condition=_OPEN, remove=_WAITING, end=True)

    def request_abort(self, task_id: str) -> bool:
        """Note that Flyte asked to stop the task (before stopping it); False if it had ended already."""
        return self._update(task_id, {"abort_requested": {"BOOL": True}}, condition=_OPEN)

    def claim_cleanup(self, task_id: str, kind: type[K]) -> K | None:
        """Take the right to run the agent's delete (or, for a sensor task, to stop it); None if the job
        finished or cleanup is taken (or the task is not of `kind`).

        The first claim also brings the task's bound to `end_within` from now: a job that should stop
        has that long to be deleted before the task is ended without it."""
        record = self._update_returning(
            task_id,
            kind,
            {"cleanup": {"S": "claimed"}},
            condition=f"{_NOT_ENDED} AND attribute_not_exists(job_done) "
            "AND (attribute_not_exists(cleanup) OR cleanup = :failed)",
            extra_values={":failed": {"S": "failed"}},
            add={"cleanup_attempts": 1},
        )
        if record is None or record.end_within is None:
            return record
        due = time.time() + record.end_within
        if record.end_by is None or due < record.end_by:
            lowered = self._update_returning(
                task_id,
                kind,
                {"end_by": {"N": repr(due)}},
                condition=f"{_NOT_ENDED} AND attribute_exists(#open) "
                "AND (attribute_not_exists(end_by) OR end_by > :end_by)",
            )
            return lowered or record
        return record

    def release_cleanup(self, task_id: str, phase: Phase, reason: str, error: str) -> bool:
        """Delete failed: let the next attempt claim cleanup again. The first reason for cleanup (the
        phase and message the task is to end with) is kept, for the sweeper should the bound pass. False
        if the task ended meanwhile (the sweeper ended it by its bound): it stays ended."""
        return self._update(
            task_id,
            {
                "cleanup": {"S": "failed"},
                "message": {"S": f"delete failed, will retry: {error}"},
                "cleanup_error": {"S": error},
            },
            condition=_CLAIMED,
            first={"ending_phase": {"S": phase.name}, "ending_message": {"S": reason}},
        )

    def finish_cleanup(self, task_id: str, phase: Phase, message: str) -> bool:
        """End the task after its cleanup (the claim's holder); False if another ending came first."""
        return self._update(
            task_id,
            {"cleanup": {"S": "done"}, "phase": {"S": phase.name}, "message": {"S": message}},
            condition=_CLAIMED,
            remove=_WAITING,
            end=True,
        )

    def end_unconfirmed(self, task_id: str, phase: Phase, message: str) -> bool:
        """End an open task whose job could not be confirmed deleted; False if it ended meanwhile.

        `cleanup` becomes "unconfirmed": no later claim runs delete, and the job's own late ending cannot
        overwrite this one."""
        return self._update(
            task_id,
            {"cleanup": {"S": "unconfirmed"}, "phase": {"S": phase.name}, "message": {"S": message}},
            condition=f"{_NOT_ENDED} AND attribute_exists(#open)",
            remove=_WAITING,
            end=True,
        )

    def overdue(self, kind: RecordClass, now: float) -> list[str]:
        """The ids of the open tasks of `kind` whose bound is before `now` (one query on `open`)."""
        return self._query_ids(
            IndexName=OPEN_INDEX,
            KeyConditionExpression="#open = :kind AND end_by < :now",
            ExpressionAttributeNames={"#open": "open"},
            ExpressionAttributeValues={":kind": {"S": kind.kind.value}, ":now": {"N": repr(now)}},
        )

    def phases(self) -> list[TaskPhase]:
        """Every task's phase and message, over all the table's pages: a Scan, which only the local stack
        makes (no function is granted it: infra/cdk `TasksTable`)."""
        paginator = self._client.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self.table_name,
            ProjectionExpression="#id, #agent, #phase, #message",
            ExpressionAttributeNames={f"#{name}": name for name in ("id", "agent", "phase", "message")},
        )
        with aws.transient_errors_as_unavailable("DynamoDB"):
            return [
                TaskPhase(
                    item["id"]["S"],
                    item["agent"]["S"],
                    Phase[item["phase"]["S"]],
                    item.get("message", {}).get("S", ""),
                )
                for page in pages
                for item in page["Items"]
            ]

    def _query_ids(self, **query: Any) -> list[str]:
        """Every task id an index query finds, over all its pages."""
        ids: list[str] = []
        paginator = self._client.get_paginator("query")
        with aws.transient_errors_as_unavailable("DynamoDB"):
            for page in paginator.paginate(TableName=self.table_name, **query):
                ids.extend(item["id"]["S"] for item in page["Items"])
        return ids

    @staticmethod
    def _report(resource: Resource) -> dict[str, Any]:
        return {
            "phase": {"S": resource.phase.name},
            "message": {"S": resource.message},
            "log_links": {"S": json.dumps([link.__dict__ for link in resource.log_links])},
            "custom_info": {"S": json.dumps(resource.custom_info, default=str)},
        }

    def _update(
        self,
        task_id: str,
        values: dict[str, Any],
        condition: str,
        *,
        add: dict[str, int] | None = None,
        remove: tuple[str, ...] = (),
        first: dict[str, Any] | None = None,
        end: bool = False,
        extra_values: dict[str, Any] | None = None,
    ) -> bool:
        """One conditional UpdateItem; `end`: this write is the task's ending, and sets the final marker."""
        if end:
            values = {**values, ENDED: {"N": repr(time.time())}}
        extra = dict(extra_values or {})
        if ":claimed" in condition:
            extra[":claimed"] = {"S": "claimed"}
        written = self._write(
            task_id, values, condition=condition, extra_values=extra, add=add, remove=remove, first=first
        )
        return written is not None

    def _update_returning(
        self,
        task_id: str,
        kind: type[K],
        values: dict[str, Any],
        *,
        condition: str,
        extra_values: dict[str, Any] | None = None,
        add: dict[str, int] | None = None,
    ) -> K | None:
        """One conditional UpdateItem of a task of `kind` (also part of the condition): the task as
        written, or None if the condition failed."""
        item = self._write(
            task_id,
            values,
            condition=f"{condition} AND #kind = :kind",
            extra_values={**(extra_values or {}), ":kind": {"S": kind.kind.value}},
            add=add,
        )
        return None if item is None else kind.from_item(item)

    def _write(
        self,
        task_id: str,
        values: dict[str, Any],
        *,
        condition: str,
        extra_values: dict[str, Any] | None = None,
        add: dict[str, int] | None = None,
        remove: tuple[str, ...] = (),
        first: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """One conditional UpdateItem; `first` sets attributes only where they are not set yet. The item
        as written, or None if the condition failed."""
        counters = {"version": 1, **(add or {})}
        assignments = ", ".join(
            [f"#{key} = :{key}" for key in values]
            + [f"#{key} = if_not_exists(#{key}, :{key})" for key in first or {}]
        )
        increments = ", ".join(f"#{key} :add_{key}" for key in counters)
        # Every write moves the item's expiry: a task open for months outlives a TTL counted from its start.
        expression = f"SET {assignments}, updated_at = :now, {_TTL} = :expires ADD {increments}"
        if remove:
            expression += " REMOVE " + ", ".join(f"#{key}" for key in remove)
        # Every `#name` of the update and the condition: some attribute names are reserved words (open).
        names = {f"#{key}": key for key in _NAME.findall(f"{expression} {condition}")}
        attribute_values = {f":{key}": value for key, value in {**values, **(first or {})}.items()}
        now = time.time()
        attribute_values[":now"] = {"N": repr(now)}
        attribute_values[":expires"] = {"N": str(int(now) + self._ttl_seconds)}
        attribute_values |= {f":add_{key}": {"N": str(amount)} for key, amount in counters.items()}
        attribute_values.update(extra_values or {})
        try:
            with aws.transient_errors_as_unavailable("DynamoDB"):
                response = self._client.update_item(
                    TableName=self.table_name,
                    Key={"id": {"S": task_id}},
                    UpdateExpression=expression,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=attribute_values,
                    ReturnValues="ALL_NEW",
                )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        return dict(response["Attributes"])
