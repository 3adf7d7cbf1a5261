"""The manifest as the Lambda functions read it: compiled when the bundle is built, read without pydantic.

`serverless_agents.deployment.manifest` owns what `agents.toml` means: its pydantic models validate it, fill
the defaults and carry the few methods the runtime calls. Building those models costs a function's first
invocation tens of milliseconds (and pydantic itself, which a sensor or a sync agent would not load
otherwise), so the bundler writes, beside the bundle's `agents.toml`, the validated manifest as JSON
(`manifest.compile_manifest`: the models' own dump, every default filled, with the digest of the TOML it came
from). A function reads that (`read_compiled`) into read-only views: each view exposes its model's fields as
attributes (nested models as views, the sets the models hold as frozensets again) and the model's methods,
which run the same code as the model's (the functions at the end of this module).
tests/unit/test_compiled_manifest.py checks that every field of the example manifest and the benchmark's reads
the same through both.

The manifest's constants the functions need (the history limits behind `polls_per_execution`, the host
label a secret's destination is made of) live here too, so reading them loads no pydantic module.

The compiled form is a cache of the TOML, never a second source: it is read only when its digest is that
of the `agents.toml` beside it (`compiled_path` names it), else the functions parse the TOML as before.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from serverless_agents.exceptions import ManifestError

if TYPE_CHECKING:
    from serverless_agents.deployment.manifest import AgentClass, Secret

#: What the compiled form is, and which version of its layout: anything else is not read.
FORMAT = "serverless-agents compiled manifest 1"
#: EventBridge Scheduler's rate expressions; AWS accepts nothing shorter than one minute.
RATE = re.compile(r"^rate\((?P<value>[1-9][0-9]*) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}
#: Step Functions Standard: an execution's history holds at most this many events.
HISTORY_EVENT_LIMIT = 25_000
#: History events of one poll in `statemachines/async_agent.asl.json`, for an agent whose events end
#: its wait: Listen (TaskStateEntered, TaskScheduled, TaskStarted, TaskSubmitted, TaskSucceeded or
#: TaskTimedOut, TaskStateExited), Get (TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded,
#: TaskStateExited) and Ended? (ChoiceStateEntered, ChoiceStateExited): 6 + 5 + 2. An agent without
#: events waits in a plain Wait (WaitStateEntered, WaitStateExited: 9 a poll), so the one default, counted
#: for the dearer loop, leaves it a wider margin.
HISTORY_EVENTS_PER_POLL = 13
#: The events an execution keeps for what is not a plain poll. Its own events are under 60 without
#: retries (ExecutionStarted, Started?: 2, Create: 5, the first Ended?: 2, Continue: 6, Continued and
#: ExecutionSucceeded: 3; or Cleanup and Fail); the rest is for retries, each adding TaskFailed,
#: TaskScheduled and TaskStarted (3 events): over 2,300 retried gets fit, more than one in every poll. (A
#: get retried to its limits, 3 + 8 attempts, 33 events, on every poll is a job that fails long before.)
HISTORY_MARGIN = 7_000
#: The gets one execution makes before it continues as a new one: (25,000 - 7,000) / 13 = 1,384.
DEFAULT_POLLS_PER_EXECUTION = (HISTORY_EVENT_LIMIT - HISTORY_MARGIN) // HISTORY_EVENTS_PER_POLL
#: The most `polls_per_execution` allows: room for an execution's own events (700), none for retries.
MAX_POLLS_PER_EXECUTION = (HISTORY_EVENT_LIMIT - 700) // HISTORY_EVENTS_PER_POLL
#: One label of a host name as the outbound client accepts it (lowercase; `_` too, as internal names use);
#: a secret's destination names a host of such labels.
HOST_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"


def compiled_path(manifest_path: Path) -> Path:
    """Where the compiled form of the manifest at `manifest_path` lies: beside it (`agents.toml.json`)."""
    return manifest_path.with_name(f"{manifest_path.name}.json")


def source_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_compiled(manifest_path: Path) -> ManifestView | None:
    """The compiled form of the manifest at `manifest_path`, or None when there is none, or it was
    compiled from another text than the manifest's (then the caller parses the TOML)."""
    try:
        compiled = json.loads(compiled_path(manifest_path).read_text())
        source = manifest_path.read_text()
    except (OSError, ValueError):
        return None
    if not isinstance(compiled, dict) or compiled.get("format") != FORMAT:
        return None
    if compiled.get("source_sha256") != source_digest(source):
        return None
    return ManifestView(compiled["manifest"])


