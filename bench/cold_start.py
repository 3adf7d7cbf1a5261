"""Cold start as on Lambda, side by side: each handler of ours next to a flytekit-based handler doing its job.

Every figure comes from a fresh interpreter of the Lambda runtime's Python version (`bundles.LAMBDA_PYTHON`,
found as the bundler finds it: `bundles.compiler_python`) with only a bundle on its path, built the way
`infra/cdk/bundle.py` builds them (pip for Lambda, bytecode compiled by that version):

- ours: `build/lambda/<family>` for the family of the handler's agent (`bundles.build_bundle`, which
  also refreshes the project code from the working tree);
- flytekit's: `build/bench/flytekit`: boto3, Powertools and flytekit, pip-installed the same way, with
  `bench/flytekit_handler.py` (boto3, Powertools, flytekit's connector base and TypeEngine at init);
- a flytekit connector's: `build/lambda/flytekit`, the `flytekit` family, built from
  bench/flytekit_connectors.toml, whose agent is a flytekit `AsyncConnectorBase` (bench/flytekit_job.py)
  that our create function runs through `serverless_agents.agents.flytekit_connector`.

The child runs with `-S` (the interpreter's own site-packages stays off the path) and times, with
`time.perf_counter`, the handler module's import (Lambda's init), then the handler's first invocation
with a Lambda context and an event of the shape its trigger sends (the settings, the manifest, the
agent's module, pydantic, flyteidl and botocore clients are all made or loaded there). AWS is a closed
port on 127.0.0.1 with a single attempt (`AWS_ENDPOINT_URL`, `AWS_MAX_ATTEMPTS=1`): a first invocation
that needs AWS ends at its first call, refused, on both sides; the `ends` column says how each ended.
What our step would still load past that call (a module, another service's client: `Case.rest`) is
loaded by the child right after it and counted in the first invocation, so that moving an import past
the first AWS call shortens no row; flytekit's handler has loaded everything at init. Peak RSS is the
child's VmHWM; modules are `len(sys.modules)` after the import and after the first invocation.

Whole cold start = import + first invocation, what a caller waits for. Each row is the median of `runs`
children, run round-robin (one child of each row, then the next round) so that the machine's load, which
others share, weighs on every row alike; the CPU column (`time.process_time`) is the same cold start in
CPU time, less sensitive to that load. The heaviest imports come from one `-X importtime` child.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import ROOT, BenchError, Table, bench_main, emit, median, package_version

sys.path.insert(0, str(ROOT))  # the CDK app's bundler is not an installed package
from infra.cdk.serverless_agents_cdk import bundles

from serverless_agents.deployment.manifest import EXAMPLE_MANIFEST
from serverless_agents.deployment.plan import plan_deployment

RUNS = 5
QUICK_RUNS = 1
#: The flytekit-based handler's bundle: beside ours, outside `build/lambda` (no deployment uses it).
FLYTEKIT_BUNDLE = ROOT / "build" / "bench" / "flytekit"
FLYTEKIT_HANDLER = "bench.flytekit_handler"
#: The bench modules the flytekit handler needs, copied into its bundle as the package `bench`.
FLYTEKIT_CODE = ("__init__.py", "flytekit_echo.py", "flytekit_handler.py")
#: The deployment of the flytekit connector row: one agent, a flytekit connector, in the `flytekit` family.
CONNECTOR_MANIFEST = ROOT / "bench" / "flytekit_connectors.toml"
CONNECTOR_FAMILY = "flytekit"
TASK_ID = "bench-cold-start"
ACCOUNT = "123456789012"
#: Goals of issue #22 for the whole cold start, as flytekit / ours: a task's step and a sync call.
STEP_GOAL, CALL_GOAL = 4.0, 3.0
#: Times the import and the first invocation of argv[1] with the event in argv[2] (JSON), then the rest of
#: the step past its first AWS call (argv[3], Python; `Case.rest`) as part of that invocation; prints JSON.
_CHILD = """
import json, sys, time
start, start_cpu = time.perf_counter(), time.process_time()
module = __import__(sys.argv[1], fromlist=["handler"])
imported = time.perf_counter()
init_modules = len(sys.modules)

