"""`agents.toml`: which agents a deployment runs, and with what settings.

The manifest is the one place agents are named. The CDK app turns it into resources, the local stack into
emulated ones, and the Lambdas read it (bundled beside their code) to load their agent's class. Loading
the manifest imports nothing; `AgentSettings.load_class()` imports exactly one agent module.

    [deployment]
    name = "serverless-agents"          # prefix of every resource name
    code_path = ["../my-agents"]        # folders of agent code outside this project, from the manifest's
                                        # folder: importable under `up`, copied into the Lambda bundles

    [agents.job]
    class = "serverless_agents.examples:JobAgent"
    memory = 256                        # MB, each of the agent's Lambdas
    timeout = 30                        # s, each Lambda invocation
    execution_timeout = 86400           # s, the whole task (state machine TimeoutSeconds)
    poll = { initial = 5, factor = 2.0, cap = 300 }
    end_within = 3600                   # s, a task whose delete keeps failing is ended FAILED by then
    config = { endpoint = "https://..." }
    tracing = false                     # Powertools' Tracer (X-Ray SDK) in its functions: slower cold starts
    snapstart = false                   # Lambda SnapStart on its functions (published versions)

    [agents.job.secrets]                # name = Secrets Manager secret name or ARN, no wildcard
    db_key = "db/private-key"           # no destinations: never sent by the outbound client (a
                                        # library that makes its own connections reads it)

    [agents.job.secrets.token]          # a secret with where it may be sent: host, path prefix and
    id = "job/api-token"                # the parts of a request (header, query, body, path)
    destinations = [{ host = "api.example.com", path = "/v1/", in = ["header"] }]

    [agents.files]                      # a sensor: poked on a schedule and by matching events
    class = "serverless_agents.agents.file_sensor:FileSensor"
    schedule = "rate(1 minute)"
    sensor_timeout = 86400              # s, when the task template sets no timeout
    max_poke_errors = 3                 # pokes raising in a row before the task fails
    events = [{ source = ["aws.s3"], detail-type = ["Object Created"], detail = {bucket = {name = ["x"]}} }]

    [[agents.files.permissions]]        # IAM grants for the agent's own AWS calls, to its functions only
    actions = ["s3:GetObject"]          # each action named: no wildcards
    resources = ["arn:aws:s3:::x/*"]    # ARNs, wildcards only after a named resource's prefix;
                                        # "*" only alone, for actions IAM cannot scope

    [[agents.files.permissions]]
    actions = ["s3:ListBucket"]
    resources = ["arn:aws:s3:::x"]

The Lambda functions read the manifest compiled (`compile_manifest`, written beside the bundle's
`agents.toml` by the bundler): the same models' dump, read without pydantic (`compiled_manifest`).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serverless_agents.deployment import compiled_manifest
from serverless_agents.deployment.compiled_manifest import (
    DEFAULT_POLLS_PER_EXECUTION,
    HOST_LABEL,
    MAX_POLLS_PER_EXECUTION,
)
from serverless_agents.deployment.compiled_manifest import RATE as _RATE
from serverless_agents.exceptions import ManifestError
from serverless_agents.flyte.identity import AGENT_NAME

if TYPE_CHECKING:
    from serverless_agents.agent import AsyncAgentBase, BaseSensor, SyncAgentBase

    AgentClass = type[AsyncAgentBase] | type[SyncAgentBase] | type[BaseSensor]  # type: ignore[type-arg]

#: The example manifest (the built-in agents and two examples), package data so that an installed wheel
#: has it: `up` runs it given no `--manifest` and no ./agents.toml; the CDK app deploys it by default.
EXAMPLE_MANIFEST = Path(__file__).parent.parent / "example_agents.toml"
#: API Gateway's default integration timeout for REST APIs, in seconds.
API_GATEWAY_TIMEOUT = 29
# Actions the built-in agents need that IAM cannot scope to a resource (the Service Authorization Reference
# lists no resource type for them), so `"*"` is their only resource.
_UNSCOPED_ACTIONS = frozenset(
    {"ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions"}
)
#: A PEP 508 requirement as pip reads it from a requirements file line: a project name first (so never a pip
#: option such as `--extra-index-url`), then versions, extras, markers or a direct URL, on one line.
_REQUIREMENT = r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._, -]*\])?([ ]*[<>=!~;@(][^\n\r]*)?$"
#: What pip would read as a local file or folder rather than a project name (`./x`, `pkg.whl`, `x.tar.gz`).
_LOCAL_REQUIREMENT = re.compile(r"[/\\]|\.(whl|zip|tar|tgz|gz|bz2|xz)$", re.IGNORECASE)
# An IAM action named in full: `service:Action`, no wildcard.
_ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")
#: A Secrets Manager secret name (1 to 512 of these characters, as CreateSecret accepts), or a secret's
#: full ARN. Neither may hold `*` or `?`: the CDK app grants GetSecretValue on `<id>-??????`, and a
#: wildcard there would grant every secret it matches.
_SECRET_NAME = r"[A-Za-z0-9/_+=.@-]{1,512}"
_SECRET_ID = re.compile(
    rf"^(?:{_SECRET_NAME}|arn:aws[a-z-]*:secretsmanager:[a-z]{{2}}(?:-[a-z]+)+-[0-9]+:[0-9]{{12}}:secret:"
    rf"{_SECRET_NAME})$"
)
#: Hosts that serve many accounts, where the path (not the credential sent) says whose account receives
#: the request: a secret sent to `hooks.slack.com/services/<anyone's workspace>/...` reaches whoever owns
#: that workspace. A destination on one of them must name a path prefix (the operator's own webhook,
#: repository, server, bucket). Not exhaustive: it catches the usual ones.
MULTI_TENANT_HOSTS = frozenset(
    {
        "hooks.slack.com",
        "api.github.com",
        "uploads.github.com",
        "gitlab.com",
        "hooks.zapier.com",
        "discord.com",
        "discordapp.com",
        "api.telegram.org",
        "maker.ifttt.com",
        "outlook.office.com",
        "webhook.site",
        "s3.amazonaws.com",
        "storage.googleapis.com",
    }
)
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){HOST_LABEL}(?:\.{HOST_LABEL})*$")


#: An ARN as `Permission` takes it: partition, service, region and account named (no wildcard; region and
#: account may be empty, as for S3 and IAM), then the resource.
_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):"
    r"(?P<account>[0-9]{12}|aws|):(?P<resource>.+)$"
)
#: Where a wildcard may start in an ARN's resource: after the resource type, its separator and at least one
#: character of the name (`task-definition/flyte-*`, `secret:team-a-*`); for S3, whose resource starts with
#: the bucket's name, after `bucket/` (`my-bucket/*`, `my-bucket/incoming/*`).
_SCOPED_WILDCARD = re.compile(r"^[^*?/:]+[/:][^*?]+")
_S3_SCOPED_WILDCARD = re.compile(r"^[^*?/:]+/")


class PollBackoff(BaseModel):
    """How long the state machine waits between two `get`s: initial * factor**n, at most cap seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial: Annotated[int, Field(ge=0, le=3600)] = 5
    factor: Annotated[float, Field(ge=1.0, le=10.0)] = 2.0
    cap: Annotated[int, Field(ge=0, le=86400)] = 300

    def wait_after(self, polls: int) -> int:
        """Seconds to wait before poll number `polls + 1` (polls counts the gets done so far)."""
        return compiled_manifest.wait_after(self.initial, self.factor, self.cap, polls)


