"""What a Lambda's entry point imports decides cold start: no emulator, CDK, gRPC, flytekit or test code,
and at init (the import of `functions.<role>.handler` as Lambda does it, which imports the library's
serverless_agents.handlers.<role>) nothing beyond Powertools' Logger and Metrics and the settings. At the
first invocation, a function loads what its path needs and no more: the manifest compiled (no pydantic
models of it), no protobuf on a path that only moves JSON, no pydantic for an agent without a metadata
model, botocore without boto3, and no AWS SDK at all on a path that calls no service.

Each check runs in a fresh interpreter: what this test process imported must not hide what a handler
pulls in. The budget is a count of modules, not a time: it holds on any machine, and a new import at init
shows up as a failing count naming the modules it added.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from serverless_agents.deployment.manifest import EXAMPLE_MANIFEST

ROOT = Path(__file__).parents[2]
HANDLERS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py"))
FORBIDDEN = ("moto", "aws_cdk", "grpc", "flytekit", "tests", "docker", "serverless_agents.local")
#: Loaded at the first invocation, where they are used (handlers/__init__.py), never at init: the X-Ray
#: SDK only where tracing is on, pydantic and flyteidl with the runtime, boto3 with the first client.
NOT_AT_INIT = (
    "aws_xray_sdk",
    "pydantic",
    "flyteidl",
    "google.protobuf",
    "boto3",
    "botocore.client",
    "msgpack",
)
#: Modules in sys.modules after a handler's import, the interpreter's own included (about 60 for a bare
#: python3.12, 75 for 3.11; Powertools' Logger and Metrics add about 100). Measured at 179-180 (3.11).
MODULE_BUDGET = 200
#: The Lambda variables that change an import: Powertools turns its Tracer on inside Lambda.
LAMBDA_ENV = {"LAMBDA_TASK_ROOT": str(ROOT), "AWS_LAMBDA_FUNCTION_NAME": "test-imports"}


def run_child(script: str, **env: str) -> Any:
    """Run `script` in a fresh interpreter from the repository root; it prints one JSON value."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("SA_", "AWS_LAMBDA_", "_X_AMZN"))}
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**child_env, **LAMBDA_ENV, **env},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def loaded_by(module: str) -> list[str]:
    script = f"import importlib, json, sys; importlib.import_module({module!r})"
    return list(run_child(script + "; print(json.dumps(sorted(sys.modules)))"))


def test_every_role_has_a_handler() -> None:
    assert HANDLERS == ["api", "create", "delete", "finalize", "get", "poke", "sweeper", "sync"]


@pytest.mark.parametrize("role", HANDLERS)
def test_handler_init_stays_lean(role: str) -> None:
    modules = loaded_by(f"functions.{role}.handler")

    def present(prefixes: tuple[str, ...]) -> list[str]:
        return sorted({m for m in modules for p in prefixes if m == p or m.startswith(p + ".")})

    assert f"serverless_agents.handlers.{role}" in modules  # what is counted is the code Lambda runs
    assert present(FORBIDDEN) == [], f"functions.{role}.handler imports {present(FORBIDDEN)}"
    assert present(NOT_AT_INIT) == [], f"functions.{role}.handler imports at init {present(NOT_AT_INIT)}"
    assert len(modules) <= MODULE_BUDGET, (
        f"functions.{role}.handler loads {len(modules)} modules at init, over its budget of {MODULE_BUDGET}: "
        f"{sorted(set(modules) - set(loaded_by('serverless_agents.handlers.observability')))}"
    )


_TRACED_CALL = """
import json, sys
from serverless_agents.handlers.observability import capture_lambda_handler

@capture_lambda_handler
def handler(event, context):
    return "ok"

answer = handler({}, None)
print(json.dumps([answer, "aws_xray_sdk" in sys.modules]))
"""


@pytest.mark.parametrize(("tracing", "sdk_loaded"), [("", False), ("false", False), ("true", True)])
def test_the_xray_sdk_loads_only_where_tracing_is_on(tracing: str, sdk_loaded: bool) -> None:
    # POWERTOOLS_TRACE_DISABLED: the Tracer is made (and imports the SDK) but sends nothing, offline.
    answer = run_child(_TRACED_CALL, SA_TRACING=tracing, POWERTOOLS_TRACE_DISABLED="true")

    assert answer == ["ok", sdk_loaded]


