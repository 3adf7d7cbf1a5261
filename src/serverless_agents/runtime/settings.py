"""The Lambda environment, read when a handler runs (never at import time).

Locally many "Lambdas" share one process, so a function's environment variables cannot live in
`os.environ`: the local dispatcher binds each invocation's variables with `lambda_environment`, and
`current_settings` reads whatever is bound, falling back to the process environment (as on AWS).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from serverless_agents.exceptions import ManifestError

_bound_environment: ContextVar[Mapping[str, str] | None] = ContextVar("lambda_environment", default=None)

TASKS_TABLE = "SA_TASKS_TABLE"
PAYLOAD_BUCKET = "SA_PAYLOAD_BUCKET"
MANIFEST = "SA_MANIFEST"
AGENT = "SA_AGENT"
STATE_MACHINE_ARN_PREFIX = "SA_STATE_MACHINE_ARN_PREFIX"
TASK_TTL_DAYS = "SA_TASK_TTL_DAYS"
DEPLOYMENT = "SA_DEPLOYMENT"
FUNCTION_ARN_PREFIX = "SA_FUNCTION_ARN_PREFIX"
SCHEDULER_ROLE_ARN = "SA_SCHEDULER_ROLE_ARN"
SWEEP_LOOKBACK_MINUTES = "SA_SWEEP_LOOKBACK_MINUTES"

#: Days a task stays readable (SA_TASK_TTL_DAYS); payloads and logs are kept about as long.
DEFAULT_TASK_TTL_DAYS = 30
#: What the sweeper looks back over unless the plan says (SA_SWEEP_LOOKBACK_MINUTES).
DEFAULT_SWEEP_LOOKBACK_MINUTES = 60
#: The manifest's name inside a function bundle, beside the code (LAMBDA_TASK_ROOT).
BUNDLE_MANIFEST = "agents.toml"
#: "true": the function runs Powertools' Tracer (the X-Ray SDK); the manifest's `tracing` sets it.
TRACING = "SA_TRACING"
#: Powertools' service name and metrics namespace: what the handlers log and count under, what the
#: deployment's environment says (`plan`), and what the alarms and the dashboard read (infra/cdk).
POWERTOOLS_SERVICE = "serverless-agents"
POWERTOOLS_NAMESPACE = "ServerlessAgents"


@contextmanager
def lambda_environment(variables: Mapping[str, str]) -> Iterator[None]:
    token = _bound_environment.set({**os.environ, **variables})
    try:
        yield
    finally:
        _bound_environment.reset(token)


def environ() -> Mapping[str, str]:
    return _bound_environment.get() or os.environ


@dataclass(frozen=True)
class RuntimeSettings:
    tasks_table: str
    payload_bucket: str
    manifest_path: Path
    #: The manifest name of the agent this function serves (per-agent functions only).
    agent: str | None
    #: `arn:aws:states:<region>:<account>:stateMachine:<deployment>-`; the agent's name completes it.
    state_machine_arn_prefix: str
    task_ttl_days: int
    #: The manifest's `deployment.name`: the prefix of every resource name.
    deployment: str
    region: str
    #: `arn:aws:lambda:<region>:<account>:function:`: sensor schedules target `<prefix><poke function>`.
    function_arn_prefix: str
    #: The role EventBridge Scheduler assumes to invoke poke functions.
    scheduler_role_arn: str
    #: How far back the sweeper looks for ended executions (a few of its schedule periods).
    sweep_lookback_minutes: int


def current_settings() -> RuntimeSettings:
    env = environ()
    missing = [name for name in (TASKS_TABLE, PAYLOAD_BUCKET) if not env.get(name)]
    if missing:
        raise ManifestError(f"environment variable(s) {', '.join(missing)} not set")
    default_manifest = Path(env.get("LAMBDA_TASK_ROOT", ".")) / BUNDLE_MANIFEST
    return RuntimeSettings(
        tasks_table=env[TASKS_TABLE],
        payload_bucket=env[PAYLOAD_BUCKET],
        manifest_path=Path(env.get(MANIFEST) or default_manifest),
        agent=env.get(AGENT) or None,
        state_machine_arn_prefix=env.get(STATE_MACHINE_ARN_PREFIX, ""),
        task_ttl_days=int(env.get(TASK_TTL_DAYS, DEFAULT_TASK_TTL_DAYS)),
        deployment=env.get(DEPLOYMENT, "serverless-agents"),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", ""),
        function_arn_prefix=env.get(FUNCTION_ARN_PREFIX, ""),
        scheduler_role_arn=env.get(SCHEDULER_ROLE_ARN, ""),
        sweep_lookback_minutes=int(env.get(SWEEP_LOOKBACK_MINUTES, DEFAULT_SWEEP_LOOKBACK_MINUTES)),
    )
