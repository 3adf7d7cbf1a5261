"""Each agent is a tenant: the deployed IAM keeps an agent's functions to its own table items, payloads,
secrets, schedules and logs, and the rehearsal proves the denials as well as the grants.

An intruder agent (tests/rehearsal/agents.py), deployed like any other, turns on a neighbour from inside
its own create function: it reads and forges a finished task of agent `etl` (setting SUCCEEDED with
outputs of its choosing, what issue #19 saw work), reads and overwrites `etl`'s payloads, reads `etl`'s
secret, deletes the sensor's task schedule and writes into `etl`'s log group. Every call is recorded with
the function that made it and evaluated against that function's deployed policy; denied calls fail with
AccessDenied as on AWS (`CallRecorder.enforce`), so the victim's task reads afterwards as it was. The
intruder's own task, secret and log group stay within reach (the grants are scoped, not missing).

The sensor's index query is scoped the same way: the poke function's recorded Query of the `watching`
index, with another agent's key in place of its own, is denied by its deployed policy; and its
DeleteSchedule reaches its own schedule group only.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict

from serverless_agents.agent import Phase
from serverless_agents.aws.tasks_table import WATCH_INDEX
from serverless_agents.deployment.naming import agent_log_group, sensor_schedule_name
from tests.rehearsal.conftest import SECRETS, SENSOR, WATCHED_BUCKET, Deployed
from tests.rehearsal.deployment import ACCOUNT, REGION
from tests.rehearsal.iam_audit import Call, allowed, role_statements
from tests.rehearsal.lifecycle import create, create_file_sensor, get, object_created, wait_for

pytestmark = pytest.mark.functional

INTRUDER, VICTIM = "intruder", "etl"
INTRUDER_CREATE = f"rehearsal-{INTRUDER}-create"
POKE = f"rehearsal-{SENSOR}-poke"


def agent_key_prefix(agent: str) -> str:
    """How an agent's keys start (the contract `serverless_agents.flyte.identity.agent_key_prefix` keeps),
    spelled out here so that this test also runs against a deployment from before it."""
    return f"{agent}_"


ENDED = (Phase.SUCCEEDED, Phase.FAILED, Phase.RETRYABLE_FAILED, Phase.ABORTED)
#: Each attempt of the intruder's, and whether its deployed policy lets it through.
EXPECTED = {
    "read victim task": False,
    "forge victim task": False,
    "read victim request": False,
    "write victim outputs": False,
    "write victim state": False,
    "read victim secret": False,
    "delete victim schedule": False,
    "write victim logs": False,
    "read own task": True,
    "read own secret": True,
    "write own logs": True,
}


@pytest.fixture(scope="module")
def intrusion(deployed: Deployed) -> dict[str, Any]:
    secrets = deployed.client("secretsmanager")
    arns = {
        agent: secrets.create_secret(Name=name, SecretString=f"{agent}'s token")["ARN"]
        for agent, name in SECRETS.items()
    }
    victim_task = create(deployed, "example_etl", "tenancy-victim", {"polls": 1})
    victim_before = wait_for(deployed, victim_task, *ENDED)
    waiting = create_file_sensor(deployed, f"s3://{WATCHED_BUCKET}/tenancy/never.csv", "tenancy-waiting")
    (group,) = deployed.stack.physical("AWS::Scheduler::ScheduleGroup")
    # Denied calls fail as on AWS, from the intruder's create function only.
    iam, lambda_client = deployed.client("iam"), deployed.client("lambda")
    statements = role_statements(iam, lambda_client, INTRUDER_CREATE)
    deployed.calls.enforce(INTRUDER_CREATE, statements)
    start = len(deployed.calls.calls)
    intruder_task = create(
        deployed,
        "rehearsal_intruder",
        "tenancy-intruder",
        {
            "victim_agent": VICTIM,
            "victim_task": victim_task,
            "victim_secret": arns[VICTIM],
            "own_secret": arns[INTRUDER],
            "victim_schedule_group": group,
            "victim_schedule": sensor_schedule_name(waiting),
        },
    )
    intruder = wait_for(deployed, intruder_task, *ENDED)
    calls = [c for c in deployed.calls.calls[start:] if c.function == INTRUDER_CREATE]
    victim_after = get(deployed, victim_task)
    schedules = deployed.scheduler.schedules(group)
    assert deployed.api.request("DELETE", f"/v1/tasks/{waiting}").status == 200
    return {
        "outcomes": MessageToDict(intruder.custom_info),
        "calls": calls,
        "statements": statements,
        "victim_before": victim_before,
        "victim_after": victim_after,
        "victim_task": victim_task,
        "intruder_task": intruder_task,
        "schedule_kept": sensor_schedule_name(waiting) in schedules,
        "arns": arns,
    }


def test_agent_ids_start_with_their_agent_so_iam_can_scope_them(intrusion: dict[str, Any]) -> None:
    assert intrusion["victim_task"].startswith(agent_key_prefix(VICTIM))
    assert intrusion["intruder_task"].startswith(agent_key_prefix(INTRUDER))


def test_an_agent_cannot_forge_another_agents_task(intrusion: dict[str, Any]) -> None:
    before, after = intrusion["victim_before"], intrusion["victim_after"]
    assert intrusion["outcomes"]["forge victim task"] == "AccessDeniedException"
    assert Phase(after.phase) is Phase(before.phase)
    assert MessageToDict(after.outputs) == MessageToDict(before.outputs)
    victim_key = ("dynamodb:LeadingKeys", intrusion["victim_task"])
    forge = [c for c in intrusion["calls"] if c.action == "dynamodb:UpdateItem" and victim_key in c.context]
    assert len(forge) == 1
    assert not allowed(intrusion["statements"], forge[0])


def test_an_agents_reach_into_another_agents_data_is_denied_by_the_deployed_policy(
    intrusion: dict[str, Any],
) -> None:
    outcomes = intrusion["outcomes"]
    assert {name: outcomes[name] == "AccessDeniedException" for name in EXPECTED} == {
        name: not reachable for name, reachable in EXPECTED.items()
    }
    assert intrusion["schedule_kept"]
    victim_marks = (
        intrusion["victim_task"],
        f"/{VICTIM}/",
        intrusion["arns"][VICTIM],
        agent_log_group("rehearsal", VICTIM),
        "schedule/",
    )
    denied = [c for c in intrusion["calls"] if not allowed(intrusion["statements"], c)]
    on_victim = [c for c in intrusion["calls"] if any(m in f"{c.resource} {c.context}" for m in victim_marks)]
    # Every call on the neighbour's things is denied (one per attempt: a denied call stops its attempt);
    # every call on its own is allowed.
    assert on_victim
    assert set(denied) == set(on_victim)
    assert {c.action for c in on_victim} == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "s3:GetObject",
        "s3:PutObject",
        "secretsmanager:GetSecretValue",
        "scheduler:DeleteSchedule",
        "logs:CreateLogStream",
    }


def test_a_sensor_queries_only_its_own_keys_and_deletes_only_its_own_schedules(deployed: Deployed) -> None:
    waiting = create_file_sensor(deployed, f"s3://{WATCHED_BUCKET}/tenancy/event.csv", "tenancy-event")
    start = len(deployed.calls.calls)
    deployed.events.deliver(object_created(deployed, WATCHED_BUCKET, "tenancy/event.csv"))
    assert Phase(get(deployed, waiting).phase) is Phase.SUCCEEDED
    statements = role_statements(deployed.client("iam"), deployed.client("lambda"), POKE)
    (query,) = [
        c for c in deployed.calls.calls[start:] if c.function == POKE and c.action == "dynamodb:Query"
    ]
    assert query.resource.endswith(f"/index/{WATCH_INDEX}")
    assert allowed(statements, query)
    # The same query for another agent's waiting tasks on the same object.
    for other in (INTRUDER, VICTIM):
        foreign = f"{agent_key_prefix(other)}s3://{WATCHED_BUCKET}/tenancy/event.csv"
        context = (("dynamodb:LeadingKeys", foreign),)
        assert not allowed(statements, Call(POKE, query.action, query.resource, context))
    (key,) = [value for name, value in query.context if name == "dynamodb:LeadingKeys"]
    assert key == f"{agent_key_prefix(SENSOR)}s3://{WATCHED_BUCKET}/tenancy/event.csv"
    schedules = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule"
    assert allowed(statements, Call(POKE, "scheduler:DeleteSchedule", f"{schedules}/rehearsal-{SENSOR}/x"))
    other = Call(POKE, "scheduler:DeleteSchedule", f"{schedules}/rehearsal-{INTRUDER}/x")
    assert not allowed(statements, other)
