"""flytekit connectors, unchanged, through `serverless-agents up`'s local stack and the gRPC adapter, called
with flyteidl's stubs as flytepropeller calls an agent service (flyteplugins/go/tasks/plugins/webapi/agent/
plugin.go in flyteorg/flyte v1.16: `Create` sends CreateTaskRequest with the template, inputs, output
prefix and task execution metadata; `Get` polls GetTaskRequest with the returned resource_meta until a
terminal phase; `Delete` on abort; `ExecuteTaskSync` for a sync connector, header then inputs).

- flytekitplugins-openai's `ChatGPTConnector`, by its class path, with the template its own `ChatGPTTask`
  builds (serialized by flytekit), against a fake OpenAI API on 127.0.0.1: SUCCEEDED with the answer.
- a team's own `AsyncConnectorBase` (tests/functional/flytekit_connectors.py): create / get to SUCCEEDED,
  an abort that runs its delete once, a user error that ends FAILED with one line, and its secret (read
  with `get_connector_secret`) masked in what Flyte, the tasks table, the executions and the logs see.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flytekit import FlyteContextManager
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import LiteralMap
from flytekitplugins.openai import ChatGPTTask

from serverless_agents.adapter.server import Adapter
from serverless_agents.agent import Phase
from serverless_agents.local.demo import FlyteClient
from serverless_agents.local.stack import LocalStack
from tests.functional.fake_http import FakeHttpServer, Reply
from tests.functional.flyte_tasks import ExampleTask, create_request, decode_outputs
from tests.functional.flytekit_connectors import JOBS
from tests.functional.test_openai_agent import completion
from tests.functional.test_secrets_never_leave import Evidence, LogCapture, _collect_what_is_kept

pytestmark = pytest.mark.functional

TOKEN = "fk-token-5c0ffee5-never-leaves"
OPENAI_KEY = "sk-fk-test-0123456789"
MANIFEST = """
[deployment]
name = "sa-fk"

[agents.chatgpt]
class = "flytekitplugins.openai.chatgpt.connector:ChatGPTConnector"
secrets = { FLYTE_OPENAI_API_KEY = "sa-fk-openai" }

[agents.countdown]
class = "tests.functional.flytekit_connectors:CountdownConnector"
poll = { initial = 1, factor = 1.0, cap = 1 }
secrets = { token = "sa-fk-token" }

