"""The boundary between a Flyte 2 executor's `Connection` and everything that persists.

Flyte 2's official plugins name their credentials in the template's `custom.secrets` (flyte-sdk
plugins/databricks task.py: `cfg["secrets"] = {"databricks_token": ...}`); the executor resolves each
name for the task's project and domain and sends the values in `Connection.secrets` with CreateTask,
GetTask and DeleteTask (flyteorg/flyte flyteplugins/go/tasks/plugins/webapi/connector/plugin.go:
`connection.Secrets[k] = secretVal`, then `Connection: &connection` in each request); flyte-sdk's own
connector server passes them to the connector as keyword arguments named by their keys
(flyte/connectors/_server.py `_get_connection_kwargs`). Here the executor is flyteidl2's generated stubs
against the adapter in front of the local stack, and the connector a plain `AsyncConnector`.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from google.protobuf import duration_pb2

from serverless_agents.agent import Phase
from tests.functional.conftest import Harness
from tests.functional.flyte2_connectors import JOBS, fingerprint
from tests.functional.flyte2_tasks import Executor, PluginTask
from tests.functional.test_flyte2_adapter import everything_that_persists, task_id

pytestmark = pytest.mark.functional

MANIFEST = """
[deployment]
name = "sa-conn"

[agents.countdown]
class = "tests.functional.flyte2_connectors:CountdownConnector"
poll = { initial = 0, factor = 1.0, cap = 0 }
"""
# What the executor resolved from its own secret store, per project (flyte#6912: one token per project).
VALUE_A = "dapi-project-a/7f3a+c0nn=ect?ion&secret"
VALUE_B = "dapi-project-b-51e9c0ffee-d1ff3rent"
_runs = iter(range(10_000))


def run_name() -> str:
    return f"c{next(_runs)}x2"


def spellings(value: str) -> list[str]:
    """How a value may be written down: as is, URL-encoded, JSON-escaped, base64 (with and without `=`)."""
    encoded = base64.b64encode(value.encode()).decode()
    return [
        value,
        quote(value, safe=""),
        quote_plus(value),
        json.dumps(value)[1:-1],
        encoded,
        encoded.rstrip("="),
    ]


def databricks_like(name: str, polls: int = 2) -> PluginTask:
    """A plugin task that names its credential as flyteplugins-databricks does: `custom.secrets`."""
    return PluginTask(
        name,
        "countdown",
        {"greeting": str, "xs": list[int]},
        {"greeting": str, "total": int, "token": str},
        polls=polls,
        secrets={"databricks_token": "databricks-token"},
    )


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    from serverless_agents.local.stack import LocalStack

    manifest: Path = tmp_path_factory.mktemp("conn") / "agents.toml"
    manifest.write_text(MANIFEST)
    with LocalStack(manifest, driver_interval=0.1) as stack:
        yield Harness(stack)


def job_of(run: str) -> dict[str, object]:
    (job,) = [job for job in JOBS.values() if job["run"] == run]
    return job


def test_connection_secrets_reach_create_get_and_delete_and_persist_nowhere(
    executor: Executor,
    harness: Harness,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    run, slow_run = run_name(), run_name()
    request = executor.create_request(
        databricks_like("flytesnacks.conn.ok"),
        {"greeting": "hi", "xs": [1]},
        run,
        secrets={"databricks-token": VALUE_A},
    )
    assert request.connection.secrets["databricks_token"] == VALUE_A  # as plugin.go sends it
    answers: list[object] = []
    resource = executor.wait(request, meta := executor.create(request))
    answers += [meta, resource]
    # An abort: the executor sends DeleteTask with the Connection it kept, and the connector's delete runs.
    slow = executor.create_request(
        databricks_like("flytesnacks.conn.slow", polls=1000),
        {"greeting": "x", "xs": [2]},
        slow_run,
        secrets={"databricks-token": VALUE_A},
    )
    slow_meta = executor.create(slow)
    while Phase(executor.get(slow, slow_meta).phase) is not Phase.RUNNING:
        time.sleep(0.1)
    executor.delete(slow, slow_meta)
    answers.append(executor.wait(slow, slow_meta))
    deadline = time.monotonic() + 20
    while job_of(slow_run)["deletes"] == 0:
        assert time.monotonic() < deadline, "the connector's delete never ran"
        time.sleep(0.1)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    expected = {"databricks_token": fingerprint(VALUE_A)}
    assert job_of(run)["kwargs"] == {"create": expected, "get": expected}
    assert job_of(slow_run)["kwargs"]["delete"] == expected  # type: ignore[index]
    # Kept once, in Secrets Manager, under the agent's and the project's own prefix.
    secrets = harness.stack.client("secretsmanager").list_secrets()["SecretList"]
    kept = [s["Name"] for s in secrets if s["Name"].startswith("sa-conn/connections/countdown/")]
    (name,) = kept
    assert name.startswith("sa-conn/connections/countdown/flytesnacks/development/")
    captured = capfd.readouterr()
    surfaces = (
        everything_that_persists(harness)
        + str(answers)
        + caplog.text
        + captured.out
        + captured.err
        + json.dumps([harness.item(task_id(m)) for m in (meta, slow_meta)])
    )
    for spelling in spellings(VALUE_A):
        assert spelling not in surfaces


def test_a_project_never_reads_another_projects_connection_secret(executor: Executor) -> None:
    """The same plugin task, the same Flyte secret name, two projects: the executor resolves a value per
    project, and each project's connector gets its own."""
    runs = {"team-a": run_name(), "team-b": run_name()}
    values = {"team-a": VALUE_A, "team-b": VALUE_B}
    task = databricks_like("flytesnacks.conn.scoped")
    requests = {
        project: executor.create_request(
            task,
            {"greeting": "p", "xs": [3]},
            runs[project],
            secrets={"databricks-token": values[project]},
            project=project,
        )
        for project in runs
    }
    metas = {project: executor.create(request) for project, request in requests.items()}
    for project, request in requests.items():
        assert Phase(executor.wait(request, metas[project]).phase) is Phase.SUCCEEDED

    for project, run in runs.items():
        seen = {"databricks_token": fingerprint(values[project])}
        assert job_of(run)["kwargs"] == {"create": seen, "get": seen}


