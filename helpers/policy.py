"""How AWS decides whether a request is allowed, written out so that every decision can be explained.

The rules follow AWS's documented policy evaluation logic (the pages are listed in ``SOURCES``):

1. A policy document is checked first, as IAM checks it (``Version``, ``Effect`` spelling, the required
   elements, the syntax of actions, ARNs, principals and condition operators). A document IAM would refuse
   (``MalformedPolicyDocument``) raises :class:`PolicyError` naming the policy, the statement and the element;
   it is never evaluated.
2. A statement applies to a request when its action, resource (and, in a resource-based policy, principal)
   match and every condition holds. Actions match case-insensitively, with wildcards only in the action
   name (``s3:Get*``). ARNs match part by part (partition, service, region, account, resource): a wildcard
   stays inside its part, the service part takes none, and the resource part matches across ``/`` and ``:``.
3. Any applicable ``Deny`` wins (explicit deny). Otherwise the request needs an ``Allow``: from the identity
   policies (and from the permissions boundary and the session policies, when there are any: the allowed set
   is their intersection), or, within one account, from a resource-based policy that names the principal.
   Across accounts both sides must allow. Anything not allowed is denied (implicit deny).

Condition operators in common use are evaluated against a request context (``Request.context``): the String,
Numeric, Date, Bool, Binary, IpAddress and Arn families, ``Null``, the ``...IfExists`` forms, and
``ForAnyValue:``/``ForAllValues:`` over multi-valued keys. Policy variables (``${aws:username}``,
``${aws:PrincipalTag/team, 'default'}``, ``${*}``, ``${?}``, ``${$}``) are substituted from the context in
documents of ``Version`` 2012-10-17; under 2008-10-17 (the default when ``Version`` is missing) they are text.

Not modelled: AWS Organizations policies (SCPs, RCPs), access control lists, VPC endpoint policies, and the
service-specific exceptions some services document.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

SOURCES = {
    "evaluation": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html",
    "cross-account": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html",
    "grammar": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html",
    "version": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_version.html",
    "action": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html",
    "resource": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html",
    "principal": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html",
    "condition": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html",
    "multivalued": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html",
    "variables": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html",
    "effect": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_effect.html",
    "sid": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_sid.html",
    "notaction": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html",
    "notresource": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notresource.html",
    "notprincipal": "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html",
}
SOURCES_READ = "2026-11-30"
VERSIONS = ("2012-10-17", "2008-10-17")
DEFAULT_VERSION = "2008-10-17"  # what IAM assumes when a document has no Version
TOP_KEYS = ("Version", "Id", "Statement")
STATEMENT_KEYS = ("Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource",
                  "Condition")
PRINCIPAL_KINDS = ("AWS", "Service", "Federated", "CanonicalUser")
OPERATORS = {  # base name -> (family, negated)
    "StringEquals": ("string", False), "StringNotEquals": ("string", True),
    "StringEqualsIgnoreCase": ("string-ci", False), "StringNotEqualsIgnoreCase": ("string-ci", True),
    "StringLike": ("string-like", False), "StringNotLike": ("string-like", True),
    "NumericEquals": ("numeric=", False), "NumericNotEquals": ("numeric=", True),
    "NumericLessThan": ("numeric<", False), "NumericLessThanEquals": ("numeric<=", False),
    "NumericGreaterThan": ("numeric>", False), "NumericGreaterThanEquals": ("numeric>=", False),
    "DateEquals": ("date=", False), "DateNotEquals": ("date=", True),
    "DateLessThan": ("date<", False), "DateLessThanEquals": ("date<=", False),
    "DateGreaterThan": ("date>", False), "DateGreaterThanEquals": ("date>=", False),
    "Bool": ("bool", False), "BinaryEquals": ("binary", False),
    "IpAddress": ("ip", False), "NotIpAddress": ("ip", True),
    "ArnEquals": ("arn", False), "ArnLike": ("arn", False), "ArnNotEquals": ("arn", True), "ArnNotLike": ("arn", True),
    "Null": ("null", False),
}
_ACTION = re.compile(r"[A-Za-z0-9-]+:[A-Za-z0-9*?]+")
_SID = re.compile(r"[A-Za-z0-9]*")
_ACCOUNT = re.compile(r"\d{12}")


class PolicyError(ValueError):
    """A policy document IAM would refuse as malformed; the message names the policy, statement and element."""

    def __init__(self, policy: str, problem: str, statement: str | None = None, element: str | None = None):
        self.policy, self.statement, self.element, self.problem = policy, statement, element, problem
        where = f"policy {policy!r}" + (f", statement {statement}" if statement else "") + (
            f", element {element}" if element else "")
        super().__init__(f"MalformedPolicyDocument ({where}): {problem}")


# --- patterns: literal text, the wildcards * and ?, and policy variables -----------------------------------

@dataclass(frozen=True)
class _Var:
    key: str
    default: str | None


def _tokens(text: str, variables: bool) -> tuple:
    """``text`` as a tuple of literal strings, ``"*"``/``"?"`` wildcard markers (as the objects ANY, ONE) and
    policy variables. ``${*}``, ``${?}`` and ``${$}`` are the literal characters."""
    out: list = []
    i = 0
    while i < len(text):
        if variables and text.startswith("${", i):
            end = text.find("}", i)
            if end < 0:
                raise ValueError(f"unterminated policy variable in {text!r}")
            body = text[i + 2:end].strip()
            if body in ("*", "?", "$"):
                out.append(body)
            else:
                key, _, default = body.partition(",")
                default = default.strip()
                if default and not (len(default) >= 2 and default[0] == default[-1] == "'"):
                    raise ValueError(f"a policy variable's default value is written in single quotes: {text!r}")
                if not key.strip():
                    raise ValueError(f"empty policy variable in {text!r}")
                out.append(_Var(key.strip(), default[1:-1] if default else None))
            i = end + 1
        else:
            out.append(ANY if text[i] == "*" else ONE if text[i] == "?" else text[i])
            i += 1
    return tuple(out)


ANY, ONE = object(), object()
_MISSING = object()


def _body(tokens: tuple, context: dict[str, Any], within_part: bool = False) -> str | None:
    """The tokens as the body of a regular expression, variables filled in from ``context``; None when a
    variable's key is absent and has no default (AWS then treats the element as not matching).

    ``within_part``: an ARN part other than the resource, where a wildcard stays inside the part, except a ``*``
    at the part's end, which may run on across colons (AWS's Resource element rule)."""
    parts = []
    for index, token in enumerate(tokens):
        if token is ANY:
            parts.append("[^:]*" if within_part and index < len(tokens) - 1 else ".*")
        elif token is ONE:
            parts.append("[^:]" if within_part else ".")
        elif isinstance(token, _Var):
            value = context.get(token.key.lower(), _MISSING)
            if value is _MISSING or isinstance(value, list):
                if token.default is None:
                    return None
                value = token.default
            parts.append(re.escape(_text(value)))
        else:
            parts.append(re.escape(token))
    return "".join(parts)


def _regex(tokens: tuple, context: dict[str, Any], ignore_case: bool = False) -> re.Pattern[str] | None:
    body = _body(tokens, context)
    return None if body is None else _compile(body, ignore_case)


@lru_cache(maxsize=4096)
def _compile(body: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def matches(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM wildcard matching on one string: ``*`` any run of characters, ``?`` one character, the whole value."""
    return _regex(_tokens(pattern, False), {}, ignore_case).fullmatch(value) is not None