class Context:
    function_name = "bench-cold-start"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-cold-start"
    aws_request_id = "bench-cold-start"
    log_group_name = "/aws/lambda/bench-cold-start"
    log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 30000

ends = "ok"
invoking = time.perf_counter()
try:
    module.handler(json.loads(sys.argv[2]), Context())
except Exception as error:
    ends = type(error).__name__
exec(sys.argv[3])
invoked, invoked_cpu = time.perf_counter(), time.process_time()
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"import": imported - start, "first": invoked - invoking, "ends": ends,
                  "cpu": invoked_cpu - start_cpu, "init_modules": init_modules, "modules": len(sys.modules),
                  "peak_kib": peak}))
"""
#: `Case.rest` of a step that goes on with the agent's S3 calls, or with the tasks table, past its first call.
_S3_CLIENT = "from serverless_agents import aws; aws.client('s3').meta"
_TABLE_CLIENT = "from serverless_agents import aws; aws.client('dynamodb').meta"


@dataclass(frozen=True)
class Case:
    """One handler, run from one bundle, with one event."""

    label: str
    module: str
    bundle: Path
    event: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    #: The flytekit case doing the same job (its label), for the ratio; "" for flytekit's own rows.
    versus: str = ""
    #: The goal of flytekit / ours for the whole cold start, 0 for none.
    goal: float = 0.0
    #: Python the child runs after the invocation, counted in it: what the step loads past its first AWS
    #: call, where the closed port stopped it (a module it imports there, a client of another service).
    rest: str = ""


@dataclass
class Sample:
    imports: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    peaks_kib: list[int] = field(default_factory=list)
    init_modules: int = 0
    modules: int = 0
    ends: str = ""
    error: str = ""

    def ms(self, values: list[float]) -> float:
        return median(values) * 1000 if values and not self.error else float("nan")


def closed_port() -> int:
    """A loopback port nothing listens on: a connection to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(case: Case, endpoint: str) -> dict[str, str]:
    """Only what Lambda sets and the function's own variables: nothing of this process's environment."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(case.bundle),
        "PYTHONDONTWRITEBYTECODE": "1",  # the bundle is read-only on Lambda: nothing is written to it
        "LAMBDA_TASK_ROOT": str(case.bundle),
        "AWS_LAMBDA_FUNCTION_NAME": "bench-cold-start",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "SA_TASKS_TABLE": "bench-tasks",
        "SA_PAYLOAD_BUCKET": "bench-payloads",
        "SA_STATE_MACHINE_ARN_PREFIX": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:serverless-agents-",
        **case.env,
    }


def measure(case: Case, python: str, runs: int) -> Sample:
    """`runs` cold starts of one case, one after another."""
    return measure_all([case], python, runs)[case.label]


def measure_all(cases: list[Case], python: str, runs: int) -> dict[str, Sample]:
    """`runs` cold starts of each case, round-robin: one of each, then the next round."""
    samples = {case.label: Sample() for case in cases}
    envs = {case.label: child_env(case, f"http://127.0.0.1:{closed_port()}") for case in cases}
    for round_number in range(runs):
        emit(f"  cold start: round {round_number + 1} of {runs} ...")
        for case in cases:
            if not samples[case.label].error:
                run_child(case, python, envs[case.label], samples[case.label])
    return samples


def run_child(case: Case, python: str, env: dict[str, str], sample: Sample) -> None:
    done = subprocess.run(
        [python, "-S", "-c", _CHILD, case.module, json.dumps(case.event), case.rest or "pass"],
        cwd=tempfile.gettempdir(),  # not the repository: only the bundle is importable
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        sample.error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return
    result = json.loads(done.stdout.strip().splitlines()[-1])
    sample.imports.append(result["import"])
    sample.firsts.append(result["first"])
    sample.totals.append(result["import"] + result["first"])
    sample.cpus.append(result["cpu"])
    sample.peaks_kib.append(result["peak_kib"])
    sample.init_modules, sample.modules, sample.ends = (
        result["init_modules"],
        result["modules"],
        result["ends"],
    )


_IMPORTTIME = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)$")
#: The handler's own code: its entry point (`functions.<role>.handler`, what Lambda imports) and the library
#: module that re-exports (serverless_agents.handlers); the flytekit handler's is `bench`.
_HANDLER_CODE = ("functions", "serverless_agents.handlers", "bench")


def _package(module: str) -> str:
    """What `heaviest_imports` charges a module to: "" for the handler's own code, else its top package."""
    if any(module == own or module.startswith(f"{own}.") for own in _HANDLER_CODE):
        return ""
    return module.split(".")[0]


