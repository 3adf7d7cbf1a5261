"""The Snowflake agent through the HTTP API, the real state machine and handlers, and the real connector,
driven with the public `AgentTestClient`; the private `Harness` only reads what the kit does not show (the
job's metadata as the tasks table stores it, the execution's status).

Templates are serialized by flytekitplugins-snowflake's own `SnowflakeTask` and inputs built by flytekit's
`TypeEngine`, as a Flyte user's would be. Snowflake is fakesnow's server (`fake_snowflake`), which says what
fakesnow cannot do: above all, every query it runs has finished by the time the create Lambda returns, and
it never reports a failed query's status. So the cancel test aborts a task between create and its first
get (the query is no longer running: Snowflake's answer to the cancel says so), and the status mapping for
failed and queued queries is checked against a connection-level stand-in, at the end of this module.
"""

from __future__ import annotations

import json
import socket
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2
from flytekit import StructuredDataset, kwtypes
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.core.context_manager import FlyteContextManager
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import LiteralMap
from flytekit.models.types import LiteralType, StructuredDatasetType
from flytekit.tools.translator import get_serializable
from flytekitplugins.snowflake import SnowflakeConfig, SnowflakeTask
from flytekitplugins.snowflake.connector import SnowflakeJobMetadata, construct_query_link
from snowflake.connector import Connection, ProgrammingError, QueryStatus, connect

from serverless_agents.agent import Phase
from serverless_agents.agents.snowflake import SnowflakeAgent, SnowflakeMetadata, _snowflake_errors
from serverless_agents.exceptions import RetryableAgentError
from serverless_agents.testing import AgentTestClient
from tests.functional.conftest import Harness
from tests.functional.fake_snowflake import FakeSnowflake

pytestmark = [
    pytest.mark.functional,
    # fakesnow on DuckDB 2.0 warns about its own result copies; nothing the agent does.
    pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning"),
]

USER, ACCOUNT, DATABASE, SCHEMA, WAREHOUSE = "FLYTE", "myorg-acct1", "FLYTE_DB", "PUBLIC", "COMPUTE_WH"
CONFIG = SnowflakeConfig(user=USER, account=ACCOUNT, database=DATABASE, schema=SCHEMA, warehouse=WAREHOUSE)
SETTINGS = SerializationSettings(
    image_config=ImageConfig.auto_default_image(), project="flytesnacks", domain="development", version="v1"
)

select_customers = SnowflakeTask(
    name="sql.snowflake.select_customers",
    inputs=kwtypes(nation=int, segment=str),
    output_schema_type=StructuredDataset,
    task_config=CONFIG,
    query_template="""
        SELECT id, name FROM customers
        WHERE nation = %(nation)s AND segment = %(segment)s
        ORDER BY id
    """,
)
insert_customer = SnowflakeTask(
    name="sql.snowflake.insert_customer",
    inputs=kwtypes(id=int, name=str, nation=int, segment=str),
    task_config=CONFIG,
    query_template="INSERT INTO customers VALUES (%(id)s, %(name)s, %(nation)s, %(segment)s)",
)
select_by_region = SnowflakeTask(
    name="sql.snowflake.select_by_region",
    inputs=kwtypes(nation=int),
    output_schema_type=StructuredDataset,
    task_config=CONFIG,
    query_template="SELECT id FROM customers WHERE region = %(region)s",
)
count_customers = SnowflakeTask(
    name="sql.snowflake.count_customers",
    output_schema_type=StructuredDataset,
    task_config=CONFIG,
    query_template="SELECT COUNT(*) AS n FROM customers",
)

_executions = iter(range(1_000_000))