def _split_arn(tokens: tuple) -> list[tuple] | None:
    """Split ARN tokens on literal colons into the six parts; the sixth keeps any further colons."""
    parts: list[list] = [[]]
    for token in tokens:
        if token == ":" and len(parts) < 6:
            parts.append([])
        else:
            parts[-1].append(token)
    return [tuple(part) for part in parts] if len(parts) == 6 else None


def arn_matches(pattern: str, arn: str, context: dict[str, Any] | None = None, variables: bool = True,
                resource_element: bool = False) -> bool:
    """Whether ARN ``pattern`` matches ``arn`` as AWS matches them, part by part (partition, service, region,
    account, resource). ``ArnLike`` keeps every wildcard inside its part; in the ``Resource`` element
    (``resource_element=True``) a ``*`` that ends a part may run on across colons."""
    return _arn_match(_tokens(pattern, variables), arn, {k.lower(): v for k, v in (context or {}).items()},
                      resource_element)


def _arn_match(tokens: tuple, arn: str, context: dict[str, Any], resource_element: bool = False) -> bool:
    if tokens == (ANY,):
        return True
    wanted = _split_arn(tokens)
    if wanted is None:
        return False
    if resource_element:
        bodies = [_body(part, context, within_part=i < 5) for i, part in enumerate(wanted)]
        return None not in bodies and _compile(":".join(bodies), False).fullmatch(arn) is not None
    given = arn.split(":", 5)
    if len(given) != 6:
        return False
    for part, value in zip(wanted, given, strict=True):
        regex = _regex(part, context)
        if regex is None or regex.fullmatch(value) is None:
            return False
    return True


