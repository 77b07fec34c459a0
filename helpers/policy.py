"""How AWS decides whether an identity may make a request, written out so the decision can be explained.

AWS evaluates every request against every policy that applies, in three rules:

1. anything not explicitly allowed is denied (the **implicit deny**);
2. a statement that allows the request lets it through...
3. ...unless any statement explicitly denies it: an **explicit deny** always wins.

A statement applies when its ``Action`` (or ``NotAction``) matches the action and its ``Resource``
(or ``NotResource``) matches the resource. ``*`` matches any run of characters and ``?`` exactly one;
action names are case-insensitive, resource ARNs are not.

:func:`decide` applies these rules to identity policies and names the statement that decided. It models
identity-based policies only: no resource-based policies (bucket policies), permission boundaries, session
policies or ``Condition`` blocks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str  # "explicit deny", "allowed", "implicit deny"
    policy: str | None = None
    statement: str | None = None

    def __str__(self) -> str:
        if self.rule == "implicit deny":
            return "DENIED: no statement allows it (implicit deny)"
        verb = "ALLOWED" if self.allowed else "DENIED"
        return f"{verb}: {self.rule} by statement {self.statement!r} of policy {self.policy!r}"


@lru_cache(maxsize=4096)
def _pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM wildcard matching: ``*`` any run of characters, ``?`` one character, the whole value."""
    return _pattern(pattern, ignore_case).fullmatch(value) is not None


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _applies(statement: dict, action: str, resource: str) -> bool:
    if "Action" in statement:
        action_ok = any(matches(a, action, ignore_case=True) for a in _as_list(statement["Action"]))
    else:
        action_ok = not any(matches(a, action, ignore_case=True) for a in _as_list(statement.get("NotAction")))
    if "Resource" in statement:
        resource_ok = any(matches(r, resource) for r in _as_list(statement["Resource"]))
    else:
        resource_ok = not any(matches(r, resource) for r in _as_list(statement.get("NotResource")))
    return action_ok and resource_ok


def _statements(policies: dict[str, dict | str]) -> list[tuple[str, str, dict]]:
    found = []
    for name, document in policies.items():
        document = json.loads(document) if isinstance(document, str) else document
        statements = document.get("Statement", [])
        for index, statement in enumerate([statements] if isinstance(statements, dict) else statements):
            found.append((name, statement.get("Sid", f"#{index + 1}"), statement))
    return found


def decide(policies: dict[str, dict | str], action: str, resource: str) -> Decision:
    """Whether identity ``policies`` ({name: document}) allow ``action`` on ``resource``, and why."""
    allowing = None
    for name, sid, statement in _statements(policies):
        if not _applies(statement, action, resource):
            continue
        if statement.get("Effect") == "Deny":
            return Decision(False, "explicit deny", name, sid)
        if statement.get("Effect") == "Allow" and allowing is None:
            allowing = Decision(True, "allowed", name, sid)
    return allowing or Decision(False, "implicit deny")