def create_request(task: SnowflakeTask, **inputs: Any) -> agent_pb2.CreateTaskRequest:
    """What flytepropeller sends for `task` called with `inputs`."""
    template = get_serializable(OrderedDict(), SETTINGS, task).template.to_flyte_idl()
    context = FlyteContextManager.current_context()
    literals = TypeEngine.dict_to_literal_map(context, inputs, task.python_interface.inputs)
    execution_id = identifier_pb2.TaskExecutionIdentifier(
        task_id=template.id,
        node_execution_id=identifier_pb2.NodeExecutionIdentifier(
            node_id="n0",
            execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                project="flytesnacks", domain="development", name=f"sf{next(_executions)}"
            ),
        ),
    )
    return agent_pb2.CreateTaskRequest(
        template=template,
        inputs=literals.to_flyte_idl(),
        output_prefix="s3://flyte/outputs",
        task_execution_metadata=agent_pb2.TaskExecutionMetadata(task_execution_id=execution_id),
    )


def metadata(client: AgentTestClient, task_id: str) -> dict[str, Any]:
    """The job's metadata as the tasks table stores it."""
    return dict(json.loads(Harness(client.stack).item(task_id)["metadata"]["S"]))


def execution_status(client: AgentTestClient, task_id: str) -> str:
    """How the task's Step Functions execution ended."""
    return str(Harness(client.stack).wait_execution("snowflake", task_id)["status"])


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def snowflake(private_key: rsa.RSAPrivateKey) -> Iterator[FakeSnowflake]:
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with FakeSnowflake() as fake:
        fields = {"user": USER, "account": ACCOUNT, "database": DATABASE, "schema": SCHEMA}
        connection = fake.connect(der, warehouse=WAREHOUSE, **fields)
        try:
            cursor = connection.cursor()
            cursor.execute("CREATE TABLE customers (id INT, name VARCHAR, nation INT, segment VARCHAR)")
            cursor.execute(
                "INSERT INTO customers VALUES (1, 'Ada', 3, 'BUILDING'), (2, 'Bo', 3, 'MACHINERY'), "
                "(3, 'Cy', 3, 'BUILDING'), (4, 'Di', 7, 'BUILDING')"
            )
        finally:
            connection.close()
        fake.define_cancel_query(DATABASE, SCHEMA)
        yield fake


@contextmanager
def snowflake_client(
    directory: Path,
    fake: FakeSnowflake,
    secret_id: str,
    private_key: str | None = None,
    poll: str = "{ initial = 2, factor = 1.0, cap = 2 }",
) -> Iterator[AgentTestClient]:
    """The stack with the snowflake agent, whose secret `secret_id` holds `private_key` (None: no secret)."""
    config = ", ".join(f"{key} = {json.dumps(value)}" for key, value in fake.config.items())
    manifest = directory / "agents.toml"
    manifest.write_text(
        f"""
[deployment]
name = "sa-snowflake"

[agents.snowflake]
class = "serverless_agents.agents.snowflake:SnowflakeAgent"
# 2 s before the first get: the window in which the cancel test aborts a task.
poll = {poll}
secrets = {{ private_key = "{secret_id}" }}
config = {{ {config} }}
"""
    )
    secrets = {"private_key": private_key} if private_key is not None else {}
    with AgentTestClient(manifest, secrets=secrets) as client:
        yield client