#: A SnapStart init as Lambda's Python runtime runs it: import the handler module, then (after the
#: snapshot) call every registered after-restore hook, as the runtime does with snapshot_restore_py's
#: registry (aws/snapshot-restore-py: `get_after_restore`, a list of (function, args, kwargs)).
_SNAPSTART = """
import json, random, sys
import snapshot_restore_py
import functions.create.handler
from serverless_agents import aws
from serverless_agents.runtime import loading

primed = {
    "agent_module": "serverless_agents.examples" in sys.modules,
    "runtime": "serverless_agents.runtime.wiring" in sys.modules,
    "botocore": "botocore.session" in sys.modules,
    "clients": aws._client.cache_info().currsize,
    "agents": loading._loaded_agent.cache_info().currsize,
    "hooks": len(snapshot_restore_py.get_after_restore()),
}
aws.client("dynamodb").meta  # as if an invocation had used a client before the snapshot
before = random.getstate()
for function, args, kwargs in snapshot_restore_py.get_after_restore():
    function(*args, **kwargs)
restored = {
    "clients": aws._client.cache_info().currsize,
    "agents": loading._loaded_agent.cache_info().currsize,
    "random_reseeded": random.getstate() != before,
}
print(json.dumps([primed, restored]))
"""


def test_snapstart_init_loads_the_agent_and_restore_drops_what_is_unique() -> None:
    primed, restored = run_child(
        _SNAPSTART,
        AWS_LAMBDA_INITIALIZATION_TYPE="snap-start",
        SA_AGENT="job",
        SA_TASKS_TABLE="tasks",
        SA_PAYLOAD_BUCKET="payloads",
        SA_MANIFEST=str(EXAMPLE_MANIFEST),
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )

    assert primed == {
        "agent_module": True,
        "runtime": True,
        "botocore": True,
        "clients": 0,
        "agents": 1,
        "hooks": 1,
    }
    assert restored == {"clients": 0, "agents": 0, "random_reseeded": True}


def test_without_snapstart_init_primes_nothing() -> None:
    modules = loaded_by("functions.create.handler")

    assert "serverless_agents.examples" not in modules


def test_the_sdk_names_load_at_first_access() -> None:
    script = (
        "import json, sys, serverless_agents as sa; lazy = 'serverless_agents.agent' not in sys.modules; "
        "names = {n: getattr(sa, n).__name__ for n in sa.__all__}; print(json.dumps([lazy, names]))"
    )
    lazy, names = run_child(script)

    assert lazy
    assert names == {name: name for name in names}  # every exported name is the object it names
    assert {"AsyncAgentBase", "SyncAgentBase", "BaseSensor", "get_agent_secret"} <= set(names)


_FIRST_USE = """
import json
from serverless_agents import aws
from serverless_agents.aws.payloads import PayloadStore
from serverless_agents.aws.tasks_table import TasksTable

made = lambda: aws._client.cache_info().currsize
table = TasksTable("tasks", client=aws.client("dynamodb"))
payloads = PayloadStore("payloads", client=aws.client("s3"))
after_building = made()
region = table._client.meta.region_name  # the first use of one of them
print(json.dumps([after_building, made(), region]))
"""


def test_clients_are_made_at_first_use_not_when_a_store_is_built() -> None:
    built, used, region = run_child(_FIRST_USE, AWS_REGION="eu-west-1")

    assert (built, used, region) == (0, 1, "eu-west-1")


#: A first invocation as Lambda runs it, AWS a closed loopback port (as bench/cold_start.py runs it): the
#: step ends at its first AWS call, refused, or answers without one. Prints how it ended and the modules.
_FIRST_INVOCATION = """
import importlib, json, sys

class Context:
    function_name = "test-imports"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-imports"
    aws_request_id = "test-imports"

handler = importlib.import_module(sys.argv[1]).handler
try:
    handler(json.loads(sys.argv[2]), Context())
    ends = "ok"
except Exception as error:
    ends = type(error).__name__
print(json.dumps([ends, sorted(sys.modules)]))
"""


