"""No secret leaves its agent: tasks whose agents read a secret and try every way to echo it, then a scan
of everything the deployment keeps or answers for the secret's value.

The agents (tests/functional/secret_agents.py) put the secret in messages, exceptions (one-line and
multi-line, chained), outputs, custom info, log links, resource metadata and log lines (args, f-strings,
`extra=`, `logger.exception`); the webhook agent gets it in its URL, headers and body, and a fake
endpoint echoes it back in bodies and a redirect's Location. They run through the local stack, as Flyte
calls them over HTTP and over the gRPC adapter. Then the Step Functions execution histories, the tasks
table, every S3 object, every log record (and every line in the functions' log groups, and GetTaskLogs'
pages), every HTTP and gRPC answer and every resource_meta are searched:
the secret appears 0 times, and its mask `{secret:token}` shows the agents did leak it into each.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import urllib3
from flyteidl.admin import agent_pb2

from serverless_agents.adapter.server import Adapter
from serverless_agents.agent import Phase
from serverless_agents.api.client import ApiClient
from serverless_agents.flyte import wire
from serverless_agents.flyte.resource_meta import task_id_from_resource_meta
from serverless_agents.local.demo import FlyteClient
from serverless_agents.local.stack import LocalStack
from serverless_agents.testing import task_request
from tests.functional.fake_http import FakeHttpServer, Reply
from tests.functional.test_webhook_agent import HttpCallTask, webhook_request

pytestmark = pytest.mark.functional

SECRET_ID = "sa-test-never-leaves"
TOKEN = "sa-secret-0d5e7c1b9a-never-leaves"
MASK = "{secret:token}"
SECRETS = f'secrets = {{ token = "{SECRET_ID}" }}'
MANIFEST = f"""
[deployment]
name = "sa-secrets"

[agents.webhook]
class = "serverless_agents.agents.webhook:WebhookAgent"
config = {{ timeout = 1, allowed_hosts = ["127.0.0.1"], allow_private_networks = ["127.0.0.1"] }}

[agents.webhook.secrets.token]
id = "{SECRET_ID}"
destinations = [{{ host = "127.0.0.1", in = ["path", "header", "body"] }}]

[agents.leaky]
class = "tests.functional.secret_agents:LeakyJobAgent"
poll = {{ initial = 0, factor = 1.0, cap = 0 }}
{SECRETS}

[agents.leakysync]
class = "tests.functional.secret_agents:LeakySyncAgent"
{SECRETS}