class TestWithThePrivateKey:
    @pytest.fixture(scope="class")
    @classmethod
    def client(
        cls,
        tmp_path_factory: pytest.TempPathFactory,
        snowflake: FakeSnowflake,
        private_key: rsa.RSAPrivateKey,
    ) -> Iterator[AgentTestClient]:
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        folder = tmp_path_factory.mktemp("snowflake")
        with snowflake_client(folder, snowflake, "snowflake-key", pem.decode()) as client:
            yield client

    def test_query_succeeds_with_its_results_where_the_plugin_puts_them(
        self, client: AgentTestClient, snowflake: FakeSnowflake
    ) -> None:
        task_id = client.start(create_request(select_customers, nation=3, segment="BUILDING"))

        resource = client.wait(task_id)

        assert resource.phase is Phase.SUCCEEDED, resource.message
        query_id = metadata(client, task_id)["query_id"]
        assert resource.custom_info["query_id"] == query_id
        # The inputs were bound by the connector, as the plugin binds them, and fakesnow ran that query
        # (it records identifiers upper-cased, as Snowflake resolves them).
        assert snowflake.statement(query_id) == (
            "SELECT ID, NAME FROM CUSTOMERS WHERE NATION = 3 AND SEGMENT = 'BUILDING' ORDER BY ID"
        )
        assert snowflake.rows(query_id) == [{"ID": 1, "NAME": "Ada"}, {"ID": 3, "NAME": "Cy"}]
        # flytekit reads the output back as the structured dataset the plugin's connector returns.
        uri = f"snowflake://{USER}:{ACCOUNT}/{WAREHOUSE}/{DATABASE}/{SCHEMA}/{query_id}"
        context = FlyteContextManager.current_context()
        outputs = LiteralMap.from_flyte_idl(resource.literals)
        results = TypeEngine.literal_map_to_kwargs(context, outputs, {"results": StructuredDataset})[
            "results"
        ]
        assert isinstance(results, StructuredDataset)
        assert results.literal.uri == uri
        plugins_literal = TypeEngine.to_literal(
            context,
            StructuredDataset(uri=uri),
            StructuredDataset,
            LiteralType(structured_dataset_type=StructuredDatasetType(format="")),
        )
        assert resource.literals.literals["results"] == plugins_literal.to_flyte_idl()
        plugin_metadata = SnowflakeJobMetadata(USER, ACCOUNT, DATABASE, SCHEMA, WAREHOUSE, query_id, True)
        links = {link.name: link.uri for link in resource.log_links}
        assert links["Snowflake Query Details"] == construct_query_link(plugin_metadata)
        assert execution_status(client, task_id) == "SUCCEEDED"

    def test_statement_without_outputs_or_inputs_succeeds(
        self, client: AgentTestClient, snowflake: FakeSnowflake
    ) -> None:
        inserted = client.wait(
            client.start(create_request(insert_customer, id=5, name="Eve", nation=9, segment="AUTOMOBILE"))
        )
        counted_id = client.start(create_request(count_customers))
        counted = client.wait(counted_id)

        assert inserted.phase is Phase.SUCCEEDED, inserted.message
        assert len(inserted.literals.literals) == 0  # the task declares no outputs, as the plugin's connector
        assert counted.phase is Phase.SUCCEEDED, counted.message
        assert snowflake.rows(metadata(client, counted_id)["query_id"]) == [{"N": 5}]

    def test_placeholder_without_an_input_fails_saying_what_to_fix(
        self, client: AgentTestClient, snowflake: FakeSnowflake
    ) -> None:
        ran = len(snowflake.statements())
        task_id = client.start(create_request(select_by_region, nation=3))

        resource = client.wait(task_id)

        assert resource.phase is Phase.FAILED
        assert resource.message.startswith("AgentError: cannot bind the task's inputs to the statement")
        assert "KeyError: 'region'" in resource.message
        assert "every %(name)s in the query_template must be an input of the task (it has: nation)" in (
            resource.message
        )
        assert len(snowflake.statements()) == ran  # nothing reached Snowflake
        assert execution_status(client, task_id) == "FAILED"

    def test_delete_before_the_query_is_done_aborts_and_cancels_it_once(
        self, client: AgentTestClient, snowflake: FakeSnowflake
    ) -> None:
        task_id = client.start(create_request(select_customers, nation=7, segment="BUILDING"))
        client.wait(task_id, until=Phase.RUNNING)  # created: the first get is 2 s away

        client.cancel(task_id)
        resource = client.wait(task_id)

        assert resource.phase is Phase.ABORTED
        assert execution_status(client, task_id) == "ABORTED"
        cancel = f"SELECT SYSTEM$CANCEL_QUERY('{metadata(client, task_id)['query_id']}')"
        deadline = time.monotonic() + 15
        while cancel not in snowflake.statements():  # finalize (on the ABORTED event) runs delete
            assert time.monotonic() < deadline, "the query was never cancelled"
            time.sleep(0.1)
        client.cancel(task_id)  # a repeated DeleteTask changes nothing
        time.sleep(0.5)
        assert snowflake.statements().count(cancel) == 1


