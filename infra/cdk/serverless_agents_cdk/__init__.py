"""The CDK app that deploys a manifest (`agents.toml`): one stack, one construct per concern.

    plan.py            the manifest read into what to deploy (agents by kind, bundle families)
    bundles.py         Lambda code: pip for the Lambda platform, no Docker; the offline stand-in
    stack.py           the stack: wires the constructs below together
    handler_function.py  a Lambda running one of functions/<role>/handler.py, with its own role
    tasks_table.py, payload_bucket.py, async_agent_state_machine.py, sync_agent_function.py,
    sensor_triggers.py, agents_api.py, finalizer.py, sweeper.py, alarms.py, dashboard.py
                       one construct each, named for what it makes
    agent_secrets.py, agent_permissions.py   an agent's secrets and the manifest's `permissions`,
                       granted to that agent's functions alone
    nag.py             cdk-nag acknowledgments, each with its reason

Every agent of the manifest is deployed: an `AsyncAgentStateMachine` per async agent, a `SyncAgentFunction`
per sync agent, `SensorTriggers` per sensor (with one `SchedulerRole` shared by their schedules).
"""