def action_matches(pattern: str, action: str) -> bool:
    """``service:name`` patterns: the service prefix exactly, the name with wildcards, both case-insensitive."""
    if pattern == "*":
        return True
    service, _, name = pattern.partition(":")
    given_service, _, given_name = action.partition(":")
    return service.lower() == given_service.lower() and matches(name, given_name, ignore_case=True)


# --- parsing and validation ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Condition:
    operator: str  # as written, e.g. "ForAnyValue:StringLikeIfExists"
    base: str  # e.g. "StringLike"
    qualifier: str | None  # "ForAnyValue", "ForAllValues" or None
    if_exists: bool
    key: str
    values: tuple[Any, ...]
    tokens: tuple[tuple, ...]  # the values as patterns, for the string and ARN families

    def __str__(self) -> str:
        shown = self.values[0] if len(self.values) == 1 else list(self.values)
        return f"{self.operator} {self.key} {json.dumps(shown)}"


@dataclass(frozen=True)
class Statement:
    policy: str
    sid: str  # the Sid, or "#n" for the n-th statement without one
    effect: str
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[tuple, ...]  # tokenised patterns; empty when there is no Resource (a role's trust policy)
    not_resource: bool
    principals: dict[str, tuple[str, ...]] | None  # resource-based policies only; {"*": ("*",)} for everyone
    not_principal: bool
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Policy:
    name: str
    kind: str  # "identity" or "resource"
    version: str
    statements: tuple[Statement, ...]


def _listed(value: Any, policy: str, sid: str, element: str) -> tuple:
    items = (value,) if isinstance(value, (str, int, float, bool)) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise PolicyError(policy, "must be a string or a non-empty list of strings", sid, element)
    return tuple(items)


