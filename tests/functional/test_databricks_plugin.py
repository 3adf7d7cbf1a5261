"""flyteplugins-databricks 2.x, run unchanged: its own task class (`Databricks` plugin config on a
`TaskEnvironment`, `DatabricksFunctionTask`) serialized by flyte-sdk into the TaskTemplate the executor
gets; its own `DatabricksConnector` named in agents.toml; the executor's calls through flyteidl2's stubs
against the adapter in front of the local stack, with the token it resolves from `custom.secrets` in
`Connection.secrets` (flyteorg/flyte flyteplugins/go/tasks/plugins/webapi/connector/plugin.go, Create:
`connection.Secrets[k] = secretVal`; Get and Delete resend the Connection). Its Databricks is a local fake
of the Jobs API over HTTPS (tests/functional/fake_databricks.py)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp.connector
import flyte
import pytest
from flyte.extend import TaskTemplate
from flyteidl2.connector import connector_pb2
from flyteplugins.databricks import Databricks

from serverless_agents.agent import Phase
from serverless_agents.local.stack import LocalStack
from tests.functional.conftest import Harness
from tests.functional.fake_databricks import API, FakeDatabricks
from tests.functional.flyte2_tasks import Executor
from tests.functional.test_flyte2_adapter import everything_that_persists
from tests.functional.test_insider_connection_secrets import spellings

pytestmark = pytest.mark.functional

MANIFEST = """
[deployment]
name = "sa-dbx"

[agents.databricks]
class = "flyteplugins.databricks.connector:DatabricksConnector"
poll = { initial = 1, factor = 1.0, cap = 1 }
"""
TOKEN = "dapi0123456789abcdef0123456789abcd"  # what the executor resolves for "databricks-token"
_runs = iter(range(10_000))


def count_rows(path: str) -> int:
    """The task's body: it runs on Databricks (the plugin's entrypoint), never here."""
    raise AssertionError("a connector task's body does not run in the connector")


@pytest.fixture(scope="module")
def databricks() -> Iterator[FakeDatabricks]:
    with FakeDatabricks(TOKEN) as fake:
        # As an operator would install a private CA: the plugin's aiohttp client verifies TLS with it.
        fake.trusted(aiohttp.connector._SSL_CONTEXT_VERIFIED)
        yield fake


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    manifest: Path = tmp_path_factory.mktemp("dbx") / "agents.toml"
    manifest.write_text(MANIFEST)
    with LocalStack(manifest, driver_interval=0.1) as stack:
        yield Harness(stack)


def databricks_task(databricks: FakeDatabricks, run_name: str) -> TaskTemplate:
    """The task as a user writes it with the plugin (its README), pointed at the fake workspace."""
    env = flyte.TaskEnvironment(
        name=f"dbx-{run_name}",
        image="ghcr.io/flyteorg/flyte:py3.11-v2.12.1",
        plugin_config=Databricks(
            spark_conf={"spark.executor.memory": "4g"},
            databricks_conf={
                "run_name": run_name,
                "new_cluster": {
                    "spark_version": "13.3.x-scala2.12",
                    "node_type_id": "i3.xlarge",
                    "num_workers": 2,
                },
            },
            databricks_instance=databricks.instance,
            databricks_token="databricks-token",
        ),
    )
    return env.task(count_rows)


def submit(
    executor: Executor, databricks: FakeDatabricks, run_name: str
) -> tuple[connector_pb2.CreateTaskRequest, bytes]:
    task = databricks_task(databricks, run_name)
    request = executor.create_request(
        task,
        {"path": "s3://data/rows.parquet"},
        f"{run_name}x{next(_runs)}",
        secrets={"databricks-token": TOKEN},
    )
    assert request.template.type == "databricks"
    assert dict(request.connection.secrets) == {"databricks_token": TOKEN}
    return request, executor.create(request)


def test_a_databricks_task_runs_to_success_through_the_adapter(
    executor: Executor,
    databricks: FakeDatabricks,
    harness: Harness,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    request, resource_meta = submit(executor, databricks, "rows")

    resource = executor.wait(request, resource_meta)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    (run,) = [run for run in databricks.runs.values() if run.spec.get("run_name") == "rows"]
    # The job the plugin built from the template: the cluster, its Spark conf, the entrypoint and args.
    assert run.spec["new_cluster"]["spark_conf"] == {"spark.executor.memory": "4g"}
    assert run.spec["new_cluster"]["docker_image"] == {"url": "ghcr.io/flyteorg/flyte:py3.11-v2.12.1"}
    assert run.spec["spark_python_task"]["python_file"] == "flyteplugins/databricks/entrypoint.py"
    assert run.gets >= databricks.polls
    assert databricks.refused == 0  # the executor's token reached create and every get
    links = {link.name: link.uri for link in resource.log_links}
    assert links["Databricks Console"] == f"https://{databricks.instance}/#job/{run.job_id}/run/{run.run_id}"
    captured = capfd.readouterr()
    surfaces = everything_that_persists(harness) + str(resource) + caplog.text + captured.out + captured.err
    for spelling in spellings(TOKEN):
        assert spelling not in surfaces


def test_an_abort_cancels_the_databricks_run_once(
    executor: Executor, databricks: FakeDatabricks, harness: Harness
) -> None:
    request, resource_meta = submit(executor, databricks, "long-rows")
    while Phase(executor.get(request, resource_meta).phase) is not Phase.RUNNING:
        time.sleep(0.1)

    executor.delete(request, resource_meta)
    resource = executor.wait(request, resource_meta)

    assert Phase(resource.phase) is Phase.ABORTED
    (run,) = [run for run in databricks.runs.values() if run.spec.get("run_name") == "long-rows"]
    deadline = time.monotonic() + 20
    while run.cancels == 0:
        assert time.monotonic() < deadline, "runs/cancel never came"
        time.sleep(0.1)
    executor.delete(request, resource_meta)  # the executor may repeat it
    assert run.cancels == 1
    assert ("POST", f"{API}/runs/cancel") in databricks.calls
    assert databricks.refused == 0
    assert json.loads(resource_meta)["agent"] == "databricks"
