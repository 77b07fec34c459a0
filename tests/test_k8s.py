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
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == selector
    assert k8s.load("service.yaml")[0]["spec"]["selector"] == selector


def test_the_configmap_is_mounted_as_a_folder_not_over_the_page_and_holds_the_greeting_file():
    deployment = k8s.load("deployment.yaml")[0]
    config = k8s.load("configmap.yaml")[0]
    pod = deployment["spec"]["template"]["spec"]
    mount, = pod["containers"][0]["volumeMounts"]
    assert "subPath" not in mount and mount["mountPath"] == "/www/config"  # the image's index.html stays visible
    volume, = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    assert config["data"] == {"greeting.txt": (k8s.MANIFESTS / "greeting.txt").read_text()}


@pytest.mark.parametrize(("selector", "labels", "chosen"), [
    ({"app": "web"}, {"app": "web", "pod-template-hash": "x"}, True),  # a Service's plain map
    ({"app": "web"}, {"app": "web-admin"}, False),
    ({"matchLabels": {"app": "web", "tier": "front"}}, {"app": "web"}, False),  # every label must hold
    ({"matchExpressions": [{"key": "track", "operator": "In", "values": ["stable", "canary"]}]},
     {"track": "canary"}, True),
    ({"matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary"]}]}, {"app": "web"}, True),
    ({"matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary"]}]}, {"track": "canary"}, False),
    ({"matchExpressions": [{"key": "track", "operator": "Exists"}]}, {"app": "web"}, False),
    ({"matchExpressions": [{"key": "track", "operator": "DoesNotExist"}]}, {"app": "web"}, True),
    ({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "track", "operator": "Exists"}]},
     {"app": "web", "track": "x"}, True),
])
def test_a_selector_chooses_by_labels_as_kubernetes_documents(selector, labels, chosen):
    assert k8s.selects(selector, labels) is chosen


def test_an_unknown_selector_operator_is_an_error():
    with pytest.raises(ValueError, match="Equals"):
        k8s.selects({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}, {"a": "b"})


def test_selector_problems_the_schema_lets_through_are_found_with_the_api_servers_words():
    deployment = k8s.load("deployment.yaml")[0]
    assert k8s.selector_problems(deployment) == []
    mismatch = k8s.broken(deployment, "spec.template.metadata.labels", {"app": "website"})
    assert k8s.validate(mismatch) == ""  # the schema cannot see it
    problem, = k8s.selector_problems(mismatch)
    assert problem.startswith("spec.template.metadata.labels: Invalid value:") and "does not match template" in problem
    empty = k8s.broken(deployment, "spec.selector", {})
    assert "empty selector is invalid" in k8s.selector_problems(empty)[0]
    missing = k8s.broken(deployment, "spec.selector", None, delete=True)
    assert k8s.selector_problems(missing) == ["spec.selector: Required value"]
    assert k8s.selector_problems(k8s.load("service.yaml")[0]) == []  # only workloads carry a template


def test_a_service_reaches_the_deployments_pods_only_through_matching_labels():
    deployment, service = k8s.load("deployment.yaml")[0], k8s.load("service.yaml")[0]
    assert k8s.service_reaches(service, deployment)
    assert not k8s.service_reaches(k8s.broken(service, "spec.selector", {"app": "website"}), deployment)
    assert not k8s.service_reaches(k8s.broken(service, "spec.selector", None, delete=True), deployment)


def test_compare_names_each_differing_field_and_leaves_out_empty_ones():
    generated = {"metadata": {"name": "web", "creationTimestamp": None, "labels": {"app": "web"}},
                 "spec": {"strategy": {}, "ports": [{"port": 80, "protocol": "TCP"}], "command": ["a", "b"]},
                 "status": {}}
    written = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], "command": ["a", "b"], "replicas": 3}}
    assert k8s.compare(generated, written) == [
        ("metadata.labels.app", '"web"', ""), ("spec.ports.0.protocol", '"TCP"', ""), ("spec.replicas", "", "3")]
    assert k8s.compare(written, written) == []


def test_every_documented_kubectl_output_has_a_pinned_source_and_a_swarm_command():
    documented = k8s.documented()
    assert documented["about"].strip()
    commands = [entry["command"].split()[1] for entry in documented["commands"]]
    assert commands == ["get", "rollout", "describe", "logs"]
    for entry in documented["commands"]:
        assert entry["output"].strip() and entry["page"].startswith("https://kubernetes.io/docs/")
        assert "/blob/" in entry["source"] and len(entry["source"].split("/blob/")[1].split("/")[0]) == 40
        assert entry["read"] == "2026-11-30" and entry["swarm"][:2] == ["docker", "service"]


@pytest.mark.needs("kubectl")
def test_kubectl_builds_the_lectures_objects_without_a_cluster_and_cannot_reach_one():
    made = k8s.parse(k8s.kubectl("create", "deployment", "web", "--image=cloudnotes/web:1", "--replicas=3",
                                 "--port=8080", "--namespace=cloudnotes", "--dry-run=client", "-o", "yaml"))
    assert all(not generated for _, generated, _ in k8s.compare(made, k8s.load("deployment.yaml")[0]))
    config = k8s.parse(k8s.kubectl("create", "configmap", "web-config", "--from-file=data/k8s/greeting.txt",
                                   "--namespace=cloudnotes", "--dry-run=client", "-o", "yaml"))
    assert k8s.compare(config, k8s.load("configmap.yaml")[0]) == []
    image = k8s.parse(k8s.kubectl("set", "image", "-f", "data/k8s/deployment.yaml", "web=cloudnotes/web:2",
                                  "--local", "-o", "yaml"))
    changed = [row[0] for row in k8s.compare(image, k8s.load("deployment.yaml")[0])]
    assert changed == ["spec.template.spec.containers.0.image"]
    exposed = k8s.kubectl("expose", "-f", "data/k8s/deployment.yaml", "--port=80", "--dry-run=client", "-o", "yaml")
    assert exposed.returncode != 0 and exposed.command.startswith("$ kubectl expose")
    with pytest.raises(RuntimeError, match="failed"):
        k8s.parse(exposed)


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
