"""A final record never changes (#21 item 5): the phase, message, links and outputs of an ended task are
written once, together, and nothing written afterwards reaches them.

Real runtime functions (the poke function's `SensorSteps`, the async agent's `AsyncAgentSteps`, the api's
`stop_sensor_task`, the sweeper) on real boto3 against moto, as the embedded stack runs it (`moto_fixes`
installed). The agents below are test agents whose code is the seam the races are steered through: a poke
or a delete that waits for the other writer before it answers makes an interleaving deterministic.
"""

from __future__ import annotations

import random
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from serverless_agents.agent import AsyncAgentBase, BaseSensor, Phase, Resource, ResourceMetadata
from serverless_agents.aws.payloads import PayloadStore
from serverless_agents.aws.tasks_table import AsyncTask, SensorTask, TasksTable, table_definition
from serverless_agents.deployment.manifest import AgentSettings, PollBackoff
from serverless_agents.exceptions import AgentError
from serverless_agents.flyte.wire import to_dict
from serverless_agents.local import moto_fixes
from serverless_agents.runtime.async_steps import AsyncAgentSteps, CleanupReason, TaskState
from serverless_agents.runtime.finalize import Finalizer
from serverless_agents.runtime.sensors import SensorSchedules, SensorSteps, stop_sensor_task
from serverless_agents.runtime.sweeper import Sweeper
from serverless_agents.testing import task_request

pytestmark = pytest.mark.functional

REGION = "us-east-1"
ABORTED = "aborted: DeleteTask was called"
#: The one message each ending writes with its phase, in these tests.
ENDINGS = {
    Phase.SUCCEEDED: {"the condition is met", "done"},
    Phase.ABORTED: {ABORTED},
}
_WAIT = 30.0  # an upper bound for a handshake between two threads, never reached when the code is right


class GateSensor(BaseSensor):
    """Met once its task's key is in `open_keys`; `hooks` lets a test hold a poke of a key half-way."""

    task_type = "gate_sensor"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.open_keys: set[str] = set()
        self.hooks: dict[str, Callable[[], bool]] = {}

    def poke(self, key: str) -> bool:
        if (hook := self.hooks.pop(key, None)) is not None:
            return hook()
        return key in self.open_keys

    def watch_key(self, **inputs: Any) -> str | None:
        return str(inputs["key"])

    def event_keys(self, event: Any) -> list[str]:
        return [str(event["detail"]["key"])]


class CountMetadata(ResourceMetadata):
    job: str


class CountingJob(AsyncAgentBase[CountMetadata]):
    """A job done after `polls` gets; counts its deletes. `delete_hook` holds a delete half-way."""

    task_type = "counting_job"
    metadata_type = CountMetadata

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.polls: dict[str, int] = {}
        self.gets: dict[str, int] = defaultdict(int)
        self.deletes: dict[str, int] = defaultdict(int)
        self.delete_hook: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def get(self, metadata: CountMetadata) -> Resource:
        with self._lock:
            self.gets[metadata.job] += 1
            gets = self.gets[metadata.job]
        if gets < self.polls[metadata.job]:
            return Resource(Phase.RUNNING, f"poll {gets}")
        return Resource(Phase.SUCCEEDED, "done")

    def delete(self, metadata: CountMetadata) -> None:
        if self.delete_hook is not None:
            self.delete_hook()
        with self._lock:
            self.deletes[metadata.job] += 1


@dataclass
class World:
    table: TasksTable
    payloads: PayloadStore
    schedules: SensorSchedules
    sweeper: Sweeper
    sensor: GateSensor = field(default_factory=lambda: GateSensor(config={}))
    job: CountingJob = field(default_factory=lambda: CountingJob(config={}))

    def pokes(self, max_poke_errors: int = 3) -> SensorSteps:
        settings = AgentSettings.model_validate(
            {
                "class": "tests.functional.test_insider_final_record:GateSensor",
                "max_poke_errors": max_poke_errors,
            }
        )
        return SensorSteps("gates", self.sensor, settings, self.table, self.payloads, self.schedules)

    def steps(self) -> AsyncAgentSteps:
        backoff = PollBackoff(initial=0, factor=1.0, cap=0)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        return AsyncAgentSteps(self.job, backoff, self.table, self.payloads, sfn)

    def sensor_task(self, task_id: str, deadline: float = 1e12) -> str:
        request = task_request("gate_sensor", inputs={"key": task_id}, outputs={}, execution=task_id)
        record = SensorTask(
            task_id,
            "gates",
            phase=Phase.RUNNING,
            message="waiting for the condition",
            request=to_dict(request),
            watch=task_id,
            deadline=deadline,
            end_within=60,
            end_by=deadline + 60,
        )
        assert self.table.create(record)
        return task_id

    def job_task(self, task_id: str, polls: int) -> TaskState:
        """An async task whose job was created (as `create` leaves it): the state its first Get receives."""
        self.job.polls[task_id] = polls
        assert self.table.create(AsyncTask(task_id, "jobs", end_within=60, end_by=1e12))
        metadata = CountMetadata(job=task_id).model_dump_json()
        assert self.table.record_progress(task_id, Resource(Phase.RUNNING, "job created"), metadata=metadata)
        job: Any = {"metadata": metadata, "polls": 0, "wait_seconds": 0, "done": False, "phase": "RUNNING"}
        return {"task_id": task_id, "agent": "jobs", "job": {**job, "message": "job created"}}

    def final(self, task_id: str) -> tuple[Phase, str]:
        record = self.table.get(task_id)
        return record.phase, record.message


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        moto_fixes.install()  # the embedded stack's emulator, as `serverless-agents up` runs it
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(**table_definition("tasks"))
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="payloads")
        table = TasksTable("tasks", client=dynamodb)
        schedules = SensorSchedules("gates", boto3.client("scheduler", region_name=REGION))
        sweeper = Sweeper(
            table,
            [],
            Finalizer("sa", boto3.client("lambda", region_name=REGION)),
            boto3.client("stepfunctions", region_name=REGION),
            lambda agent: schedules,
        )
        yield World(table, PayloadStore("payloads", client=s3), schedules, sweeper)


