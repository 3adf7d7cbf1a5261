"""The adapter's Helm chart (charts/serverless-agents-adapter), rendered by Helm's own engine (Helm's Go SDK,
through helm-python-sdk: no helm binary) and each object validated against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields fail) for the oldest Kubernetes the chart accepts and the newest.

The ServiceMonitor is a prometheus-operator CRD with no schema there: it is checked against what it must
point at (the Service's labels and its metrics port). The rendered container arguments go through the real
`serverless-agents` parser, after the image's own ENTRYPOINT, so a flag the chart passes is a flag the
adapter takes; and the image's user and ports are the ones the chart declares.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from serverless_agents.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "serverless-agents-adapter"
API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
IRSA_ROLE = "arn:aws:iam::123456789012:role/serverless-agents-adapter"
#: The oldest Kubernetes the chart's kubeVersion accepts (gRPC probes are GA since 1.27) and the newest
#: the schemas know.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version())


def render(**values: Any) -> dict[str, dict[str, Any]]:
    """The chart's objects by kind (each kind appears once)."""
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values, name="adapter", namespace="flyte")
    objects = [
        document
        for name, text in files.items()
        if name.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document
    ]
    by_kind = {o["kind"]: o for o in objects}
    assert len(by_kind) == len(objects), [o["kind"] for o in objects]
    return by_kind


def container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (only,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def dockerfile_instruction(name: str) -> str:
    text = re.sub(r"\\\n\s*", "", (ROOT / "Dockerfile").read_text())
    (last,) = [line for line in text.splitlines() if line.startswith(f"{name} ")][-1:]
    return last.removeprefix(f"{name} ")


def test_chart_lints_clean() -> None:
    report = helm.lint(CHART, {"apiUrl": API_URL}, strict=True, kube_version=f"v{KUBERNETES_VERSIONS[0]}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_matches_the_kubernetes_schemas(version: str) -> None:
    objects = render(
        apiUrl=API_URL,
        serviceAccount={"annotations": {"eks.amazonaws.com/role-arn": IRSA_ROLE}},
        podEnv=[{"name": "HTTPS_PROXY", "value": "http://proxy.flyte:3128"}],
        metrics={"serviceMonitor": {"enabled": True}},
    )
    assert set(objects) == {
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "NetworkPolicy",
    }
    for kind, manifest in objects.items():
        if kind == "ServiceMonitor":
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(manifest, version, strict=True)
            continue
        kubernetes_validate.validate(manifest, version, strict=True)


def test_deployment_runs_the_adapter_against_the_api_as_flyteconnector_does() -> None:
    objects = render(apiUrl=API_URL, awsRegion="eu-west-1", extraArgs=["--timeout", "20"])
    adapter = container(objects)
    entrypoint = yaml.safe_load(dockerfile_instruction("ENTRYPOINT"))
    assert entrypoint[0] == "serverless-agents"
    args = build_parser().parse_args([*entrypoint[1:], *adapter["args"]])
    assert (args.command, args.api, args.port, args.metrics_port, args.timeout) == (
        "adapter",
        API_URL,
        8000,
        9090,
        20.0,  # extraArgs come last, so they override
    )
    assert {"name": "AWS_REGION", "value": "eu-west-1"} in adapter["env"]
    ports = {p["name"]: p["containerPort"] for p in adapter["ports"]}
    assert ports == {"connector-grpc": 8000, "metrics": 9090}
    # Kubernetes' own gRPC probes, on the adapter's grpc.health.v1 service (flyteconnector's readiness probe).
    assert adapter["readinessProbe"]["grpc"] == {"port": 8000}
    assert adapter["livenessProbe"]["grpc"] == {"port": 8000}
    assert adapter["resources"]["requests"]
    assert adapter["resources"]["limits"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert adapter["image"] == f"serverless-agents-adapter:{version}"


def test_without_tls_no_certificate_is_mounted() -> None:
    adapter = container(render(apiUrl=API_URL))

    assert "--tls-cert" not in adapter["args"]
    assert "volumeMounts" not in adapter
    assert adapter["livenessProbe"]["grpc"] == {"port": 8000}


def test_the_image_matches_what_the_chart_declares() -> None:
    objects = render(apiUrl=API_URL)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    user, _, group = dockerfile_instruction("USER").partition(":")
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        int(user),
        int(group),
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    exposed = {int(p) for p in shlex.split(dockerfile_instruction("EXPOSE"))}
    assert exposed == {p["containerPort"] for p in container(objects)["ports"]}


def test_service_speaks_h2c_to_the_pods_it_selects() -> None:
    objects = render(apiUrl=API_URL)
    service = objects["Service"]
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["metadata"]["annotations"]["projectcontour.io/upstream-protocol.h2c"] == "grpc"
    grpc_port = next(p for p in service["spec"]["ports"] if p["port"] == 8000)
    assert grpc_port["appProtocol"] == "kubernetes.io/h2c"
    container_ports = {p["name"] for p in container(objects)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == container_ports


def test_service_account_carries_the_cloud_identity() -> None:
    objects = render(
        apiUrl=API_URL, serviceAccount={"annotations": {"eks.amazonaws.com/role-arn": IRSA_ROLE}}
    )
    account = objects["ServiceAccount"]
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": IRSA_ROLE}
    assert (
        objects["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    )

    existing = render(apiUrl=API_URL, serviceAccount={"create": False, "name": "flyte-agents"})
    assert "ServiceAccount" not in existing
    assert existing["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == "flyte-agents"


def test_disruption_budget_only_when_a_replica_can_stay() -> None:
    objects = render(apiUrl=API_URL)
    budget = objects["PodDisruptionBudget"]["spec"]
    assert budget["minAvailable"] == 1
    assert budget["selector"]["matchLabels"] == objects["Deployment"]["spec"]["selector"]["matchLabels"]
    # One replica with minAvailable 1 would block every node drain.
    assert "PodDisruptionBudget" not in render(apiUrl=API_URL, replicaCount=1)


def test_service_monitor_scrapes_the_metrics_port_of_the_service() -> None:
    assert "ServiceMonitor" not in render(apiUrl=API_URL)
    objects = render(
        apiUrl=API_URL, metrics={"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}
    )
    monitor = objects["ServiceMonitor"]
    service = objects["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["flyte"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({}, "apiUrl: set the HTTP API's stage URL"),
        ({"apiUrl": "ftp://example.com/prod"}, "/apiUrl"),
        ({"apiUrl": API_URL, "awsRegion": "Ireland"}, "/awsRegion"),
        ({"apiUrl": API_URL, "replicaCount": "two"}, "/replicaCount"),
        ({"apiUrl": API_URL, "extraArgs": "--timeout 20"}, "/extraArgs"),
        ({"apiUrl": API_URL, "workers": 0}, "/workers"),
        ({"apiUrl": API_URL, "resourceMetaKeys": {"secretName": ""}}, "/resourceMetaKeys"),
        ({"apiUrl": API_URL, "tls": {"secretName": "t", "healthPort": 0}}, "/tls"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmError) as refused:
        render(**values)
    assert complaint in str(refused.value)


def test_the_probes_follow_the_grpc_port() -> None:
    # Seen: with ports.containerPort changed, the probes still checked 8000 and the pod never got ready.
    adapter = container(render(apiUrl=API_URL, ports={"containerPort": 9000}))

    assert {"name": "connector-grpc", "containerPort": 9000, "protocol": "TCP"} in adapter["ports"]
    assert adapter["readinessProbe"]["grpc"] == adapter["livenessProbe"]["grpc"] == {"port": 9000}
