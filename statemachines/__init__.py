"""The state machine definitions (Amazon States Language templates): `serverless_agents.statemachines`.

This top-level folder is their source of truth; setup.py maps the package `serverless_agents.statemachines`
here, so the wheel carries the `.asl.json` files inside the package and the editable install finds them in
this folder. `serverless_agents.deployment.statemachine` reads them (`importlib.resources`) and renders them.
"""
