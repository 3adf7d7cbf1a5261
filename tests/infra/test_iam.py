"""Least privilege: each role allows what its function (or state machine) calls, on its own resources."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest

from serverless_agents.aws.payloads import PAYLOAD_KINDS, payload_key
from tests.infra.conftest import WATCHED_BUCKET, Synth

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
    # The sweeper's listing of connection secrets: names and tags, never values.
    "secretsmanager:ListSecrets",
}


def connection_secrets(prefix: str) -> list[Any]:
    """The ARN of the connection secrets under `prefix` (serverless_agents.aws.connection_secrets)."""
    return [{"Fn::Join": ["", [*ARN_PREFIX, ":secretsmanager:", *REGION_ACCOUNT, f":secret:{prefix}*"]]}]


SCHEDULER = "scheduler"
ARN_PREFIX = ["arn:", {"Ref": "AWS::Partition"}]
REGION_ACCOUNT = [{"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policies_by_owner(synth: Synth) -> dict[str, list[dict[str, Any]]]:
    """Each role's statements, keyed by what assumes it: a function's or a state machine's name, or
    `SCHEDULER` for the role sensor schedules run as."""
    owners: dict[str, str] = {}
    for properties in synth.properties("AWS::Lambda::Function"):
        owners[properties["Role"]["Fn::GetAtt"][0]] = properties["FunctionName"]
    for properties in synth.properties("AWS::StepFunctions::StateMachine"):
        owners[properties["RoleArn"]["Fn::GetAtt"][0]] = properties["StateMachineName"]
    for logical_id, role in synth.resources("AWS::IAM::Role").items():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        if statement["Principal"]["Service"] == "scheduler.amazonaws.com":
            owners[logical_id] = SCHEDULER
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


@pytest.fixture(params=["base", "sensing"])
def synth(request: pytest.FixtureRequest) -> Synth:
    """Each synthesized manifest: without sensors, and with a sensor and manifest permissions."""
    synth: Synth = request.getfixturevalue(request.param)
    return synth


def test_no_wildcard_actions_and_resource_star_only_where_no_arn_exists(synth: Synth) -> None:
    for logical_id, resource in synth.resources("AWS::IAM::Policy").items():
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            actions = as_list(statement["Action"])
            assert statement["Effect"] == "Allow"
            assert not [a for a in actions if "*" in a], (logical_id, statement)
            if "*" in as_list(statement["Resource"]):
                assert set(actions) <= ACTIONS_WITHOUT_RESOURCES, (logical_id, statement)


def test_roles_carry_no_managed_policies_and_trust_one_service(synth: Synth) -> None:
    for logical_id, resource in synth.resources("AWS::IAM::Role").items():
        properties = resource["Properties"]
        assert "ManagedPolicyArns" not in properties, logical_id
        assert "Policies" not in properties, logical_id
        (statement,) = properties["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"]["Service"] in (
            "lambda.amazonaws.com",
            "states.amazonaws.com",
            "scheduler.amazonaws.com",
        )


def test_every_function_writes_its_own_log_group_only(synth: Synth) -> None:
    for function in synth.properties("AWS::Lambda::Function"):
        statements = policies_by_owner(synth)[function["FunctionName"]]
        logs = [s for s in statements if "logs:PutLogEvents" in as_list(s["Action"])]
        assert logs == [
            {
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [function["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]},
            }
        ]


def payload_keys(synth: Synth, *keys: str) -> list[dict[str, Any]]:
    """The ARNs of `keys` (`requests/job/*.json`, ...) in the payload bucket, as synthesized."""
    bucket = {"Fn::GetAtt": [synth.logical_id("AWS::S3::Bucket"), "Arn"]}
    return [{"Fn::Join": ["", [bucket, f"/{key}"]]} for key in keys]


def payload_grants(synth: Synth) -> dict[str, set[tuple[str, str]]]:
    """Each owner's grants in the payload bucket, as (action, key pattern); only owners with some."""
    bucket = {"Fn::GetAtt": [synth.logical_id("AWS::S3::Bucket"), "Arn"]}
    grants: dict[str, set[tuple[str, str]]] = {}
    for owner, statements in policies_by_owner(synth).items():
        for statement in statements:
            for resource in as_list(statement["Resource"]):
                parts = resource.get("Fn::Join", ["", []])[1] if isinstance(resource, dict) else []
                if parts[:1] == [bucket]:
                    (key,) = parts[1:]
                    actions = as_list(statement["Action"])
                    grants.setdefault(owner, set()).update((a, key.removeprefix("/")) for a in actions)
    return grants