class Permission(BaseModel):
    """One IAM Allow statement for the calls an agent makes itself (ECS RunTask, S3 HeadObject on a user's
    bucket): the deployment cannot guess these, so the manifest names them, and the CDK app grants them to
    that agent's functions alone. Least privilege is checked where it is cheap: every action is named
    (`service:Action`, no wildcard), and every resource is an ARN; `"*"` only for actions AWS offers no
    resource-level permission for (such as ecs:RegisterTaskDefinition), alone in their statement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: Annotated[list[str], Field(min_length=1)]
    resources: Annotated[list[str], Field(min_length=1)]

    @field_validator("actions")
    @classmethod
    def _actions_are_named(cls, actions: list[str]) -> list[str]:
        for action in actions:
            if not _ACTION.match(action):
                raise ValueError(
                    f"action {action!r}: name each action as service:Action (e.g. s3:GetObject); "
                    "wildcards such as '*' or 's3:Get*' are not allowed"
                )
        return actions

    @model_validator(mode="after")
    def _resources_are_arns(self) -> Permission:
        unscoped = all(action in _UNSCOPED_ACTIONS for action in self.actions)
        for resource in self.resources:
            if resource.strip() == "*":
                if unscoped and self.resources == ["*"]:
                    continue
                unscoped_list = ", ".join(sorted(_UNSCOPED_ACTIONS))
                raise ValueError(
                    "resource '*' would reach every resource of the account: name the ARN instead "
                    "(e.g. arn:aws:s3:::my-bucket/*, arn:aws:iam::123456789012:role/my-role); '*' is "
                    f"accepted alone, only for actions that allow nothing narrower: {unscoped_list}"
                )
            if not resource.startswith("arn:"):
                raise ValueError(f"resource {resource!r}: expected an ARN (arn:partition:service:...)")
            _check_arn(resource)
        return self


RequestPart = Literal["header", "query", "body", "path"]


class SecretDestination(BaseModel):
    """Where a secret may be sent: requests to `host` (exactly; no pattern), under the path prefix `path`,
    carrying the secret only in the parts `in` names. The outbound client refuses, before connecting, a
    request carrying the secret (in any spelling it masks) anywhere else."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str
    #: A path prefix, matched at a segment boundary (`/services/T0123/` or `/services/T0123`).
    path: str = "/"
    parts: Annotated[frozenset[RequestPart], Field(alias="in", min_length=1)]

    @field_validator("host")
    @classmethod
    def _host_is_a_name(cls, host: str) -> str:
        if not _HOST_NAME.match(host):
            raise ValueError(
                f"{host!r}: one host name in lowercase (api.openai.com), no scheme, port, path or wildcard"
            )
        return host

    @field_validator("path")
    @classmethod
    def _path_is_a_prefix(cls, path: str) -> str:
        segments = path.split("/")
        if not path.startswith("/") or any(s in (".", "..") for s in segments) or not path.isprintable():
            raise ValueError(
                f"{path!r}: a path prefix starting with / (such as /services/T0123/), no . or .."
            )
        if "%" in path or "?" in path or "#" in path or "\\" in path:
            raise ValueError(f"{path!r}: a path prefix as the server reads it: no %, ?, # or backslash")
        return path

    @model_validator(mode="after")
    def _multi_tenant_hosts_need_a_path(self) -> SecretDestination:
        if self.host in MULTI_TENANT_HOSTS and self.path.strip("/") == "":
            raise ValueError(
                f"{self.host} serves many accounts and the path chooses whose: name your own path prefix "
                f'(path = "/services/T0123/" for a Slack webhook) so a template cannot send the secret to '
                "another account"
            )
        return self


