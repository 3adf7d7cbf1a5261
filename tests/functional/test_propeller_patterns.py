"""flytepropeller's call patterns, played through flyteidl's gRPC stubs against the adapter and local stack.

Each test names the propeller source (flyteorg/flyte v1.16) its pattern comes from. Templates are serialized,
inputs encoded and outputs decoded by flytekit itself (tests/functional/flyte_tasks.py).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from flyteidl.admin import agent_pb2

from serverless_agents.adapter.server import Adapter
from serverless_agents.agent import Phase
from serverless_agents.flyte.resource_meta import encode_resource_meta
from serverless_agents.local.demo import FlyteClient
from serverless_agents.local.stack import LocalStack
from tests.functional.conftest import Harness
from tests.functional.flyte_tasks import ExampleTask, create_request, decode_outputs

pytestmark = pytest.mark.functional

MANIFEST = """
[deployment]
name = "sa-prop"

[agents.job]
class = "serverless_agents.examples:JobAgent"
poll = { initial = 0, factor = 1.0, cap = 0 }

[agents.slowjob]
class = "tests.functional.agents:SlowJobAgent"
poll = { initial = 1, factor = 1.0, cap = 1 }

[agents.echo]
class = "serverless_agents.examples:EchoAgent"

[agents.slow]
class = "tests.functional.propeller_agents:SlowEchoAgent"
timeout = 20

[agents.hasty]
class = "tests.functional.propeller_agents:HastyEchoAgent"
timeout = 1

[agents.refusing]
class = "tests.functional.propeller_agents:RefusingAgent"

[agents.secretive]
class = "tests.functional.propeller_agents:SecretReadingAgent"
secrets = { gone = "arn:aws:secretsmanager:us-east-1:123456789012:secret:never-created-AbCdEf" }

