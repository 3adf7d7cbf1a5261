"""The CDK app that deploys a manifest (`agents.toml`): one stack, one construct per concern.

    (the library's serverless_agents.deployment.plan: what to deploy, also what the local stack makes)
    bundles.py         Lambda code: bundle families, pip for the Lambda platform, no Docker; the stand-in
    stack.py           the stack: wires the constructs below together
    handler_function.py  a Lambda the plan describes (functions/<role>/handler.py), with its own role
    event_rules.py     an EventBridge rule the plan describes
    tasks_table.py, payload_bucket.py, async_agent_state_machine.py, sync_agent_function.py,
    sensor_triggers.py, agents_api.py, finalizer.py, sweeper.py, alarms.py, dashboard.py
                       one construct each, named for what it makes
    agent_secrets.py, agent_permissions.py   an agent's secrets and the manifest's `permissions`,
                       granted to that agent's functions alone
    nag.py             cdk-nag acknowledgments, each with its reason

Every agent of the manifest is deployed: an `AsyncAgentStateMachine` per async agent, a `SyncAgentFunction`
per sync agent, `SensorTriggers` per sensor (with one `SchedulerRole` shared by their schedules).
"""
