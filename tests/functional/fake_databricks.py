"""A local fake of the Databricks Jobs API 2.1, the part flyteplugins-databricks calls: `runs/submit`,
`runs/get` and `runs/cancel`, over HTTPS on 127.0.0.1, speaking the real API's JSON
(https://docs.databricks.com/api/workspace/jobs/submit, /getrun, /cancelrun).

The plugin builds `https://{databricks_instance}/api/2.1/jobs/...` itself, so the fake serves TLS with a
certificate made here for 127.0.0.1; `trusted()` makes the process's default TLS contexts accept it, as an
operator installs a private CA. A run goes PENDING -> RUNNING -> TERMINATED/SUCCESS over `polls` gets;
a cancelled run is TERMINATED/CANCELED. Every call must carry `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import itertools
import json
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.functional.fake_http import self_signed

API = "/api/2.1/jobs"


@dataclass
class Run:
    run_id: int
    job_id: int
    spec: dict[str, Any]
    polls: int
    gets: int = 0
    cancels: int = 0

    def state(self) -> dict[str, str]:
        if self.cancels:
            return {
                "life_cycle_state": "TERMINATED",
                "result_state": "CANCELED",
                "state_message": "cancelled",
            }
        if self.gets < self.polls:
            lifecycle = "PENDING" if self.gets <= 1 else "RUNNING"
            return {"life_cycle_state": lifecycle, "state_message": f"poll {self.gets} of {self.polls}"}
        return {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""}


@dataclass
class FakeDatabricks:
    """`with FakeDatabricks(token) as databricks:` then use `databricks.instance` as the workspace."""

    token: str
    #: How many runs/get calls a run takes to finish (a run whose spec's run_name starts "long" never does).
    polls: int = 2
    runs: dict[int, Run] = field(default_factory=dict)
    #: (method, path) of every call, and the calls refused for their token.
    calls: list[tuple[str, str]] = field(default_factory=list)
    refused: int = 0

    def __post_init__(self) -> None:
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()
        self._dir = tempfile.TemporaryDirectory()
        self.cert_path = Path(self._dir.name) / "cert.pem"
        key_path = Path(self._dir.name) / "key.pem"
        certificate, key = self_signed("fake-databricks.local")
        self.cert_path.write_bytes(certificate)
        key_path.write_bytes(key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, key_path)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def instance(self) -> str:
        """What a task names as `databricks_instance`: host and port."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    def trusted(self, context: ssl.SSLContext) -> None:
        """Make `context` (a client's default verified context) accept this fake's certificate."""
        context.load_verify_locations(cafile=str(self.cert_path))

    def __enter__(self) -> FakeDatabricks:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._dir.cleanup()

    def _answer(self, method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        path = urlsplit(url).path
        with self._lock:
            self.calls.append((method, path))
            if headers.get("authorization") != f"Bearer {self.token}":
                self.refused += 1
                return 403, {"error_code": "PERMISSION_DENIED", "message": "Invalid access token."}
            if (method, path) == ("POST", f"{API}/runs/submit"):
                spec = json.loads(body)
                run_id = next(self._ids)
                long = str(spec.get("run_name", "")).startswith("long")
                self.runs[run_id] = Run(run_id, run_id + 5000, spec, polls=10**9 if long else self.polls)
                return 200, {"run_id": run_id}
            if (method, path) == ("GET", f"{API}/runs/get"):
                run = self.runs.get(int(parse_qs(urlsplit(url).query)["run_id"][0]))
                if run is None:
                    return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Run does not exist."}
                run.gets += 1
                return 200, {"job_id": run.job_id, "run_id": run.run_id, "state": run.state()}
            if (method, path) == ("POST", f"{API}/runs/cancel"):
                run = self.runs.get(int(json.loads(body)["run_id"]))
                if run is None:
                    return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Run does not exist."}
                run.cancels += 1
                return 200, {}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API found for '{method} {path}'"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer = fake._answer(method, self.path, headers, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:
                return  # the test asserts on `calls`

        return Handler
