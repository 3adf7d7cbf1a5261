"""Lambda entry points: each parses its event, calls one runtime function and shapes the answer.

What a handler module imports is the function's init, paid by every cold start before anything else:
Powertools' Logger and Metrics, the settings, and nothing more. The runtime (pydantic, flyteidl, boto3,
the agent's module and its client library) is imported inside the handler, at the first invocation,
where it is used; the total a cold start pays is the same, but a module loads only where a path needs
it and the init stays small and measurable (`tests/unit/test_lambda_imports.py` counts its modules).
With SnapStart, `functions.snapstart.prime` loads the runtime in the init instead, before the snapshot.
"""