class Secret(BaseModel):
    """A secret the agent reads (`get_agent_secret(name)`): its Secrets Manager id, and where it may go.

    The plain form `name = "secret-id"` stays valid, with no destinations: the outbound client then sends
    the value nowhere, which suits a secret a library uses over its own connections (Snowflake's private
    key). An agent class that sends its secrets over HTTP (`secrets_need_destinations = True`: the webhook
    and OpenAI agents) refuses, at load, a secret without destinations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    destinations: list[SecretDestination] = []

    @field_validator("id")
    @classmethod
    def _id_is_a_name_or_arn(cls, secret_id: str) -> str:
        if not _SECRET_ID.match(secret_id):
            raise ValueError(
                f"{secret_id!r}: a Secrets Manager secret name (letters, digits and /_+=.@-) or a full "
                "secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME); no wildcards"
            )
        return secret_id


def _check_arn(resource: str) -> None:
    """An ARN whose wildcards (`*`, `?`) could reach beyond one named resource (or one S3 bucket's objects)
    counts as `*`: refused. A wildcard in the partition, service, region or account would span partitions,
    services, regions or accounts; one at the start of the resource, every resource of a type
    (`role/*`, `function:*`) or every bucket (`arn:aws:s3:::*`)."""
    match = _ARN.match(resource)
    if match is None:
        raise ValueError(
            f"resource {resource!r}: expected arn:partition:service:region:account:resource, with the "
            "partition, service, region and account named (no wildcard; region and account may be empty)"
        )
    name = match["resource"]
    first = min((i for i in (name.find("*"), name.find("?")) if i >= 0), default=None)
    if first is None:
        return
    scoped = _S3_SCOPED_WILDCARD if match["service"] == "s3" else _SCOPED_WILDCARD
    fixed = scoped.match(name)
    if fixed is None or fixed.end() > first:
        example = (
            "arn:aws:s3:::my-bucket/incoming/*"
            if match["service"] == "s3"
            else ("arn:aws:ecs:us-east-1:123456789012:task-definition/flyte-*")
        )
        raise ValueError(
            f"resource {resource!r}: a wildcard here reaches every resource of its kind, as '*' would; "
            f"put it after a fixed prefix of one resource's name (e.g. {example})"
        )


class AgentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    class_path: Annotated[str, Field(alias="class", pattern=r"^[\w.]+:\w+$")]
    memory: Annotated[int, Field(ge=128, le=10240)] = 256
    #: Seconds for each Lambda invocation; for a sync agent also the call's limit, which must fit API
    #: Gateway's integration timeout (`[deployment] api_timeout`). The default, 29, is the most API
    #: Gateway allows by default, so one default fits every kind.
    timeout: Annotated[int, Field(ge=1, le=900)] = 29
    execution_timeout: Annotated[int, Field(ge=1, le=31_536_000)] = 86_400
    poll: PollBackoff = PollBackoff()
    #: Async agents: the gets one Step Functions execution makes before it continues the task as a new
    #: execution (its history holds 25,000 events at most); the default leaves a margin for retries.
    polls_per_execution: Annotated[int, Field(ge=1, le=MAX_POLLS_PER_EXECUTION)] = DEFAULT_POLLS_PER_EXECUTION
    #: Seconds a task may stay open once its job should stop (its cleanup began, or its execution ended
    #: or timed out): then the sweeper ends it FAILED, naming the job that may still run. The default
    #: lets finalize's and the sweeper's retries of `delete` run first (docs/manifest.md#end_within). For
    #: a sensor: seconds past its deadline after which the sweeper ends a task whose pokes stopped.
    end_within: Annotated[int, Field(ge=1, le=604_800)] = 3600
    #: name -> the secret (`Secret`); `name = "secret-id"` is short for `name = { id = "secret-id" }`.
    secrets: dict[str, Secret] = {}
    #: Free-form settings handed to the agent class as `self.config` (no secrets: they go in `secrets`).
    config: dict[str, str | int | float | bool | list[str]] = {}
    # Sensors only.
    schedule: str = "rate(1 minute)"
    sensor_timeout: Annotated[int, Field(ge=1, le=31_536_000)] = 86_400
    max_poke_errors: Annotated[int, Field(ge=1, le=100)] = 3
    #: EventBridge event patterns (as in a rule). A sensor's: their events poke its waiting tasks. An
    #: async agent's (added to its class's `events`): their events run the get of the task whose job they
    #: name at once, instead of at its next poll.
    events: list[dict[str, Any]] = []
    #: Async agents: where a matching event names its job, a dotted path (`detail.jobId`); replaces the
    #: class's `event_job_id`.
    event_job_id: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")] = None
    #: IAM statements for the agent's own AWS calls, granted to this agent's functions only.
    permissions: list[Permission] = []
    #: Powertools' Tracer (the X-Ray SDK: a subsegment per AWS call) in this agent's functions. Off, Lambda's
    #: active tracing still traces each invocation; on, every cold start imports the SDK (~0.25 s).
    tracing: Annotated[bool, Field(strict=True)] = False
    #: Lambda SnapStart for this agent's functions: each deploy publishes a version, and callers invoke it.
    snapstart: Annotated[bool, Field(strict=True)] = False
    #: pip requirements of the agent's own code (a class outside this project importing a library), added
    #: to its functions' bundle. Requirement specifiers only: never a pip option (`--index-url ...`), and
    #: from the package index only (`name[extras] specifier; markers`) unless `allow_direct_references`.
    requirements: list[Annotated[str, Field(pattern=_REQUIREMENT)]] = []
    #: Let `requirements` name direct references (`x @ https://...`, `x @ git+ssh://...`, `file://`):
    #: code that no index vouches for and no version pins, so off unless the operator says so.
    allow_direct_references: Annotated[bool, Field(strict=True)] = False

    @field_validator("secrets", mode="before")
    @classmethod
    def _plain_secret_ids(cls, secrets: Any) -> Any:
        if isinstance(secrets, dict):
            return {k: {"id": v} if isinstance(v, str) else v for k, v in secrets.items()}
        return secrets

    @property
    def secret_ids(self) -> dict[str, str]:
        """name -> Secrets Manager id (ARN or name), as `GetSecretValue` takes it."""
        return compiled_manifest.secret_ids(self.secrets)

    @field_validator("schedule")
    @classmethod
    def _schedule_is_a_rate(cls, schedule: str) -> str:
        if not _RATE.match(schedule):
            raise ValueError(
                f"{schedule!r}: expected rate(N minute|minutes|hour|hours|day|days), N at least 1 (AWS's "
                "shortest is a minute); to poke faster locally: up --schedule-period SECONDS"
            )
        return schedule

    @field_validator("events")
    @classmethod
    def _events_are_patterns(cls, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for pattern in events:
            if not isinstance(pattern.get("source"), list) or not pattern["source"]:
                raise ValueError('each event pattern needs a `source` list, e.g. source = ["aws.s3"]')
        return events

    @model_validator(mode="after")
    def _requirements_from_the_index(self) -> AgentSettings:
        if self.allow_direct_references:
            return self
        for number, line in enumerate(self.requirements):
            problem = _direct_reference(line)
            if problem:
                raise ValueError(
                    f"requirements.{number}: {line[:120]!r} {problem}; requirements come from the package "
                    "index only (name[extras] specifier; markers) unless allow_direct_references = true"
                )
        return self

    @property
    def schedule_seconds(self) -> int:
        return compiled_manifest.schedule_seconds(self.schedule)

    def load_class(self) -> AgentClass:
        """Import the agent class named by `class` ("package.module:Class")."""
        return compiled_manifest.load_agent_class(self.class_path, self.secrets)


def _direct_reference(line: str) -> str | None:
    """Why pip would install `line` from somewhere other than the package index, or None."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(line)
    except InvalidRequirement as e:
        return f"is not a requirement pip reads from the index ({' '.join(str(e).split())[:160]})"
    if requirement.url:
        return "is a direct reference (name @ URL)"
    if _LOCAL_REQUIREMENT.search(requirement.name) or _LOCAL_REQUIREMENT.search(line.split(";")[0].strip()):
        return "names a local file or folder"
    return None


class DeploymentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,19}$")] = "serverless-agents"
    #: API Gateway's integration timeout in seconds: 29 unless the account's quota for Regional REST APIs
    #: was raised (a Service Quotas request), then up to that quota. It bounds every sync agent's `timeout`.
    api_timeout: Annotated[int, Field(ge=1, le=900)] = API_GATEWAY_TIMEOUT
    #: Folders holding agent code kept outside this project, relative to the manifest (`use_code_path`).
    code_path: list[Annotated[str, Field(min_length=1)]] = []


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment: DeploymentSettings = DeploymentSettings()
    agents: dict[str, AgentSettings]

    @field_validator("agents")
    @classmethod
    def _names_fit_resource_names(cls, agents: dict[str, AgentSettings]) -> dict[str, AgentSettings]:
        for name in agents:
            if not AGENT_NAME.fullmatch(name):
                problem = f"must match {AGENT_NAME.pattern} (it is part of AWS names)"
                raise ValueError(f"agent name {name!r} {problem}")
        return agents

    def agent(self, name: str) -> AgentSettings:
        return compiled_manifest.agent_settings(self.agents, name)  # type: ignore[no-any-return]


