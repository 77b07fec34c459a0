"""The Kubernetes manifests in data/k8s are valid objects; broken ones are caught; no cluster is explained."""

from __future__ import annotations

import pytest

from helpers import k8s


@pytest.mark.parametrize("name", sorted(path.name for path in k8s.MANIFESTS.glob("*.yaml")))
def test_every_manifest_is_a_valid_kubernetes_object(name):
    objects = k8s.load(name)
    assert objects, f"{name} holds no object"
    for manifest in objects:
        assert k8s.validate(manifest) == "", manifest.get("kind")


def test_the_manifests_are_the_ones_the_notebook_maps_and_apply_in_order():
    kinds = [manifest["kind"] for _, manifest in k8s.load_all()]
    assert kinds == ["Namespace", "ConfigMap", "Deployment", "Service"]
    deployment = k8s.load("deployment.yaml")[0]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 1
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == selector
    assert k8s.load("service.yaml")[0]["spec"]["selector"] == selector


@pytest.mark.parametrize(("path", "value", "delete", "expected"), [
    ("spec.replicas", "three", False, "spec.replicas: 'three' is not of type"),
    ("spec.selector", None, True, "'selector' is a required property"),
    ("spec.template.spec.containers.0.livenessProbe.periodSecond", 1, False, "periodSecond"),
    ("spec.template.spec.containers.0.ports.0.containerPort", "8080", False, "containerPort: '8080' is not of type"),
])
def test_a_broken_deployment_is_caught_with_the_field_named(path, value, delete, expected):
    deployment = k8s.load("deployment.yaml")[0]
    message = k8s.validate(k8s.broken(deployment, path, value, delete))
    assert expected in message, message
    assert k8s.validate(deployment) == ""  # the original is untouched


def test_an_unknown_kind_is_reported_not_raised():
    assert "unknown kind" in k8s.validate({"apiVersion": "v1", "kind": "Pdo", "metadata": {"name": "x"}})


def test_no_cluster_is_a_reason_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    api, why = k8s.cluster()
    assert api is None and "kubeconfig" in why
    (tmp_path / "config").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:9'}}]\nusers: [{name: u, user: {token: t}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    api, why = k8s.cluster(timeout=2)
    assert api is None and "does not answer" in why
