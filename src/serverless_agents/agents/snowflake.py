"""The Snowflake SQL agent: flytekitplugins-snowflake's `SnowflakeTask`, unchanged, as a Step Functions loop.

`SnowflakeTask` serializes to a template of type "snowflake" whose `config` holds the connection fields
(user, account, database, schema, warehouse) and whose `sql.statement` holds the query. As the plugin's
`SnowflakeConnector` does:

- create connects with key-pair auth, binds the task's inputs as query parameters (the connector's
  pyformat: `%(name)s` in the statement) and submits it with `execute_async`; the query id goes into
  the metadata with the non-secret connection fields needed to connect again;
- get asks `get_query_status`; on success, a task whose interface declares outputs gets `results`, a
  structured dataset at `snowflake://<user>:<account>/<warehouse>/<database>/<schema>/<query id>`, the
  URI flytekit's Snowflake decoder reads the result from; the log link opens the query in Snowsight;
- delete runs `SELECT SYSTEM$CANCEL_QUERY('<query id>')`.

Unlike the plugin, a failed query ends FAILED with Snowflake's own message, a query that Snowflake queues
or whose warehouse is resuming stays RUNNING (the plugin has no phase for them), and trouble reaching
Snowflake is `RetryableAgentError`, which the state machine retries.

The private key (PEM, unencrypted) is the agent's secret `private_key` in Secrets Manager. It is read in
each function that connects and never enters the metadata, a message or a log line. `snowflake.connector`
and `cryptography` are imported inside the methods: the api function imports this module to learn its task
type, and must not pay for them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from serverless_agents.agent import AsyncAgentBase, LogLink, Phase, Resource, ResourceMetadata, TaskContext
from serverless_agents.exceptions import AgentError, ManifestError, RetryableAgentError
from serverless_agents.flyte.literals import Blob, StructuredDataset

if TYPE_CHECKING:
    from flyteidl.core.tasks_pb2 import TaskTemplate
    from snowflake.connector import Connection

__all__ = ["PRIVATE_KEY_SECRET", "SnowflakeAgent", "SnowflakeMetadata", "query_link", "results_uri"]

#: The name under `secrets` in agents.toml of the Secrets Manager secret that holds the PEM private key.
PRIVATE_KEY_SECRET = "private_key"
#: The keys flytekitplugins-snowflake's `SnowflakeConfig` writes into the template's `config`.
_TEMPLATE_FIELDS = ("user", "account", "database", "schema", "warehouse")
#: What agents.toml's `config` table may set: the endpoint (for private link, or a local fake in tests)
#: and how long a login may take, retries included. The connector's default (120 s) outlasts the Lambda
#: `timeout`; a shorter one lets an unreachable Snowflake end as a retryable error instead of a timeout.
_CONFIG_TYPES: dict[str, type] = {"host": str, "port": int, "protocol": str, "login_timeout": int}
_DEFAULTS: dict[str, Any] = {"login_timeout": 20}
#: Snowflake query statuses (`snowflake.connector.QueryStatus` names) that are not over yet.
_STILL_GOING = {
    "RUNNING": "running",
    "QUEUED": "queued: the warehouse is busy",
    "QUEUED_REPARING_WAREHOUSE": "queued: Snowflake is repairing the warehouse",
    "RESUMING_WAREHOUSE": "resuming the warehouse",
    "BLOCKED": "blocked: waiting for a lock another transaction holds",
    "RESTARTED": "restarted by Snowflake",
    "NO_DATA": "submitted: Snowflake reports no status for the query yet",
}
#: Why a query that ended in error did, for the statuses where Snowflake's message does not say it.
_ENDED_BY_OTHERS = {
    "ABORTING": "was cancelled in Snowflake, not by Flyte (by a user, or a statement timeout)",
    "ABORTED": "was cancelled in Snowflake, not by Flyte (by a user, or a statement timeout)",
    "DISCONNECTED": "lost its session in Snowflake",
}

logger = logging.getLogger(__name__)


class SnowflakeMetadata(ResourceMetadata):
    """The query, and the template's connection fields to reach it again: nothing secret."""

    user: str
    account: str
    database: str
    schema_name: str
    warehouse: str
    query_id: str
    has_output: bool

    def connection_fields(self) -> dict[str, str]:
        return {
            "user": self.user,
            "account": self.account,
            "database": self.database,
            "schema": self.schema_name,
            "warehouse": self.warehouse,
        }


