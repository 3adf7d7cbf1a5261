"""Fixes to moto that the embedded stack needs, for the pinned moto only.

DynamoDB item writes are atomic and isolated on AWS: a conditional write checks and writes as one step, and a
read sees an item before or after a write, never half-way. moto 5.2.5 checks the condition and then applies
the update expression attribute by attribute, in place, with no lock, so with the stack's threads (each
function's container, the HTTP API's requests, the status-change driver) a reader could see a half-written
ending (phase SUCCEEDED, message still "waiting for the condition") and two writers could both pass one
condition. The fix runs each DynamoDB request (parse, check, apply, serialize) under one lock.

The Step Functions service integration `arn:aws:states:::states:startExecution` (the Continue state: a task
continues as a new execution) reaches moto 5.2.5's parser with the parameters as the state machine names them
(`StateMachineArn`, `Name`, `Input`) and hands them to boto3 unconverted, which fails (KeyError
'StateMachineArn'); its answer would keep boto3's casing (`executionArn`) where AWS gives `ExecutionArn`.
The parser has both conversions (`_to_boto_request`, `_from_boto_response`) but does not call them for
this integration; the fix calls them, with botocore's model of the operation.

moto 5.2.5 parses a state machine's definition again for every execution it starts (antlr in pure Python:
about a quarter of a second of CPU for the project's definition), where AWS parses it once, when the state
machine is created or updated. On the embedded stack, whose functions and emulator share one interpreter,
a burst of 200 CreateTask calls then spent ~50 s of CPU parsing the same text while the creates waited. The
fix parses each definition once; a parsed program holds no execution's state (its states keep theirs in the
execution's `Environment`), so executions share it, as they share the definition. Likewise each Task state
that invokes a Lambda function made a new boto3 client for the call (~40 ms of CPU: botocore loads the
service model and builds the client each time); the fix makes one per region and service and shares it
(boto3 clients are thread-safe, and moto's ignore the state's credentials), and each JSONPath a state reads
was parsed again at every read (milliseconds each); the fix keeps the parsed paths (immutable).

StopExecution right after StartExecution (Flyte aborting a task it just created) raises AttributeError in moto
5.2.5: the execution's worker thread sets its environment only once it has parsed the definition, and
`ExecutionWorker.stop` reads it at once. On AWS the call succeeds; here it would be a 500. The fix waits,
briefly and boundedly, for the environment before stopping.

CloudWatch Logs' JSON filter patterns (`{ $.task_id = "..." }`, GetTaskLogs' filter) are "unsupported" in
moto 5.2.5, which then matches every event: a page of one task's lines would be a page of the whole log group,
mostly dropped by the runtime's own check. The fix evaluates the one form the project sends, a string equality
on a top-level key, as CloudWatch does (a line that is not JSON does not match); any other pattern is left
to moto.

StopExecution during a `.waitForTaskToken` task (an agent whose events end the wait, in its Listen state)
does not end that task in moto 5.2.5: it waits on for its token until its timeout, then fails, and the
failure overwrites the stop, so the execution ends FAILED where AWS ends it ABORTED at once. The fix ends
the execution's waits for a token when it is stopped, and keeps a stopped execution stopped (a later error
does not turn it into a failure).
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from typing import Any

_WAIT_SECONDS = 5.0
_installed = False
_DYNAMODB = threading.RLock()


def install() -> None:
    """Idempotent; `lambda_dispatch.InProcessLambdas.install` checks the moto version this is written for."""
    global _installed
    if _installed:
        return
    from moto.dynamodb.responses import DynamoHandler
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    _step_functions_integration()
    _json_filter_patterns()
    _parse_definitions_once()

    request = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _DYNAMODB:
            return request(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]

    original = ExecutionWorker.stop

    def stop(self: Any, stop_date: Any, error: str | None, cause: str | None) -> None:
        deadline = time.monotonic() + _WAIT_SECONDS
        while self.env is None and time.monotonic() < deadline:
            time.sleep(0.01)
        original(self, stop_date, error, cause)
        if self.env is not None:
            for endpoint in list(self.env.callback_pool_manager._pool.values()):
                endpoint.interrupt_all()

    ExecutionWorker.stop = stop  # type: ignore[method-assign]

    set_error = Environment.set_error

    def keep_stopped(self: Any, error: Any) -> None:
        if isinstance(self._program_state, ProgramStopped):
            return
        set_error(self, error)

    Environment.set_error = keep_stopped  # type: ignore[method-assign]
    _installed = True


_JSON_EQUALS = re.compile(r'^\{\s*\$\.(?P<key>\w+)\s*=\s*"(?P<value>[^"]*)"\s*\}$')


def _json_filter_patterns() -> None:
    """`{ $.key = "value" }` evaluated on JSON lines (see the module's docstring)."""
    from moto.logs.utils import EventMessageFilter

    original = EventMessageFilter.matches

    def matches(self: Any, message: str) -> bool:
        equals = _JSON_EQUALS.match(str(self.filter_type.term).strip())
        if equals is None:
            return bool(original(self, message))
        try:
            line = json.loads(message)
        except ValueError:
            return False
        return isinstance(line, dict) and line.get(equals["key"]) == equals["value"]

    EventMessageFilter.matches = matches  # type: ignore[method-assign]


def _step_functions_integration() -> None:
    """AWS's casing in and out of the `states:` service integration (see the module's docstring)."""
    import botocore.session
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    model = botocore.session.get_session().get_service_model("stepfunctions")
    parameters_as_named = StateTaskServiceSfn._normalise_parameters

    def operation(task: Any) -> Any:
        action = str(task.resource.api_action)  # e.g. startExecution
        return model.operation_model(action[:1].upper() + action[1:])

    def normalise_parameters(
        self: Any, parameters: dict[str, Any], boto_service_name: Any = None, service_action_name: Any = None
    ) -> None:
        parameters_as_named(self, parameters, boto_service_name, service_action_name)
        if service_action_name is None:  # the integration's own call, not a .sync poll
            self._to_boto_request(parameters, operation(self).input_shape)

    def normalise_response(
        self: Any, response: Any, boto_service_name: Any = None, service_action_name: Any = None
    ) -> None:
        if service_action_name is None:
            self._from_boto_response(response, operation(self).output_shape)

    StateTaskServiceSfn._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    StateTaskServiceSfn._normalise_response = normalise_response  # type: ignore[method-assign]


def _parse_definitions_once() -> None:
    """Each state machine definition parsed at its first execution only, and one boto3 client per region
    and service for what the states call (see the module's docstring)."""
    import sys

    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.asl.utils import boto_client, json_path
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    made = boto_client.boto_client_for

    @functools.lru_cache(maxsize=64)
    def shared_client(region: str, service: str) -> Any:
        return made(region=region, service=service)

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        return shared_client(region, service)  # moto's client ignores `state_credentials`

    # Each JSONPath (`$.job.phase`) was parsed again (jsonpath_ng's PLY parser) wherever a state reads it.
    json_path.parse = functools.lru_cache(maxsize=256)(json_path.parse)  # type: ignore[attr-defined]

    # The modules that imported it by name, and the module itself for those imported later.
    for module in [boto_client, lambda_eval_utils, *list(sys.modules.values())]:
        if (
            getattr(module, "__name__", "").startswith("moto.stepfunctions.parser")
            and getattr(module, "boto_client_for", None) is made
        ):
            module.boto_client_for = client_for  # type: ignore[attr-defined]

    @functools.lru_cache(maxsize=64)
    def program(definition: str) -> Any:
        return AmazonStateLanguageParser.parse(definition)[0]

    parsing = threading.Lock()

    def entrypoint(self: Any) -> Any:
        # One parse: a burst's executions start together, and would each parse before the first is cached.
        with parsing:
            return program(self._evaluation_details.state_machine_details.definition)

    ExecutionWorker._get_evaluation_entrypoint = entrypoint  # type: ignore[method-assign]
