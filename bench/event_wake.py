"""Events end the wait: from a job's end to its task's SUCCEEDED, with the job's event and at the poll wait.

Two agents on the local stack, both polling at a fixed wait (`--wait`, 20 s by default; the project's
default cap is 300 s): `signalled` declares its platform's events in the manifest (an EventBridge pattern
and `event_job_id`), `polled` declares none. For each task the bench waits until its first wait has begun,
ends the job, puts the job's event on the default bus for `signalled`, and times the job's end to the
moment GetTask (through the local HTTP API) reads SUCCEEDED. With events that is the delivery, one get and
the ending; without, whatever is left of the poll wait (on average half of it, at worst all of it).

    .venv/bin/python -m bench.event_wake            # 3 tasks of each, 20 s waits (about 2 minutes)
    .venv/bin/python -m bench.event_wake --quick    # 1 task of each, 10 s waits

The local stack delivers rule events every 0.1 s (`local/sensor_triggers.py`); EventBridge's own delivery
on AWS is typically well under a second. Figures are printed, never asserted.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from bench._common import OFFLINE_AWS_ENV, BenchError, Table, bench_main, median
from serverless_agents.agent import AsyncAgentBase, Phase, Resource, ResourceMetadata, TaskContext
from serverless_agents.api.client import ApiClient
from serverless_agents.flyte.resource_meta import task_id_from_resource_meta
from serverless_agents.testing import task_request

#: The platform: job id -> done. The local stack runs the functions in this process.
_DONE: dict[str, bool] = {}
SOURCE, DETAIL_TYPE = "bench.jobs", "Job State Change"


class BenchJob(ResourceMetadata):
    job_id: str


class SignalledJobAgent(AsyncAgentBase[BenchJob]):
    """A job that ends when the bench says so; the manifest declares its events."""

    task_type = "signalled_job"
    metadata_type = BenchJob

    def create(self, task: TaskContext) -> BenchJob:
        job = BenchJob(job_id=uuid.uuid4().hex)
        _DONE[job.job_id] = False
        return job

    def get(self, metadata: BenchJob) -> Resource:
        return Resource(Phase.SUCCEEDED if _DONE[metadata.job_id] else Phase.RUNNING, "bench job")

    def delete(self, metadata: BenchJob) -> None:
        _DONE.pop(metadata.job_id, None)

    def job_id(self, metadata: BenchJob) -> str:
        return metadata.job_id


class PolledJobAgent(SignalledJobAgent):
    task_type = "polled_job"


def _manifest(wait: int) -> str:
    poll = f"poll = {{ initial = {wait}, factor = 1.0, cap = {wait} }}"
    return f"""
[deployment]
name = "bench-events"

[agents.signalled]
class = "bench.event_wake:SignalledJobAgent"
{poll}
event_job_id = "detail.job"
events = [{{ source = ["{SOURCE}"], detail-type = ["{DETAIL_TYPE}"] }}]

[agents.polled]
class = "bench.event_wake:PolledJobAgent"
{poll}
"""


def _time_one(stack: object, api: ApiClient, task_type: str, wait: int, signal: bool) -> float:
    from serverless_agents.local.stack import LocalStack

    assert isinstance(stack, LocalStack)
    request = task_request(task_type, inputs={"n": 1}, outputs={}, execution=f"b{uuid.uuid4().hex[:8]}")
    task_id = task_id_from_resource_meta(api.create_task(request).resource_meta)
    dynamodb = stack.client("dynamodb")
    deadline = time.monotonic() + 30
    while True:  # the job exists and the task is in its first wait
        item = dynamodb.get_item(TableName=stack.tasks_table, Key={"id": {"S": task_id}}).get("Item", {})
        if "metadata" in item:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"task {task_id} created no job in 30 s")
        time.sleep(0.05)
    time.sleep(1)
    job_id = json.loads(item["metadata"]["S"])["job_id"]
    ended = time.monotonic()
    # The agents' module, as the manifest names it: not `__main__` when run as `python -m bench.event_wake`.
    platform: dict[str, bool] = importlib.import_module("bench.event_wake")._DONE
    platform[job_id] = True
    if signal:
        entry = {"Source": SOURCE, "DetailType": DETAIL_TYPE, "Detail": json.dumps({"job": job_id})}
        stack.client("events").put_events(Entries=[entry])
    while Phase(api.get_task(task_id).resource.phase) is not Phase.SUCCEEDED:
        if time.monotonic() - ended > wait + 30:
            raise BenchError(f"task {task_id} did not end within its wait and 30 s")
        time.sleep(0.05)
    return time.monotonic() - ended


def run(quick: bool = False) -> list[Table]:
    from serverless_agents.local.stack import LocalStack, quiet_local_observability

    wait = int(os.environ.get("BENCH_EVENT_WAIT", "10" if quick else "20"))
    count = 1 if quick else 3
    for key, value in OFFLINE_AWS_ENV.items():
        os.environ.setdefault(key, value)
    quiet_local_observability()
    folder = Path(tempfile.mkdtemp(prefix="bench-events-"))
    manifest = folder / "agents.toml"
    manifest.write_text(_manifest(wait))
    table = Table(
        f"Job end -> SUCCEEDED: with the job's event vs at the poll wait ({wait} s)",
        ["agent", "how the wait ends", "tasks", "median s", "max s", "each (s)"],
    )
    with LocalStack(manifest, driver_interval=0.1) as stack:
        api = ApiClient(stack.api_url)
        for agent, task_type, signal, how in (
            ("signalled", "signalled_job", True, "the job's event (rule -> get function -> task token)"),
            ("polled", "polled_job", False, f"the poll wait ({wait} s), no events declared"),
        ):
            times = [_time_one(stack, api, task_type, wait, signal) for _ in range(count)]
            table.add(agent, how, count, median(times), max(times), ", ".join(f"{t:.2f}" for t in times))
    table.notes = [
        "each task's job ends about 1 s into its first wait; the local stack delivers rule events every "
        "0.1 s and GetTask is read every 0.05 s",
        "without events the task ends at its next poll: what is left of the wait, up to the poll cap "
        "(300 s by default) on AWS",
    ]
    return [table]


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, "one task of each, 10 s waits", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
