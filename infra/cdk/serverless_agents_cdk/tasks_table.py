"""`TasksTable`: the DynamoDB table of tasks (`serverless_agents.tasks_table`), as the local stack makes it.

Key `id` (S), on-demand, items expiring at `expires_at` (epoch seconds the runtime writes: created +
SA_TASK_TTL_DAYS), point-in-time recovery. CloudFormation names it, so a retained table never blocks a
redeploy; the functions get the name in SA_TASKS_TABLE.

Its key, global secondary indexes and billing are `table_definition`'s, the schema the local stack
creates: both indexes sparse and KEYS_ONLY: `watching` (key `watch`, S) holds only waiting sensor tasks,
so an event finds the tasks it concerns with one query (`TasksTable.tasks_watching`), never a scan; `open`
(key `open`, S, sort key `end_by`, N) holds only open tasks, so the sweeper finds those past their bound
with one query (`TasksTable.overdue`).

Each agent is a tenant: its functions reach only its own items (`grant_agent_items`, and on `watching`
`grant_index_query(..., agent=)`), by the keys' first characters, which name the agent
(`identity.agent_key_prefix`: task ids and stored `watch` values start with `<agent>_`). IAM's condition key
`dynamodb:LeadingKeys` is the request's partition key value (for a Query on an index, the index's); AWS
documents it as multivalued, to be used with `ForAllValues`
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html), and
`StringLike` takes the `*`. Every action granted so (GetItem, UpdateItem, Query) names a key: `ForAllValues`
over no value at all would hold, which is why no keyless action (Scan, batch or transaction calls) is ever
granted to an agent. The shared functions (api, finalize, sweeper) are trusted and keep the whole table.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from serverless_agents.identity import agent_key_prefix
from serverless_agents.tasks_table import TTL_ATTRIBUTE, table_definition

_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}


class TasksTable(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        # The schema the local stack creates (`table_definition`): key, indexes, billing. Its name is
        # CloudFormation's to choose.
        schema = table_definition("")
        types = {a["AttributeName"]: a["AttributeType"] for a in schema["AttributeDefinitions"]}

        def key(schema_key: list[dict[str, str]], key_type: str) -> dynamodb.Attribute | None:
            names = [k["AttributeName"] for k in schema_key if k["KeyType"] == key_type]
            return dynamodb.Attribute(name=names[0], type=_TYPES[types[names[0]]]) if names else None

        partition_key = key(schema["KeySchema"], "HASH")
        assert partition_key is not None
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=partition_key,
            billing_mode=dynamodb.BillingMode(schema["BillingMode"]),
            time_to_live_attribute=TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # Tasks in flight outlive a mistaken `cdk destroy`; delete the table by hand once drained.
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index in schema["GlobalSecondaryIndexes"]:
            index_key = key(index["KeySchema"], "HASH")
            assert index_key is not None
            self.table.add_global_secondary_index(
                index_name=index["IndexName"],
                partition_key=index_key,
                sort_key=key(index["KeySchema"], "RANGE"),
                projection_type=dynamodb.ProjectionType(index["Projection"]["ProjectionType"]),
            )

    def grant_items(self, grantee: iam.IGrantable, *actions: str) -> None:
        """Item-level actions on every item of this table (the shared functions'): no scans, no other
        table."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=list(actions), resources=[self.table.table_arn])
        )

    def grant_agent_items(self, grantee: iam.IGrantable, agent: str, *actions: str) -> None:
        """Item-level actions on `agent`'s items only: those whose key starts with `<agent>_`."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(actions), resources=[self.table.table_arn], conditions=agent_keys(agent)
            )
        )

    def index_arn(self, index: str) -> str:
        return f"{self.table.table_arn}/index/{index}"

    def grant_index_query(self, grantee: iam.IGrantable, index: str, *, agent: str | None = None) -> None:
        """`dynamodb:Query` on one index of this table: not on the table itself, nor on any other index;
        with `agent`, only for index keys of that agent's."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[self.index_arn(index)],
                conditions=agent_keys(agent) if agent is not None else None,
            )
        )


def agent_keys(agent: str) -> dict[str, dict[str, list[str]]]:
    """The condition keeping a grant to the items (or index entries) whose keys start with `<agent>_`."""
    return {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{agent_key_prefix(agent)}*"]}}
