"""The deployment model: the manifest, the plan it deploys (functions, state machines, rules, names),
the agents' registry and metadata evolution, and the deployed stack's check."""