def parse(document: dict | str, name: str = "policy", kind: str = "identity") -> Policy:
    """Check ``document`` as IAM does and return it parsed; :class:`PolicyError` says what is wrong and where.

    ``kind`` is "identity" (attached to a user, group or role: no ``Principal``) or "resource" (a bucket policy
    or a role's trust policy: ``Principal`` required)."""
    if kind not in ("identity", "resource"):
        raise ValueError(f"kind must be 'identity' or 'resource', not {kind!r}")
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as error:
            raise PolicyError(name, f"not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(document, dict):
        raise PolicyError(name, "a policy document is a JSON object")
    unknown = sorted(set(document) - set(TOP_KEYS))
    if unknown:
        raise PolicyError(name, f"unknown element {unknown[0]!r} (allowed: {', '.join(TOP_KEYS)})", element=unknown[0])
    version = document.get("Version", DEFAULT_VERSION)
    if version not in VERSIONS:
        raise PolicyError(name, f"Version must be one of {', '.join(VERSIONS)}, not {version!r}", element="Version")
    raw = document.get("Statement")
    if raw is None:
        raise PolicyError(name, "the Statement element is required", element="Statement")
    raw = [raw] if isinstance(raw, dict) else raw
    if not isinstance(raw, list) or not raw or not all(isinstance(s, dict) for s in raw):
        raise PolicyError(name, "Statement must be an object or a non-empty list of objects", element="Statement")
    statements, seen = [], set()
    for index, statement in enumerate(raw):
        parsed = _statement(statement, index, name, kind, version == "2012-10-17")
        if parsed.sid in seen:
            raise PolicyError(name, f"Sid {parsed.sid!r} is used twice; each Sid must be unique in its policy",
                              parsed.sid, "Sid")
        seen.add(parsed.sid)
        statements.append(parsed)
    return Policy(name, kind, version, tuple(statements))


def _statement(statement: dict, index: int, name: str, kind: str, variables: bool) -> Statement:
    sid = statement.get("Sid", f"#{index + 1}")
    label = repr(sid) if "Sid" in statement else sid
    unknown = sorted(set(statement) - set(STATEMENT_KEYS))
    if unknown:
        raise PolicyError(name, f"unknown element {unknown[0]!r} (allowed: {', '.join(STATEMENT_KEYS)})", label,
                          unknown[0])
    if "Sid" in statement and not isinstance(sid, str):
        raise PolicyError(name, "a Sid is a string", label, "Sid")
    if "Sid" in statement and kind == "identity" and not _SID.fullmatch(sid):
        raise PolicyError(name, "a Sid holds only letters A-Z, a-z and digits 0-9", label, "Sid")
    effect = statement.get("Effect")
    if effect not in ("Allow", "Deny"):
        problem = "the Effect element is required" if effect is None else (
            f"Effect must be exactly \"Allow\" or \"Deny\" (case matters), not {json.dumps(effect)}")
        raise PolicyError(name, problem, label, "Effect")
    action_key = _one_of(statement, ("Action", "NotAction"), name, label)
    actions = tuple(str(a) for a in _listed(statement[action_key], name, label, action_key))
    for action in actions:
        if action != "*" and not _ACTION.fullmatch(action):
            hint = " (the service prefix takes no wildcard)" if ":" in action and any(
                c in action.split(":")[0] for c in "*?") else ""
            raise PolicyError(name, f"{action!r} is not an action: write service:ActionName, e.g. s3:GetObject"
                              f"{hint}", label, action_key)
    resource_key = _one_of(statement, ("Resource", "NotResource"), name, label, required=kind == "identity")
    resources = tuple(_resource_pattern(str(text), variables, name, label, resource_key)
                      for text in _listed(statement[resource_key], name, label, resource_key)) if resource_key else ()
    principal_key = _one_of(statement, ("Principal", "NotPrincipal"), name, label, required=kind == "resource")
    if kind == "identity" and principal_key:
        raise PolicyError(name, "an identity-based policy must not name a principal: it applies to whoever it "
                          "is attached to", label, principal_key)
    if principal_key == "NotPrincipal" and effect != "Deny":
        raise PolicyError(name, "NotPrincipal is supported only with \"Effect\": \"Deny\"", label, principal_key)
    principals = _principals(statement[principal_key], name, label, principal_key) if principal_key else None
    conditions = _conditions(statement.get("Condition"), name, label, variables) if "Condition" in statement else ()
    return Statement(name, sid, effect, actions, action_key == "NotAction", resources, resource_key == "NotResource",
                     principals, principal_key == "NotPrincipal", conditions)


def _one_of(statement: dict, keys: tuple[str, str], name: str, label: str, required: bool = True) -> str | None:
    present = [key for key in keys if key in statement]
    if len(present) == 2:
        raise PolicyError(name, f"use {keys[0]} or {keys[1]}, not both", label, keys[1])
    if not present and required:
        raise PolicyError(name, f"the statement needs {keys[0]} (or {keys[1]})", label, keys[0])
    return present[0] if present else None


def _resource_pattern(text: str, variables: bool, name: str, label: str, element: str) -> tuple:
    try:
        tokens = _tokens(text, variables)
    except ValueError as error:
        raise PolicyError(name, str(error), label, element) from None
    if tokens == (ANY,):
        return tokens
    parts = _split_arn(tokens)
    if parts is None or parts[0] != tuple("arn"):
        raise PolicyError(name, f"{text!r} is not an ARN: arn:partition:service:region:account:resource, six parts "
                          "separated by colons (a wildcard stays inside its part)", label, element)
    if not parts[2] or any(t is ANY or t is ONE or isinstance(t, _Var) for t in parts[2]):
        raise PolicyError(name, f"{text!r}: the service part of an ARN must be written out, without wildcards",
                          label, element)
    return tokens


def _principals(value: Any, name: str, label: str, element: str) -> dict[str, tuple[str, ...]]:
    if value == "*":
        return {"*": ("*",)}
    if not isinstance(value, dict) or not value:
        raise PolicyError(name, "Principal is \"*\" or an object such as {\"AWS\": \"arn:aws:iam::123456789012:root\"}",
                          label, element)
    found = {}
    for kind, names in value.items():
        if kind not in PRINCIPAL_KINDS:
            raise PolicyError(name, f"unknown principal type {kind!r} (allowed: {', '.join(PRINCIPAL_KINDS)})",
                              label, element)
        listed = tuple(str(n) for n in _listed(names, name, label, element))
        for one in listed:
            if one != "*" and ("*" in one or "?" in one):
                raise PolicyError(name, f"{one!r}: a principal is named in full; a wildcard may only stand alone "
                                  "(\"*\", everyone)", label, element)
            if kind == "AWS" and one != "*" and not (_ACCOUNT.fullmatch(one) or one.startswith("arn:")):
                raise PolicyError(name, f"{one!r} is neither an account ID (12 digits) nor an ARN", label, element)
        found[kind] = listed
    return found


def _conditions(value: Any, name: str, label: str, variables: bool) -> tuple[Condition, ...]:
    if not isinstance(value, dict) or not value:
        raise PolicyError(name, "Condition is an object: {operator: {key: value or [values]}}", label, "Condition")
    found = []
    for operator, keys in value.items():
        qualifier, _, base = operator.rpartition(":")
        if qualifier not in ("", "ForAnyValue", "ForAllValues"):
            raise PolicyError(name, f"unknown set operator {qualifier!r} (ForAnyValue or ForAllValues)", label,
                              f"Condition/{operator}")
        if_exists = base.endswith("IfExists") and base != "IfExists"
        base = base.removesuffix("IfExists") if if_exists else base
        if base not in OPERATORS or (base == "Null" and (if_exists or qualifier)):
            raise PolicyError(name, f"unknown condition operator {operator!r}", label, f"Condition/{operator}")
        if not isinstance(keys, dict) or not keys:
            raise PolicyError(name, "an operator takes an object of condition keys", label, f"Condition/{operator}")
        for key, values in keys.items():
            where = f"Condition/{operator}/{key}"
            listed = _listed(values, name, label, where)
            if any(not isinstance(v, (str, int, float, bool)) for v in listed):
                raise PolicyError(name, "condition values are strings, numbers or booleans", label, where)
            family = OPERATORS[base][0]
            try:
                if family.startswith("string") or family == "arn":
                    tokens = tuple(_tokens(_text(v), variables) for v in listed)
                else:
                    tokens = ()
                    for v in listed:
                        _policy_value(family, v)
            except ValueError as error:
                raise PolicyError(name, str(error), label, where) from None
            found.append(Condition(operator, base, qualifier or None, if_exists, key, listed, tokens))
    return tuple(found)


def _policy_value(family: str, value: Any) -> Any:
    """A policy's condition value in the operator's type; ValueError when it has none."""
    if family.startswith("numeric"):
        return float(value)
    if family.startswith("date"):
        return _date(value)
    if family in ("bool", "null"):
        if _text(value).lower() not in ("true", "false"):
            raise ValueError(f"{family} takes true or false, not {value!r}")
        return _text(value).lower() == "true"
    if family == "ip":
        return ipaddress.ip_network(str(value), strict=False)
    if family == "binary":
        return base64.b64decode(str(value), validate=True)
    return value


def _date(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool) or str(value).isdigit():
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


# --- the request and its context -------------------------------------------------------------------------

@dataclass(frozen=True)
class Principal:
    """Who makes the request: an IAM user (``arn:aws:iam::ACCOUNT:user/NAME``), a role session
    (``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION``) or an account's root user (``...:root``)."""

    arn: str
    tags: dict[str, str] = field(default_factory=dict)
    user_id: str | None = None  # aws:userid: AIDA... for a user, ROLEID:SESSION for a role session

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]

    @property
    def kind(self) -> str:
        resource = self.arn.split(":", 5)[5]
        if resource == "root":
            return "Account"
        return {"user": "User", "assumed-role": "AssumedRole", "role": "Role"}.get(resource.split("/")[0], "Other")

    @property
    def role_arn(self) -> str | None:
        """For a role session, the role's own ARN (what aws:PrincipalArn holds)."""
        if self.kind != "AssumedRole":
            return None
        role = self.arn.split(":", 5)[5].split("/")[1]
        return f"arn:aws:iam::{self.account}:role/{role}"

    def context(self) -> dict[str, Any]:
        """The global condition keys AWS fills in for this principal."""
        found: dict[str, Any] = {"aws:PrincipalArn": self.role_arn or self.arn, "aws:PrincipalAccount": self.account,
                                 "aws:PrincipalType": self.kind}
        if self.kind == "User":
            found["aws:username"] = self.arn.rsplit("/", 1)[1]
        if self.user_id:
            found["aws:userid"] = self.user_id
        for key, value in self.tags.items():
            found[f"aws:PrincipalTag/{key}"] = value
        return found