class SnowflakeAgent(AsyncAgentBase[SnowflakeMetadata]):
    task_type = "snowflake"
    metadata_type = SnowflakeMetadata

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        for key, value in self.config.items():
            expected = _CONFIG_TYPES.get(key)
            if expected is None:
                takes = ", ".join(_CONFIG_TYPES)
                raise ManifestError(
                    f"the snowflake agent's config has an unknown key {key!r} (it takes: {takes})"
                )
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ManifestError(
                    f"the snowflake agent's config.{key} must be a {expected.__name__}, not {value!r}"
                )
        self._connect_options: dict[str, Any] = {**_DEFAULTS, **self.config}

    def create(self, task: TaskContext) -> SnowflakeMetadata:
        fields = _template_fields(task.template)
        statement = task.template.sql.statement
        if not statement.strip():
            raise AgentError(
                "the task template has no sql.statement: give the SnowflakeTask its query_template"
            )
        # As the plugin does: the inputs by name, or None so that a statement without inputs may hold a '%'.
        params = {name: _parameter(value) for name, value in task.inputs.items()} or None
        with self._connection(fields, "submitting the query") as connection:
            cursor = connection.cursor()
            try:
                cursor.execute_async(statement, params)
            except (KeyError, ValueError, TypeError) as e:  # the connector binds pyformat parameters itself
                inputs = ", ".join(sorted(task.inputs)) or "none"
                raise AgentError(
                    f"cannot bind the task's inputs to the statement ({type(e).__name__}: {e}): every "
                    f"%(name)s in the query_template must be an input of the task (it has: {inputs}), "
                    "and a literal % must be written %% when the task has inputs"
                ) from None
            query_id = cursor.sfqid
        if not query_id:
            raise AgentError("Snowflake accepted the statement but returned no query id")
        return SnowflakeMetadata(
            user=fields["user"],
            account=fields["account"],
            database=fields["database"],
            schema_name=fields["schema"],
            warehouse=fields["warehouse"],
            query_id=query_id,
            has_output=len(task.template.interface.outputs.variables) > 0,
        )

    def get(self, metadata: SnowflakeMetadata) -> Resource:
        from snowflake.connector import ProgrammingError

        links = [LogLink("Snowflake Query Details", query_link(metadata.account, metadata.query_id))]
        info = {"query_id": metadata.query_id}
        with self._connection(metadata.connection_fields(), "asking for the query's status") as connection:
            status = connection.get_query_status(metadata.query_id)
            if connection.is_an_error(status):
                try:  # the same call again, for the error Snowflake recorded: it raises with the message
                    connection.get_query_status_throw_if_error(metadata.query_id)
                    error = ""
                except ProgrammingError as e:
                    error = _one_line(e)
                why = _ENDED_BY_OTHERS.get(status.name, "failed")
                message = f"Snowflake query {metadata.query_id} {why} ({status.name})"
                message = f"{message}: {error}" if error else message
                return Resource(Phase.FAILED, message, links, custom_info=info)
        if status.name in _STILL_GOING:
            return Resource(Phase.RUNNING, _STILL_GOING[status.name], links, custom_info=info)
        if status.name != "SUCCESS":
            raise AgentError(
                f"Snowflake reports an unknown status {status.name} for query {metadata.query_id}"
            )
        outputs = {"results": StructuredDataset(results_uri(metadata))} if metadata.has_output else None
        return Resource(Phase.SUCCEEDED, "query succeeded", links, outputs, custom_info=info)

    def delete(self, metadata: SnowflakeMetadata) -> None:
        from snowflake.connector import ProgrammingError

        with self._connection(metadata.connection_fields(), "cancelling the query") as connection:
            cursor = connection.cursor()
            try:
                cursor.execute("SELECT SYSTEM$CANCEL_QUERY(%(query_id)s)", {"query_id": metadata.query_id})
                answer = cursor.fetchone()
            except ProgrammingError as e:
                # Asking again cannot help (say, the role may not cancel it): say so and let the abort finish.
                logger.warning("could not cancel Snowflake query %s: %s", metadata.query_id, _one_line(e))
                return
            finally:
                cursor.close()
        logger.info("cancelled Snowflake query %s: %s", metadata.query_id, answer[0] if answer else "")

    @contextmanager
    def _connection(self, fields: Mapping[str, str], doing: str) -> Iterator[Connection]:
        """A connection for one step, closed after it; the connector's errors become the runtime's."""
        private_key = _private_key()
        with _snowflake_errors(doing):
            import snowflake.connector

            connection = snowflake.connector.connect(
                **fields,
                private_key=private_key,
                # Closing after execute_async must not log out a session whose query still runs.
                enable_server_session_keep_alive_auto_detection=True,
                **self._connect_options,
            )
            try:
                yield connection
            finally:
                _close_quietly(connection)