def parse_manifest(text: str, *, source: str = "agents.toml") -> Manifest:
    try:
        return Manifest.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"{source}: {e}") from e
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors(include_url=False)
        )
        raise ManifestError(f"{source}: {problems}") from e


def load_manifest(path: str | Path) -> Manifest:
    return parse_manifest(_manifest_text(Path(path)), source=str(path))


def _manifest_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise ManifestError(f"cannot read manifest {path}: {e.strerror}") from e


def compile_manifest(path: str | Path) -> str:
    """The manifest at `path`, validated, as the functions read it without pydantic
    (`compiled_manifest.read_compiled`): the models' dump, every default filled, and the digest of the
    text it came from. The bundler writes it at `compiled_manifest.compiled_path(path)`'s name."""
    text = _manifest_text(Path(path))
    compiled = {
        "format": compiled_manifest.FORMAT,
        "source_sha256": compiled_manifest.source_digest(text),
        "manifest": parse_manifest(text, source=str(path)).model_dump(mode="json"),
    }
    return json.dumps(compiled, indent=1) + "\n"  # in the TOML's order: agents are planned in it


def use_code_path(manifest: Manifest, manifest_path: str | Path) -> None:
    """Make the manifest's `deployment.code_path` folders importable (first on `sys.path`), as `up`, the
    bundler and the CDK app need before they load agent classes. Lambdas do not call it: their bundle
    already holds the agents' code at its root."""
    base = Path(manifest_path).resolve().parent
    for entry in reversed(manifest.deployment.code_path):
        folder = (base / entry).resolve()
        if not folder.is_dir():
            raise ManifestError(
                f"{manifest_path}: deployment.code_path: {entry!r} is not a folder ({folder})"
            )
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