def test_a_task_cannot_name_another_projects_connection_secret(harness: Harness) -> None:
    """Below the API: the accessor reads a connection secret only under the task's own project and domain
    (and the agent's own prefix, as IAM does), whatever name reaches it."""
    from serverless_agents.exceptions import ManifestError
    from serverless_agents.security.secrets import get_connection_secrets
    from tests.agent_function import agent_function

    sm = harness.stack.client("secretsmanager")
    other = "sa-conn/connections/countdown/team-b/development/0123456789abcdef0123"
    sm.create_secret(Name=other, SecretString=json.dumps({"databricks_token": VALUE_B}))
    environment = {
        "SA_TASKS_TABLE": harness.stack.tasks_table,
        "SA_PAYLOAD_BUCKET": harness.stack.payload_bucket,
        "SA_AGENT": "countdown",
        "SA_DEPLOYMENT": "sa-conn",
        "SA_MANIFEST": str(harness.stack.manifest_path),
    }
    with agent_function(environment):
        for name, scope in [
            (other, ("team-a", "development")),
            (other.replace("/team-b/", "/team-a/../team-b/"), ("team-a", "development")),
            ("sa-conn/connections/other-agent/team-a/development/0123", ("team-a", "development")),
        ]:
            with pytest.raises(ManifestError, match="is not"):
                get_connection_secrets(name, scope)


def test_a_flyte2_template_reaches_the_connector_as_the_executor_sent_it(executor: Executor) -> None:
    """flyteidl2's VariableMap is a list "to maintain ordering across different languages", and
    TaskMetadata has fields Flyte 1 lacks (`timeouts`): the connector gets the template unchanged."""
    run = run_name()
    task = PluginTask(
        "flytesnacks.conn.order",
        "countdown",
        {"greeting": str, "xs": list[int]},
        {"greeting": str, "total": int, "token": str},
        polls=1,
    )
    request = executor.create_request(task, {"greeting": "o", "xs": [5]}, run)
    # An order no map keeps (a map sorts or hashes its keys): the executor's, from another language.
    variables = request.template.interface.inputs.variables
    variables.extend(reversed(list(variables)))
    del variables[: len(variables) // 2]
    request.template.metadata.timeout.CopyFrom(duration_pb2.Duration(seconds=600))
    if "timeouts" in request.template.metadata.DESCRIPTOR.fields_by_name:
        request.template.metadata.timeouts.queued_timeout.CopyFrom(duration_pb2.Duration(seconds=77))

    resource = executor.wait(request, executor.create(request))

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    template = job_of(run)["template"]
    assert template == request.template
    assert [v.key for v in template.interface.inputs.variables] == ["xs", "greeting"]  # type: ignore[attr-defined]
