"""Least privilege: each role allows what its function (or state machine) calls, on its own resources."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synth

DEPLOYMENT = "serverless-agents"
#: The only actions granted on Resource "*": X-Ray and CloudWatch Logs log delivery take no resource ARNs.
ACTIONS_WITHOUT_RESOURCES = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
ARN_PREFIX = ["arn:", {"Ref": "AWS::Partition"}]
REGION_ACCOUNT = [{"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policies_by_owner(synth: Synth) -> dict[str, list[dict[str, Any]]]:
    """Each role's statements, keyed by what assumes it: a function's or a state machine's name."""
    owners: dict[str, str] = {}
    for properties in synth.properties("AWS::Lambda::Function"):
        owners[properties["Role"]["Fn::GetAtt"][0]] = properties["FunctionName"]
    for properties in synth.properties("AWS::StepFunctions::StateMachine"):
        owners[properties["RoleArn"]["Fn::GetAtt"][0]] = properties["StateMachineName"]
    statements: dict[str, list[dict[str, Any]]] = {name: [] for name in owners.values()}
    for properties in synth.properties("AWS::IAM::Policy"):
        for role in properties["Roles"]:
            statements[owners[role["Ref"]]] += properties["PolicyDocument"]["Statement"]
    return statements


def own_statements(statements: list[dict[str, Any]]) -> list[tuple[tuple[str, ...], list[Any]]]:
    """Statements beyond what every function has (X-Ray, writing its own log group), simplified."""
    return [
        (tuple(as_list(s["Action"])), as_list(s["Resource"]))
        for s in statements
        if not set(as_list(s["Action"]))
        <= ACTIONS_WITHOUT_RESOURCES | {"logs:CreateLogStream", "logs:PutLogEvents"}
    ]


def test_no_wildcard_actions_and_resource_star_only_where_no_arn_exists(base: Synth) -> None:
    for logical_id, resource in base.resources("AWS::IAM::Policy").items():
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            actions = as_list(statement["Action"])
            assert statement["Effect"] == "Allow"
            assert not [a for a in actions if "*" in a], (logical_id, statement)
            if "*" in as_list(statement["Resource"]):
                assert set(actions) <= ACTIONS_WITHOUT_RESOURCES, (logical_id, statement)


def test_roles_carry_no_managed_policies_and_trust_one_service(base: Synth) -> None:
    for logical_id, resource in base.resources("AWS::IAM::Role").items():
        properties = resource["Properties"]
        assert "ManagedPolicyArns" not in properties, logical_id
        assert "Policies" not in properties, logical_id
        (statement,) = properties["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"]["Service"] in ("lambda.amazonaws.com", "states.amazonaws.com")


def test_every_function_writes_its_own_log_group_only(base: Synth) -> None:
    for function in base.properties("AWS::Lambda::Function"):
        statements = policies_by_owner(base)[function["FunctionName"]]
        logs = [s for s in statements if "logs:PutLogEvents" in as_list(s["Action"])]
        assert logs == [
            {
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [function["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]},
            }
        ]


def test_api_reaches_the_table_its_payload_keys_and_the_agents_executions(base: Synth) -> None:
    table = {"Fn::GetAtt": [base.logical_id("AWS::DynamoDB::Table"), "Arn"]}
    bucket = {"Fn::GetAtt": [base.logical_id("AWS::S3::Bucket"), "Arn"]}
    machines = {
        agent: base.logical_id("AWS::StepFunctions::StateMachine", StateMachineName=f"{DEPLOYMENT}-{agent}")
        for agent in ("job", "batch")
    }

    assert own_statements(policies_by_owner(base)[f"{DEPLOYMENT}-api"]) == [
        (("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"), [table]),
        (("s3:PutObject",), [{"Fn::Join": ["", [bucket, "/requests/*"]]}]),
        (("s3:GetObject",), [{"Fn::Join": ["", [bucket, "/outputs/*"]]}]),
        (("states:StartExecution",), [{"Ref": machines["job"]}, {"Ref": machines["batch"]}]),
        (
            ("states:StopExecution",),
            [
                {
                    "Fn::Join": [
                        "",
                        [*ARN_PREFIX, ":states:", *REGION_ACCOUNT, f":execution:{DEPLOYMENT}-{a}:*"],
                    ]
                }
                for a in ("job", "batch")
            ],
        ),
    ]


@pytest.mark.parametrize("role", ["create", "get", "delete"])
def test_async_agent_functions_reach_the_table_the_bucket_and_their_own_secrets(
    base: Synth, role: str
) -> None:
    table = {"Fn::GetAtt": [base.logical_id("AWS::DynamoDB::Table"), "Arn"]}
    objects = {"Fn::Join": ["", [{"Fn::GetAtt": [base.logical_id("AWS::S3::Bucket"), "Arn"]}, "/*"]]}
    common = [
        (("dynamodb:GetItem", "dynamodb:UpdateItem"), [table]),
        (("s3:GetObject", "s3:PutObject"), [objects]),
    ]
    statements = policies_by_owner(base)

    job_secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:job-token"
    assert own_statements(statements[f"{DEPLOYMENT}-job-{role}"]) == [
        *common,
        (("secretsmanager:GetSecretValue",), [job_secret, job_secret + "-??????"]),
    ]
    # A secret given by name: this account and region, and its random suffix.
    batch_secret = {
        "Fn::Join": ["", [*ARN_PREFIX, ":secretsmanager:", *REGION_ACCOUNT, ":secret:batch/password-??????"]]
    }
    assert own_statements(statements[f"{DEPLOYMENT}-batch-{role}"]) == [
        *common,
        (("secretsmanager:GetSecretValue",), [batch_secret]),
    ]


def test_sync_function_reads_its_secret_and_nothing_else(base: Synth) -> None:
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:echo-key-AbC123"

    assert own_statements(policies_by_owner(base)[f"{DEPLOYMENT}-echo-sync"]) == [
        (("secretsmanager:GetSecretValue",), [secret, secret + "-??????"])
    ]


def test_secrets_are_granted_to_their_agent_alone(base: Synth) -> None:
    for owner, statements in policies_by_owner(base).items():
        granted = " ".join(
            str(s["Resource"]) for s in statements if "secretsmanager:GetSecretValue" in as_list(s["Action"])
        )
        for agent, secret in {"job": "job-token", "batch": "batch/password", "echo": "echo-key"}.items():
            assert (secret in granted) == owner.startswith(f"{DEPLOYMENT}-{agent}-"), (owner, secret)


def test_finalize_invokes_the_agents_delete_functions_only(base: Synth) -> None:
    queue = {"Fn::GetAtt": [base.logical_id("AWS::SQS::Queue"), "Arn"]}
    deletes = [
        {"Fn::GetAtt": [base.function_id(f"{DEPLOYMENT}-{a}-delete"), "Arn"]} for a in ("job", "batch")
    ]

    assert own_statements(policies_by_owner(base)[f"{DEPLOYMENT}-finalize"]) == [
        (
            ("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"),
            [queue],
        ),  # its on-failure destination
        (("lambda:InvokeFunction",), deletes),
    ]