def in_thread(work: Callable[[], Any]) -> Callable[[], Any]:
    """Start `work` in a thread; the returned function joins it and gives its result (or raises its error)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as e:  # handed to the joining test
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> Any:
        thread.join(_WAIT)
        assert not thread.is_alive(), "the held writer never finished"
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    return join


def held(release: threading.Event, entered: threading.Event, answer: Callable[[], Any]) -> Callable[[], Any]:
    """An agent call that says it started, waits for `release`, then answers."""

    def call() -> Any:
        entered.set()
        assert release.wait(_WAIT)
        return answer()

    return call


def test_a_poke_that_finds_the_condition_met_after_another_poke_failed_the_task_changes_nothing(
    world: World,
) -> None:
    """Two pokes of one task run at once on AWS (its schedule, an event, the first poke): one ends it
    FAILED (its poke raised, max_poke_errors = 1), the other's condition turns out met a moment later."""
    task_id = world.sensor_task("t-poke")
    entered, release = threading.Event(), threading.Event()
    world.sensor.hooks[task_id] = held(release, entered, lambda: True)
    late = in_thread(lambda: world.pokes(max_poke_errors=1).poke(task_id))
    assert entered.wait(_WAIT)

    def broken() -> bool:
        raise RuntimeError("the gate platform is down")

    world.sensor.hooks[task_id] = broken
    assert world.pokes(max_poke_errors=1).poke(task_id) == "FAILED"
    ended = world.table.get(task_id)
    release.set()

    assert late() == "FAILED"  # the late poke reports the ending that stands
    final = world.table.get(task_id)
    assert (final.phase, final.message, final.pokes) == (ended.phase, ended.message, ended.pokes)
    assert final.message.startswith("poke failed 1 times in a row")


