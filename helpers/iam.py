"""A CloudTrail-style record of the AWS calls a notebook makes, and the smallest policy that allows them.

AWS CloudTrail records API activity: who made a call, which action on which resource, and whether it was
allowed. It logs management events (creating, changing, deleting resources) by default; object-level S3
calls such as GetObject are data events, logged only when a trail is set up for them. IAM Access Analyzer
can read that history and propose a policy that grants exactly what was used.
:class:`ActivityLog` does the same on this machine: ``log.watch(client, "alice")`` records every call that
client makes, and :func:`smallest_policy` turns the allowed calls into a policy document.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from helpers.display import Table

# boto3 operation names whose IAM action is not simply "service:Operation".
_S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListBuckets": "s3:ListAllMyBuckets",
}
DENIED_CODES = {"AccessDenied", "403", "Forbidden", "UnauthorizedOperation"}


def iam_action(service: str, operation: str) -> str:
    """The IAM action an API operation needs, e.g. ("s3", "ListObjectsV2") -> "s3:ListBucket"."""
    if service == "s3" and operation in _S3_ACTIONS:
        return _S3_ACTIONS[operation]
    return f"{service}:{operation}"


def resource_arn(service: str, params: dict[str, Any], account: str) -> str:
    """The ARN a call acts on, from its parameters ("*" when it acts on no single resource)."""
    if service == "s3" and "Bucket" in params:
        return f"arn:aws:s3:::{params['Bucket']}" + (f"/{params['Key']}" if "Key" in params else "")
    if service == "iam":
        for parameter, kind in (("UserName", "user"), ("RoleName", "role"), ("GroupName", "group")):
            if parameter in params:
                return f"arn:aws:iam::{account}:{kind}/{params[parameter]}"
    return "*"


@dataclass(frozen=True)
class Event:
    """One recorded call, like one CloudTrail record."""

    number: int
    who: str
    action: str
    resource: str
    outcome: str  # "allowed" or "denied"
    error: str  # the error code, if the call failed for any reason ("" when it succeeded)


class ActivityLog:
    """Records every call of the clients it watches."""

    def __init__(self, account: str = "123456789012"):
        self.account = account
        self.events: list[Event] = []

    def watch(self, client: Any, who: str) -> Any:
        """Record every call ``client`` makes from now on, as made by ``who``; returns the client."""
        service = client.meta.service_model.endpoint_prefix

        def remember_params(params: dict, context: dict, **_: Any) -> None:
            context["cloudnotes_params"] = dict(params)

        def record(parsed: dict, model: Any, context: dict, **_: Any) -> None:
            code = str(parsed.get("Error", {}).get("Code", "")) if isinstance(parsed, dict) else ""
            self.events.append(Event(
                number=len(self.events) + 1, who=who, action=iam_action(service, model.name),
                resource=resource_arn(service, context.get("cloudnotes_params", {}), self.account),
                outcome="denied" if code in DENIED_CODES else "allowed", error=code))

        client.meta.events.register("before-parameter-build", remember_params)
        client.meta.events.register("after-call", record)
        return client

    def table(self, last: int | None = None) -> Table:
        events = self.events[-last:] if last else self.events
        return Table([(e.number, e.who, e.action, e.resource, e.outcome, e.error or "-") for e in events],
                     headers=("#", "who", "action", "resource", "decision", "error"))


def smallest_policy(events: list[Event], who: str) -> dict:
    """A policy allowing exactly the actions ``who`` was allowed to perform, on exactly those resources.

    Calls that were denied are left out (they were not needed for the work that succeeded), as are the
    calls that every identity may make (``sts:GetCallerIdentity``).
    """
    resources: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.who == who and event.outcome == "allowed" and event.action != "sts:GetCallerIdentity":
            resources[event.action].add(event.resource)
    statements = [{"Sid": action.replace(":", "").replace("*", "All"), "Effect": "Allow", "Action": action,
                   "Resource": sorted(arns) if len(arns) > 1 else next(iter(arns))}
                  for action, arns in sorted(resources.items())]
    return {"Version": "2012-10-17", "Statement": statements}