@dataclass(frozen=True)
class Request:
    """One request: the action, the resource's ARN, who asks, and the rest of its context (condition keys such as
    ``aws:SourceIp``, ``aws:SecureTransport``, ``aws:CurrentTime``, ``s3:prefix``; a list for a multi-valued key)."""

    action: str
    resource: str
    principal: Principal | None = None
    context: dict[str, Any] = field(default_factory=dict)

    def keys(self) -> dict[str, Any]:
        """The whole request context, key names lower-cased (condition key names are case-insensitive)."""
        merged = dict(self.principal.context()) if self.principal else {}
        merged.update(self.context)
        return {key.lower(): value for key, value in merged.items()}


# --- evaluating a statement --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Match:
    """How one statement met a request: whether it applies, and if not, why (the first thing that failed)."""

    statement: Statement
    applies: bool
    why: str  # "applies", or what did not match
    named_as: str | None = None  # resource-based policies: how the principal was named

    @property
    def where(self) -> str:
        return f"statement {self.statement.sid!r} of {self.statement.policy!r}"


def _check(statement: Statement, request: Request, keys: dict[str, Any]) -> Match:
    hit = any(action_matches(a, request.action) for a in statement.actions)
    if hit == statement.not_action:
        where = "excluded by NotAction" if hit else "not in Action"
        return Match(statement, False, f"the action {request.action} is {where}")
    if statement.resources:
        hit = any(_arn_match(tokens, request.resource, keys, True) for tokens in statement.resources)
        if hit == statement.not_resource:
            return Match(statement, False, f"the resource is {'excluded by NotResource' if hit else 'not in Resource'}")
    named_as = None
    if statement.principals is not None:
        named_as = _principal_named(statement.principals, request.principal)
        if (named_as is not None) == statement.not_principal:
            return Match(statement, False, "the principal is " + (
                "excluded by NotPrincipal" if named_as else "not named in Principal"))
        named_as = named_as or "everyone but those in NotPrincipal"
    for condition in statement.conditions:
        held, seen = _condition_holds(condition, keys)
        if not held:
            return Match(statement, False, f"its condition {condition} is false: the request has {seen}", named_as)
    return Match(statement, True, "applies", named_as)


