"""Kubernetes manifests for lesson 04.1: load them from ``data/k8s``, validate them against the API's schema,
and apply them with the official client where a cluster answers.

No cluster can be started on the course's CI machine (node images come from registries it cannot reach),
so :func:`cluster` says why it found none and the notebook skips that part, saying so. Validation needs no
cluster: ``kubernetes-validate`` carries the JSON schemas of every Kubernetes release.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "data" / "k8s"
ORDER = ("namespace.yaml", "configmap.yaml", "deployment.yaml", "service.yaml")  # what must exist first
DOCUMENTED = ROOT / "data" / "kubectl-output.json"  # what kubectl prints against a cluster, as documented


def load(name: str) -> list[dict[str, Any]]:
    """The objects in ``data/k8s/NAME`` (a file may hold several, separated by ``---``)."""
    return [document for document in yaml.safe_load_all((MANIFESTS / name).read_text()) if document]


def load_all() -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for every manifest, in the order they can be applied."""
    names = sorted(path.name for path in MANIFESTS.glob("*.yaml"))
    names.sort(key=lambda name: ORDER.index(name) if name in ORDER else len(ORDER))
    return [(name, document) for name in names for document in load(name)]


def validate(manifest: dict[str, Any], version: str | None = None) -> str:
    """'' when ``manifest`` is a valid object for Kubernetes ``version`` (default: the newest known), else
    the validator's message with the path to the offending field. Strict: unknown fields are errors."""
    import kubernetes_validate

    version = version or kubernetes_validate.latest_version()
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path) or "(the object)"
        return f"{where}: {exc.message}"
    except (kubernetes_validate.SchemaNotFoundError, KeyError) as exc:
        return f"unknown kind or apiVersion: {exc}"
    return ""


def broken(manifest: dict[str, Any], path: str, value: Any = None, delete: bool = False) -> dict[str, Any]:
    """A copy of ``manifest`` with the field at ``path`` ("spec.replicas", "spec.template.spec.containers.0.x")
    set to ``value`` or deleted: the mistakes the notebook shows the validator catching."""
    copied = copy.deepcopy(manifest)
    *parents, last = path.split(".")
    target = copied
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if delete:
        del target[last]
    else:
        target[last] = value
    return copied


def cluster(timeout: float = 3) -> tuple[Any | None, str]:
    """(an API client, which cluster) when a kubeconfig names a cluster that answers; (None, why not)."""
    try:
        from kubernetes import client, config
    except ImportError:
        return None, "the kubernetes Python package is not installed"
    config_file = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    try:
        config.load_kube_config(config_file=config_file)
    except (config.ConfigException, OSError, TypeError) as exc:
        return None, f"no usable kubeconfig ({str(exc).splitlines()[0]})"
    api = client.ApiClient()
    try:
        version = client.VersionApi(api).get_code(_request_timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any failure means: no cluster to use
        api.close()
        return None, f"the kubeconfig's cluster does not answer ({type(exc).__name__})"
    _, context = config.list_kube_config_contexts(config_file=config_file)
    return api, f"context {context['name']}, Kubernetes {version.git_version}"


def apply(api: Any, namespace: str = "cloudnotes") -> list[str]:
    """Create every manifest's object (``kubectl apply -f data/k8s``); the names created."""
    from kubernetes import utils

    created = []
    for _, manifest in load_all():
        utils.create_from_dict(api, manifest, namespace=manifest.get("metadata", {}).get("namespace", namespace))
        created.append(f"{manifest['kind']}/{manifest['metadata']['name']}")
    return created


def pods(api: Any, namespace: str = "cloudnotes", selector: str = "app=web", ready: int = 3,
         timeout: float = 120) -> list[tuple[str, str]]:
    """(pod name, phase) of the selected pods, once ``ready`` of them run (or when ``timeout`` ends)."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while True:
        found = [(pod.metadata.name, pod.status.phase)
                 for pod in core.list_namespaced_pod(namespace, label_selector=selector).items]
        if sum(phase == "Running" for _, phase in found) >= ready or time.monotonic() > deadline:
            return found
        time.sleep(1)


def replace_one(api: Any, namespace: str = "cloudnotes", selector: str = "app=web",
                timeout: float = 120) -> tuple[str, str]:
    """Delete one selected Pod (``kubectl delete pod``) and wait for its ReplicaSet to run a new one:
    (the deleted Pod's name, the new Pod's name)."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    before = sorted(pod.metadata.name for pod in core.list_namespaced_pod(namespace, label_selector=selector).items)
    if not before:
        raise RuntimeError(f"no Pod matches {selector} in {namespace}")
    core.delete_namespaced_pod(before[0], namespace)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = sorted(pod.metadata.name for pod in core.list_namespaced_pod(namespace, label_selector=selector).items
                     if pod.metadata.name not in before and pod.status.phase == "Running"
                     and pod.metadata.deletion_timestamp is None)
        if new:
            return before[0], new[0]
        time.sleep(1)
    raise TimeoutError(f"no new Pod ran within {timeout:g} s after deleting {before[0]}")


def delete(api: Any, namespace: str = "cloudnotes") -> None:
    """Delete the namespace, and with it every object the manifests created in it."""
    from kubernetes import client

    with contextlib.suppress(Exception):
        client.CoreV1Api(api).delete_namespace(namespace)


# --- kubectl without a cluster ---------------------------------------------------------------------------

OFFLINE_KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"


@dataclass(frozen=True)
class Ran:
    """One command that ran: what it was, its exit status and what it printed."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def command(self) -> str:
        return "$ " + shlex.join(self.argv)

    def show(self, lines: int | None = None) -> None:
        """Print the command and its output (the first ``lines`` lines of it, if given)."""
        print(self.command)
        text = (self.stdout + self.stderr).rstrip("\n").splitlines()
        if lines is not None and len(text) > lines:
            text = text[:lines] + [f"... ({len(text) - lines} more lines)"]
        print("\n".join(text))


def run(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 60) -> Ran:
    """Run a command (``docker service ps web``, say) from ``cwd`` and keep what it printed."""
    done = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return Ran(tuple(argv), done.returncode, done.stdout, done.stderr)


def kubectl(*args: str, cwd: Path = ROOT, timeout: float = 30) -> Ran:
    """Run ``kubectl ARGS`` with a kubeconfig that names no cluster (written to a temporary folder), so that
    it can never reach a cluster of yours; relative paths are read from ``cwd`` (the repository)."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "kubeconfig"
        config.write_text(OFFLINE_KUBECONFIG)
        return run("kubectl", *args, cwd=cwd, env={**os.environ, "KUBECONFIG": str(config)}, timeout=timeout)


def _without_empty(value: Any) -> Any:
    """``value`` without null and empty fields (kubectl prints ``creationTimestamp: null``, ``status: {}``,
    ``resources: {}``, and different releases print different ones)."""
    if isinstance(value, dict):
        kept = {key: _without_empty(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, {}, [])}
    if isinstance(value, list):
        return [_without_empty(item) for item in value]
    return value


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"spec.template.spec.containers.0.image": "cloudnotes/web:1", ...}: every leaf with its path (a list
    of plain values, such as a command, is one leaf)."""
    if isinstance(value, dict) and value:
        return {path: leaf for key, item in value.items()
                for path, leaf in flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        return {path: leaf for index, item in enumerate(value)
                for path, leaf in flatten(item, f"{prefix}{index}.").items()}
    return {prefix.rstrip("."): value}


def compare(generated: dict[str, Any], manifest: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, what kubectl generated, what the manifest says) for every field where they differ, empty
    and null fields left out; "" where one side lacks the field."""
    ours, theirs = flatten(_without_empty(generated)), flatten(_without_empty(manifest))
    rows = []
    for path in sorted(set(ours) | set(theirs), key=lambda p: [int(x) if x.isdigit() else x for x in p.split(".")]):
        left, right = ours.get(path), theirs.get(path)
        if left != right:
            rows.append((path, "" if left is None else json.dumps(left), "" if right is None else json.dumps(right)))
    return rows