[agents.refused]
class = "tests.functional.flytekit_connectors:RefusedConnector"
"""
COUNTDOWN = ExampleTask(
    "flytesnacks.fk.countdown",
    "fk_countdown",
    {"greeting": str, "xs": list[int]},
    {"greeting": str, "xs": list[int], "echo": str},
    polls=2,
)
REFUSED = ExampleTask("flytesnacks.fk.refused", "fk_refused", {"sql": str}, {})
_runs = itertools.count()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as server:
        yield server


@pytest.fixture(scope="module")
def evidence() -> Iterator[Evidence]:
    found = Evidence()
    capture = LogCapture(found)
    logging.getLogger().addHandler(capture)
    yield found
    logging.getLogger().removeHandler(capture)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, evidence: Evidence) -> Iterator[LocalStack]:
    manifest: Path = tmp_path_factory.mktemp("flytekit") / "agents.toml"
    manifest.write_text(MANIFEST)
    with LocalStack(manifest, driver_interval=0.1) as running:
        running.client("secretsmanager").create_secret(Name="sa-fk-openai", SecretString=OPENAI_KEY)
        running.client("secretsmanager").create_secret(Name="sa-fk-token", SecretString=TOKEN)
        yield running


@pytest.fixture(scope="module")
def propeller(stack: LocalStack) -> Iterator[FlyteClient]:
    adapter = Adapter(stack.api_url, host="127.0.0.1", port=0).start()
    client = FlyteClient(adapter.address)
    yield client
    client.close()
    adapter.stop()


def execution() -> str:
    return f"fk-{next(_runs)}"


def test_flytekitplugins_openai_chatgpt_connector_runs_unchanged(
    propeller: FlyteClient, fake: FakeHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The connector builds `openai.AsyncOpenAI()` with no base URL: the client's own variable points it
    # at the fake (the Lambdas run in this process).
    monkeypatch.setenv("OPENAI_BASE_URL", f"{fake.url}/v1")
    fake.reply(Reply(200, completion("Hi from the connector")))
    task = ChatGPTTask(
        name="flytesnacks.fk.chat",
        openai_organization="org-fk",
        chatgpt_config={"model": "gpt-4o-mini", "temperature": 0.2},
    )

    resource = propeller.execute_sync(create_request(task, {"message": "Say hi"}, execution()))

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    outputs = TypeEngine.literal_map_to_kwargs(
        FlyteContextManager.current_context(), LiteralMap.from_flyte_idl(resource.outputs), {"o0": str}
    )
    assert outputs == {"o0": "Hi from the connector"}
    (sent,) = fake.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"  # from agents.toml's Secrets Manager id
    assert sent.headers["openai-organization"] == "org-fk"
    assert sent.json()["messages"] == [{"role": "user", "content": "Say hi"}]


def test_a_custom_async_connector_runs_to_succeeded_with_its_secret_masked(
    propeller: FlyteClient, stack: LocalStack, evidence: Evidence
) -> None:
    run = execution()
    resource_meta = propeller.create(create_request(COUNTDOWN, {"greeting": "hello", "xs": [1, 2, 3]}, run))
    resource = propeller.wait(resource_meta, "fk_countdown", lambda line: None, timeout=60)

    assert Phase(resource.phase) is Phase.SUCCEEDED, resource.message
    assert decode_outputs(COUNTDOWN, resource.outputs) == {
        "greeting": "hello!",
        "xs": [2, 4, 6],
        "echo": "{secret:token}",
    }
    assert resource.message == "done with {secret:token}"
    assert resource.log_links[0].name == "Countdown"
    (job,) = [job for job in JOBS.values() if job["run"] == run]
    assert job["token"] == TOKEN  # the connector got the real value; Flyte sees the mask
    assert (job["gets"], job["deletes"]) == (2, 0)
    assert [meta.job_id for meta in job["metas"]] == [job["metas"][0].job_id] * 2

    _collect_what_is_kept(stack, evidence)
    evidence.add("grpc", str(resource))
    evidence.add("resource_meta", resource_meta.decode())
    for where in ("grpc", "logs", "tasks table", "executions", "resource_meta"):
        assert TOKEN not in evidence.text(where), where
    assert "connecting with token {secret:token}" in evidence.text("logs")


def test_deletetask_aborts_and_runs_the_connectors_delete_once(propeller: FlyteClient) -> None:
    run = execution()
    slow = ExampleTask(
        "flytesnacks.fk.slow", "fk_countdown", COUNTDOWN.python_interface.inputs, {}, polls=1000
    )
    resource_meta = propeller.create(create_request(slow, {"greeting": "hi", "xs": []}, run))
    while not [job for job in JOBS.values() if job["run"] == run and job["gets"] >= 1]:
        time.sleep(0.1)

    propeller.delete(resource_meta, "fk_countdown")

    resource = propeller.wait(resource_meta, "fk_countdown", lambda line: None, timeout=60)
    assert Phase(resource.phase) is Phase.ABORTED, resource.message
    (job,) = [job for job in JOBS.values() if job["run"] == run]
    deadline = time.monotonic() + 20  # finalize runs delete on the status-change event
    while job["deletes"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # a second delete, if there were one, would come from the same event
    assert job["deletes"] == 1


def test_a_connectors_user_error_ends_failed_with_one_line(propeller: FlyteClient) -> None:
    resource_meta = propeller.create(create_request(REFUSED, {"sql": "select"}, execution()))

    resource = propeller.wait(resource_meta, "fk_refused", lambda line: None, timeout=60)

    assert Phase(resource.phase) is Phase.FAILED
    assert "\n" not in resource.message
    assert resource.message.startswith("FlyteUserException: ")  # flytekit's class, as Lambda names it
    assert "the warehouse refused the query: syntax error at line 1" in resource.message