def _api_event(method: str, path: str, body: bytes = b"") -> dict[str, Any]:
    from serverless_agents.local.apigateway import proxy_event

    return proxy_event(method, path, {"content-type": "application/json"}, body, "127.0.0.1")


def _echo_request() -> bytes:
    """The adapter's ExecuteTaskSync request for the example echo agent, as the sync route receives it."""
    from google.protobuf import json_format

    from serverless_agents.testing import task_request

    return json_format.MessageToJson(task_request("example_echo", {"text": "ping"}, {"text": str})).encode()


_JOB = json.dumps({"job_id": "job/first-invocation", "bucket": "payloads"})
#: role, agent, event, the modules its first invocation must not load.
FIRST_INVOCATIONS = [
    # A get that finds the job running moves JSON only; the job's metadata is a pydantic model.
    ("get", "job", {"task_id": "t-1", "job": {"metadata": _JOB, "polls": 0}}, ("google.protobuf", "boto3")),
    ("delete", "job", {"task_id": "t-1", "phase": "ABORTED", "message": "m"}, ("google.protobuf", "boto3")),
    # FileSensor has no metadata model: no pydantic at all.
    ("poke", "files", {"task_ids": ["t-1"]}, ("pydantic", "boto3")),
    # The deployed agents, from the compiled manifest and the classes: no AWS call, no AWS SDK.
    # (Powertools imports the `botocore` package itself, at init, to tag the sessions it makes.)
    ("api", None, _api_event("GET", "/v1/agents"), ("botocore.session", "botocore.client", "boto3")),
    # A sync call checks its one path parameter itself: none of Powertools' OpenAPI validation, which loads
    # pydantic (the example echo agent's module loads it all the same: it holds the job agent's metadata).
    (
        "sync",
        "echo",
        _api_event("POST", "/v1/sync/echo", _echo_request()),
        ("aws_lambda_powertools.event_handler.openapi.params", "botocore.session"),
    ),
]
#: Never at a first invocation from a bundle: the manifest is read compiled.
NEVER_FROM_A_BUNDLE = ("serverless_agents.deployment.manifest",)


@pytest.mark.parametrize(("role", "agent", "event", "absent"), FIRST_INVOCATIONS, ids=lambda v: str(v)[:12])
def test_a_first_invocation_loads_only_what_its_path_needs(
    role: str, agent: str | None, event: dict[str, Any], absent: tuple[str, ...], tmp_path: Path
) -> None:
    from serverless_agents.deployment.compiled_manifest import compiled_path
    from serverless_agents.deployment.manifest import compile_manifest

    bundle_manifest = tmp_path / "agents.toml"  # as the bundler writes it: compiled beside it
    bundle_manifest.write_text(EXAMPLE_MANIFEST.read_text())
    compiled_path(bundle_manifest).write_text(compile_manifest(bundle_manifest))
    with socket.socket() as s:  # a loopback port nothing listens on: every AWS call is refused at once
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    env = {
        "SA_MANIFEST": str(bundle_manifest),
        "SA_TASKS_TABLE": "tasks",
        "SA_PAYLOAD_BUCKET": "payloads",
        "SA_AGENT": agent or "",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed}",
        "AWS_MAX_ATTEMPTS": "1",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_INVOCATION, f"functions.{role}.handler", json.dumps(event)],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("SA_", "AWS_"))},
            **LAMBDA_ENV,
            **env,
        },
    )
    assert done.returncode == 0, done.stderr
    ends, modules = json.loads(done.stdout.strip().splitlines()[-1])
    loaded = sorted(
        m for m in modules for p in (*absent, *NEVER_FROM_A_BUNDLE) if m == p or m.startswith(p + ".")
    )

    assert ends in ("ok", "EndpointConnectionError", "ServiceUnavailable")  # it ran up to AWS, or answered
    assert loaded == [], f"the first invocation of {role} loaded {loaded}"
