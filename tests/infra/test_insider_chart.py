"""The adapter's chart, as an insider in the cluster would find it (issue #19, finding 11): which pods may
call the adapter, what token its pods carry, and how its port and its signing keys are configured.

Rendered by Helm's own engine, like tests/infra/test_chart.py, whose `render` and schema checks these share.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from serverless_agents.cli import build_parser
from tests.infra.test_chart import API_URL, KUBERNETES_VERSIONS, container, dockerfile_instruction, render


def pod_spec(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return dict(objects["Deployment"]["spec"]["template"]["spec"])


def test_only_flytes_propeller_and_executor_pods_may_call_the_adapter() -> None:
    objects = render(apiUrl=API_URL)
    policy = objects["NetworkPolicy"]["spec"]
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]

    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    (grpc_rule,) = policy["ingress"]  # nothing reaches the metrics port unless metricsFrom says who
    assert grpc_rule["ports"] == [{"port": "connector-grpc", "protocol": "TCP"}]
    (peer,) = grpc_rule["from"]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "flyte"}}
    # flyte-core's flytepropeller (and its manager's shards), flyte-binary (Flyte 1; Flyte 2's executor).
    assert peer["podSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/name", "operator": "In", "values": ["flytepropeller", "flyte-binary"]}
    ]


def test_the_network_policy_takes_its_callers_and_scrapers_from_values() -> None:
    propeller = {"podSelector": {"matchLabels": {"app": "my-propeller"}}}
    prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}

    policy = render(apiUrl=API_URL, networkPolicy={"from": [propeller], "metricsFrom": [prometheus]})[
        "NetworkPolicy"
    ]["spec"]

    assert policy["ingress"] == [
        {"from": [propeller], "ports": [{"port": "connector-grpc", "protocol": "TCP"}]},
        {"from": [prometheus], "ports": [{"port": "metrics", "protocol": "TCP"}]},
    ]
    assert "NetworkPolicy" not in render(apiUrl=API_URL, networkPolicy={"enabled": False})


@pytest.mark.parametrize(
    "network_policy", [{"from": []}, {"from": [{}]}, {"metricsFrom": [{}]}, {"allow": "everyone"}]
)
def test_a_network_policy_admitting_everyone_is_refused(network_policy: dict[str, Any]) -> None:
    """An empty peer list, or an empty peer, would admit every pod of the cluster."""
    import helm_python as helm

    with pytest.raises(helm.HelmError) as refused:
        render(apiUrl=API_URL, networkPolicy=network_policy)
    assert "networkPolicy" in str(refused.value)


def test_pods_mount_no_service_account_token() -> None:
    objects = render(
        apiUrl=API_URL,
        serviceAccount={"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/x"}},
    )

    assert pod_spec(objects)["automountServiceAccountToken"] is False
    assert objects["ServiceAccount"]["automountServiceAccountToken"] is False


def test_the_signing_keys_come_from_a_secret_as_the_environment() -> None:
    adapter = container(render(apiUrl=API_URL))
    keys = next(env for env in adapter["env"] if env["name"] == "SA_RESOURCE_META_KEYS")
    assert keys == {
        "name": "SA_RESOURCE_META_KEYS",
        "valueFrom": {"secretKeyRef": {"name": "serverless-agents-adapter-keys", "key": "keys"}},
    }
    assert "SA_RESOURCE_META_ALLOW_UNSIGNED" not in {env["name"] for env in adapter["env"]}

    migrating = container(
        render(apiUrl=API_URL, resourceMetaKeys={"secretName": "old-keys", "allowUnsigned": True})
    )
    assert {"name": "SA_RESOURCE_META_ALLOW_UNSIGNED", "value": "true"} in migrating["env"]
    assert next(e for e in migrating["env"] if e["name"] == "SA_RESOURCE_META_KEYS")["valueFrom"][
        "secretKeyRef"
    ] == {"name": "old-keys", "key": "keys"}


def test_tls_from_a_secret_with_the_probes_on_the_plain_health_port() -> None:
    objects = render(apiUrl=API_URL, tls={"secretName": "adapter-tls"})
    adapter = container(objects)
    entrypoint = yaml.safe_load(dockerfile_instruction("ENTRYPOINT"))

    args = build_parser().parse_args([*entrypoint[1:], *adapter["args"]])

    assert (args.tls_cert, args.tls_key, args.health_port) == (
        "/etc/serverless-agents/tls/tls.crt",
        "/etc/serverless-agents/tls/tls.key",
        8001,
    )
    assert adapter["volumeMounts"] == [
        {"name": "tls", "mountPath": "/etc/serverless-agents/tls", "readOnly": True}
    ]
    assert pod_spec(objects)["volumes"] == [{"name": "tls", "secret": {"secretName": "adapter-tls"}}]
    assert adapter["readinessProbe"]["grpc"] == adapter["livenessProbe"]["grpc"] == {"port": 8001}
    assert {"name": "health", "containerPort": 8001, "protocol": "TCP"} in adapter["ports"]
    grpc_port = next(p for p in objects["Service"]["spec"]["ports"] if p["port"] == 8000)
    assert "appProtocol" not in grpc_port  # not h2c: TLS
    for version in KUBERNETES_VERSIONS:
        for manifest in objects.values():
            if manifest["kind"] != "ServiceMonitor":
                kubernetes_validate.validate(manifest, version, strict=True)
