# The adapter flytepropeller talks to (`serverless-agents adapter`), as an image for the Helm chart in
# charts/serverless-agents-adapter. Build from the repository root:
#
#   docker build -t serverless-agents-adapter .
#   docker run -p 8000:8000 -p 9090:9090 serverless-agents-adapter --api https://<id>.execute-api.<region>.amazonaws.com/prod
#
# Stage 1 builds the project's wheel (the same `pip wheel` tests/infra/test_wheel.py runs) and installs it with
# the `adapter` extra into a virtualenv; stage 2 copies only that virtualenv onto a slim Python and runs it as
# a non-root user. gRPC on 8000 (with grpc.health.v1 for probes), Prometheus metrics on 9090.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY src/ src/
COPY statemachines/ statemachines/
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/adapter \
    && /opt/adapter/bin/pip install "$(echo /wheels/flyte_serverless_agents-*.whl)[adapter]"

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/adapter /opt/adapter
# A fixed numeric user, so Kubernetes' runAsNonRoot can check it without a passwd lookup.
USER 65532:65532
ENV PATH=/opt/adapter/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
EXPOSE 8000 9090
# Docker's own check (Kubernetes probes call the same grpc.health.v1 service directly: `grpc: {port: 8000}`).
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s \
    CMD ["python", "-c", "import grpc, sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; r = g.HealthStub(grpc.insecure_channel('127.0.0.1:8000')).Check(h.HealthCheckRequest(), timeout=2); sys.exit(r.status != h.HealthCheckResponse.SERVING)"]
ENTRYPOINT ["serverless-agents", "adapter", "--port", "8000", "--metrics-port", "9090"]
