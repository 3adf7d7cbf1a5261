"""The CDK app that deploys a manifest (`agents.toml`): one stack, one construct per concern.

    plan.py            the manifest read into what to deploy (agents by kind, bundle families)
    bundles.py         Lambda code: pip for the Lambda platform, no Docker; the offline stand-in
    stack.py           the stack: wires the constructs below together
    handler_function.py  a Lambda running one of functions/<role>/handler.py, with its own role
    tasks_table.py, payload_bucket.py, async_agent_state_machine.py, sync_agent_function.py,
    agents_api.py, finalizer.py, alarms.py, dashboard.py   one construct each, named for what it makes
    nag.py             cdk-nag acknowledgments, each with its reason

Sensors are not deployable yet (no sensor runtime): a manifest naming one fails in `plan_deployment`. The
sensor runtime adds a `SensorTriggers` construct beside `AsyncAgentStateMachine` and `SyncAgentFunction`.
"""
