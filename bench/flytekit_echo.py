"""flytekit's side of the sync benchmark: a trivial sync connector, served by `pyflyte serve connector`.

`pyflyte serve connector --modules bench.flytekit_echo` imports this module, and flytekit's way is to
register connectors at import time. `EchoConnector` does what `serverless_agents.examples.EchoAgent` does:
decode the inputs to Python values with the task's interface and return them as the outputs.
"""

from __future__ import annotations

from typing import Any

from flyteidl.core.execution_pb2 import TaskExecution
from flytekit import FlyteContextManager
from flytekit.core.type_engine import TypeEngine
from flytekit.extend.backend.base_connector import ConnectorRegistry, Resource, SyncConnectorBase

TASK_TYPE = "bench_echo"


class EchoConnector(SyncConnectorBase):  # type: ignore[misc]  # flytekit has no py.typed
    name = "Bench Echo Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name=TASK_TYPE)

    def do(self, task_template: Any, output_prefix: str, inputs: Any = None, **kwargs: Any) -> Resource:
        values: dict[str, Any] = {}
        if inputs is not None:
            values = TypeEngine.literal_map_to_kwargs(
                FlyteContextManager.current_context(), inputs, literal_types=task_template.interface.inputs
            )
        return Resource(phase=TaskExecution.SUCCEEDED, message="echoed", outputs=values)


ConnectorRegistry.register(EchoConnector())
