"""Manifest `snapstart` and `tracing` as AWS deploys them: SnapStart on published versions, an alias per
function that every caller (state machine, API integration, event rules) invokes, and `SA_TRACING` only in
the functions of agents that turn tracing on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from serverless_agents.deployment.manifest import parse_manifest
from serverless_agents.exceptions import ManifestError
from tests.infra.conftest import BASE_MANIFEST, WATCHED_BUCKET, Synth, synthesize
from tests.infra.test_iam import as_list, policies_by_owner

DEPLOYMENT = "serverless-agents"
#: The base manifest with SnapStart for the job and echo agents (tracing for job), and a sensor with it.
SNAPSTART_MANIFEST = (
    BASE_MANIFEST.replace(
        "execution_timeout = 3600\n", "execution_timeout = 3600\nsnapstart = true\ntracing = true\n", 1
    ).replace("timeout = 10\n", "timeout = 10\nsnapstart = true\n", 1)
    + f"""
[agents.files]
class = "serverless_agents.agents.file_sensor:FileSensor"
snapstart = true

[[agents.files.events]]
source = ["aws.s3"]
detail-type = ["Object Created"]
detail = {{ bucket = {{ name = ["{WATCHED_BUCKET}"] }} }}
"""
)
SNAPSTART_FUNCTIONS = {
    f"{DEPLOYMENT}-job-create",
    f"{DEPLOYMENT}-job-get",
    f"{DEPLOYMENT}-job-delete",
    f"{DEPLOYMENT}-echo-sync",
    f"{DEPLOYMENT}-files-poke",
}


@pytest.fixture(scope="module")
def snapstart(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(SNAPSTART_MANIFEST, tmp_path_factory.mktemp("snapstart"))


def functions(synth: Synth) -> dict[str, tuple[str, dict[str, Any]]]:
    """Function name -> (logical id, properties)."""
    return {
        r["Properties"]["FunctionName"]: (logical_id, r["Properties"])
        for logical_id, r in synth.resources("AWS::Lambda::Function").items()
    }


def alias_of(synth: Synth, function_id: str) -> str:
    """The logical id of the `live` alias of a function, checked to point at its one published version."""
    versions = {
        logical_id: r
        for logical_id, r in synth.resources("AWS::Lambda::Version").items()
        if r["Properties"]["FunctionName"] == {"Ref": function_id}
    }
    assert len(versions) == 1, versions
    ((version_id, version),) = versions.items()
    assert version["DeletionPolicy"] == "Delete"  # no superseded snapshot stays cached, and billed
    (alias_id,) = [
        logical_id
        for logical_id, r in synth.resources("AWS::Lambda::Alias").items()
        if r["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    alias = synth.resources("AWS::Lambda::Alias")[alias_id]["Properties"]
    assert alias["Name"] == "live"
    assert alias["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
    return alias_id


def test_snapstart_is_on_for_published_versions_of_the_agents_that_ask(snapstart: Synth) -> None:
    on = {name for name, (_, p) in functions(snapstart).items() if "SnapStart" in p}

    assert on == SNAPSTART_FUNCTIONS
    for name in on:
        properties = functions(snapstart)[name][1]
        assert properties["SnapStart"] == {"ApplyOn": "PublishedVersions"}
        assert properties["Runtime"] == "python3.12"  # SnapStart for Python needs 3.12 or later


def test_functions_without_snapstart_publish_nothing(base: Synth) -> None:
    assert base.resources("AWS::Lambda::Version") == {}
    assert base.resources("AWS::Lambda::Alias") == {}


def test_the_state_machine_invokes_the_aliases(snapstart: Synth) -> None:
    by_name = functions(snapstart)
    aliases = [
        alias_of(snapstart, by_name[f"{DEPLOYMENT}-job-{role}"][0]) for role in ("create", "get", "delete")
    ]
    machine = next(
        p
        for p in snapstart.properties("AWS::StepFunctions::StateMachine")
        if p["StateMachineName"] == f"{DEPLOYMENT}-job"
    )
    definition = json.dumps(machine["DefinitionString"])

    for alias in aliases:
        assert json.dumps({"Ref": alias}) in definition
    for role in ("create", "get", "delete"):
        assert json.dumps({"Fn::GetAtt": [by_name[f"{DEPLOYMENT}-job-{role}"][0], "Arn"]}) not in definition
    invoke = [
        s
        for p in snapstart.properties("AWS::IAM::Policy")
        for s in p["PolicyDocument"]["Statement"]
        if s["Action"] == "lambda:InvokeFunction" and {"Ref": aliases[0]} in _as_list(s["Resource"])
    ]
    assert len(invoke) == 1
    assert {json.dumps(r) for r in _as_list(invoke[0]["Resource"])} == {
        json.dumps({"Ref": a}) for a in aliases
    }


def test_the_api_integration_and_the_event_rule_invoke_the_aliases(snapstart: Synth) -> None:
    by_name = functions(snapstart)
    echo_alias = alias_of(snapstart, by_name[f"{DEPLOYMENT}-echo-sync"][0])
    poke_alias = alias_of(snapstart, by_name[f"{DEPLOYMENT}-files-poke"][0])
    uris = [json.dumps(m["Integration"]["Uri"]) for m in snapstart.properties("AWS::ApiGateway::Method")]
    targets = [t["Arn"] for p in snapstart.properties("AWS::Events::Rule") for t in p.get("Targets", [])]

    assert sum(json.dumps({"Ref": echo_alias}) in uri for uri in uris) == 1
    assert {"Ref": poke_alias} in targets
    permissions = snapstart.properties("AWS::Lambda::Permission")
    assert any(p["FunctionName"] == {"Ref": echo_alias} for p in permissions)  # API Gateway may invoke it
    assert any(p["FunctionName"] == {"Ref": poke_alias} for p in permissions)  # and EventBridge this one


def test_schedules_finalize_and_the_sweeper_may_invoke_the_aliases_they_invoke(snapstart: Synth) -> None:
    # What the runtime invokes (`naming.invocable_name`): a sensor task's schedule and first poke target
    # `<poke>:live`, finalize and the sweeper invoke `<delete>:live`. An alias is its own IAM resource:
    # a grant on the function's ARN would not let them invoke it.
    by_name = functions(snapstart)
    poke_alias = {"Ref": alias_of(snapstart, by_name[f"{DEPLOYMENT}-files-poke"][0])}
    delete_alias = {"Ref": alias_of(snapstart, by_name[f"{DEPLOYMENT}-job-delete"][0])}
    batch_delete = {"Fn::GetAtt": [by_name[f"{DEPLOYMENT}-batch-delete"][0], "Arn"]}  # no SnapStart
    owners = policies_by_owner(snapstart)

    def invoked(owner: str) -> list[Any]:
        return [
            resource
            for statement in owners[owner]
            if "lambda:InvokeFunction" in as_list(statement["Action"])
            for resource in as_list(statement["Resource"])
        ]

    assert invoked(f"{DEPLOYMENT}-finalize") == [delete_alias, batch_delete]
    assert invoked(f"{DEPLOYMENT}-sweeper") == [delete_alias, batch_delete]
    assert invoked(f"{DEPLOYMENT}-api") == [poke_alias]  # each sensor task's first poke
    (scheduler_role,) = [
        properties
        for properties in snapstart.properties("AWS::IAM::Policy")
        if properties["PolicyName"].startswith("SchedulerRole")
    ]
    (statement,) = scheduler_role["PolicyDocument"]["Statement"]
    assert (statement["Action"], statement["Resource"]) == ("lambda:InvokeFunction", poke_alias)


def test_tracing_is_set_for_the_agents_that_turn_it_on(snapstart: Synth) -> None:
    traced = {
        name
        for name, (_, p) in functions(snapstart).items()
        if p["Environment"]["Variables"].get("SA_TRACING") == "true"
    }

    assert traced == {f"{DEPLOYMENT}-job-create", f"{DEPLOYMENT}-job-get", f"{DEPLOYMENT}-job-delete"}
    # Lambda's active tracing stays on everywhere: the service map needs no SDK.
    assert {p["TracingConfig"]["Mode"] for _, p in functions(snapstart).values()} == {"Active"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("value", ['"yes"', '"true"', "1"])
def test_snapstart_and_tracing_take_toml_booleans_only(value: str) -> None:
    for key in ("snapstart", "tracing"):
        manifest = f'[agents.job]\nclass = "serverless_agents.examples:JobAgent"\n{key} = {value}\n'
        with pytest.raises(ManifestError, match=f"agents.job.{key}: Input should be a valid boolean"):
            parse_manifest(manifest)