def parse(ran: Ran) -> dict[str, Any]:
    """The object a ``kubectl ... -o yaml`` printed."""
    if ran.returncode != 0:
        raise RuntimeError(f"{ran.command} failed: {ran.stderr.strip()}")
    return yaml.safe_load(ran.stdout)


# --- labels and selectors -----------------------------------------------------------------------------------

def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """True when a label selector (``matchLabels`` and ``matchExpressions``, as in a Deployment; or a plain
    map, as in a Service) chooses an object with these labels. Every requirement must hold."""
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        selector = {"matchLabels": selector}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in selector.get("matchExpressions") or []:
        key, operator, values = requirement["key"], requirement["operator"], requirement.get("values") or []
        holds = {"In": key in labels and labels[key] in values,
                 "NotIn": key not in labels or labels[key] not in values,
                 "Exists": key in labels,
                 "DoesNotExist": key not in labels}.get(operator)
        if holds is None:
            raise ValueError(f"unknown selector operator {operator!r}")
        if not holds:
            return False
    return True


def selector_problems(manifest: dict[str, Any]) -> list[str]:
    """What the API server would refuse in a Deployment that the schema accepts: its selector must be
    present, not empty, and choose the Pods its own template makes. The messages are the API server's
    (ValidateDeploymentSpec in kubernetes/kubernetes, pkg/apis/apps/validation/validation.go)."""
    if manifest.get("kind") != "Deployment":
        return []
    spec = manifest.get("spec", {})
    selector = spec.get("selector")
    labels = spec.get("template", {}).get("metadata", {}).get("labels") or {}
    if selector is None:
        return ["spec.selector: Required value"]
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return [f"spec.selector: Invalid value: {json.dumps(selector)}: empty selector is invalid for deployment"]
    if not selects(selector, labels):
        return [f"spec.template.metadata.labels: Invalid value: {json.dumps(labels)}: "
                "`selector` does not match template `labels`"]
    return []


def service_reaches(service: dict[str, Any], deployment: dict[str, Any]) -> bool:
    """True when a Service's selector chooses the Pods a Deployment's template makes. The API server accepts
    a Service that chooses nothing: it simply has no endpoints, and requests to it fail."""
    selector = service.get("spec", {}).get("selector") or {}
    labels = deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
    return bool(selector) and selects(selector, labels)


def documented() -> dict[str, Any]:
    """What ``kubectl get pods``, ``rollout status``, ``describe`` and ``logs`` print against a cluster, as
    the Kubernetes documentation shows it, with the pinned source of each and the day it was read."""
    return json.loads(DOCUMENTED.read_text(encoding="utf-8"))