NAMED = {"principal": "by its own ARN", "role": "by its role's ARN", "account": "by its account",
         "everyone": "as everyone (\"*\")", "everyone but those in NotPrincipal": "by leaving it out of NotPrincipal"}


def _principal_named(principals: dict[str, tuple[str, ...]], principal: Principal | None) -> str | None:
    """How ``principals`` name the requester: "principal" (its own ARN), "role" (the role of a session),
    "account" (its account), "everyone" ("*"), or None."""
    if "*" in principals or "*" in principals.get("AWS", ()):
        return "everyone"
    if principal is None:
        return None
    for name in principals.get("AWS", ()):
        if name == principal.arn:
            return "principal"
        if name == principal.role_arn:
            return "role"
        if name in (principal.account, f"arn:aws:iam::{principal.account}:root"):
            return "account"
    return None


def _condition_holds(condition: Condition, keys: dict[str, Any]) -> tuple[bool, str]:
    """Whether a condition holds, and the value it saw (for the explanation)."""
    family, negated = OPERATORS[condition.base]
    present = condition.key.lower() in keys
    value = keys.get(condition.key.lower())
    seen = f"{condition.key} = {json.dumps(value, default=_text)}" if present else f"no {condition.key}"
    if family == "null":
        return (not present) == _policy_value("null", condition.values[0]), seen
    values = value if isinstance(value, list) else [value] if present else []
    if not values:  # the key is absent (or an empty set)
        if condition.qualifier == "ForAllValues" or condition.if_exists:
            return True, seen
        if condition.qualifier == "ForAnyValue":
            return False, seen
        return negated, seen  # a negated operator finds nothing to match, so it holds
    outcomes = [_one_value(condition, family, negated, one, keys) for one in values]
    if condition.qualifier == "ForAllValues":
        return all(outcomes), seen
    return any(outcomes), seen


