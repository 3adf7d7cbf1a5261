"""SnapStart (an agent's `snapstart = true`): done once before the snapshot, redone after each restore.

With SnapStart, Lambda runs a function's init once, when a version is published, snapshots its memory and
resumes every cold start from that snapshot. Init is then free, so `prime` (called by each agent handler
at import) does there what the first invocation would otherwise do: import the runtime modules the
handler uses, botocore and the agent's module, and parse the manifest. It makes no client: anything unique
per environment made before the snapshot (random state, connections, credentials a client caches) would
be shared by every environment restored from it. The after-restore hook re-seeds `random` and drops
whatever clients and agent instances exist, so each restored environment makes its own at first use.

`prime` works only in the init Lambda runs to take a snapshot (`AWS_LAMBDA_INITIALIZATION_TYPE` is
`snap-start`); anywhere else it does nothing. The hooks come from `snapshot_restore_py`, which Lambda's
Python runtimes (3.12 and later) provide; it is imported only there, and its absence is logged, not fatal.
"""

from __future__ import annotations

import importlib
import logging
import os

SNAP_START = "snap-start"


def snapshot_init() -> bool:
    """True in the init Lambda runs to take a SnapStart snapshot."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == SNAP_START


def prime(*modules: str) -> None:
    """Before the snapshot: import `modules` (what the handler imports at first use) and the function's
    agent, and register the after-restore hook."""
    if not snapshot_init():
        return
    try:
        hooks = importlib.import_module("snapshot_restore_py")
    except ImportError:
        logging.getLogger(__name__).warning("snapshot_restore_py is missing: no after-restore hook")
    else:
        hooks.register_after_restore(after_restore)
    # Imports, not clients: a client holds connections and credentials. botocore's session, as `aws` makes
    # clients from it.
    for module in ("botocore.session", *modules):
        importlib.import_module(module)
    from serverless_agents.runtime.loading import load_agent
    from serverless_agents.runtime.settings import current_settings

    settings = current_settings()
    if settings.agent:
        load_agent(settings.manifest_path, settings.agent)


def after_restore() -> None:
    """Make what must differ per environment anew: the random state, clients, agent instances."""
    import random

    from serverless_agents import aws
    from serverless_agents.runtime import loading, wiring

    random.seed()
    aws.forget_clients()
    loading.forget_agents()
    for cached in (wiring.task_service, wiring.async_steps, wiring.sensor_steps):
        cached.cache_clear()