def test_each_role_reaches_its_own_agents_payload_keys_only(sensing: Synth) -> None:
    def agent(name: str, requests: bool, outputs: bool, state: bool) -> set[tuple[str, str]]:
        read_write = ("s3:GetObject", "s3:PutObject")
        return {
            *([("s3:GetObject", f"requests/{name}/*.json")] if requests else []),
            *([("s3:PutObject", f"outputs/{name}/*.json")] if outputs else []),
            *([(a, f"state/{name}/*.json") for a in read_write] if state else []),
        }

    expected = {
        # Writes the requests of the agents that take tasks through it, reads the outputs of async agents.
        f"{DEPLOYMENT}-api": {
            *{("s3:PutObject", f"requests/{a}/*.json") for a in ("job", "batch", "files")},
            *{("s3:GetObject", f"outputs/{a}/*.json") for a in ("job", "batch")},
        },
        # Outputs, what Flyte receives, are written by the agent's get function and no other function.
        **{
            f"{DEPLOYMENT}-{a}-{role}": agent(a, role != "delete", role == "get", True)
            for a in ("job", "batch")
            for role in ("create", "get", "delete")
        },
        f"{DEPLOYMENT}-files-poke": agent("files", True, False, False),
    }

    # The sync agent, finalize, the sweeper, the state machines and the scheduler role: nothing there.
    assert payload_grants(sensing) == expected


@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_the_runtimes_keys_fall_under_their_own_agents_grant_and_no_other(kind: Any) -> None:
    # IAM's `*` matches any characters, `/` included: a key of agent `etl` must not match `etl-nightly`'s.
    agents = ("job", "etl", "etl-nightly")
    for owner in agents:
        key = payload_key(kind, owner, "serverless-agents-n0-0-a1b2c3")
        assert [a for a in agents if fnmatchcase(key, payload_key(kind, a, "*"))] == [owner]


def test_api_reaches_the_table_its_payload_keys_and_the_agents_executions(base: Synth) -> None:
    table = {"Fn::GetAtt": [base.logical_id("AWS::DynamoDB::Table"), "Arn"]}
    machines = {
        agent: base.logical_id("AWS::StepFunctions::StateMachine", StateMachineName=f"{DEPLOYMENT}-{agent}")
        for agent in ("job", "batch")
    }

    assert own_statements(policies_by_owner(base)[f"{DEPLOYMENT}-api"]) == [
        (("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"), [table]),
        (("s3:PutObject",), payload_keys(base, "requests/job/*.json", "requests/batch/*.json")),
        (("s3:GetObject",), payload_keys(base, "outputs/job/*.json", "outputs/batch/*.json")),
        # A Flyte 2 executor's Connection.secrets: written under the deployment's connection prefix only.
        (
            (
                "secretsmanager:CreateSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
                "secretsmanager:TagResource",
            ),
            connection_secrets(f"{DEPLOYMENT}/connections/"),
        ),
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
        *task_record_reads(base, ("job", "batch"), ()),
    ]


def task_record_reads(
    synth: Synth, async_agents: tuple[str, ...], sensors: tuple[str, ...]
) -> list[tuple[tuple[str, ...], list[Any]]]:
    """GetTaskLogs and GetTaskMetrics: the api filters the log groups of the agents with tasks (no other
    group: not its own, not a sync agent's) and reads the async agents' execution histories."""
    groups = [
        {
            "Fn::GetAtt": [
                synth.logical_id("AWS::Logs::LogGroup", LogGroupName=f"/aws/lambda/{DEPLOYMENT}-{a}"),
                "Arn",
            ]
        }
        for a in (*async_agents, *sensors)
    ]
    executions = [
        {"Fn::Join": ["", [*ARN_PREFIX, ":states:", *REGION_ACCOUNT, f":execution:{DEPLOYMENT}-{a}:*"]]}
        for a in async_agents
    ]
    return [(("logs:FilterLogEvents",), groups), (("states:GetExecutionHistory",), executions)]


