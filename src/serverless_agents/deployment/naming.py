"""Names of the AWS resources a deployment makes, shared by the CDK app, the local stack and the runtime.

Deterministic names let a function find another (the finalize Lambda invokes an agent's delete Lambda)
without a lookup table that would have to be kept in sync.
"""

from __future__ import annotations

import hashlib
from typing import Literal

FunctionRole = Literal["create", "get", "delete", "sync", "poke"]
#: The deployment's own functions, one of each.
SharedRole = Literal["api", "finalize", "sweeper"]


def agent_function_name(deployment: str, agent: str, role: FunctionRole) -> str:
    return f"{deployment}-{agent}-{role}"


#: The alias a SnapStart function's callers invoke: its latest published version (SnapStart restores
#: snapshots of published versions only; `$LATEST` always starts cold).
SNAPSTART_ALIAS = "live"
#: How the CDK app's stack description begins (the deployment's name follows): what tells a
#: serverless-agents stack apart (`serverless-agents check --stack` refuses any other).
STACK_DESCRIPTION = "Flyte agents on Lambda and Step Functions: deployment "


def invocable_name(function_name: str, snapstart: bool) -> str:
    """What a caller invokes: the SnapStart alias (`<function>:live`), or the function itself."""
    return f"{function_name}:{SNAPSTART_ALIAS}" if snapstart else function_name


def shared_function_name(deployment: str, role: SharedRole) -> str:
    return f"{deployment}-{role}"


def state_machine_name(deployment: str, agent: str) -> str:
    return f"{deployment}-{agent}"


def state_machine_arn_prefix(partition: str, region: str, account: str, deployment: str) -> str:
    return f"arn:{partition}:states:{region}:{account}:stateMachine:{deployment}-"


def execution_arn(state_machine_arn: str, execution_name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{execution_name}"


def state_machine_of_execution(execution_arn: str) -> str:
    """The state machine ARN of an execution ARN (`arn:...:execution:<machine>:<name>`)."""
    prefix, _, _ = execution_arn.rpartition(":")
    return prefix.replace(":execution:", ":stateMachine:", 1)


#: Execution names are at most 80 characters.
_EXECUTION_NAME_LIMIT = 80


def chain_execution_name(task_id: str, number: int) -> str:
    """The name of execution `number` of a task's chain (continue as new): the task id for the first,
    `<task id>_c<number>` after it. A task id never has `_` within its last 16 characters (its hash), so no
    chain name is another task's id; a task id too long for the suffix is replaced by its own hash."""
    if number <= 1:
        return task_id
    suffix = f"_c{number}"
    stem = task_id
    if len(stem) + len(suffix) > _EXECUTION_NAME_LIMIT:
        stem = hashlib.sha256(task_id.encode()).hexdigest()[:48]
    return stem + suffix


def agent_log_group(deployment: str, agent: str) -> str:
    """One log group for all of an agent's functions, so a task's logs are behind one link."""
    return function_log_group(f"{deployment}-{agent}")


def function_log_group(name: str) -> str:
    """The log group Lambda writes a function named `name` to, unless told another."""
    return f"/aws/lambda/{name}"


#: moto's default account: the local stack's, and its emulated API's.
LOCAL_ACCOUNT = "123456789012"


def sensor_schedule_group(deployment: str, agent: str) -> str:
    return f"{deployment}-{agent}"


def agent_rule_name(deployment: str, agent: str, number: int) -> str:
    """The rule for an agent's `number`th event pattern (a sensor's `events`; an async agent's class's
    `events`, then its manifest's)."""
    return f"{deployment}-{agent}-{number}"


def sensor_schedule_name(task_id: str) -> str:
    """EventBridge Scheduler names allow 64 characters; task ids 80, so long ones are shortened by hash."""
    if len(task_id) <= 64:
        return task_id
    import hashlib

    return f"{task_id[:47]}-{hashlib.sha256(task_id.encode()).hexdigest()[:16]}"


def connection_secret_prefix(deployment: str, agent: str | None = None) -> str:
    """Where the Connection secrets Flyte 2's executor sends are kept in Secrets Manager:
    `<deployment>/connections/<agent>/...`; without an agent, the whole deployment's (the api writes
    there, the sweeper deletes there, each agent's functions read their own). The trailing `/` keeps
    agent `job`'s prefix from matching agent `jobs`'s secrets."""
    prefix = f"{deployment}/connections/"
    return f"{prefix}{agent}/" if agent else prefix


def connection_secret_name(deployment: str, agent: str, project: str, domain: str, digest: str) -> str:
    """One secret per agent, Flyte project, domain and set of Flyte secret names (`digest`)."""
    return f"{connection_secret_prefix(deployment, agent)}{project}/{domain}/{digest}"