def heaviest_imports(case: Case, python: str, top: int = 3) -> str:
    """One `-X importtime` child: the packages the handler's import pulls in with the largest cumulative
    time. The report lists children first; read backwards it is a tree (two spaces a level), and a
    package counts where it is first entered from another package, not again inside itself."""
    done = subprocess.run(
        [python, "-S", "-X", "importtime", "-c", f"import {case.module}"],
        cwd=tempfile.gettempdir(),
        env=child_env(case, "http://127.0.0.1:9"),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    entries = [
        (len(m[2]) // 2, m[3], int(m[1]))
        for line in done.stderr.splitlines()
        if (m := _IMPORTTIME.match(line))
    ]
    if not entries or entries[-1][1] != case.module:
        return ""
    totals: dict[str, int] = {}
    ancestors: list[str] = []
    for depth, name, cumulative_us in reversed(entries[:-1]):
        if depth == 0:
            break  # start-up imports, before the module's own
        del ancestors[depth - 1 :]
        package = _package(name)
        if package and package not in ancestors:
            totals[package] = totals.get(package, 0) + cumulative_us
        ancestors.append(package)
    ranked = sorted(((us, name) for name, us in totals.items()), reverse=True)
    return ", ".join(f"{name} {us / 1000:.0f}" for us, name in ranked[:top])


# ------------------------------------------------------------------------------------------------ bundles


def our_bundles() -> dict[str, bundles.Bundle]:
    """The families the example manifest deploys, and the flytekit connectors' family, built (or
    refreshed) as for a deploy."""
    plan = plan_deployment(EXAMPLE_MANIFEST)
    built = {family: bundles.build_bundle(family, plan) for family in bundles.families(plan)}
    return {**built, CONNECTOR_FAMILY: connector_bundle()}


def connector_bundle() -> bundles.Bundle:
    """The `flytekit` family's bundle, with bench/flytekit_connectors.toml as its manifest."""
    return bundles.build_bundle(CONNECTOR_FAMILY, plan_deployment(CONNECTOR_MANIFEST))


def flytekit_bundle() -> bundles.Bundle:
    """boto3, Powertools and flytekit for Lambda, plus the flytekit handler, compiled the same way."""
    requirements = [
        f"flytekit=={package_version('flytekit')}",
        f"boto3=={package_version('boto3')}",
        f"aws-lambda-powertools=={package_version('aws-lambda-powertools')}",
    ]
    compiler = bundles.install_dependencies(FLYTEKIT_BUNDLE, requirements)
    code = FLYTEKIT_BUNDLE / "bench"
    shutil.rmtree(code, ignore_errors=True)
    code.mkdir()
    for name in FLYTEKIT_CODE:
        shutil.copyfile(ROOT / "bench" / name, code / name)
    if compiler:
        bundles.compile_bytecode(code, compiler, recorded_as=f"{bundles.LAMBDA_TASK_ROOT}/bench")
    return bundles.measure_bundle("flytekit handler", FLYTEKIT_BUNDLE, compiler)


# -------------------------------------------------------------------------------------------------- cases


def _sync_body(task_type: str) -> str:
    from google.protobuf import json_format

    from serverless_agents.testing import task_request

    request = task_request(task_type, {"text": "ping"}, {"text": str}, execution="bench-cold-start")
    return json_format.MessageToJson(request)


def cases(core: Path, sensors: Path, flytekit: Path, connectors: Path) -> list[Case]:
    from serverless_agents.local.apigateway import proxy_event

    def api_event(method: str, path: str, body: str = "") -> dict[str, Any]:
        return proxy_event(method, path, {"content-type": "application/json"}, body.encode(), "127.0.0.1")

    aborted = json.loads((ROOT / "tests" / "events" / "sfn_execution_status_change_aborted.json").read_text())
    job, echo = {"SA_AGENT": "job"}, {"SA_AGENT": "echo"}
    state_job, api_job = "flytekit handler: a task's step", "flytekit handler: a sync call"
    job_metadata = json.dumps({"job_id": TASK_ID, "bucket": "bench-payloads"})
    return [
        # Stops at the task's read; then decodes the request (flyteidl) and starts the job (S3).
        Case(
            "create (job)",
            "functions.create.handler",
            core,
            {"task_id": TASK_ID},
            job,
            state_job,
            STEP_GOAL,
            f"import serverless_agents.runtime.translate; {_S3_CLIENT}",
        ),
        connector_case(connectors, state_job),
        # Stops at the job's read (S3); then records the poll (the tasks table).
        Case(
            "get (job)",
            "functions.get.handler",
            core,
            {"task_id": TASK_ID, "job": {"metadata": job_metadata, "polls": 0}},
            job,
            state_job,
            STEP_GOAL,
            _TABLE_CLIENT,
        ),
        # Stops at the cleanup's claim (the tasks table); then deletes the job (S3).
        Case(
            "delete (job)",
            "functions.delete.handler",
            core,
            {"task_id": TASK_ID, "phase": "ABORTED", "message": "bench"},
            job,
            state_job,
            STEP_GOAL,
            _S3_CLIENT,
        ),
        # Stops at the task's read; then pokes (S3's HeadObject for an s3:// path).
        Case(
            "poke (files)",
            "functions.poke.handler",
            sensors,
            {"task_ids": [TASK_ID]},
            {"SA_AGENT": "files"},
            state_job,
            STEP_GOAL,
            _S3_CLIENT,
        ),
        Case("finalize", "functions.finalize.handler", core, aborted, {}, state_job),
        Case("sweeper", "functions.sweeper.handler", core, {}, {}, state_job),
        Case(
            "api (GET /v1/agents)",
            "functions.api.handler",
            core,
            api_event("GET", "/v1/agents"),
            {},
            api_job,
            CALL_GOAL,
        ),
        Case(
            "sync (echo)",
            "functions.sync.handler",
            core,
            api_event("POST", "/v1/sync/echo", _sync_body("example_echo")),
            echo,
            api_job,
            CALL_GOAL,
        ),
        Case(state_job, FLYTEKIT_HANDLER, flytekit, {"task_id": TASK_ID}),
        Case(
            api_job, FLYTEKIT_HANDLER, flytekit, api_event("POST", "/v1/sync/echo", _sync_body("bench_echo"))
        ),
    ]


def connector_case(connectors: Path, versus: str = "") -> Case:
    """The create function of a flytekit connector's agent: flytekit is imported as its agent loads."""
    return Case(
        "create (flytekit connector)",
        "functions.create.handler",
        connectors,
        {"task_id": TASK_ID},
        {"SA_AGENT": "fkjob"},
        versus,
        rest="import serverless_agents.runtime.translate",  # the request, decoded past the task's read
    )


# ------------------------------------------------------------------------------------------------- tables


def ratio(theirs: float, ours: float) -> float | str:
    return "n/a" if math.isnan(theirs) or math.isnan(ours) or ours <= 0 else theirs / ours


def cold_start_table(
    runs: int, python: str, built: dict[str, bundles.Bundle], flytekit: bundles.Bundle
) -> Table:
    table = Table(
        f"Cold start as on Lambda: python {bundles.LAMBDA_PYTHON}, only the bundle on the path, "
        f"median of {runs}",
        [
            "handler",
            "bundle",
            "import ms",
            "first invocation ms",
            "whole (import + first) ms",
            "whole, CPU ms",
            "peak RSS MiB",
            "modules at init",
            "modules after",
            "ends",
            "flytekit / ours, import",
            "flytekit / ours, whole",
            "flytekit / ours, whole CPU",
            "goal (whole)",
            "heaviest at init, ms",
        ],
    )
    all_cases = cases(
        built[bundles.CORE].path, built["sensors"].path, flytekit.path, built[CONNECTOR_FAMILY].path
    )
    samples = measure_all(all_cases, python, runs)
    for case in all_cases:
        sample = samples[case.label]
        if sample.error:
            table.add(case.label, case.bundle.name, *["n/a"] * 12, f"failed: {sample.error[:120]}")
            continue
        theirs = samples.get(case.versus)
        whole = ratio(theirs.ms(theirs.totals), sample.ms(sample.totals)) if theirs else ""
        table.add(
            case.label,
            case.bundle.name,
            sample.ms(sample.imports),
            sample.ms(sample.firsts),
            sample.ms(sample.totals),
            sample.ms(sample.cpus),
            median([float(k) for k in sample.peaks_kib]) / 1024,
            sample.init_modules,
            sample.modules,
            sample.ends,
            ratio(theirs.ms(theirs.imports), sample.ms(sample.imports)) if theirs else "",
            whole,
            ratio(theirs.ms(theirs.cpus), sample.ms(sample.cpus)) if theirs else "",
            goal_cell(case.goal, whole),
            heaviest_imports(case, python),
        )
    table.notes += [
        f"{python}, run with -S; each row a fresh interpreter per run, the rows run round-robin; bundles "
        "as listed in the next table.",
        "import: the handler module's import, Lambda's init; first invocation: the handler called once with "
        "its trigger's event and a Lambda context; AWS is a closed loopback port with one attempt, so "
        "`ends` names the error a first invocation needing AWS stopped at (the same point on both sides), "
        "ok where it needed none; what our step loads past that point (the request's flyteidl, another "
        "service's client) is loaded right after it and counted in the first invocation.",
        "whole: import + first invocation, what a caller waits for; CPU: the same in the child's CPU time.",
        "flytekit / ours: how many times longer the flytekit-based handler takes for the same job (a task's "
        f"step: create, get, delete, poke, finalize, sweeper; a sync call: api, sync); the goal (issue 22), "
        f"for the whole cold start: {STEP_GOAL:g}x for create, get, delete and poke, {CALL_GOAL:g}x for api "
        "and sync.",
        "heaviest at init: one `-X importtime` child, cumulative ms per package the handler module imports.",
    ]
    return table


def goal_cell(goal: float, reached: float | str) -> str:
    if not goal:
        return ""
    if isinstance(reached, str):
        return f"{goal:g}x: n/a"
    return f"{goal:g}x: {'met' if reached >= goal else 'not met'}"


def bundle_table(built: dict[str, bundles.Bundle], flytekit: bundles.Bundle) -> Table:
    table = Table(
        "Bundle size, unzipped MiB (Lambda's limit: 250 MiB for code and layers)",
        ["bundle", "source MiB", "bytecode MiB", "total MiB", "compiled by"],
    )
    for name, bundle in [*sorted(built.items()), ("flytekit handler", flytekit)]:
        table.add(
            f"{name} ({bundle.path.relative_to(ROOT)})",
            bundle.source_bytes / 2**20,
            (bundle.size_bytes - bundle.source_bytes) / 2**20,
            bundle.size_bytes / 2**20,
            bundle.compiled_by or "nothing: source only",
        )
    table.notes.append(
        "source: everything but __pycache__ (what a bundle weighed before it shipped bytecode); bytecode: "
        "the unchecked-hash .pyc `bundles.compile_bytecode` writes, reproducible byte for byte."
    )
    return table


def run(quick: bool = False) -> list[Table]:
    python = bundles.compiler_python()
    if python is None:
        raise BenchError(
            f"no python{bundles.LAMBDA_PYTHON} here (Lambda's runtime version): install one, or name it in "
            f"${bundles.LAMBDA_PYTHON_ENV}"
        )
    try:
        emit("  building the bundles (pip runs only if their requirements changed) ...")
        built, flytekit = our_bundles(), flytekit_bundle()
    except bundles.BundleError as e:
        raise BenchError(str(e)) from e
    try:
        return [
            cold_start_table(QUICK_RUNS if quick else RUNS, python, built, flytekit),
            bundle_table(built, flytekit),
        ]
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"a cold start took longer than {e.timeout} s") from e


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, f"one run per handler instead of {RUNS}", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