[agents.leakysensor]
class = "tests.functional.secret_agents:LeakySensor"
schedule = "rate(1 minute)"
max_poke_errors = 3
{SECRETS}
"""
_runs = itertools.count()


class Evidence:
    """Everything that left the agents' code, by where it was found."""

    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {}

    def add(self, where: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
        self.found.setdefault(where, []).append(text)

    def text(self, where: str) -> str:
        return "\n".join(self.found.get(where, []))


class LogCapture(logging.Handler):
    """Every log record, as a log line would carry it: message, `extra=` keys and the exception."""

    def __init__(self, evidence: Evidence) -> None:
        super().__init__(logging.DEBUG)
        self.evidence = evidence

    def emit(self, record: logging.LogRecord) -> None:
        fields = {k: v for k, v in vars(record).items() if k not in ("exc_info", "args", "msg")}
        exception = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        self.evidence.add("logs", f"{record.getMessage()} {json.dumps(fields, default=str)} {exception}")


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    import serverless_agents.handlers.observability  # noqa: F401  (Powertools' logger, which does not propagate, exists now)

    found = Evidence()
    capture = LogCapture(found)
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
    for logger in loggers:
        logger.addHandler(capture)
    manifest: Path = tmp_path_factory.mktemp("secrets") / "agents.toml"
    manifest.write_text(MANIFEST)
    try:
        with (
            LocalStack(manifest, driver_interval=0.1, schedule_period=0.3) as stack,
            FakeHttpServer() as fake,
        ):
            stack.client("secretsmanager").create_secret(Name=SECRET_ID, SecretString=TOKEN)
            stack.create_bucket("sensor-bucket")
            adapter = Adapter(stack.api_url, host="127.0.0.1", port=0).start()
            flyte = FlyteClient(adapter.address)
            try:
                _run_everything(stack, fake, flyte, found, adapter.keys.sign)
                _collect_what_is_kept(stack, found)
            finally:
                flyte.close()
                adapter.stop()
    finally:
        for logger in loggers:
            logger.removeHandler(capture)
    return found


def _run_everything(
    stack: LocalStack,
    fake: FakeHttpServer,
    flyte: FlyteClient,
    found: Evidence,
    sign: Callable[[bytes], bytes],
) -> None:
    """`sign`: the adapter's, for tasks created over HTTP (whose resource_meta the adapter never signed)."""
    api = ApiClient(stack.api_url)

    def http(where: str, call: Callable[[], Any]) -> Any:
        try:
            response = call()
        except Exception as e:  # an error answer: its message is what Flyte would see
            found.add(where, f"{type(e).__name__}: {e}")
            return None
        found.add(where, wire.to_dict(response))
        return response

    def grpc_call(call: Callable[[], Any]) -> Any:
        try:
            response = call()
        except grpc.RpcError as e:
            found.add("grpc", f"{e.code()}: {e.details()}")
            return None
        found.add("grpc", wire.to_dict(response) if hasattr(response, "DESCRIPTOR") else repr(response))
        return response

    # The webhook agent: the secret in the URL's path, a header and the body; answers that echo it.
    fake.reply(
        Reply(200, f"hello {TOKEN}"),
        Reply(404, f"unknown token {TOKEN}"),
        Reply(302, "", headers={"Location": f"http://127.0.0.1:1/next?token={TOKEN}"}),
        Reply(200, {"echo": TOKEN}),
    )
    for url in [
        fake.url + "/hooks/{secret:token}",
        fake.url + "/hooks/{secret:token}",
        fake.url + "/hooks?token={secret:token}",
        "http://t{secret:token}.hooks.invalid/x",  # refused: the host, secret and all, is not allowed
        fake.url + "/{secret:token}\\x",  # refused: a backslash
        "http://{secret:token}@127.0.0.1:1/",  # refused: user info
    ]:
        task = HttpCallTask(
            name=f"tests.leak{next(_runs)}",
            url=url,
            headers={"Authorization": "Bearer {secret:token}", "X-Bad": "{inputs.bad}"},
            data={"token": "{secret:token}", "text": "{inputs.text}"},
            inputs={"text": str, "bad": str},
        )
        request = webhook_request(task, {"text": "hi", "bad": "ok"})
        http("http", lambda request=request: api.execute_sync("webhook", request))
    grpc_call(lambda: flyte.execute_sync(webhook_request(task, {"text": "hi", "bad": "ok"})))
    fake.reply(Reply(200, {"echo": TOKEN}))
    ok = HttpCallTask(
        name=f"tests.leak{next(_runs)}", url=fake.url + "/ok", headers={"X-T": "{secret:token}"}, inputs={}
    )
    grpc_call(lambda: flyte.execute_sync(webhook_request(ok, {})))
    assert fake.requests, "the webhook agent sent nothing: the test would prove nothing"
    assert any(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in fake.requests)

    # A sync agent raising with the secret.
    sync = task_request("leaky_sync", inputs={}, outputs={}, execution=f"sync{next(_runs)}")
    http("http", lambda: api.execute_sync("leakysync", sync))
    grpc_call(lambda: flyte.execute_sync(sync))

    # The async agent: succeeding, failing in get, crashing in create, outputs large enough for S3; over
    # HTTP and gRPC. All started before any is waited for: they run side by side.
    tasks: dict[str, bytes] = {}  # task id -> resource_meta
    for mode in ("succeed", "fail", "crash", "big"):
        request = _leaky_request(mode)
        created = http("http", lambda request=request: api.create_task(request))
        meta = grpc_call(lambda mode=mode: flyte.create(_leaky_request(mode)))
        for resource_meta in (created.resource_meta, meta):
            found.add("resource_meta", resource_meta.decode())
            tasks[task_id_from_resource_meta(resource_meta)] = resource_meta
    # One left running, then deleted: its delete raises with the secret.
    waiting = http("http", lambda: api.create_task(_leaky_request("wait"))).resource_meta
    waiting_id = task_id_from_resource_meta(waiting)
    tasks[waiting_id] = waiting
    # The sensor: its first poke raises with the secret, the next one is met.
    sensor = task_request("leaky_sensor", inputs={"key": "k"}, outputs={}, execution=f"sensor{next(_runs)}")
    sensor_meta = http("http", lambda: api.create_task(sensor)).resource_meta
    tasks[task_id_from_resource_meta(sensor_meta)] = sensor_meta

    _wait_for(lambda: _polled(api, waiting_id))
    http("http", lambda: api.delete_task(waiting_id))
    for task_id, resource_meta in tasks.items():
        _wait_for(lambda task_id=task_id: _ended_or_cleaning(api, task_id))
        http("http", lambda task_id=task_id: api.get_task(task_id))
        raw = urllib3.request("GET", f"{stack.api_url}/v1/tasks/{task_id}", retries=False)
        found.add("http", raw.data.decode())
        task_type = "leaky_sensor" if resource_meta == sensor_meta else "leaky_job"
        signed = sign(resource_meta)
        grpc_call(lambda meta=signed, task_type=task_type: flyte.get(meta, task_type))
        # GetTaskLogs and GetTaskMetrics: the task's own lines, as Flyte's UI reads them.
        for path in ("logs", "metrics"):
            raw = urllib3.request("GET", f"{stack.api_url}/v1/tasks/{task_id}/{path}", retries=False)
            found.add("task logs", raw.data.decode())
        logs = agent_pb2.GetTaskLogsRequest(
            resource_meta=signed, task_category=agent_pb2.TaskCategory(name=task_type)
        )
        grpc_call(lambda logs=logs: list(flyte.tasks.GetTaskLogs(logs, timeout=10)))


def _leaky_request(mode: str) -> agent_pb2.CreateTaskRequest:
    return task_request(
        "leaky_job", inputs={}, outputs={"o": str}, execution=f"leaky{next(_runs)}", custom={"mode": mode}
    )


def _polled(api: ApiClient, task_id: str) -> bool:
    resource = api.get_task(task_id).resource
    return Phase(resource.phase) is Phase.RUNNING and "used" in resource.message


def _ended_or_cleaning(api: ApiClient, task_id: str) -> bool:
    resource = api.get_task(task_id).resource
    return Phase(resource.phase).is_terminal or "delete" in resource.message


def _wait_for(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def _collect_what_is_kept(stack: LocalStack, found: Evidence) -> None:
    dynamodb = stack.client("dynamodb")
    for item in dynamodb.scan(TableName=stack.tasks_table)["Items"]:
        found.add("tasks table", item)
    sfn = stack.client("stepfunctions")
    for arn in stack.state_machine_arns.values():
        for execution in sfn.list_executions(stateMachineArn=arn)["executions"]:
            found.add("executions", sfn.describe_execution(executionArn=execution["executionArn"]))
            history = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)
            found.add("executions", history["events"])
    logs = stack.client("logs")
    for group in logs.describe_log_groups()["logGroups"]:
        events = logs.filter_log_events(logGroupName=group["logGroupName"])["events"]
        found.add("cloudwatch logs", [event["message"] for event in events])
    s3 = stack.client("s3")
    for bucket in s3.list_buckets()["Buckets"]:
        for obj in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            body = s3.get_object(Bucket=bucket["Name"], Key=obj["Key"])["Body"].read()
            found.add("s3", f"{bucket['Name']}/{obj['Key']} {body.decode(errors='replace')}")


# Where the agents put the secret, the mask must show (else the scan would prove nothing); the secret
# itself, in any of its spellings, never.
WHERE = {
    "http": True,
    "grpc": True,
    "logs": True,
    "cloudwatch logs": True,  # what the functions logged, in their log groups (the local stack's capture)
    "task logs": True,  # GetTaskLogs' pages of the leaky tasks' own lines
    "tasks table": True,
    "executions": True,
    "s3": True,
    "resource_meta": False,
}


@pytest.mark.parametrize("where", WHERE)
def test_the_secret_never_leaves(evidence: Evidence, where: str) -> None:
    text = evidence.text(where)

    assert text, f"nothing was collected from {where}"
    assert TOKEN not in text
    assert TOKEN.replace("-", "%2D") not in text
    if WHERE[where]:
        assert MASK in text, f"{where}: the agents' leaks did not get there; the scan proves nothing"


def test_the_agents_saw_the_secret_and_flyte_saw_the_mask(evidence: Evidence) -> None:
    grpc_text = evidence.text("grpc")

    assert f"job job-{MASK} used {MASK}" in grpc_text
    assert f"out {MASK}" in evidence.text("s3") + evidence.text("tasks table") + grpc_text
    assert f"AgentError: the platform refused {MASK}" in evidence.text("http")
    assert f"ValueError: cannot create a job with {MASK} on two lines" in evidence.text("http")
    assert f"unknown token {MASK}" in evidence.text("http")
    assert f"ConnectionError: the platform said no to {MASK}" in evidence.text("logs")
