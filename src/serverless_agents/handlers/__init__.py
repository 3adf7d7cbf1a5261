"""The Lambda handlers: each parses its event, calls one runtime function and shapes the answer.

Lambda runs them by the handler string `functions.<role>.handler.handler`: the top-level `functions/<role>/`
folders of the repository (copied to the root of every function bundle by infra/cdk) re-export
`serverless_agents.handlers.<role>.handler`, one line each. The code lives here, in the library, so that the
wheel carries it without installing a package named `functions` into its users' environments (it would shadow,
or be shadowed by, their own); the folders stay where Lambda and the design's layout expect the entry points.
`handler_string` makes a function's handler string; the local stack, which runs the same handler strings
in-process, resolves them with `entry_point`.

What a handler module imports is the function's init, paid by every cold start before anything else:
Powertools' Logger and Metrics, the settings, and nothing more. The runtime (the compiled manifest,
botocore, the agent's module and its client library; pydantic for an agent whose metadata is a model,
flyteidl where a message is built) is imported inside the handler, at the first invocation, where it
is used: a module loads only where a path needs it, and the init stays small and measurable
(`tests/unit/test_lambda_imports.py` counts its modules, and checks what a first invocation loads).
With SnapStart, `snapstart.prime` loads the runtime in the init instead, before the snapshot.
This module imports nothing: every handler's init pays for it.
"""

#: Every function's role: `functions/<role>/handler.py` and `serverless_agents/handlers/<role>.py`.
ROLES = ("api", "create", "delete", "finalize", "get", "poke", "sweeper", "sync")
#: The package Lambda imports a handler string from: `functions/`, at the root of each function bundle.
LAMBDA_PACKAGE = "functions"


class UnknownHandler(ValueError):
    """A handler string that names none of the project's functions."""


def handler_string(role: str) -> str:
    """Lambda's handler string for a function of `role`, as the CDK app and the local stack deploy it."""
    if role not in ROLES:
        raise UnknownHandler(f"no function role {role!r} (roles: {', '.join(ROLES)})")
    return f"{LAMBDA_PACKAGE}.{role}.handler.handler"


def entry_point(handler: str) -> tuple[str, str]:
    """The module and attribute that Lambda's handler string `functions.<role>.handler.handler` runs:
    (`serverless_agents.handlers.<role>`, `handler`), what `functions/<role>/handler.py` re-exports."""
    parts = handler.split(".")
    if len(parts) != 4 or (parts[0], parts[2], parts[3]) != (LAMBDA_PACKAGE, "handler", "handler"):
        expected = f"{LAMBDA_PACKAGE}.<role>.handler.handler"
        raise UnknownHandler(f"handler {handler!r} is not one of this project's: expected {expected}")
    if parts[1] not in ROLES:
        raise UnknownHandler(
            f"handler {handler!r} names no function of this project (roles: {', '.join(ROLES)})"
        )
    return f"{__name__}.{parts[1]}", "handler"
