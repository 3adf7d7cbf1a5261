"""The emulated AWS APIs on a local port: moto's own server app (the one `moto_server` runs), in a thread of
this process, so it answers from the same in-memory backends as the stack's functions. `aws --endpoint-url`
or boto3 in another process can then upload the file a sensor waits for, and the upload's S3 event reaches
the sensor as the stack's own calls do.

The socket is bound here, before the server starts: werkzeug reports a port in use by exiting, which in a
thread would leave the caller waiting forever.

moto's app allows every origin (flask-cors, reflecting any `Origin`): served as it is, any web page open in
the developer's browser could read the emulated Secrets Manager and S3. So the app is wrapped
(`_local_only`): a request whose `Host` is not this endpoint's loopback name and port, or whose `Origin` is
not a local page, gets a 403 and never reaches moto (`loopback.LocalPeers`).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from serverless_agents.exceptions import cannot_listen
from serverless_agents.local.loopback import LocalPeers

_WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class AwsEndpoint:
    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._socket: socket.socket | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._socket is not None, "the endpoint is not started"
        host, port = self._socket.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> AwsEndpoint:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self._host, self._port))
            listener.listen(128)
        except OSError as e:
            listener.close()
            raise cannot_listen(
                "the emulated AWS APIs", f"{self._host}:{self._port}", str(e.strerror), "--aws-port"
            ) from e
        self._socket = listener
        port = listener.getsockname()[1]
        self._server = make_server(
            self._host,
            self._port,
            _local_only(DomainDispatcherApplication(create_backend_app), LocalPeers(self._host, port)),
            threaded=True,
            request_handler=MotoRequestHandler,
            fd=listener.fileno(),
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-endpoint", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _local_only(app: _WsgiApp, peers: LocalPeers) -> _WsgiApp:
    """`app`, answering 403 to requests from outside the developer's machine (see the module's doc)."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        problem = peers.host_problem(environ.get("HTTP_HOST")) or peers.origin_problem(
            environ.get("HTTP_ORIGIN")
        )
        if problem is None:
            return app(environ, start_response)
        body = json.dumps({"message": problem}).encode()
        start_response(
            "403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return guarded
