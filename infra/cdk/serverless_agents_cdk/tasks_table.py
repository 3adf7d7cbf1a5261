"""`TasksTable`: the DynamoDB table of tasks (`serverless_agents.tasks_table`), as the local stack makes it.

Key `id` (S), on-demand, items expiring at `expires_at` (epoch seconds the runtime writes: created +
SA_TASK_TTL_DAYS), point-in-time recovery. CloudFormation names it, so a retained table never blocks a
redeploy; the functions get the name in SA_TASKS_TABLE.

Its global secondary indexes are the runtime's `INDEXES` (which the local stack makes too), both sparse
and KEYS_ONLY: `watching` (key `watch`, S) holds only waiting sensor tasks, so an event finds the tasks it
concerns with one query (`TasksTable.tasks_watching`), never a scan; `open` (key `open`, S, sort key
`end_by`, N) holds only open tasks, so the sweeper finds those past their bound with one query
(`TasksTable.overdue`).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from serverless_agents.tasks_table import INDEXES, TTL_ATTRIBUTE

_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}


class TasksTable(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # Tasks in flight outlive a mistaken `cdk destroy`; delete the table by hand once drained.
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index in INDEXES:
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(*index.partition),
                sort_key=_attribute(*index.sort) if index.sort else None,
                projection_type=dynamodb.ProjectionType.KEYS_ONLY,
            )

    def grant_items(self, grantee: iam.IGrantable, *actions: str) -> None:
        """Item-level actions on this table only (`dynamodb:GetItem`, ...): no scans, no other table."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=list(actions), resources=[self.table.table_arn])
        )

    def index_arn(self, index: str) -> str:
        return f"{self.table.table_arn}/index/{index}"

    def grant_index_query(self, grantee: iam.IGrantable, index: str) -> None:
        """`dynamodb:Query` on one index of this table: not on the table itself, nor on any other index."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["dynamodb:Query"], resources=[self.index_arn(index)])
        )


def _attribute(name: str, kind: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=_TYPES[kind])