@pytest.mark.parametrize("role", ["create", "get", "delete"])
def test_async_agent_functions_reach_the_table_their_payloads_and_their_own_secrets(
    base: Synth, role: str
) -> None:
    table = {"Fn::GetAtt": [base.logical_id("AWS::DynamoDB::Table"), "Arn"]}

    def common(agent: str) -> list[tuple[tuple[str, ...], list[Any]]]:
        reads = ("dynamodb:GetItem",) if role == "create" else ()
        return [
            ((*reads, "dynamodb:UpdateItem"), [table]),
            *(
                [(("s3:GetObject",), payload_keys(base, f"requests/{agent}/*.json"))]
                if role != "delete"
                else []
            ),
            *([(("s3:PutObject",), payload_keys(base, f"outputs/{agent}/*.json"))] if role == "get" else []),
            (("s3:GetObject", "s3:PutObject"), payload_keys(base, f"state/{agent}/*.json")),
        ]

    statements = policies_by_owner(base)

    job_secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:job-token"
    assert own_statements(statements[f"{DEPLOYMENT}-job-{role}"]) == [
        *common("job"),
        (("secretsmanager:GetSecretValue",), [job_secret, job_secret + "-??????"]),
        # The connection secrets of its own tasks (its own prefix: not agent `jobs`'s).
        (("secretsmanager:GetSecretValue",), connection_secrets(f"{DEPLOYMENT}/connections/job/")),
    ]
    # A secret given by name: this account and region, and its random suffix.
    batch_secret = {
        "Fn::Join": ["", [*ARN_PREFIX, ":secretsmanager:", *REGION_ACCOUNT, ":secret:batch/password-??????"]]
    }
    assert own_statements(statements[f"{DEPLOYMENT}-batch-{role}"]) == [
        *common("batch"),
        (("secretsmanager:GetSecretValue",), [batch_secret]),
        (("secretsmanager:GetSecretValue",), connection_secrets(f"{DEPLOYMENT}/connections/batch/")),
    ]


def test_each_agents_functions_reach_only_their_own_agents_table_items(sensing: Synth) -> None:
    """Agent functions' table and index grants hold for keys starting with `<agent>_` (task ids, `watch`
    values), IAM's `dynamodb:LeadingKeys`; the shared functions (api, finalize, sweeper) reach every item."""
    shared = {f"{DEPLOYMENT}-{role}" for role in ("api", "finalize", "sweeper")}
    seen = set()
    for owner, statements in policies_by_owner(sensing).items():
        for statement in statements:
            if not any(a.startswith("dynamodb:") for a in as_list(statement["Action"])):
                continue
            seen.add(owner)
            if owner in shared:
                assert "Condition" not in statement, (owner, statement)
                continue
            agent = owner.removeprefix(f"{DEPLOYMENT}-").rsplit("-", 1)[0]
            assert statement["Condition"] == {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{agent}_*"]}
            }, owner
    agents = {f"{DEPLOYMENT}-{a}-{r}" for a in ("job", "batch") for r in ("create", "get", "delete")}
    assert seen - shared == agents | {f"{DEPLOYMENT}-files-poke"}


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


# Sensors: the api registers tasks (schedules, a first poke), schedules run as one role, the poke
# function reads and ends tasks; the manifest's permissions reach their own agent's functions only.

SENSOR_SCHEDULES = {
    "Fn::Join": ["", [*ARN_PREFIX, ":scheduler:", *REGION_ACCOUNT, f":schedule/{DEPLOYMENT}-files/*"]]
}
SENSOR_GROUP = {
    "Fn::Join": ["", [*ARN_PREFIX, ":scheduler:", *REGION_ACCOUNT, f":schedule-group/{DEPLOYMENT}-files"]]
}


def poke_arn(synth: Synth) -> dict[str, Any]:
    return {"Fn::GetAtt": [synth.function_id(f"{DEPLOYMENT}-files-poke"), "Arn"]}


def scheduler_role(synth: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (logical_id, r["Properties"])
        for logical_id, r in synth.resources("AWS::IAM::Role").items()
        if r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
        == "scheduler.amazonaws.com"
    ]
    return found


def test_without_sensors_there_is_no_scheduler_role(base: Synth) -> None:
    assert SCHEDULER not in policies_by_owner(base)


def test_api_registers_sensor_tasks_in_the_sensor_groups_only(base: Synth, sensing: Synth) -> None:
    statements = own_statements(policies_by_owner(sensing)[f"{DEPLOYMENT}-api"])
    role, _ = scheduler_role(sensing)

    assert statements[-2:] == task_record_reads(sensing, ("job", "batch"), ("files",))
    statements = statements[:-2]
    assert statements[-3:] == [
        (("scheduler:CreateSchedule", "scheduler:DeleteSchedule"), [SENSOR_SCHEDULES]),
        (("iam:PassRole",), [{"Fn::GetAtt": [role, "Arn"]}]),
        (("lambda:InvokeFunction",), [poke_arn(sensing)]),  # the first poke of each task
    ]
    # What it had without sensors comes first, and it writes the sensor's requests too (a request too
    # large for the task's item); it never queries the index.
    before = own_statements(policies_by_owner(base)[f"{DEPLOYMENT}-api"])[:-2]
    requests = (("s3:PutObject",), payload_keys(sensing, *(f"requests/{a}/*.json" for a in ("job", "batch"))))
    assert requests in before
    before[before.index(requests)] = (
        requests[0],
        [*requests[1], *payload_keys(sensing, "requests/files/*.json")],
    )
    assert statements[:-3] == before
    assert not [s for s in statements if any(a.startswith("dynamodb:Query") for a in s[0])]


