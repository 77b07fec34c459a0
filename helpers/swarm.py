"""The plumbing of lesson 04.1: a single-node Docker swarm that the notebook creates and removes, and ways to
watch the orchestrator converge.

Swarm mode is the orchestrator built into the Docker engine. Like Kubernetes, it keeps a declared desired
state (a *service*: this image, this many replicas, this update policy) and runs a reconcile loop that
compares it with what runs and acts on the difference. The notebook drives it with the Docker SDK; this
module only starts and stops the swarm, waits for conditions, and turns tasks and events into rows.

    with Swarm(client) as swarm:       # docker swarm init (unless one is already active); leave at the end
        ...
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ConvergenceError(RuntimeError):
    """The swarm did not reach the expected state in time; the message says what it had reached."""


class Swarm:
    """A single-node swarm on 127.0.0.1, left again by :meth:`close` if this object created it.

    Leaving a swarm leaves two networks behind (``ingress`` goes with the swarm, ``docker_gwbridge``
    stays): :meth:`close` removes the ones that were not there before.
    """

    def __init__(self, client: Any, advertise_addr: str = "127.0.0.1"):
        self.client = client
        self.created = False
        self.networks_before = {network.name for network in client.networks.list()}
        self.state_before = client.info().get("Swarm", {}).get("LocalNodeState", "inactive")
        if self.state_before != "active":
            client.swarm.init(advertise_addr=advertise_addr, listen_addr=f"{advertise_addr}:2377")
            self.created = True

    @property
    def node(self) -> Any:
        """This engine's own node (in a swarm of several, not just the first listed)."""
        return self.client.nodes.get(self.client.info()["Swarm"]["NodeID"])

    def close(self) -> None:
        if not self.created:
            return
        self.client.swarm.leave(force=True)
        self.created = False
        # leave returns before the engine's own report says so: wait, so that what follows sees no swarm
        wait_for(lambda: self.client.info().get("Swarm", {}).get("LocalNodeState") == "inactive",
                 "the swarm left", timeout=30)
        for network in self.client.networks.list():
            if network.name not in self.networks_before and network.name in ("docker_gwbridge", "ingress"):
                network.remove()

    def __enter__(self) -> Swarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60, interval: float = 0.2) -> Any:
    """Poll ``condition()`` until it returns something true, and return that; ConvergenceError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise ConvergenceError(f"not reached within {timeout:g} s: {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class Task:
    """One task (a replica's slot, filled by one container at a time) as the orchestrator reports it."""

    slot: int
    state: str  # what it is: new, pending, running, shutdown, failed, complete...
    desired: str  # what the orchestrator wants it to be: running or shutdown
    image: str
    container: str
    message: str
    error: str
    created: str
    health: str = ""

    @classmethod
    def of(cls, task: dict[str, Any]) -> Task:
        status = task.get("Status", {})
        spec = task.get("Spec", {}).get("ContainerSpec", {})
        return cls(task.get("Slot", 0), status.get("State", ""), task.get("DesiredState", ""),
                   spec.get("Image", "").split("@")[0], status.get("ContainerStatus", {}).get("ContainerID", "")[:12],
                   status.get("Message", ""), status.get("Err", ""), task.get("CreatedAt", ""))


def tasks(service: Any) -> list[Task]:
    """Every task of the service by slot, oldest first within a slot (as ``docker service ps SERVICE``)."""
    return sorted((Task.of(task) for task in service.tasks()), key=lambda task: (task.slot, task.created))


def running(service: Any, image: str | None = None) -> list[Task]:
    """Tasks that are running and meant to be (optionally only those of ``image``)."""
    return [task for task in tasks(service) if task.state == "running" and task.desired == "running"
            and (image is None or task.image == image)]


def converged(service: Any, replicas: int, image: str | None = None) -> list[Task]:
    """The running tasks when exactly ``replicas`` run (of ``image``, if given) and none is on its way in or
    out; else an empty list. One reading of the task list, so the answer and the tasks agree."""
    live = [task for task in tasks(service) if task.desired == "running"]
    settled = (len(live) == replicas and all(task.state == "running" for task in live)
               and (image is None or all(task.image == image for task in live)))
    return live if settled else []


def container_of(client: Any, task: Task) -> Any:
    """The Docker container that runs a task (looked up by its id, not by listing: a listing can race with
    the orchestrator removing another container)."""
    return client.containers.get(task.container)


def service_containers(client: Any, name: str) -> list[str]:
    """Ids of the containers (running or not) of a service, from one listing call."""
    found = client.api.containers(all=True, filters={"label": f"com.docker.swarm.service.name={name}"})
    return [item["Id"] for item in found]


def update_state(service: Any) -> str:
    """Where a rolling update or rollback stands: updating, completed, rollback_started, rollback_completed..."""
    service.reload()
    return service.attrs.get("UpdateStatus", {}).get("State", "")


def describe(event: dict[str, Any]) -> str:
    """One line for a daemon event: '<type> <action> <name>' (what the reconcile loop did)."""
    attributes = event.get("Actor", {}).get("Attributes", {})
    name = attributes.get("name") or attributes.get("com.docker.swarm.task.name") or event.get("id", "")[:12]
    return f"{event.get('Type', '')} {event.get('Action', '')} {name}".strip()


class EventLog:
    """Collect the engine's events (``docker events``) in a background thread from now until :meth:`stop`.

    The daemon keeps only its last few hundred events, and health checks add several a second, so a
    query afterwards would miss the beginning: listening while it happens keeps every one.
    """

    def __init__(self, client: Any, types: tuple[str, ...] = ("container", "service")):
        self.events: list[dict[str, Any]] = []
        self._stream = client.events(decode=True, filters={"type": list(types)})
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        try:
            for event in self._stream:
                self.events.append(event)
        except Exception:  # noqa: BLE001 - the stream ends with an error when stop() closes it
            return

    def stop(self) -> list[dict[str, Any]]:
        """Stop listening; every event received."""
        self._stream.close()
        self._thread.join(timeout=5)
        return list(self.events)


# --- a Service's name, seen from a client on the service's network ------------------------------------------

def ipvs_available() -> bool:
    """True when the kernel has IPVS, the load balancer behind a swarm service's virtual IP (and kube-proxy's
    IPVS mode). Without it a virtual IP answers "No route to host", so the notebook uses DNS round robin."""
    return os.path.exists("/proc/net/ip_vs")


def resolve(box: Any, name: str) -> list[str]:
    """The IPv4 addresses ``name`` resolves to inside container ``box`` (its DNS: Docker's, at 127.0.0.11)."""
    output = box.exec_run(["nslookup", name]).output.decode(errors="replace")
    answer = output.split("Non-authoritative answer:", 1)[-1] if "Non-authoritative answer:" in output else ""
    return sorted(set(re.findall(r"Address:\s*(\d+\.\d+\.\d+\.\d+)(?!:)", answer)), key=ipaddress.IPv4Address)


def ask(box: Any, name: str, path: str, times: int, port: int = 8080) -> list[str]:
    """Send ``times`` HTTP requests to ``name:port`` from container ``box``, each a new connection that looks
    the name up again (busybox ``nc``); the last line of every answer, in order."""
    request = f"GET {path} HTTP/1.0\\r\\nHost: {name}\\r\\n\\r\\n"
    script = (f'i=0; while [ $i -lt {times} ]; do i=$((i+1)); '
              f'printf "{request}" | nc -w 5 {name} {port} | tail -n 1; echo; done')
    output = box.exec_run(["sh", "-c", script]).output.decode(errors="replace")
    return [line.strip() for line in output.splitlines() if line.strip()]


def addresses(service: Any, network: str) -> list[str]:
    """The IPv4 address on ``network`` of each running replica of ``service``."""
    found = []
    for task in service.tasks(filters={"desired-state": "running"}):
        if task.get("Status", {}).get("State") != "running":
            continue
        for attachment in task.get("NetworksAttachments", []):
            if attachment.get("Network", {}).get("Spec", {}).get("Name") == network:
                found += [address.split("/")[0] for address in attachment.get("Addresses", [])]
    return sorted(found, key=ipaddress.IPv4Address)


def virtual_ips(service: Any, network_id: str) -> list[str]:
    """The service's virtual IP on a network (endpoint mode vip), or [] (dnsrr)."""
    service.reload()
    return [entry["Addr"].split("/")[0] for entry in service.attrs.get("Endpoint", {}).get("VirtualIPs", [])
            if entry.get("NetworkID") == network_id]


def host_port(client: Any, task: Task, port: str = "8080/tcp") -> int:
    """The host port Docker published a replica's ``port`` on (publish mode host)."""
    container = container_of(client, task)
    container.reload()
    return int(container.attrs["NetworkSettings"]["Ports"][port][0]["HostPort"])


def pending(service: Any) -> Task | None:
    """The service's task that waits for a node (state pending), if there is one."""
    waiting = [task for task in tasks(service) if task.state == "pending" and task.desired == "running"]
    return waiting[0] if waiting else None


def label_node(node: Any, **labels: str | None) -> None:
    """``docker node update --label-add KEY=VALUE`` (or ``--label-rm KEY`` for a value of None)."""
    node.reload()
    spec = node.attrs["Spec"]
    merged = {**spec.get("Labels", {}), **labels}
    spec["Labels"] = {key: value for key, value in merged.items() if value is not None}
    node.update(spec)


def remove_network(network: Any, timeout: float = 30) -> None:
    """Remove a network once its last endpoint is gone (a removed service's tasks leave it a moment later)."""
    import docker

    def removed() -> bool:
        try:
            network.remove()
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError:
            return False
        return True

    wait_for(removed, f"the network {network.name} removed", timeout=timeout)
    # a swarm-scoped network leaves the manager's store first, and this engine's own list a moment later
    wait_for(lambda: not any(n.name == network.name for n in network.client.networks.list()),
             f"the network {network.name} gone from this engine", timeout=timeout)


def remove_containers(client: Any, name: str, timeout: float = 30) -> None:
    """Force-remove what is left of a removed service's containers, at once, rather than wait while the engine
    drains each from the network and stops it; return when none is left."""
    import docker

    for container_id in service_containers(client, name):
        try:
            client.api.remove_container(container_id, force=True)
        except docker.errors.APIError:  # gone meanwhile, or its removal already under way
            pass
    wait_for(lambda: not service_containers(client, name), f"the containers of {name} gone", timeout=timeout)