class TestWithoutThePrivateKey:
    @pytest.fixture(scope="class")
    @classmethod
    def client(
        cls, tmp_path_factory: pytest.TempPathFactory, snowflake: FakeSnowflake
    ) -> Iterator[AgentTestClient]:
        with snowflake_client(tmp_path_factory.mktemp("nokey"), snowflake, "snowflake-key-absent") as client:
            yield client

    def test_missing_secret_fails_naming_it(self, client: AgentTestClient, snowflake: FakeSnowflake) -> None:
        ran = len(snowflake.statements())
        task_id = client.start(create_request(select_customers, nation=3, segment="BUILDING"))

        resource = client.wait(task_id)

        assert resource.phase is Phase.FAILED
        assert resource.message == (
            "AgentError: the Snowflake private key is missing: Secrets Manager has no secret "
            "'snowflake-key-absent' (agents.toml: secrets.private_key); create it with the PEM private key "
            "as its value"
        )
        assert len(snowflake.statements()) == ran


# fakesnow reports SUCCESS for every query it knows and nothing else, so what get makes of the other
# statuses Snowflake reports is checked here, against a stand-in for the connection only.


class _StatusConnection:
    def __init__(self, status: QueryStatus, error: str = "") -> None:
        self.status, self.error = status, error

    is_an_error = staticmethod(Connection.is_an_error)

    def get_query_status(self, query_id: str) -> QueryStatus:
        return self.status

    def get_query_status_throw_if_error(self, query_id: str) -> QueryStatus:
        if self.error:
            raise ProgrammingError(msg=self.error, errno=2003, sqlstate="42S02", sfqid=query_id)
        return self.status


class _AgentOnConnection(SnowflakeAgent):
    def __init__(self, connection: _StatusConnection) -> None:
        super().__init__()
        self._fake_connection = connection

    @contextmanager
    def _connection(self, fields: Any, doing: str) -> Iterator[Any]:
        with _snowflake_errors(doing):
            yield self._fake_connection


QUERY = SnowflakeMetadata(
    user=USER,
    account=ACCOUNT,
    database=DATABASE,
    schema_name=SCHEMA,
    warehouse=WAREHOUSE,
    query_id="01b5f4a2-0000-4e3b-0000-000000000001",
    has_output=True,
)


@pytest.mark.parametrize(
    ("status", "error", "phase", "message"),
    [
        (
            QueryStatus.FAILED_WITH_ERROR,
            "SQL compilation error:\nObject 'FLYTE_DB.PUBLIC.CUSTOMERZ' does not exist or not authorized.",
            Phase.FAILED,
            f"Snowflake query {QUERY.query_id} failed (FAILED_WITH_ERROR): 002003 (42S02): SQL compilation "
            "error: Object 'FLYTE_DB.PUBLIC.CUSTOMERZ' does not exist or not authorized.",
        ),
        (
            QueryStatus.ABORTED,
            "SQL execution canceled",
            Phase.FAILED,
            f"Snowflake query {QUERY.query_id} was cancelled in Snowflake, not by Flyte (by a user, or a "
            "statement timeout) (ABORTED): 002003 (42S02): SQL execution canceled",
        ),
        (QueryStatus.QUEUED, "", Phase.RUNNING, "queued: the warehouse is busy"),
        (QueryStatus.RESUMING_WAREHOUSE, "", Phase.RUNNING, "resuming the warehouse"),
    ],
)
def test_query_status_becomes_phase_and_message(
    status: QueryStatus, error: str, phase: Phase, message: str
) -> None:
    resource = _AgentOnConnection(_StatusConnection(status, error)).get(QUERY)

    assert (resource.phase, resource.message, resource.outputs) == (phase, message, None)
    assert resource.log_links[0].uri.endswith(f"/queries/{QUERY.query_id}/detail")


def test_unreachable_snowflake_is_a_retryable_error(private_key: rsa.RSAPrivateKey) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    with (
        pytest.raises(
            RetryableAgentError, match=r"^Snowflake is unreachable or busy while connecting: .*timed out"
        ),
        _snowflake_errors("connecting"),
    ):
        connect(
            user=USER,
            account=ACCOUNT,
            private_key=der,
            host="127.0.0.1",
            port=port,
            protocol="http",
            login_timeout=1,
            enable_server_session_keep_alive_auto_detection=True,
        )
