"""`event_rule`: an EventBridge rule the plan describes (`serverless_agents.deployment.plan`), targeted."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from aws_cdk import aws_events as events

from serverless_agents.deployment.plan import ScheduleRule

if TYPE_CHECKING:
    from constructs import Construct

    from serverless_agents.deployment.plan import EventRule


def event_rule(
    scope: Construct, construct_id: str, rule: EventRule | ScheduleRule, target: events.IRuleTarget
) -> events.Rule:
    """The plan's pattern reaches CloudFormation as written there: `events.EventPattern` knows the envelope
    fields only by their Python names, while the plan (and a manifest's `events`) spells them as
    EventBridge does (`detail-type`). The placeholder pattern is replaced before synthesis."""
    if isinstance(rule, ScheduleRule):
        schedule = events.Schedule.expression(rule.schedule)
        return events.Rule(
            scope,
            construct_id,
            rule_name=rule.name,
            description=rule.description,
            schedule=schedule,
            targets=[target],
        )
    created = events.Rule(
        scope,
        construct_id,
        rule_name=rule.name,
        description=rule.description,
        event_pattern=events.EventPattern(source=["placeholder"]),
        targets=[target],
    )
    cast("events.CfnRule", created.node.default_child).add_property_override("EventPattern", rule.pattern)
    return created
