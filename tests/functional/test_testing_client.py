"""`serverless_agents.testing`: what an agent author's tests call, on every kind of agent: `AgentTestClient`
(the whole deployment on the embedded stack) and `LocalAgent` (one agent in-process, no emulator), which
must end a task alike."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from serverless_agents.agent import LogLink, Phase
from serverless_agents.exceptions import InvalidRequest, ManifestError, TaskNotFound
from serverless_agents.testing import AgentTestClient, LocalAgent, TaskResult, task_request
from tests.functional.agents import TALLIES
from tests.functional.fake_http import FakeHttpServer, Reply
from tests.functional.pages import blocks, run_there

pytestmark = pytest.mark.functional

MANIFEST = """
[deployment]
name = "sa-client"

[agents.job]
class = "serverless_agents.examples:JobAgent"
poll = { initial = 1, factor = 1.0, cap = 1 }  # a waiting job, not a busy loop, while cancel is tested

[agents.echo]
class = "serverless_agents.examples:EchoAgent"

[agents.tally]
class = "tests.functional.agents:TallyAgent"
poll = { initial = 0, factor = 1.0, cap = 0 }

[agents.moody]
class = "tests.functional.agents:MoodySensor"

[[agents.moody.events]]
source = ["aws.s3"]
detail-type = ["Object Created"]
detail = { bucket = { name = ["moods"] } }
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentTestClient]:
    manifest: Path = tmp_path_factory.mktemp("manifest") / "agents.toml"
    manifest.write_text(MANIFEST)
    with AgentTestClient(manifest) as running:
        yield running


def test_run_drives_an_async_task_to_its_outputs(client: AgentTestClient) -> None:
    result = client.run("example_job", inputs={"n": 3}, outputs={"n": int, "polls": int}, custom={"polls": 2})

    assert (result.phase, result.message, result.outputs) == (Phase.SUCCEEDED, "done", {"n": 3, "polls": 2})
    assert "Step Functions execution" in [link.name for link in result.log_links]
    assert result.task_id


def test_run_answers_a_sync_task_at_once(client: AgentTestClient) -> None:
    result = client.run("example_echo", inputs={"text": "ping"}, outputs={"text": str})

    assert (result.phase, result.outputs) == (Phase.SUCCEEDED, {"text": "ping"})


def test_an_upload_fires_a_waiting_sensor(client: AgentTestClient) -> None:
    task_id = client.start("moody_sensor", inputs={"bucket": "moods", "key": "today"})
    client.upload("s3://moods/today", b"yes")

    assert client.wait(task_id).phase is Phase.SUCCEEDED


def test_cancel_aborts_a_running_task(client: AgentTestClient) -> None:
    task_id = client.start("example_job", inputs={"n": 1}, outputs={"n": int}, custom={"polls": 10_000})
    client.cancel(task_id)

    assert client.wait(task_id).phase is Phase.ABORTED


PAGE = Path(__file__).resolve().parents[2] / "docs" / "writing-agents.md"


def page_project(folder: Path) -> str:
    """docs/writing-agents.md's agents in `folder`, as the page lays them out ("Run it locally"): the
    package `my_agents/` (the sensor and the square job) and `my-agents.toml`. Returns the page."""
    page = PAGE.read_text()
    section = page[page.index("## Run it locally") : page.index("## Test it in-process")]
    python = blocks(page, "python")
    (sensor,) = [b for b in python if "class SuccessMarkerSensor" in b]
    (square,) = [b for b in python if "class SquareAgent" in b]
    (manifest,) = blocks(section, "toml")
    (folder / "my_agents").mkdir()
    (folder / "my_agents" / "__init__.py").write_text("")
    (folder / "my_agents" / "markers.py").write_text(sensor)
    (folder / "my_agents" / "square.py").write_text(square)
    (folder / "my-agents.toml").write_text(manifest)
    return page


def test_the_pages_run_local_script_prints_what_the_page_says(tmp_path: Path) -> None:
    """docs/writing-agents.md, "Run it locally", done as the page says: its agents, manifest and script."""
    page = page_project(tmp_path)
    section = page[page.index("## Run it locally") : page.index("## Test it in-process")]
    (script,) = [b for b in blocks(section, "python") if "AgentTestClient" in b]
    (transcript,) = re.findall(r"^```\n(\$ [^\n]*run_local\.py\n.*?)```", section, re.DOTALL | re.MULTILINE)
    (tmp_path / "run_local.py").write_text(script)

    done = run_there(tmp_path, "run_local.py")

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == transcript.splitlines()[1:]


