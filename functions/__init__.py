"""Lambda's entry points, where its handler strings (`functions.<role>.handler.handler`) find them.

Each `functions/<role>/handler.py` re-exports the handler of `serverless_agents.handlers.<role>`, where the
code and its reasons live. This folder is copied to the root of every function bundle (infra/cdk's bundles)
and is not in the wheel: a wheel must not install a package named `functions` into its users' environments.
"""
