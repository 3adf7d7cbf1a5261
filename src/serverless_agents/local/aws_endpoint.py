"""The emulated AWS APIs on a local port: moto's own server app (the one `moto_server` runs), in a thread of
this process, so it answers from the same in-memory backends as the stack's functions. `aws --endpoint-url`
or boto3 in another process can then upload the file a sensor waits for, and the upload's S3 event reaches
the sensor as the stack's own calls do.

The socket is bound here, before the server starts: werkzeug reports a port in use by exiting, which in a
thread would leave the caller waiting forever.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from serverless_agents.exceptions import cannot_listen


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
        self._server = make_server(
            self._host,
            self._port,
            DomainDispatcherApplication(create_backend_app),
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
