"""The CDK app: the manifest named by context (`-c manifest=...`, default the example manifest),
planned, bundled and synthesized as one stack, with cdk-nag's AwsSolutions checks as a validation plugin
(synth fails on any finding not acknowledged in `nag.py`).

Context:
    manifest=PATH          the manifest to deploy (relative to the working directory: infra/cdk under `cdk`)
    bundling=skip          offline synth: every function gets a stand-in folder with the project code and
                           the manifest only (no pip, no network); for tests and for reviewing templates
    api_throttle_rate=N    the API stage's steady requests per second (default 100)
    api_throttle_burst=N   its burst (default 200)
    poke_reserved_concurrency=N
                           each sensor's poke function's reserved concurrency (default 10; 0: none)
    accept_metadata_changes=AGENT[,AGENT...]
                           deploy these agents' incompatible metadata changes (no task of theirs in
                           flight): `serverless_agents.deployment.evolution`, checked against the
                           manifest's lock
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from serverless_agents.deployment.evolution import accepted, check_and_lock, metadata_schemas
from serverless_agents.deployment.naming import STACK_DESCRIPTION
from serverless_agents.deployment.plan import plan_deployment

from .bundles import DEFAULT_MANIFEST, assemble_standin, build_bundle, families
from .sensor_triggers import POKE_RESERVED_CONCURRENCY
from .stack import ServerlessAgentsStack

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"
STANDIN = "standin-code"


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context (feature flags): the CLI hands it to the app; tests get the same through here."""
    return dict(json.loads(CDK_JSON.read_text()).get("context", {}))


def build_app(
    context: Mapping[str, Any] | None = None, *, outdir: str | None = None
) -> tuple[App, ServerlessAgentsStack]:
    app = App(context={**cdk_json_context(), **(context or {})}, outdir=outdir)
    plan = plan_deployment(Path(str(app.node.try_get_context("manifest") or DEFAULT_MANIFEST)))
    # Before anything is built: a task in flight must read its metadata after this deploy.
    check_and_lock(
        plan.manifest_path,
        metadata_schemas(plan.registry),
        accept=accepted(app.node.try_get_context("accept_metadata_changes")),
    )
    bundling = str(app.node.try_get_context("bundling") or "pip")
    if bundling == "skip":
        standin = assemble_standin(Path(app.outdir) / STANDIN, plan)
        code_paths = dict.fromkeys(families(plan), standin)
    elif bundling == "pip":
        bundles = [build_bundle(family, plan) for family in families(plan)]
        for bundle in bundles:
            print(f"bundle {bundle.describe()}", flush=True)
        code_paths = {b.family: b.path for b in bundles}
    else:
        raise ValueError(f"context bundling={bundling!r}: expected 'pip' (the default) or 'skip'")
    stack = ServerlessAgentsStack(
        app,
        plan.deployment,
        plan=plan,
        code_paths=code_paths,
        api_throttle_rate=float(app.node.try_get_context("api_throttle_rate") or 100),
        api_throttle_burst=int(app.node.try_get_context("api_throttle_burst") or 200),
        poke_reserved_concurrency=poke_reserved_concurrency_from(
            app.node.try_get_context("poke_reserved_concurrency")
        ),
        description=f"{STACK_DESCRIPTION}{plan.deployment} "
        f"({len(plan.agents)} agents, from {plan.manifest_path.name})",
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app, stack


def poke_reserved_concurrency_from(value: Any) -> int | None:
    concurrency = POKE_RESERVED_CONCURRENCY if value is None else int(value)
    return concurrency or None  # Lambda would read 0 as "never run": here it means no reservation


def main() -> None:
    app, _ = build_app()
    app.synth()
