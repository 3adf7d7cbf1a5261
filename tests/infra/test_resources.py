"""What the stack makes follows the manifest: counts, names, settings and environment per function."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from infra.cdk.serverless_agents_cdk.bundles import DEFAULT_MANIFEST

from serverless_agents.aws.tasks_table import SCHEMA, table_definition
from serverless_agents.deployment import naming
from serverless_agents.deployment.compiled_manifest import read_compiled
from serverless_agents.deployment.manifest import EXAMPLE_MANIFEST, parse_manifest
from tests.infra.conftest import BASE_MANIFEST, FUNCTION_ARN_PREFIX, GROWN_MANIFEST, Synth, synthesize

DEPLOYMENT = "serverless-agents"
ROLES = {"job": ("create", "get", "delete"), "batch": ("create", "get", "delete"), "echo": ("sync",)}


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(GROWN_MANIFEST, tmp_path_factory.mktemp("grown"))


def counts(synth: Synth) -> Counter[str]:
    return Counter(r["Type"] for r in synth.json["Resources"].values())


def test_counts_follow_the_manifest(base: Synth) -> None:
    found = counts(base)

    # api, finalize, sweeper; 2 async agents; 1 sync agent
    assert found["AWS::Lambda::Function"] == 3 + 3 * 2 + 1
    assert found["AWS::StepFunctions::StateMachine"] == 2
    assert found["AWS::IAM::Role"] == 10 + 2  # one per function, one per state machine
    # One per agent (its functions share it), per state machine, api, finalize, sweeper, access logs.
    assert found["AWS::Logs::LogGroup"] == 3 + 2 + 3 + 1
    assert found["AWS::Events::Rule"] == 2  # status changes -> finalize; the sweeper's schedule
    assert found["AWS::DynamoDB::Table"] == found["AWS::S3::Bucket"] == found["AWS::SNS::Topic"] == 1
    assert found["AWS::ApiGateway::RestApi"] == found["AWS::CloudWatch::Dashboard"] == 1
    # errors and throttles; failures; DLQ; 5xx; tasks ended by their bound
    assert found["AWS::CloudWatch::Alarm"] == 2 * 10 + 2 + 1 + 1 + 1


def test_one_more_async_agent_adds_its_functions_and_state_machine(base: Synth, grown: Synth) -> None:
    added = counts(grown) - counts(base)

    assert added == Counter(
        {
            "AWS::Lambda::Function": 3,
            "AWS::IAM::Role": 4,
            "AWS::IAM::Policy": 4,
            "AWS::StepFunctions::StateMachine": 1,
            "AWS::Logs::LogGroup": 2,  # the agent's functions, the state machine's executions
            "AWS::CloudWatch::Alarm": 3 * 2 + 1,
        }
    )
    assert counts(base) - counts(grown) == Counter()
    names = {p["FunctionName"] for p in grown.properties("AWS::Lambda::Function")}
    assert {f"{DEPLOYMENT}-etl-nightly-{role}" for role in ("create", "get", "delete")} <= names
    assert f"{DEPLOYMENT}-etl-nightly" in {
        p["StateMachineName"] for p in grown.properties("AWS::StepFunctions::StateMachine")
    }


def test_function_names_and_handlers_follow_naming(base: Synth) -> None:
    functions = {p["FunctionName"]: p for p in base.properties("AWS::Lambda::Function")}
    expected = {
        naming.shared_function_name(DEPLOYMENT, "api"): "api",
        naming.shared_function_name(DEPLOYMENT, "finalize"): "finalize",
        naming.shared_function_name(DEPLOYMENT, "sweeper"): "sweeper",
    } | {
        naming.agent_function_name(DEPLOYMENT, agent, role): role
        for agent, roles in ROLES.items()
        for role in roles
    }

    assert {name: p["Handler"] for name, p in functions.items()} == {
        name: f"functions.{role}.handler.handler" for name, role in expected.items()
    }
    for properties in functions.values():
        assert properties["Runtime"] == "python3.12"
        assert properties["Architectures"] == ["x86_64"]
        assert properties["TracingConfig"] == {"Mode": "Active"}
        assert properties["LoggingConfig"]["LogFormat"] == "JSON"


def test_agent_functions_take_memory_and_timeout_from_the_manifest(base: Synth) -> None:
    manifest = parse_manifest(BASE_MANIFEST)
    functions = {p["FunctionName"]: p for p in base.properties("AWS::Lambda::Function")}

    for agent, roles in ROLES.items():
        for role in roles:
            properties = functions[naming.agent_function_name(DEPLOYMENT, agent, role)]
            assert properties["MemorySize"] == manifest.agents[agent].memory
            assert properties["Timeout"] == manifest.agents[agent].timeout
    assert functions["serverless-agents-job-get"]["MemorySize"] == 512  # not just the default


def test_each_agents_functions_log_to_its_one_log_group(base: Synth) -> None:
    log_groups = {
        k: r["Properties"].get("LogGroupName") for k, r in base.resources("AWS::Logs::LogGroup").items()
    }
    for agent, roles in ROLES.items():
        for role in roles:
            properties = base.json["Resources"][
                base.function_id(naming.agent_function_name(DEPLOYMENT, agent, role))
            ]["Properties"]
            group = log_groups[properties["LoggingConfig"]["LogGroup"]["Ref"]]
            assert group == naming.agent_log_group(DEPLOYMENT, agent)
    for shared in ("api", "finalize", "sweeper"):
        properties = base.json["Resources"][base.function_id(f"{DEPLOYMENT}-{shared}")]["Properties"]
        assert (
            log_groups[properties["LoggingConfig"]["LogGroup"]["Ref"]] == f"/aws/lambda/{DEPLOYMENT}-{shared}"
        )
    for properties in base.properties("AWS::Logs::LogGroup"):
        assert properties["RetentionInDays"] == 30


def test_environment_matches_the_local_stack(base: Synth) -> None:
    table = base.logical_id("AWS::DynamoDB::Table")
    bucket = base.logical_id("AWS::S3::Bucket")
    for properties in base.properties("AWS::Lambda::Function"):
        variables = dict(properties["Environment"]["Variables"])  # the synth is shared: pop from a copy
        name = properties["FunctionName"]
        agent = name.removeprefix(f"{DEPLOYMENT}-").rsplit("-", 1)[0]
        assert variables.pop("SA_AGENT", None) == (agent if agent in ROLES else None), name
        # The sweeper's look-back: four of its 15-minute periods (test_sweeper.py).
        assert variables.pop("SA_SWEEP_LOOKBACK_MINUTES", None) == (
            "60" if name.endswith("-sweeper") else None
        )
        assert variables == {
            "SA_TASKS_TABLE": {"Ref": table},
            "SA_PAYLOAD_BUCKET": {"Ref": bucket},
            "SA_DEPLOYMENT": DEPLOYMENT,
            "SA_STATE_MACHINE_ARN_PREFIX": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":states:",
                        {"Ref": "AWS::Region"},
                        ":",
                        {"Ref": "AWS::AccountId"},
                        f":stateMachine:{DEPLOYMENT}-",
                    ],
                ]
            },
            "SA_TASK_TTL_DAYS": "30",
            "SA_FUNCTION_ARN_PREFIX": FUNCTION_ARN_PREFIX,
            # SA_SCHEDULER_ROLE_ARN only with sensors (test_sensors.py): no schedules, no role for them.
            "POWERTOOLS_SERVICE_NAME": "serverless-agents",
            "POWERTOOLS_METRICS_NAMESPACE": "ServerlessAgents",
            # No task data in X-Ray (test_iac_checks.py checks every function of every template).
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            "POWERTOOLS_TRACER_CAPTURE_ERROR": "false",
        }, name


def test_tasks_table_and_payload_bucket(base: Synth) -> None:
    base.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [
                {"AttributeName": "id", "AttributeType": "S"},
                {"AttributeName": "watch", "AttributeType": "S"},
                {"AttributeName": "open", "AttributeType": "S"},
                {"AttributeName": "end_by", "AttributeType": "N"},
                {"AttributeName": "wake", "AttributeType": "S"},
            ],
            # As the local stack makes it, with or without sensors: the runtime's `watching`, `open` and
            # `waking` (the running tasks of agents whose events end the wait, by job id).
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "watching",
                    "KeySchema": [{"AttributeName": "watch", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
                {
                    "IndexName": "open",
                    "KeySchema": [
                        {"AttributeName": "open", "KeyType": "HASH"},
                        {"AttributeName": "end_by", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
                {
                    "IndexName": "waking",
                    "KeySchema": [{"AttributeName": "wake", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
        },
    )
    (bucket,) = base.properties("AWS::S3::Bucket")
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    expiring = {
        r["Prefix"]: r["ExpirationInDays"] for r in bucket["LifecycleConfiguration"]["Rules"] if "Prefix" in r
    }
    # Every kind of payload key (serverless_agents.aws.payloads): the tasks' TTL (30 days) and a margin.
    assert expiring == {"requests/": 32, "outputs/": 32, "state/": 32}
    (policy,) = base.properties("AWS::S3::BucketPolicy")
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["PolicyDocument"]["Statement"]
    )


def test_the_table_is_the_schema_the_local_stack_creates(base: Synth) -> None:
    """One schema (`tasks_table.SCHEMA`), two readers: the CDK's table and the local stack's CreateTable."""
    (table,) = base.properties("AWS::DynamoDB::Table")
    created = table_definition("")
    for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode"):
        assert table[key] == created[key], key
    assert table["TimeToLiveSpecification"] == {"AttributeName": SCHEMA.ttl_attribute, "Enabled": True}


def test_outputs_name_the_api_and_each_state_machine(base: Synth) -> None:
    outputs = base.json["Outputs"]

    assert outputs["ApiUrl"]["Value"]["Fn::Join"][1][0] == "https://"
    assert outputs["StateMachineArnJob"]["Value"] == {
        "Ref": base.logical_id("AWS::StepFunctions::StateMachine", StateMachineName=f"{DEPLOYMENT}-job")
    }
    assert outputs["StateMachineArnBatch"]["Value"] == {
        "Ref": base.logical_id("AWS::StepFunctions::StateMachine", StateMachineName=f"{DEPLOYMENT}-batch")
    }
    assert not [k for k in outputs if k.startswith("ApiRestApiEndpoint")]  # ApiUrl replaces RestApi's own


def test_functions_run_from_the_stand_in_bundle(base: Synth) -> None:
    codes = {json.dumps(p["Code"], sort_keys=True) for p in base.properties("AWS::Lambda::Function")}
    assert len(codes) == 1  # every family maps to the one stand-in folder when bundling is skipped
    standin = base.outdir / "standin-code"
    assert sorted(p.name for p in standin.iterdir()) == [
        "agents.toml",
        "agents.toml.json",  # the manifest compiled, as every bundle carries it
        "functions",
        "serverless_agents",
        "tests",
    ]
    assert (standin / "agents.toml").read_text() == BASE_MANIFEST
    assert read_compiled(standin / "agents.toml") is not None  # compiled from that very text
    assert not list(standin.rglob("__pycache__"))


def test_the_default_manifest_is_the_example_one() -> None:
    assert DEFAULT_MANIFEST == EXAMPLE_MANIFEST