[agents.moody]
class = "tests.functional.agents:MoodySensor"
"""

JOB = ExampleTask(
    "flytesnacks.sub.job",
    "example_job",
    inputs={"n": int, "when": dt.datetime, "wait": dt.timedelta, "extra": dict},
    outputs={"n": int, "when": dt.datetime, "wait": dt.timedelta, "extra": dict, "polls": int},
    polls=2,
)
SLOW_JOB = ExampleTask(
    "flytesnacks.retried.job", "example_job_slow", {"n": int}, {"n": int, "polls": int}, polls=3
)
ECHO = ExampleTask("flytesnacks.echo", "example_echo", {"payload": dict}, {"payload": dict})
SLOW = ExampleTask("flytesnacks.slow", "slow_echo", {"text": str}, {"text": str}, seconds=12)
REFUSING = ExampleTask("flytesnacks.refusing", "refusing", {"text": str}, {"text": str})
_runs = iter(range(10_000))


def job_inputs(n: int) -> dict[str, object]:
    return {
        "n": n,
        "when": dt.datetime(2026, 11, 30, 7, 8, 9, 123456, tzinfo=dt.UTC),
        "wait": dt.timedelta(hours=1, microseconds=5),
        "extra": {"count": 2, "ids": [1, 2], "nested": {"ok": True, "ratio": 0.5}},
    }


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    manifest: Path = tmp_path_factory.mktemp("manifest") / "agents.toml"
    manifest.write_text(MANIFEST)
    with LocalStack(manifest, driver_interval=0.1) as stack:
        yield Harness(stack)


@pytest.fixture(scope="module")
def adapter(harness: Harness) -> Iterator[Adapter]:
    running = Adapter(harness.stack.api_url, host="127.0.0.1", port=0).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def propeller(adapter: Adapter) -> Iterator[FlyteClient]:
    # Every call gets propeller's default deadline, 10 s (connector/config.go `defaultTimeout`).
    client = FlyteClient(adapter.address)
    yield client
    client.close()


def execution() -> str:
    return f"prop-{next(_runs)}"


def wait(propeller: FlyteClient, resource_meta: bytes, task_type: str) -> agent_pb2.Resource:
    return propeller.wait(resource_meta, task_type, lambda line: None, timeout=60)


def task_id(resource_meta: bytes) -> str:
    return str(json.loads(resource_meta)["task_id"])


def test_a_subworkflow_called_twice_gets_two_tasks_each_with_its_own_outputs(propeller: FlyteClient) -> None:
    # A node inside a subworkflow has the subworkflow-local node id (NodeExecutionIdentifier.node_id =
    # node.GetID(): flytepropeller/pkg/controller/nodes/node_exec_context.go), so both calls of the
    # subworkflow send the same TaskExecutionIdentifier; their data dirs lie under different parent nodes.
    run = execution()
    first = create_request(
        JOB,
        job_inputs(1),
        run,
        node="sub-n0",
        data_dir=f"s3://flyte-data/metadata/{run}/n0/data/0/sub-n0/data",
    )
    second = create_request(
        JOB,
        job_inputs(2),
        run,
        node="sub-n0",
        data_dir=f"s3://flyte-data/metadata/{run}/n1/data/0/sub-n0/data",
    )
    assert first.task_execution_metadata.task_execution_id == second.task_execution_metadata.task_execution_id

    first_meta, second_meta = propeller.create(first), propeller.create(second)

    assert task_id(first_meta) != task_id(second_meta)
    outputs = [
        decode_outputs(JOB, wait(propeller, meta, "example_job").outputs)
        for meta in (first_meta, second_meta)
    ]
    assert [o["n"] for o in outputs] == [1, 2]


def test_outputs_keep_their_types_through_flytekit_datetimes_durations_and_untyped_dicts(
    propeller: FlyteClient,
) -> None:
    # flytekit >= 1.14 writes an untyped dict as msgpack (flytekit/core/type_engine.py, DictTransformer); a
    # protobuf Struct would turn 2 into 2.0 on the way back.
    resource = wait(
        propeller, propeller.create(create_request(JOB, job_inputs(5), execution())), "example_job"
    )

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    outputs = decode_outputs(JOB, resource.outputs)
    assert outputs == {**job_inputs(5), "polls": 2}
    assert type(outputs["extra"]["count"]) is int
    assert resource.outputs.literals["extra"].scalar.binary.tag == "msgpack"


def test_a_sync_agent_returns_untyped_dicts_that_flytekit_reads_as_ints(propeller: FlyteClient) -> None:
    payload = {"count": 2, "ids": [1, 2], "big": 2**40, "neg": -7, "none": None, "text": "ü"}

    resource = propeller.execute_sync(create_request(ECHO, {"payload": payload}, execution()))

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    echoed = decode_outputs(ECHO, resource.outputs)["payload"]
    assert echoed == payload
    assert [type(echoed[k]) for k in ("count", "big", "neg")] == [int, int, int]


def test_retry_attempt_one_after_attempt_zero_timed_out_and_was_aborted(
    propeller: FlyteClient, harness: Harness
) -> None:
    # A timed-out attempt is aborted (pluginmachinery/internal/webapi/core.go `Abort` -> plugin Delete:
    # plugins/webapi/connector/plugin.go), then the node is retried (flytepropeller/pkg/controller/nodes/
    # executor.go, abort before incrementing attempts) with retry_attempt + 1 and output prefix .../<attempt>.
    run = execution()
    attempt_0 = propeller.create(create_request(SLOW_JOB, {"n": 7}, run, retry_attempt=0))
    while Phase(propeller.get(attempt_0, "example_job_slow").phase) is not Phase.RUNNING:
        time.sleep(0.1)
    propeller.delete(attempt_0, "example_job_slow")
    assert Phase(wait(propeller, attempt_0, "example_job_slow").phase) is Phase.ABORTED

    attempt_1 = propeller.create(create_request(SLOW_JOB, {"n": 7}, run, retry_attempt=1))
    resource = wait(propeller, attempt_1, "example_job_slow")

    assert task_id(attempt_1) != task_id(attempt_0)
    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert decode_outputs(SLOW_JOB, resource.outputs) == {"n": 7, "polls": 3}
    deadline = time.monotonic() + 10  # finalize runs the aborted job's delete on the status-change event
    while harness.job(task_id(attempt_0))["deletes"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert harness.job(task_id(attempt_0))["deletes"] == 1
    assert harness.job(task_id(attempt_1))["deletes"] == 0


def test_abort_right_after_create_leaves_no_job_running(propeller: FlyteClient, harness: Harness) -> None:
    # Propeller aborts whenever the workflow is aborted, possibly right after the create returned
    # (flytepropeller/pkg/controller/nodes/executor.go `Abort`).
    resource_meta = propeller.create(create_request(SLOW_JOB, {"n": 1}, execution()))
    propeller.delete(resource_meta, "example_job_slow")

    assert Phase(wait(propeller, resource_meta, "example_job_slow").phase) is Phase.ABORTED
    harness.wait_execution("slowjob", task_id(resource_meta))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        item = harness.item(task_id(resource_meta))
        if "metadata" not in item or harness.job(task_id(resource_meta))["deletes"] == 1:
            break  # no job was made, or the one made was deleted
        time.sleep(0.1)
    if "metadata" in harness.item(task_id(resource_meta)):
        assert harness.job(task_id(resource_meta))["deletes"] == 1


def test_delete_task_twice_and_of_an_unknown_task_answers_ok(
    adapter: Adapter, propeller: FlyteClient, harness: Harness
) -> None:
    # An abort that errs is retried every round until max-workflow-retries (flytepropeller/pkg/controller/
    # handler.go); Flyte's delete is idempotent, so repeating it, or deleting what is gone, succeeds.
    resource_meta = propeller.create(create_request(SLOW_JOB, {"n": 2}, execution()))
    unknown = adapter.keys.sign(encode_resource_meta("never-created-a0-0123456789abcdef", "slowjob"))

    propeller.delete(resource_meta, "example_job_slow")
    propeller.delete(resource_meta, "example_job_slow")
    propeller.delete(unknown, "example_job_slow")

    assert Phase(wait(propeller, resource_meta, "example_job_slow").phase) is Phase.ABORTED
    harness.wait_execution("slowjob", task_id(resource_meta))
    time.sleep(0.5)
    item = harness.item(task_id(resource_meta))
    if "metadata" in item:
        assert harness.job(task_id(resource_meta))["deletes"] == 1


def test_get_task_after_the_end_answers_the_same_every_resync(propeller: FlyteClient) -> None:
    # After a propeller restart its AutoRefresh cache is rebuilt and every task is synced again with GetTask,
    # ended ones included (pluginmachinery/internal/webapi/cache.go `SyncResource`, resync every 30 s).
    resource_meta = propeller.create(create_request(JOB, job_inputs(3), execution()))
    ended = wait(propeller, resource_meta, "example_job")

    again = [propeller.get(resource_meta, "example_job") for _ in range(3)]

    assert all(r.phase == ended.phase and r.outputs == ended.outputs for r in again)
    assert decode_outputs(JOB, again[-1].outputs)["n"] == 3


def test_a_sync_agent_taking_12_s_answers_under_a_30_s_deadline(adapter: Adapter) -> None:
    # An operator who sets the connector plugin's `timeouts.ExecuteTaskSync: 30s` (plugins/webapi/connector/
    # config.go; applied by getFinalContext in plugin.go) gives a sync call 30 s: the adapter must not cut
    # it at its own default.
    client = FlyteClient(adapter.address, sync_timeout=30)
    try:
        resource = client.execute_sync(create_request(SLOW, {"text": "patience"}, execution()))
    finally:
        client.close()

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert decode_outputs(SLOW, resource.outputs) == {"text": "patience"}


def test_a_sync_call_past_propellers_deadline_is_deadline_exceeded_naming_the_agent(adapter: Adapter) -> None:
    slow = ExampleTask("flytesnacks.slow3", "slow_echo", {"text": str}, {"text": str}, seconds=3)
    client = FlyteClient(adapter.address, sync_timeout=1.5)
    try:
        with pytest.raises(grpc.RpcError) as error:
            client.execute_sync(create_request(slow, {"text": "late"}, execution()))
    finally:
        client.close()

    assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    # The adapter answers just before the deadline, naming the agent and the setting to raise; if the
    # machine is too slow for that, gRPC's own "Deadline Exceeded" arrives instead.
    assert "'slow'" in error.value.details() or error.value.details() == "Deadline Exceeded"


def test_a_sync_call_past_the_agents_own_limit_is_deadline_exceeded_naming_agent_and_limit(
    propeller: FlyteClient,
) -> None:
    hasty = ExampleTask("flytesnacks.hasty", "hasty_echo", {"text": str}, {"text": str}, seconds=3)

    with pytest.raises(grpc.RpcError) as error:
        propeller.execute_sync(create_request(hasty, {"text": "late"}, execution()))

    assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert error.value.details() == (
        "sync agent 'hasty' did not answer within its 1 s limit (its timeout in agents.toml)"
    )


def test_a_sync_agents_own_failure_is_a_failed_resource_not_a_grpc_error(propeller: FlyteClient) -> None:
    # A gRPC error from ExecuteTaskSync makes Create fail, which the webapi launcher turns into a retryable
    # failure (pluginmachinery/internal/webapi/launcher.go): retried, side effects repeated. A FAILED resource
    # is a permanent failure (plugins/webapi/connector/plugin.go `Status`).
    resource = propeller.execute_sync(create_request(REFUSING, {"text": "hi"}, execution()))

    assert Phase(resource.phase) is Phase.FAILED
    assert resource.message == "AgentError: the remote API answered 401: invalid key (see the agent's secret)"


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("gone", "ResourceNotFoundException"),  # named in agents.toml, absent from Secrets Manager
        ("unnamed", "ManifestError: agent 'secretive' has no secret 'unnamed' in agents.toml"),
    ],
)
def test_a_missing_secret_fails_the_task(propeller: FlyteClient, secret: str, expected: str) -> None:
    task = ExampleTask(
        f"flytesnacks.secret.{secret}", "secret_reading", {"text": str}, {"text": str}, secret=secret
    )

    resource = propeller.execute_sync(create_request(task, {"text": "hi"}, execution()))

    assert Phase(resource.phase) is Phase.FAILED
    assert expected in resource.message
    assert "\n" not in resource.message


def test_inputs_not_in_the_interface_are_invalid_argument_and_nothing_is_written(
    propeller: FlyteClient, harness: Harness
) -> None:
    request = create_request(SLOW_JOB, {"n": 1}, execution())
    request.inputs.literals["surprise"].scalar.primitive.integer = 3
    before = (harness.table_size(), len(harness.executions("slowjob")))

    with pytest.raises(grpc.RpcError) as error:
        propeller.create(request)

    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith("inputs.surprise: not in the interface")
    assert (harness.table_size(), len(harness.executions("slowjob"))) == before


def test_missing_inputs_are_invalid_argument_for_async_and_sync_agents(propeller: FlyteClient) -> None:
    async_request = create_request(SLOW_JOB, {"n": 1}, execution())
    del async_request.inputs.literals["n"]
    sync_request = create_request(REFUSING, {"text": "hi"}, execution())
    del sync_request.inputs.literals["text"]

    with pytest.raises(grpc.RpcError) as async_error:
        propeller.create(async_request)
    with pytest.raises(grpc.RpcError) as sync_error:
        propeller.execute_sync(sync_request)

    assert async_error.value.code() is sync_error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert async_error.value.details() == "inputs.n: missing: expected INTEGER"
    assert sync_error.value.details() == "inputs.text: missing: expected STRING"


def test_a_sensor_task_whose_inputs_do_not_fit_poke_is_refused_before_any_write(
    propeller: FlyteClient, harness: Harness
) -> None:
    sensor = ExampleTask("flytesnacks.moody", "moody_sensor", {"path": str}, {})
    scheduler = harness.stack.client("scheduler")
    before = (harness.table_size(), len(scheduler.list_schedules()["Schedules"]))

    with pytest.raises(grpc.RpcError) as error:
        propeller.create(create_request(sensor, {"path": "s3://b/k"}, execution()))

    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "inputs.path: not a parameter of MoodySensor.poke(bucket, key)"
    assert (harness.table_size(), len(scheduler.list_schedules()["Schedules"])) == before


def test_delete_task_at_once_after_create_task_never_errs(propeller: FlyteClient) -> None:
    # Flyte aborting a workflow right after one of its tasks was created; each pair runs into the gap
    # between StartExecution and the execution's first state (src/serverless_agents/local/moto_fixes.py).
    metas = []
    for _ in range(5):
        resource_meta = propeller.create(create_request(SLOW_JOB, {"n": 0}, execution()))
        propeller.delete(resource_meta, "example_job_slow")
        metas.append(resource_meta)

    assert {Phase(wait(propeller, m, "example_job_slow").phase) for m in metas} == {Phase.ABORTED}