def test_api_passes_the_scheduler_role_to_the_scheduler_only(sensing: Synth) -> None:
    (pass_role,) = [
        s for s in policies_by_owner(sensing)[f"{DEPLOYMENT}-api"] if "iam:PassRole" in as_list(s["Action"])
    ]

    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}


def test_scheduler_role_trusts_this_accounts_sensor_groups_and_invokes_poke_functions_only(
    sensing: Synth,
) -> None:
    _, properties = scheduler_role(sensing)
    (trust,) = properties["AssumeRolePolicyDocument"]["Statement"]

    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ArnEquals": {"aws:SourceArn": [SENSOR_GROUP]},
    }
    assert policies_by_owner(sensing)[SCHEDULER] == [
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": poke_arn(sensing)}
    ]


def test_poke_function_reads_and_ends_its_tasks_queries_only_the_index_and_reads_the_watched_bucket(
    sensing: Synth,
) -> None:
    table = sensing.logical_id("AWS::DynamoDB::Table")
    (queue,) = [k for k in sensing.resources("AWS::SQS::Queue") if k.startswith("SensorFiles")]

    assert own_statements(policies_by_owner(sensing)[f"{DEPLOYMENT}-files-poke"]) == [
        # Its on-failure destination: the sensor's dead-letter queue.
        (("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"), [{"Fn::GetAtt": [queue, "Arn"]}]),
        (("dynamodb:GetItem", "dynamodb:UpdateItem"), [{"Fn::GetAtt": [table, "Arn"]}]),
        (("dynamodb:Query",), [{"Fn::Join": ["", [{"Fn::GetAtt": [table, "Arn"]}, "/index/watching"]]}]),
        (("s3:GetObject",), payload_keys(sensing, "requests/files/*.json")),
        (("scheduler:DeleteSchedule",), [SENSOR_SCHEDULES]),
        # The manifest's permissions: the objects it waits for, and 404 rather than 403 for a missing one.
        (("s3:GetObject",), [f"arn:aws:s3:::{WATCHED_BUCKET}/*"]),
        (("s3:ListBucket",), [f"arn:aws:s3:::{WATCHED_BUCKET}"]),
    ]


def test_only_the_poke_function_and_the_sweeper_query_the_table_each_its_index(sensing: Synth) -> None:
    queries = {
        owner: [s["Resource"] for s in statements if "dynamodb:Query" in as_list(s["Action"])]
        for owner, statements in policies_by_owner(sensing).items()
    }
    table = {"Fn::GetAtt": [sensing.logical_id("AWS::DynamoDB::Table"), "Arn"]}

    assert {owner: q for owner, q in queries.items() if q} == {
        f"{DEPLOYMENT}-files-poke": [{"Fn::Join": ["", [table, "/index/watching"]]}],
        f"{DEPLOYMENT}-sweeper": [{"Fn::Join": ["", [table, "/index/open"]]}],
    }


@pytest.mark.parametrize(
    ("agent", "resource"),
    [
        ("files", f"arn:aws:s3:::{WATCHED_BUCKET}"),
        ("job", "arn:aws:sqs:us-east-1:123456789012:job-events"),
    ],
)
def test_manifest_permissions_reach_exactly_their_agents_functions(
    sensing: Synth, agent: str, resource: str
) -> None:
    holders = {
        owner
        for owner, statements in policies_by_owner(sensing).items()
        if any(
            r.startswith(resource) for s in statements for r in as_list(s["Resource"]) if isinstance(r, str)
        )
    }
    roles = {"files": ("poke",), "job": ("create", "get", "delete")}[agent]

    assert holders == {f"{DEPLOYMENT}-{agent}-{role}" for role in roles}


def test_async_agent_functions_add_the_manifest_permissions_to_what_they_had(
    base: Synth, sensing: Synth
) -> None:
    for role in ("create", "get", "delete"):
        before = own_statements(policies_by_owner(base)[f"{DEPLOYMENT}-job-{role}"])
        after = own_statements(policies_by_owner(sensing)[f"{DEPLOYMENT}-job-{role}"])
        assert after == [
            *before,
            (("sqs:SendMessage",), ["arn:aws:sqs:us-east-1:123456789012:job-events"]),
        ]