def test_a_reader_never_sees_an_ending_half_written(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure seen once in 1,147 runs on a loaded machine: GetTask read a sensor task SUCCEEDED with
    the message "waiting for the condition". DynamoDB writes an item at once; the emulator applied the
    ending's SET actions one by one, in place, while the HTTP API's thread read the item. Here the ending's
    write pauses after its first SET action (moto's `SetExecutor`, the seam), and a reader reads then."""
    from moto.dynamodb.parsing.executors import SetExecutor

    task_id = world.sensor_task("t-torn")
    armed, half_written, read = threading.Event(), threading.Event(), threading.Event()
    apply = SetExecutor.execute

    def execute(executor: Any, item: Any) -> None:
        apply(executor, item)
        if armed.is_set() and not half_written.is_set():
            half_written.set()
            read.wait(2.0)  # a reader may come in now, if the emulator lets it (a bound, not asserted)

    def met() -> bool:
        armed.set()  # the next write is the ending
        return True

    monkeypatch.setattr(SetExecutor, "execute", execute)
    world.sensor.hooks[task_id] = met
    ending = in_thread(lambda: world.pokes().poke(task_id))
    assert half_written.wait(_WAIT)
    reading = in_thread(lambda: world.table.get(task_id))

    seen = reading()
    read.set()

    assert ending() == "SUCCEEDED"
    assert (seen.phase, seen.message) in {
        (Phase.RUNNING, "waiting for the condition"),  # before the ending
        (Phase.SUCCEEDED, "the condition is met"),  # after it
    }
    assert world.final(task_id) == (Phase.SUCCEEDED, "the condition is met")


@pytest.mark.parametrize("delete_fails", [True, False], ids=["delete-fails", "delete-succeeds"])
def test_a_delete_that_answers_after_the_sweeper_ended_the_task_changes_nothing(
    world: World, delete_fails: bool
) -> None:
    """An abort's delete hangs past the task's bound; the sweeper ends the task FAILED ("may still be
    running"); then the delete answers. Neither its failure (release) nor its success (finish) may turn
    the ending into another, and no second delete may claim the task."""
    state = world.job_task("t-delete", polls=100)
    assert world.table.request_abort("t-delete")
    entered, release = threading.Event(), threading.Event()

    def answer() -> None:
        if delete_fails:
            raise AgentError("the job platform cannot cancel jobs right now")

    world.job.delete_hook = held(release, entered, answer)
    steps = world.steps()
    deleting = in_thread(lambda: steps.delete("t-delete", CleanupReason(Phase.ABORTED, ABORTED)))
    assert entered.wait(_WAIT)
    assert world.sweeper.end_overdue_task("t-delete")  # the bound passed while delete hung
    ended = world.final("t-delete")
    release.set()

    if delete_fails:
        with pytest.raises(AgentError):
            deleting()
    else:
        deleting()
    world.job.delete_hook = None

    assert world.final("t-delete") == ended
    assert ended[0] is Phase.FAILED
    assert "may still be running" in ended[1]
    # Nothing can claim cleanup of an ended task again: the agent's delete ran once, at most.
    assert not world.steps().delete("t-delete", CleanupReason(Phase.ABORTED, ABORTED))
    assert world.steps().get(state)["done"]  # a late get sees the task ended, and writes nothing
    assert world.final("t-delete") == ended


@dataclass
class Observations:
    """What readers saw of each task, in order: (phase, message) pairs."""

    seen: dict[str, list[tuple[Phase, str]]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, task_id: str, phase: Phase, message: str) -> None:
        with self.lock:
            self.seen[task_id].append((phase, message))


def test_pokes_gets_events_and_aborts_racing_on_many_tasks_leave_every_record_final_and_consistent(
    world: World,
) -> None:
    """Many sensor and async tasks; for each, writers racing as they do on AWS (two pokes at once, events,
    the condition turning true, aborts; gets racing an abort's delete) while readers read the table. Every
    read of an ended task shows its own ending's message, and the ending never changes once read."""
    rng = random.Random(21)
    sensor_ids = [world.sensor_task(f"s{i}") for i in range(24)]
    job_states = {f"j{i}": world.job_task(f"j{i}", polls=rng.randint(1, 6)) for i in range(24)}
    observations = Observations()
    done = threading.Event()
    errors: list[BaseException] = []

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as e:  # collected: the test fails on any writer's error
                errors.append(e)

        return run

    def reader() -> None:
        while not done.is_set():
            for task_id in [*sensor_ids, *job_states]:
                record = world.table.get(task_id)
                observations.add(task_id, record.phase, record.message)

    def poker(seed: int) -> None:
        steps, order = world.pokes(), random.Random(seed)
        for _ in range(6):
            steps.handle({"task_ids": order.sample(sensor_ids, 8)})

    def events() -> None:
        steps, order = world.pokes(), random.Random(3)
        for task_id in order.sample(sensor_ids, len(sensor_ids)):
            if order.random() < 0.7:
                world.sensor.open_keys.add(task_id)
            steps.handle({"source": "test", "detail": {"key": task_id}})

    def sensor_aborts() -> None:
        order = random.Random(4)
        for task_id in order.sample(sensor_ids, 10):
            stop_sensor_task(world.table, world.schedules, world.table.get(task_id))

    def getter(task_id: str) -> Callable[[], None]:
        def run() -> None:
            steps, state = world.steps(), job_states[task_id]
            while True:
                result = steps.get(state)
                if result["done"]:
                    return
                state = {**state, "job": result}

        return run

    def job_aborts() -> None:
        order = random.Random(5)
        for task_id in order.sample(sorted(job_states), 12):
            if world.table.request_abort(task_id):
                world.steps().delete(task_id, CleanupReason(Phase.ABORTED, ABORTED))  # what finalize does

    readers = [threading.Thread(target=reader, daemon=True) for _ in range(2)]
    writers = [
        threading.Thread(target=guarded(work), daemon=True)
        for work in [
            lambda: poker(1),
            lambda: poker(2),
            events,
            sensor_aborts,
            job_aborts,
            *(getter(task_id) for task_id in job_states),
        ]
    ]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: interleavings a loaded machine makes
    try:
        for thread in [*readers, *writers]:
            thread.start()
        for thread in writers:
            thread.join(120)
        # The last pokes: every sensor task ends (met, or aborted above).
        world.sensor.open_keys.update(sensor_ids)
        world.pokes().handle({"task_ids": sensor_ids})
    finally:
        done.set()
        for thread in readers:
            thread.join(60)
        sys.setswitchinterval(switch)

    assert not errors, errors[:3]
    for task_id in [*sensor_ids, *job_states]:
        final = world.table.get(task_id)
        assert final.phase in ENDINGS, (task_id, final.phase, final.message)
        assert final.message in ENDINGS[final.phase], (task_id, final.phase, final.message)
        for phase, message in observations.seen[task_id]:
            if phase.is_terminal:
                assert (phase, message) == (final.phase, final.message), (task_id, phase, message)
    for task_id in job_states:
        deletes = world.job.deletes[task_id]
        assert deletes == (1 if world.table.get(task_id).phase is Phase.ABORTED else 0), task_id