def _one_value(condition: Condition, family: str, negated: bool, value: Any, keys: dict[str, Any]) -> bool:
    """Whether one request value satisfies the operator: any policy value matches (or, negated, none does)."""
    if family == "arn":
        hit = any(_arn_match(tokens, _text(value), keys) for tokens in condition.tokens)
    elif family.startswith("string"):
        hit = False
        for tokens in condition.tokens:
            if family != "string-like":  # no wildcards: * and ? are plain characters here
                tokens = tuple("*" if t is ANY else "?" if t is ONE else t for t in tokens)
            regex = _regex(tokens, keys, ignore_case=family == "string-ci")
            hit = hit or (regex is not None and regex.fullmatch(_text(value)) is not None)
    else:
        try:
            hit = any(_compare(family, _request_value(family, value), _policy_value(family, v))
                      for v in condition.values)
        except (ValueError, TypeError):
            hit = False  # a request value of the wrong type matches nothing
    return hit != negated


def _request_value(family: str, value: Any) -> Any:
    if family == "ip":
        return ipaddress.ip_address(str(value))
    if family == "binary":
        return base64.b64decode(str(value), validate=True)
    return _policy_value(family, value)


def _compare(family: str, given: Any, wanted: Any) -> bool:
    if family == "ip":
        return given.version == wanted.version and given in wanted
    operator = family.removeprefix("numeric").removeprefix("date")
    if family in ("bool", "binary"):
        operator = "="
    return {"=": given == wanted, "<": given < wanted, "<=": given <= wanted, ">": given > wanted,
            ">=": given >= wanted}[operator]


# --- the decision ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str  # "explicit deny", "allowed", "implicit deny"
    policy: str | None = None  # the statement that decided (for an allow, the first one needed)
    statement: str | None = None
    reasons: tuple[str, ...] = ()  # every statement that mattered, and what was missing
    near_misses: tuple[str, ...] = ()  # statements that matched the action and resource but failed a condition

    def __str__(self) -> str:
        if self.rule == "implicit deny":
            return "DENIED: no statement allows it (implicit deny)" if not self.reasons else (
                f"DENIED: implicit deny: {self.reasons[0]}")
        verb = "ALLOWED" if self.allowed else "DENIED"
        return f"{verb}: {self.rule} by statement {self.statement!r} of policy {self.policy!r}"

    def explain(self) -> str:
        """Every line of the reasoning: the deciding statements, what each side lacked, the conditions that failed."""
        shown = self.reasons[1:] if self.rule == "implicit deny" else self.reasons
        return "\n".join([str(self), *(f"  - {r}" for r in shown),
                          *(f"  - not applied: {m}" for m in self.near_misses)])