def test_a_failed_task_is_its_one_line_message_not_emulator_internals(tmp_path: Path) -> None:
    # Seen: a failed task printed about 4.5 KB of moto's Step Functions internals to stderr (logging's last
    # resort handler, in a script with no logging set up); under `up` the same failure is one line. Run as a
    # user runs it: a script of its own, not under pytest's log capture.
    (tmp_path / "run_failing.py").write_text(
        "from serverless_agents.deployment.manifest import EXAMPLE_MANIFEST\n"
        "from serverless_agents.testing import AgentTestClient\n"
        "with AgentTestClient(EXAMPLE_MANIFEST) as client:\n"
        "    r = client.run('example_job', {'n': 1}, {'n': int}, custom={'raise_on': 'get'})\n"
        "    print(r.phase.name, r.message)\n"
    )
    done = subprocess.run(
        [sys.executable, "run_failing.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "FAILED AgentError: the example platform lost track of the job (raise_on=get)\n"
    assert done.stderr == ""


# --- LocalAgent: the in-process tier ---

TOKEN = "tok-local-0123456789"
#: Another value: a value remembered under one secret's name is that secret wherever it goes next.
SLACK_TOKEN = "xoxb-local-0123456789"
LOCAL_MANIFEST = """
[deployment]
name = "sa-local"

[agents.tally]
class = "tests.functional.agents:TallyAgent"

[agents.echo]
class = "serverless_agents.examples:EchoAgent"

[agents.leaky]
class = "tests.functional.secret_agents:LeakyJobAgent"
secrets = { token = "sa-local-token" }

[agents.leakysync]
class = "tests.functional.secret_agents:LeakySyncAgent"
secrets = { token = "sa-local-token" }

[agents.leakysensor]
class = "tests.functional.secret_agents:LeakySensor"
secrets = { token = "sa-local-token" }
max_poke_errors = 2

[agents.webhook]
class = "serverless_agents.agents.webhook:WebhookAgent"
config = { timeout = 1, allowed_hosts = ["127.0.0.1"], allow_private_networks = ["127.0.0.1"] }

[agents.webhook.secrets.slack_token]
id = "sa-local-slack"
destinations = [{ host = "127.0.0.1", path = "/hooks/", in = ["header"] }]
"""


@pytest.fixture(scope="module")
def local_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    manifest: Path = tmp_path_factory.mktemp("local") / "agents.toml"
    manifest.write_text(LOCAL_MANIFEST)
    return manifest


@pytest.fixture(scope="module")
def tally(local_manifest: Path) -> LocalAgent:
    return LocalAgent(local_manifest, "tally")


def job_of(result: TaskResult) -> dict[str, object]:
    """The tally platform's record of the job the task's link names."""
    return TALLIES[result.log_links[0].uri.rsplit("/", 1)[-1]]


def test_an_async_agent_reaches_succeeded_through_several_gets(tally: LocalAgent) -> None:
    created = tally.create("tally", inputs={"n": 7}, outputs={"square": int}, custom={"polls": 3})
    assert (created.phase, created.message) == (Phase.RUNNING, "job created")
    assert created.task_id

    gets = [tally.get(created.task_id) for _ in range(3)]

    assert [(r.phase, r.message, r.outputs) for r in gets] == [
        (Phase.RUNNING, "1 of 3", {}),
        (Phase.RUNNING, "2 of 3", {}),
        (Phase.SUCCEEDED, "tallied", {"square": 49}),
    ]
    link = gets[-1].log_links[0]
    assert isinstance(link, LogLink)
    assert link.name == "Tally"
    assert gets[-1].literals.literals["square"].scalar.primitive.integer == 49
    # Ended on its own: a later get asks the agent nothing, and delete does not run.
    assert tally.get(created.task_id) == gets[-1]
    assert tally.delete(created.task_id) is False
    assert job_of(gets[-1])["gets"] == 3
    assert job_of(gets[-1])["deletes"] == 0


def test_a_repeated_create_starts_no_second_job(tally: LocalAgent) -> None:
    request = task_request("tally", {"n": 2}, {"square": int}, execution="again")

    first, second = tally.create(request), tally.create(request)

    assert first.task_id == second.task_id
    assert tally.run(request).outputs == {"square": 4}


def test_delete_cancels_a_running_job_once(tally: LocalAgent) -> None:
    created = tally.create("tally", inputs={"n": 1}, outputs={"square": int}, custom={"polls": 100})
    running = tally.get(str(created.task_id))

    assert tally.delete(str(created.task_id)) is True
    assert tally.delete(str(created.task_id)) is False
    ended = tally.get(str(created.task_id))

    assert (ended.phase, ended.message) == (Phase.ABORTED, "aborted: DeleteTask was called")
    assert job_of(running)["deletes"] == 1


@pytest.mark.parametrize(
    ("custom", "phase", "message"),
    [
        ({"raise_on": "get"}, Phase.FAILED, "AgentError: the tally platform lost the job (raise_on=get)"),
        (
            {"raise_on": "create"},
            Phase.FAILED,
            "AgentError: the tally platform refused the job (raise_on=create)",
        ),
        ({"busy": True}, Phase.RETRYABLE_FAILED, "RetryableAgentError: the tally platform is busy"),
        (
            {"refused": True},
            Phase.RETRYABLE_FAILED,
            "RetryableAgentError: URLError: <urlopen error [Errno 111] Connection refused>",
        ),
        (
            {"wrong": True},
            Phase.FAILED,
            "the agent's outputs do not match the task interface: outputs.sqaure: not in the interface, "
            "which declares square",
        ),
    ],
)
def test_a_failing_agent_ends_as_the_runtime_ends_it(
    tally: LocalAgent, custom: dict[str, object], phase: Phase, message: str
) -> None:
    result = tally.run("tally", inputs={"n": 3}, outputs={"square": int}, custom=custom)

    assert (result.phase, result.message, result.outputs) == (phase, message, {})


def test_a_failed_get_is_cleaned_up_by_run_as_by_the_state_machine(tally: LocalAgent) -> None:
    created = tally.create("tally", inputs={"n": 1}, outputs={"square": int}, custom={"raise_on": "get"})
    job_id = next(key for key, job in TALLIES.items() if job.get("raise_on") == "get" and job["deletes"] == 0)

    failed = tally.get(str(created.task_id))
    assert tally.delete(str(created.task_id)) is True  # a get that raised: delete still runs, once

    assert failed.phase is Phase.FAILED
    assert tally.get(str(created.task_id)) == failed
    assert TALLIES[job_id]["deletes"] == 1


def test_the_stack_and_the_in_process_tier_end_a_task_alike(
    client: AgentTestClient, tally: LocalAgent
) -> None:
    """The same agent, the same tasks: what the deployment answers is what `LocalAgent` answers."""
    for custom in ({"polls": 2}, {"raise_on": "get"}, {"raise_on": "create"}, {"wrong": True}):
        on_stack = client.run("tally", inputs={"n": 5}, outputs={"square": int}, custom=custom)
        in_process = tally.run("tally", inputs={"n": 5}, outputs={"square": int}, custom=custom)

        assert (in_process.phase, in_process.message, in_process.outputs) == (
            on_stack.phase,
            on_stack.message,
            on_stack.outputs,
        ), custom


def test_a_sync_agent_answers_in_process(local_manifest: Path) -> None:
    echo = LocalAgent(local_manifest, "echo")

    result = echo.do("example_echo", inputs={"text": "ping", "n": 2}, outputs={"text": str, "n": int})

    assert (result.phase, result.message, result.outputs) == (
        Phase.SUCCEEDED,
        "echoed",
        {"text": "ping", "n": 2},
    )
    missing = echo.run("example_echo", inputs={"text": "ping"}, outputs={})
    assert missing.phase is Phase.FAILED
    assert "outputs.text" in missing.message


def test_a_sensor_is_poked_until_its_condition_is_met_with_its_secret_masked(local_manifest: Path) -> None:
    sensor = LocalAgent(local_manifest, "leakysensor", secrets={"token": TOKEN})
    request = task_request("leaky_sensor", {"key": "k"}, execution="poked")

    first = sensor.poke(request)
    second = sensor.poke(request)

    assert (first.phase, first.message) == (
        Phase.RUNNING,
        "poke failed (1 of 2): ConnectionError: the platform said no to {secret:token}",
    )
    assert (second.phase, second.message) == (Phase.SUCCEEDED, "the condition is met")
    assert sensor.poke(request) == second  # ended: not poked again


def test_a_sensors_inputs_are_checked_as_the_api_checks_them(local_manifest: Path) -> None:
    sensor = LocalAgent(local_manifest, "leakysensor", secrets={"token": TOKEN})

    with pytest.raises(InvalidRequest, match=r"inputs\.path"):
        sensor.poke("leaky_sensor", inputs={"path": "x"})


def test_secrets_are_handed_in_and_masked_in_everything_that_leaves_the_agent(
    local_manifest: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    leaky = LocalAgent(local_manifest, "leaky", secrets={"token": TOKEN})

    result = leaky.run("leaky_job", outputs={"o": str})

    assert result.phase is Phase.SUCCEEDED
    assert result.message == "job job-{secret:token} used {secret:token}"
    assert result.outputs == {"o": "out {secret:token} "}
    assert result.log_links == [
        LogLink("console {secret:token}", "https://console.example.com/jobs?token={secret:token}")
    ]
    assert result.custom_info == {"token": "{secret:token}", "nested": [{"t": "{secret:token}"}]}
    assert TOKEN not in repr(result)
    assert "get: the token is {secret:token}" in caplog.text
    assert TOKEN not in caplog.text
    failed = LocalAgent(local_manifest, "leakysync", secrets={"token": TOKEN}).run("leaky_sync")
    assert (failed.phase, failed.message) == (
        Phase.FAILED,
        "RuntimeError: sync call failed with {secret:token}",
    )
    assert TOKEN not in "".join(capsys.readouterr())


def test_a_secret_not_handed_in_is_not_found_and_a_name_the_manifest_lacks_is_refused(
    local_manifest: Path,
) -> None:
    result = LocalAgent(local_manifest, "leaky").run("leaky_job", outputs={"o": str})

    assert (result.phase, result.message) == (
        Phase.FAILED,
        "ClientError: An error occurred (ResourceNotFoundException) when calling the GetSecretValue "
        "operation: Secrets Manager can't find the specified secret.",
    )
    with pytest.raises(ManifestError, match=r"no agent here has secret\(s\) api_key"):
        LocalAgent(local_manifest, "leaky", secrets={"api_key": TOKEN})


def test_the_outbound_client_sends_a_secret_only_where_the_manifest_lets_it(local_manifest: Path) -> None:
    webhook = LocalAgent(local_manifest, "webhook", secrets={"slack_token": SLACK_TOKEN})
    headers = {"Authorization": "Bearer {secret:slack_token}"}
    with FakeHttpServer() as fake:
        fake.reply(Reply(200, "ok"))
        sent = webhook.do(
            "webhook",
            inputs={"channel": "alerts"},
            outputs={"status": int, "body": str},
            custom={"url": fake.url + "/hooks/{inputs.channel}", "headers": headers, "data": {"text": "hi"}},
        )
        elsewhere = webhook.do(
            "webhook",
            inputs={"channel": "alerts"},
            outputs={"status": int, "body": str},
            custom={"url": fake.url + "/steal/{inputs.channel}", "headers": headers, "data": {"text": "hi"}},
        )

        assert (sent.phase, sent.outputs) == (Phase.SUCCEEDED, {"status": 200, "body": "ok"}), sent.message
        (received,) = fake.requests
        assert received.path == "/hooks/alerts"
        assert received.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
        assert elsewhere.phase is Phase.FAILED
        assert elsewhere.message == (
            "secrets.slack_token: the request to 127.0.0.1 carries it in the header, outside what "
            "agents.toml declares: 127.0.0.1/hooks/ in the header"
        )
        assert SLACK_TOKEN not in repr(elsewhere)


def test_a_task_for_another_agent_or_kind_is_refused(local_manifest: Path, tally: LocalAgent) -> None:
    with pytest.raises(InvalidRequest, match="served by agent 'leaky', not 'tally'"):
        tally.create("leaky_job")
    with pytest.raises(ManifestError, match="'tally' is a async agent: call create / get / delete, or run"):
        tally.do("tally", inputs={"n": 1})
    with pytest.raises(TaskNotFound):
        tally.get("tally_nope")


def test_the_pages_in_process_tests_pass_as_the_page_says(tmp_path: Path) -> None:
    """docs/writing-agents.md, "Test it in-process": its test file, run with pytest beside the agents and
    manifest of "Run it locally"."""
    page = page_project(tmp_path)
    section = page[
        page.index("## Test it in-process") : page.index("## A sensor under `serverless-agents up`")
    ]
    (tests,) = blocks(section, "python")
    (transcript,) = re.findall(r"^```\n(\$ [^\n]*test_square\.py\n.*?)```", section, re.DOTALL | re.MULTILINE)
    (tmp_path / "test_square.py").write_text(tests)

    done = run_there(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_square.py")

    assert done.returncode == 0, done.stdout[-3000:]
    (expected,) = transcript.splitlines()[1:]
    assert done.stdout.splitlines()[-1].startswith(expected)
