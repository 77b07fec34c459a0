"""Kubernetes manifests for lesson 04.1: load them from ``data/k8s``, validate them against the API's schema,
and apply them with the official client where a cluster answers.

No cluster can be started on the course's CI machine (node images come from registries it cannot reach),
so :func:`cluster` says why it found none and the notebook skips that part, saying so. Validation needs no
cluster: ``kubernetes-validate`` carries the JSON schemas of every Kubernetes release.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "data" / "k8s"
ORDER = ("namespace.yaml", "configmap.yaml", "deployment.yaml", "service.yaml")  # what must exist first


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


def delete(api: Any, namespace: str = "cloudnotes") -> None:
    """Delete the namespace, and with it every object the manifests created in it."""
    from kubernetes import client

    with contextlib.suppress(Exception):
        client.CoreV1Api(api).delete_namespace(namespace)
