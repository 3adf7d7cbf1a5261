"""fakesnow's Snowflake server on localhost, adapted to the snowflake-connector-python 5.x the project pins.

fakesnow (0.12.1) emulates Snowflake on DuckDB and speaks Snowflake's HTTP protocol; `fakesnow.server()`
runs its Starlette app under uvicorn in a thread, and so does `FakeSnowflake` here. fakesnow was written
for the 3.x connector; the 5.x connector (a Rust core) meets it in four places where it cannot pass. Each
adaptation below is the smallest that lets the real connector through, and none of them decides how a query
ends:

1. `import fakesnow` needs `snowflake.connector.converter` and `.file_util`, which 5.x removed. Its server
   only constructs a `SnowflakeConverter` (patch mode uses it to interpolate parameters) and uses
   `SnowflakeFileUtil` for PUT; empty stand-ins are registered, and only while the real modules are missing.
2. The 5.x core refuses a login response without `masterToken`, `sessionId` and the tokens' validity.
3. The 5.x core asks for `/monitoring/queries//<id>` (two slashes), which fakesnow's route does not match:
   repeated slashes in a path are collapsed.
4. fakesnow has no `SYSTEM$CANCEL_QUERY`. `define_cancel_query` adds it as a DuckDB macro that answers what
   Snowflake answers for a query that is no longer executing: the only kind fakesnow has.

What fakesnow does not do, and nothing here adds: keep a query running (it runs each statement to the end
while the submit request is open, then reports it SUCCESS), report the status of a statement that failed
(it answers the submit with the error and no query id), or serve a result by query id to the 5.x core
(`get_results_from_sfqid`). `statement` and `rows` read what fakesnow recorded for a query id instead.
"""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import sys
import threading
import time
import types
from types import TracebackType
from typing import Any

_LOGIN_PATH = "/session/v1/login-request"
_NOT_EXECUTING = "Identified SQL statement is not currently executing."


def _stand_in_for_removed_modules() -> None:
    import snowflake.connector

    stand_ins = {"converter": ("SnowflakeConverter",), "file_util": ("SnowflakeFileUtil",)}
    for name, classes in stand_ins.items():
        full_name = f"snowflake.connector.{name}"
        if full_name in sys.modules or importlib.util.find_spec(full_name) is not None:
            continue
        module = types.ModuleType(full_name, "stand-in for a 3.x connector module that fakesnow imports")
        for cls in classes:
            setattr(module, cls, type(cls, (), {"__init__": lambda self, *args, **kwargs: None}))
        sys.modules[full_name] = module
        setattr(snowflake.connector, name, module)


_stand_in_for_removed_modules()

# By module path: the package also has a function named `server`, which `from fakesnow import server` finds.
fakesnow_server: Any = importlib.import_module("fakesnow.server")  # needs the stand-ins above

import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.types import Receive, Scope, Send  # noqa: E402


async def _login(request: Request) -> Response:
    response = await fakesnow_server.login_request(request)
    body = json.loads(bytes(response.body))
    data = body["data"]
    data.update(
        masterToken=f"master-{data['token']}",
        sessionId=abs(hash(data["token"])) % 2**53,
        validityInSeconds=3600,
        masterValidityInSeconds=14400,
    )
    return JSONResponse(body)


_routes = [Route(_LOGIN_PATH, _login, methods=["POST"])]
_routes += [route for route in fakesnow_server.routes if route.path != _LOGIN_PATH]
_app = Starlette(routes=_routes)


async def _app_with_plain_paths(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        scope = {**scope, "path": re.sub(r"/{2,}", "/", scope["path"])}
    await _app(scope, receive, send)


class FakeSnowflake:
    """`with FakeSnowflake() as fake:` serves on a free localhost port; `fake.config` configures the agent."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", int(self._socket.getsockname()[1])
        self._server = uvicorn.Server(
            uvicorn.Config(_app_with_plain_paths, host=self.host, port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="fake snowflake", daemon=True
        )

    @property
    def config(self) -> dict[str, Any]:
        """The agent's `config` table: the endpoint, and short timeouts so a test never waits long."""
        return {"host": self.host, "port": self.port, "protocol": "http", "login_timeout": 10}

    def start(self) -> FakeSnowflake:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Snowflake server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> FakeSnowflake:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def connect(self, private_key: bytes, **fields: str) -> Any:
        """A real connector session, for a test to set up tables the way a user would."""
        import snowflake.connector

        return snowflake.connector.connect(
            private_key=private_key,
            host=self.host,
            port=self.port,
            protocol="http",
            login_timeout=10,
            enable_server_session_keep_alive_auto_detection=True,
            **fields,
        )

    def define_cancel_query(self, database: str, schema: str) -> None:
        """SYSTEM$CANCEL_QUERY in `database.schema` (fakesnow creates them at a session's login)."""
        fakesnow_server.shared_fs.duck_conn.execute(
            f'CREATE OR REPLACE MACRO {database}.{schema}."system$cancel_query"(query_id) AS '
            f"'{_NOT_EXECUTING}'"
        )

    def statement(self, query_id: str) -> str | None:
        """The SQL fakesnow ran for a query id (after the connector bound the parameters), or None."""
        recorded = fakesnow_server.shared_fs.results_cache.get(query_id)
        return str(recorded[2]) if recorded else None

    def rows(self, query_id: str) -> list[dict[str, Any]]:
        recorded = fakesnow_server.shared_fs.results_cache.get(query_id)
        return list(recorded[0].to_pylist()) if recorded else []

    def statements(self) -> list[str]:
        """Every statement fakesnow ran, oldest first, less the DESCRIBEs it runs for its own use."""
        ran = [str(recorded[2]) for recorded in list(fakesnow_server.shared_fs.results_cache.values())]
        return [sql for sql in ran if not sql.startswith("DESCRIBE ")]