def _parse_all(policies: dict[str, dict | str] | None, kind: str) -> list[Policy]:
    return [parse(document, name, kind) for name, document in (policies or {}).items()]


def decide(policies: dict[str, dict | str], action: str, resource: str, *, principal: Principal | str | None = None,
           context: dict[str, Any] | None = None, resource_policies: dict[str, dict | str] | None = None,
           resource_account: str | None = None, boundary: dict[str, dict | str] | None = None,
           session_policies: dict[str, dict | str] | None = None) -> Decision:
    """Whether a request is allowed, and why.

    ``policies`` are the principal's identity-based policies ({name: document}); ``resource_policies`` those on
    the resource (a bucket policy), which need a ``principal``; ``resource_account`` owns the resource (default:
    the principal's account); ``boundary`` is the permissions boundary and ``session_policies`` the policies
    passed when a role session was made: each, when given, limits what the identity policies allow.
    """
    if isinstance(principal, str):
        principal = Principal(principal)
    identity, boundaries = _parse_all(policies, "identity"), _parse_all(boundary, "identity")
    sessions, on_resource = _parse_all(session_policies, "identity"), _parse_all(resource_policies, "resource")
    if on_resource and principal is None:
        raise ValueError("a resource-based policy names principals: give decide() the principal making the request")
    request = Request(action, resource, principal, dict(context or {}))
    keys = request.keys()
    sides = {"identity": identity, "boundary": boundaries, "session": sessions, "resource": on_resource}
    checked = {side: [_check(s, request, keys) for p in found for s in p.statements] for side, found in sides.items()}
    every = [m for side in checked.values() for m in side]
    near = tuple(f"{m.where} ({m.statement.effect}): {m.why}" for m in every
                 if not m.applies and m.why.startswith("its condition"))
    denies = [m for m in every if m.applies and m.statement.effect == "Deny"]
    if denies:
        first = denies[0]
        return Decision(False, "explicit deny", first.statement.policy, first.statement.sid,
                        tuple(f"Deny by {m.where}" for m in denies), near)
    allows = {side: [m for m in found if m.applies and m.statement.effect == "Allow"]
              for side, found in checked.items()}
    missing = []
    if not allows["identity"]:
        missing.append("no identity-based policy allows it")
    if boundaries and not allows["boundary"]:
        missing.append("the permissions boundary does not allow it")
    if sessions and not allows["session"]:
        missing.append("no session policy allows it")
    identity_side = not missing
    cross = principal is not None and resource_account is not None and resource_account != principal.account
    granted = allows["resource"]
    used: list[Match] = []
    if cross:
        if granted and identity_side:
            used = [*allows["identity"], *allows["boundary"], *allows["session"], granted[0]]
        elif not granted:
            missing.append(f"the resource belongs to account {resource_account}: its resource-based policy must "
                           "allow it too, and none does")
        else:
            missing.append(f"{granted[0].where} allows it, but across accounts the principal's own account must "
                           "allow it too")
    else:
        direct = [m for m in granted if m.named_as in ("principal", "everyone")]
        via_role = [m for m in granted if m.named_as == "role"]
        limits_ok = (not boundaries or allows["boundary"]) and (not sessions or allows["session"])
        if direct:
            used = [direct[0]]
        elif via_role and limits_ok:
            used = [via_role[0], *allows["boundary"], *allows["session"]]
        elif identity_side:
            used = [*allows["identity"], *allows["boundary"], *allows["session"]]
    if used:
        reasons = tuple(f"Allow by {m.where}" + (f" (naming the principal {NAMED[m.named_as]})" if m.named_as else "")
                        for m in used)
        return Decision(True, "allowed", used[0].statement.policy, used[0].statement.sid, reasons, near)
    if not near and not any(m.applies for m in every):
        missing = []  # nothing applied at all: the plain implicit deny
    return Decision(False, "implicit deny", None, None, tuple(missing), near)