class _View:
    """One model's compiled fields as read-only attributes."""

    __slots__ = ("_fields",)
    #: Fields holding a nested model, a list of them or a dict of them: the view each is read as.
    _models: ClassVar[Mapping[str, type[_View]]] = {}
    _model_lists: ClassVar[Mapping[str, type[_View]]] = {}
    _model_maps: ClassVar[Mapping[str, type[_View]]] = {}
    #: Fields the model holds as a frozenset (JSON has only lists).
    _sets: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, fields: Mapping[str, Any]) -> None:
        values = dict(fields)
        for name, view in self._models.items():
            values[name] = view(values[name])
        for name, view in self._model_lists.items():
            values[name] = [view(item) for item in values[name]]
        for name, view in self._model_maps.items():
            values[name] = {key: view(item) for key, item in values[name].items()}
        for name in self._sets:
            values[name] = frozenset(values[name])
        self._fields = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}") from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._fields!r})"


class PollBackoffView(_View):
    __slots__ = ()

    def wait_after(self, polls: int) -> int:
        return wait_after(self.initial, self.factor, self.cap, polls)


class PermissionView(_View):
    __slots__ = ()


class SecretDestinationView(_View):
    __slots__ = ()
    _sets: ClassVar[frozenset[str]] = frozenset({"parts"})


class SecretView(_View):
    __slots__ = ()
    _model_lists: ClassVar[Mapping[str, type[_View]]] = {"destinations": SecretDestinationView}


class AgentSettingsView(_View):
    __slots__ = ()
    _models: ClassVar[Mapping[str, type[_View]]] = {"poll": PollBackoffView}
    _model_lists: ClassVar[Mapping[str, type[_View]]] = {"permissions": PermissionView}
    _model_maps: ClassVar[Mapping[str, type[_View]]] = {"secrets": SecretView}

    @property
    def secret_ids(self) -> dict[str, str]:
        return secret_ids(self.secrets)

    @property
    def schedule_seconds(self) -> int:
        return schedule_seconds(self.schedule)

    def load_class(self) -> AgentClass:
        return load_agent_class(self.class_path, self.secrets)


class DeploymentSettingsView(_View):
    __slots__ = ()


class ManifestView(_View):
    __slots__ = ()
    _models: ClassVar[Mapping[str, type[_View]]] = {"deployment": DeploymentSettingsView}
    _model_maps: ClassVar[Mapping[str, type[_View]]] = {"agents": AgentSettingsView}

    def agent(self, name: str) -> Any:
        return agent_settings(self.agents, name)


# The models' methods: `serverless_agents.deployment.manifest`'s models and the views above both call these.


def wait_after(initial: int, factor: float, cap: int, polls: int) -> int:
    """Seconds to wait before poll number `polls + 1` (polls counts the gets done so far)."""
    try:
        return int(min(cap, initial * factor ** max(polls, 0)))
    except OverflowError:  # factor**polls outgrows a float on a long job long after reaching cap
        return cap


def secret_ids(secrets: Mapping[str, Secret]) -> dict[str, str]:
    """name -> Secrets Manager id (ARN or name), as `GetSecretValue` takes it."""
    return {name: secret.id for name, secret in secrets.items()}


def schedule_seconds(schedule: str) -> int:
    match = RATE.match(schedule)
    assert match is not None  # the field's validator guarantees it
    return int(match["value"]) * _UNIT_SECONDS[match["unit"].rstrip("s")]


def agent_settings(agents: Mapping[str, Any], name: str) -> Any:
    from serverless_agents.exceptions import AgentNotFound

    try:
        return agents[name]
    except KeyError:
        raise AgentNotFound(f"agents.toml has no agent named {name!r}") from None


def load_agent_class(class_path: str, secrets: Mapping[str, Secret]) -> AgentClass:
    """Import the agent class named by `class_path` ("package.module:Class")."""
    from serverless_agents.agent import AsyncAgentBase, BaseSensor, SyncAgentBase
    from serverless_agents.agents.connectors import as_agent_class

    module_name, _, attr = class_path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ManifestError(f"cannot load agent class {class_path!r}: {e}") from e
    # A connector of flytekit or Flyte 2 runs inside the agent class its SDK's adapter makes for it.
    cls = as_agent_class(cls)
    if not (isinstance(cls, type) and issubclass(cls, AsyncAgentBase | SyncAgentBase | BaseSensor)):
        raise ManifestError(
            f"{class_path!r} is not an AsyncAgentBase, SyncAgentBase or BaseSensor subclass "
            "(or a flytekit AsyncConnectorBase / SyncConnectorBase, or a flyte.connectors.AsyncConnector)"
        )
    if not getattr(cls, "task_type", ""):
        raise ManifestError(f"{class_path!r} declares no task_type")
    if getattr(cls, "secrets_need_destinations", False):
        for name, secret in secrets.items():
            if not secret.destinations:
                raise ManifestError(
                    f"secrets.{name}: {class_path} sends its secrets over HTTP, so each declares "
                    f'its destinations: {name} = {{ id = "...", destinations = [{{ host = "...", '
                    'in = ["header"] }] }'
                )
    return cls
