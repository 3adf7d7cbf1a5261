"""How an agent's stored metadata may change between deploys, checked before the deploy.

An async task stores its agent's `ResourceMetadata` (a pydantic model, as JSON) in the tasks table and in
its execution's state; `get` and `delete` read it back with the agent's *current* `metadata_type`. A task
started before a deploy is read after it by the new code, so the new model must read every record the old
one wrote:

- a new field needs a default (an old record lacks it);
- a field may not be removed, nor its type changed (an old record holds it, in the old type): pydantic
  would refuse the record, and the task would end FAILED at its next get.

The check compares each async agent's metadata JSON schema with the one recorded at the last deploy, in a
lock file committed beside the manifest (`agents.toml` -> `agents.metadata.lock.json`). `cdk synth` (the
CDK app) and `infra/cdk/bundle.py` run it: an incompatible change is a `ManifestError` naming the agent and
the field, and nothing is written. A compatible one rewrites the lock (commit it with the manifest). No
lock yet (a first deploy) writes one.

An operator who knows no task of an agent is in flight (none started, all ended) accepts its change with
`-c accept_metadata_changes=AGENT[,AGENT...]` (`bundle.py --accept-metadata-changes AGENT`); the lock then
records the new schema. Agents wrapping another SDK's connector store that connector's own encoded bytes
(`ConnectorMetadata.encoded`): their inner `ResourceMeta` is not seen here.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serverless_agents.agent import AgentKind
from serverless_agents.exceptions import ManifestError

if TYPE_CHECKING:
    from serverless_agents.deployment.registry import RegisteredAgent

#: The lock's format; a lock of another version is refused rather than misread.
LOCK_VERSION = 1
#: Schema keys that document a field without changing what it accepts.
_DOCUMENTATION = frozenset({"title", "description", "default", "examples", "deprecated"})


def lock_path(manifest_path: Path) -> Path:
    """`agents.toml` -> `agents.metadata.lock.json`, beside it."""
    return manifest_path.with_name(f"{manifest_path.stem}.metadata.lock.json")


def metadata_schemas(agents: Iterable[RegisteredAgent]) -> dict[str, dict[str, Any]]:
    """Each async agent's metadata JSON schema, by agent name (a plan's or the api's registry)."""
    from pydantic.errors import PydanticUserError

    schemas = {}
    for agent in agents:
        if agent.kind is not AgentKind.ASYNC:
            continue
        metadata_type = agent.cls.metadata_type  # type: ignore[union-attr]
        try:
            schemas[agent.name] = metadata_type.model_json_schema()
        except PydanticUserError as e:  # a field of a type JSON cannot hold: it could not be stored either
            raise ManifestError(
                f"agent {agent.name!r}: its metadata_type {metadata_type.__name__} has no JSON schema: {e}"
            ) from None
    return schemas


def incompatibilities(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What makes records written with the `previous` schema unreadable with `current`: one line each,
    naming the field (a nested model's field as `outer.inner`)."""
    return _compare(previous, current, previous.get("$defs", {}), current.get("$defs", {}), "")


def _compare(
    old: Mapping[str, Any], new: Mapping[str, Any], old_defs: Any, new_defs: Any, prefix: str
) -> list[str]:
    old, new = _resolved(old, old_defs), _resolved(new, new_defs)
    old_fields, new_fields = old.get("properties"), new.get("properties")
    if old_fields is None or new_fields is None:  # not models: the whole schema must stay the same
        if _accepting(old, old_defs) != _accepting(new, new_defs):
            return [f"field {prefix.rstrip('.')!r} changed type"]
        return []
    found = []
    for name in old_fields:
        if name not in new_fields:
            found.append(f"field {prefix + name!r} was removed (records written before hold it)")
        else:
            found += _compare(old_fields[name], new_fields[name], old_defs, new_defs, f"{prefix}{name}.")
    required_before = set(old.get("required", ()))
    for name in new.get("required", ()):
        if name not in old_fields and name not in required_before:
            found.append(f"new field {prefix + name!r} has no default (records written before lack it)")
    return found


def _resolved(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return dict(defs.get(ref.removeprefix("#/$defs/"), {}))
    return schema


def _accepting(schema: Any, defs: Mapping[str, Any]) -> Any:
    """The schema without its documentation, references inlined: what it accepts."""
    if isinstance(schema, Mapping):
        schema = _resolved(schema, defs)
        return {k: _accepting(v, defs) for k, v in schema.items() if k not in _DOCUMENTATION}
    if isinstance(schema, list):
        return [_accepting(item, defs) for item in schema]
    return schema


def check_and_lock(
    manifest_path: Path,
    schemas: Mapping[str, dict[str, Any]],
    *,
    accept: Collection[str] = (),
) -> bool:
    """Compare `schemas` with the lock beside the manifest; raise `ManifestError` naming each agent and
    field that changed incompatibly (except the agents in `accept`), else write the lock if it changed.
    Returns whether it wrote. An agent no longer deployed leaves the lock: its state machine goes with it."""
    path = lock_path(manifest_path)
    unknown = set(accept) - set(schemas)
    if unknown:
        raise ManifestError(
            f"accept_metadata_changes names {sorted(unknown)}: not async agents of {manifest_path.name}"
        )
    previous = _read_lock(path)
    problems = [
        f"agent {agent!r}: {problem}"
        for agent, schema in schemas.items()
        if agent in previous and agent not in accept
        for problem in incompatibilities(previous[agent], schema)
    ]
    if problems:
        raise ManifestError(
            f"the metadata of a deployed agent changed incompatibly with {path.name}: "
            + "; ".join(problems)
            + ". Tasks started before this deploy could not be read after it: give the field a default "
            "instead, or, knowing that none of the agent's tasks is in flight, deploy with "
            "-c accept_metadata_changes=AGENT (docs/deploy.md#metadata-evolution)"
        )
    text = json.dumps({"version": LOCK_VERSION, "agents": dict(schemas)}, indent=2, sort_keys=True) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def _read_lock(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        lock = json.loads(path.read_text())
    except ValueError as e:
        raise ManifestError(f"{path.name} is not JSON: {e}") from None
    if not isinstance(lock, dict) or lock.get("version") != LOCK_VERSION:
        raise ManifestError(f"{path.name}: expected a metadata lock of version {LOCK_VERSION}")
    agents = lock.get("agents")
    if not isinstance(agents, dict):
        raise ManifestError(f"{path.name}: 'agents' must be a table of agent name -> schema")
    return agents


def accepted(value: Any) -> tuple[str, ...]:
    """The agents named by `accept_metadata_changes` (a comma-separated string, as CDK context gives)."""
    if value is None or value == "":
        return ()
    return tuple(name.strip() for name in str(value).split(",") if name.strip())