def results_uri(metadata: SnowflakeMetadata) -> str:
    """Where a query's result lives, exactly as flytekitplugins-snowflake writes (and flytekit reads) it."""
    return (
        f"snowflake://{metadata.user}:{metadata.account}/{metadata.warehouse}/"
        f"{metadata.database}/{metadata.schema_name}/{metadata.query_id}"
    )


def query_link(account: str, query_id: str) -> str:
    """The query in Snowsight, built as flytekitplugins-snowflake builds it (`<org>-<account>` split)."""
    parts = account.split("-")
    region = parts[1] if len(parts) > 1 else ""
    return f"https://app.snowflake.com/{region}/{parts[0]}/#/compute/history/queries/{query_id}/detail"


def _template_fields(template: TaskTemplate) -> dict[str, str]:
    config = dict(template.config)
    missing = [name for name in _TEMPLATE_FIELDS if not config.get(name)]
    if missing:
        raise AgentError(
            f"the task template's config lacks {', '.join(missing)}: a SnowflakeTask's task_config must be "
            "SnowflakeConfig(user=..., account=..., database=..., schema=..., warehouse=...)"
        )
    return {name: config[name] for name in _TEMPLATE_FIELDS}


def _parameter(value: Any) -> Any:
    """A decoded input as the connector can bind it: file and dataset references by their URI."""
    if isinstance(value, Blob | StructuredDataset):
        return value.uri
    return value


def _private_key() -> bytes:
    """The secret's PEM key as the DER (PKCS#8) bytes the connector takes, as the plugin loads it."""
    from cryptography.hazmat.primitives import serialization

    pem = _private_key_pem()
    try:
        key = serialization.load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError) as e:
        # Not chained, and only the error's class named: its text could quote what it failed to parse.
        raise AgentError(
            f"the secret {PRIVATE_KEY_SECRET!r} is not an unencrypted PEM private key ({type(e).__name__}): "
            "store the PKCS#8 PEM whose public key is set on the Snowflake user, without a passphrase"
        ) from None
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def _private_key_pem() -> str:
    from botocore.exceptions import ClientError

    from serverless_agents import aws, get_agent_secret

    try:
        return get_agent_secret(PRIVATE_KEY_SECRET)
    except ClientError as e:
        if aws.error_code(e) != "ResourceNotFoundException":
            raise
        raise AgentError(
            f"the Snowflake private key is missing: Secrets Manager has no secret {_secret_id()!r} "
            f"(agents.toml: secrets.{PRIVATE_KEY_SECRET}); create it with the PEM private key as its value"
        ) from None


def _secret_id() -> str:
    """The Secrets Manager id agents.toml maps the key to, for a message that names what to create."""
    from serverless_agents.runtime.loading import cached_manifest
    from serverless_agents.runtime.settings import current_settings

    settings = current_settings()
    return cached_manifest(settings.manifest_path).agent(str(settings.agent)).secret_ids[PRIVATE_KEY_SECRET]


@contextmanager
def _snowflake_errors(doing: str) -> Iterator[None]:
    """Snowflake's errors as the runtime's: unreachable or busy is retried, anything else fails the task."""
    from snowflake.connector import Error, OperationalError, ProgrammingError

    try:
        yield
    except OperationalError as e:  # network trouble and timeouts, after the connector's own retries
        raise RetryableAgentError(f"Snowflake is unreachable or busy while {doing}: {_one_line(e)}") from e
    except ProgrammingError as e:
        raise AgentError(f"Snowflake refused {doing}: {_one_line(e)}") from e
    except Error as e:  # a refused login (SQLSTATE class 08) and the connector's other errors
        hint = ""
        if str(getattr(e, "sqlstate", None) or "").startswith("08"):
            hint = (
                " (check the task's user and account, and that the user's RSA_PUBLIC_KEY matches the "
                f"secret {PRIVATE_KEY_SECRET!r})"
            )
        raise AgentError(f"Snowflake failed {doing}: {_one_line(e)}{hint}") from e


def _close_quietly(connection: Connection) -> None:
    # After execute_async, failing to close must not fail create: the query would run on, unrecorded.
    try:
        connection.close()
    except Exception as e:
        logger.warning("could not close the Snowflake connection: %s", _one_line(e))


def _one_line(error: BaseException) -> str:
    text = getattr(error, "msg", None) or str(error)
    return " ".join(str(text).split())
