"""ECS Fargate container tasks: a task template's `container` run with ECS `RunTask`, where propeller
would start a pod.

A task of type `ecs_fargate` carries an ordinary Flyte container (image, args, env, resources); for a Python
function flytekit writes `pyflyte-execute --inputs {{.input}} --output-prefix {{.outputPrefix}} ...`.

- **Task definition.** One per shape (image, Fargate size, roles, log group, CPU architecture, storage): its
  family ends in a hash of that shape, so the next task of the same shape reuses it rather than registering a
  revision per run. What changes per run (command, environment) travels as RunTask `overrides`.
- **Inputs and outputs.** No propeller stages files here, so `create` does what flytekit's own connector
  executor does (`flytekit.extend.backend.utils.render_task_template`): it writes the inputs `LiteralMap` as
  `<output_prefix>/inputs.pb` and substitutes the container's placeholders (see `placeholder_values`). The
  container writes `outputs.pb`, or flytekit's `error.pb`, under `output_prefix`; `get` reads them back.
- **Idempotency.** RunTask gets `clientToken` = sha256(task id) and `startedBy` = the task id: a create
  retried after RunTask went through gets the same ECS task back instead of starting a second one.
- **Phases.** `lastStatus` PROVISIONING, PENDING, ACTIVATING -> INITIALIZING; RUNNING up to DEPROVISIONING ->
  RUNNING; STOPPED -> `error.pb`, then the exit code and stop code, then `outputs.pb` decide.

Settings (cluster, subnets, roles, ...) come from the manifest's `config` table; the template's `custom` may
override each of them (`EcsSettings`).

One module per concern: `agent` (create, get, delete), `settings`, `container` (the command and environment
the container runs with), `sizing` (Fargate sizes), `task_definitions`, `run_task`, `outputs` (the task's
files under `output_prefix`, and what a stopped task ends as), `links` (console links) and `errors` (ECS's
refusals as one line).
"""

from __future__ import annotations

from serverless_agents.agents.ecs.agent import EcsFargateAgent, EcsTaskMetadata
from serverless_agents.agents.ecs.container import placeholder_values, render_args
from serverless_agents.agents.ecs.settings import EcsSettings
from serverless_agents.agents.ecs.sizing import FargateSize, fargate_size

__all__ = [
    "EcsFargateAgent",
    "EcsSettings",
    "EcsTaskMetadata",
    "FargateSize",
    "fargate_size",
    "placeholder_values",
    "render_args",
]
