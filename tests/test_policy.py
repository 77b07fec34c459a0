"""helpers.policy against AWS's documented evaluation logic: table tests transcribed from the IAM User Guide
(each case names its page, a key of ``policy.SOURCES``), and agreement with moto's enforcement on random
policies, where the differences the documentation explains are recorded rather than failed."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from helpers import aws, policy

BUCKET = "policy-lab"
V = "2012-10-17"
READ_LAB2 = {"Version": V, "Statement": [
    {"Sid": "ReadLab2", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/lab2/*"}]}
NO_SECRETS = {"Version": V, "Statement": [
    {"Sid": "NoSecrets", "Effect": "Deny", "Action": "s3:*", "Resource": f"arn:aws:s3:::{BUCKET}/secret*"}]}
EVERYTHING = {"Version": V, "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
ALICE = policy.Principal("arn:aws:iam::111122223333:user/alice", tags={"team": "yellow"}, user_id="AIDAEXAMPLEALICE")


def doc(*statements: dict, version: str | None = V) -> dict:
    return {"Statement": list(statements)} | ({"Version": version} if version else {})


def allow(action="s3:*", resource="*", **more) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **more}


def test_every_cited_page_is_a_source():
    cited = {case[0] for table in (INVALID, ACTIONS_TABLE, RESOURCES_TABLE, CONDITIONS, VARIABLES, EVALUATION)
             for case in table}
    assert cited <= set(policy.SOURCES), cited - set(policy.SOURCES)
    assert all(url.startswith("https://docs.aws.amazon.com/IAM/latest/UserGuide/") for url in policy.SOURCES.values())


def test_the_three_rules_and_the_deciding_statement():
    read = policy.decide({"read": READ_LAB2}, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/lab2/users.json")
    assert read.allowed and read.statement == "ReadLab2"
    assert str(policy.decide({"read": READ_LAB2}, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/lab2/x")) == (
        "DENIED: no statement allows it (implicit deny)")
    secret = f"arn:aws:s3:::{BUCKET}/secret.json"
    denied = policy.decide({"all": EVERYTHING, "guard": NO_SECRETS}, "s3:GetObject", secret)
    assert not denied.allowed and denied.rule == "explicit deny" and denied.policy == "guard"


def test_wildcards_and_not_action():
    assert policy.matches("s3:Get*", "S3:GETOBJECT", ignore_case=True)
    assert policy.matches("arn:aws:s3:::b/lab?/*", "arn:aws:s3:::b/lab2/x")
    assert not policy.matches("arn:aws:s3:::b/lab2/*", "arn:aws:s3:::B/lab2/x")
    not_put = {"Statement": [{"Effect": "Allow", "NotAction": "s3:Put*", "Resource": "*"}]}
    assert policy.decide({"p": not_put}, "s3:GetObject", "arn:aws:s3:::b/k").allowed
    assert not policy.decide({"p": not_put}, "s3:PutObject", "arn:aws:s3:::b/k").allowed


# --- 1. validation: documents IAM refuses are refused, naming the statement and element ------------------------

INVALID = [  # (page, what, document, kind, element named, IAM also refuses it in moto's copy of its validator)
    ("effect", "Effect in lower case", doc({"Effect": "allow", "Action": "s3:*", "Resource": "*"}),
     "identity", "Effect", True),
    ("grammar", "no Action or NotAction", doc({"Effect": "Allow", "Resource": "*"}), "identity", "Action", True),
    ("grammar", "no Resource in an identity policy", doc({"Effect": "Allow", "Action": "s3:*"}), "identity",
     "Resource", True),
    ("grammar", "Action and NotAction together", doc(allow(NotAction="s3:Get*")), "identity", "NotAction", True),
    ("action", "an action without its service prefix", doc(allow("GetObject")), "identity", "Action", True),
    ("action", "a wildcard in the service prefix", doc(allow("*:GetBucket")), "identity", "Action", False),
    ("resource", "an ARN with fewer than six parts", doc(allow(resource="arn:aws:s3")), "identity", "Resource", True),
    ("resource", "a wildcard in the ARN's service part", doc(allow(resource="arn:aws:s*:::b")), "identity",
     "Resource", False),
    ("version", "a Version IAM does not know", doc(allow(), version="2012-10-18"), "identity", "Version", True),
    ("grammar", "a Principal in an identity policy", doc(allow(Principal="*")), "identity", "Principal", False),
    ("condition", "an unknown condition operator", doc(allow(Condition={"StringEqual": {"aws:username": "a"}})),
     "identity", "Condition/StringEqual", True),
    ("sid", "the same Sid twice", doc(allow(Sid="A"), {"Sid": "A", "Effect": "Deny", "Action": "s3:*",
                                                      "Resource": "*"}), "identity", "Sid", True),
    ("sid", "a Sid with a space", doc(allow(Sid="read all")), "identity", "Sid", False),
    ("grammar", "an element IAM does not know", doc(allow(Effects="Allow")), "identity", "Effects", True),
    ("grammar", "no Statement", {"Version": V}, "identity", "Statement", True),
    ("grammar", "no Principal in a bucket policy", doc(allow(resource="arn:aws:s3:::b/*")), "resource",
     "Principal", None),
    ("principal", "a wildcard inside a principal's ARN", doc(allow(resource="arn:aws:s3:::b/*", Principal={
        "AWS": "arn:aws:iam::111122223333:user/*"})), "resource", "Principal", None),
    ("notprincipal", "NotPrincipal with Allow", doc(allow(resource="arn:aws:s3:::b/*", NotPrincipal={
        "AWS": "111122223333"})), "resource", "NotPrincipal", None),
    ("condition", "a date that is not a date", doc(allow(Condition={"DateLessThan": {"aws:CurrentTime": "soon"}})),
     "identity", "Condition/DateLessThan/aws:CurrentTime", None),
]
MOTO_ACCEPTS = set()  # filled by the test below: the invalid documents moto's validator lets through


@pytest.mark.parametrize(("page", "what", "document", "kind", "element", "iam_refuses"), INVALID,
                         ids=[case[1] for case in INVALID])
def test_a_malformed_document_is_refused_naming_statement_and_element(page, what, document, kind, element,
                                                                      iam_refuses):
    with pytest.raises(policy.PolicyError) as refused:
        policy.parse(document, "p", kind)
    assert refused.value.element == element and str(refused.value).startswith("MalformedPolicyDocument (policy 'p'")
    with pytest.raises(policy.PolicyError):  # never evaluated either
        policy.decide({"p": document}, "s3:GetObject", "arn:aws:s3:::b/k") if kind == "identity" else \
            policy.decide({}, "s3:GetObject", "arn:aws:s3:::b/k", principal=ALICE, resource_policies={"p": document})


def test_moto_refuses_the_same_documents_except_where_its_validator_is_looser():
    """moto copies IAM's validator for identity policies; it lets four of these documents through, which the
    IAM documentation rules out (recorded here, and said in 02.2)."""
    looser = []
    with aws.use("moto"):
        iam = boto3.client("iam")
        iam.create_user(UserName="validator")
        for _, what, document, kind, _, _ in INVALID:
            if kind != "identity":
                continue
            try:
                iam.put_user_policy(UserName="validator", PolicyName="p", PolicyDocument=json.dumps(document))
                looser.append(what)
            except ClientError as error:
                assert error.response["Error"]["Code"] == "MalformedPolicyDocument"
    assert looser == [what for _, what, _, kind, _, refuses in INVALID if kind == "identity" and refuses is False]


# --- 2. matching actions and ARNs as documented ------------------------------------------------------------

ACTIONS_TABLE = [  # (page, pattern, action, matches)
    ("action", "iam:ListAccessKeys", "IAM:listaccesskeys", True),
    ("action", "s3:*", "s3:PutObject", True),
    ("action", "iam:*AccessKey*", "iam:CreateAccessKey", True),
    ("action", "iam:*AccessKey*", "iam:ListUsers", False),
    ("action", "s3:Get*", "s3express:GetObject", False),
    ("action", "*", "ec2:RunInstances", True),
    ("action", "s3:Get?bject", "s3:GetObject", True),
]


@pytest.mark.parametrize(("page", "pattern", "action", "expected"), ACTIONS_TABLE)
def test_actions_match_case_insensitively_with_wildcards_only_in_the_name(page, pattern, action, expected):
    assert policy.action_matches(pattern, action) is expected


RESOURCES_TABLE = [  # (page, pattern, arn, in the Resource element, matches)
    ("resource", "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*", "arn:aws:s3:::amzn-s3-demo-bucket/1/2/test/3/object.jpg",
     True, True),
    ("resource", "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*", "arn:aws:s3:::amzn-s3-demo-bucket/1///test///object.jpg",
     True, True),
    ("resource", "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*", "arn:aws:s3:::amzn-s3-demo-bucket//test/object.jpg",
     True, True),
    ("resource", "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*", "arn:aws:s3:::amzn-s3-demo-bucket/1/test/", True, True),
    ("resource", "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*", "arn:aws:s3:::amzn-s3-demo-bucket/1-test/object.jpg",
     True, False),
    ("resource", "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*", "arn:aws:s3:::amzn-s3-demo-bucket/test/object.jpg",
     True, False),
    ("resource", "arn:aws:s3:::amzn-s3-demo-bucket/*/test/*", "arn:aws:s3:::amzn-s3-demo-bucket/1/2/test.jpg",
     True, False),
    ("resource", "arn:aws:iam::123456789012:user/Bob", "arn:aws:iam::123456789012:user/bob", True, False),
    ("resource", "arn:aws:s3:::*", "arn:aws:ec2:us-east-1:123456789012:instance/i-1", True, False),
    # ArnLike: each of the six parts on its own, so the first * covers only the region
    ("condition", "arn:aws:someservice:*:111122223333:finance/*",
     "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt", False, False),
    # the Resource element: a * that ends a part may run on across the colons
    ("resource", "arn:aws:someservice:*:111122223333:finance/*",
     "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt", True, True),
    ("resource", "arn:aws:ec2:us-*-1:123456789012:instance/*", "arn:aws:ec2:us-east-1:123456789012:instance/i-1",
     True, True),
    ("resource", "arn:aws:ec2:us*1:123456789012:instance/*", "arn:aws:ec2:us:1:123456789012:instance/i-1",
     True, False),  # a * inside a part (not at its end) stays inside it
]


@pytest.mark.parametrize(("page", "pattern", "arn", "resource_element", "expected"), RESOURCES_TABLE)
def test_arns_match_part_by_part(page, pattern, arn, resource_element, expected):
    assert policy.arn_matches(pattern, arn, resource_element=resource_element) is expected


# --- 3. conditions, against a request context ----------------------------------------------------------------

def _holds(condition: dict, context: dict, effect: str = "Allow") -> bool:
    """Whether a statement with ``condition`` applies to a request with ``context``."""
    statement = {"Effect": effect, "Action": "s3:GetObject", "Resource": "*", "Condition": condition}
    decision = policy.decide({"p": doc(statement)}, "s3:GetObject", "arn:aws:s3:::b/k", context=context)
    return decision.allowed if effect == "Allow" else decision.rule == "explicit deny"


CONDITIONS = [  # (page, condition, request context, the statement applies)
    ("condition", {"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}},
     {"aws:PrincipalTag/job-category": "iamuser-admin"}, True),
    ("condition", {"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}},
     {"aws:PrincipalTag/job-category": "IAMUSER-ADMIN"}, False),
    ("condition", {"StringEqualsIgnoreCase": {"aws:PrincipalTag/job-category": "iamuser-admin"}},
     {"aws:PrincipalTag/job-category": "IAMUSER-ADMIN"}, True),
    ("condition", {"StringEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}}, {}, False),
    ("condition", {"StringNotEquals": {"aws:PrincipalTag/job-category": "iamuser-admin"}}, {}, True),
    ("condition", {"StringNotLike": {"s3:prefix": ["home/*", "public/*"]}}, {"s3:prefix": "home/alice/"}, False),
    ("condition", {"StringNotLike": {"s3:prefix": ["home/*", "public/*"]}}, {"s3:prefix": "grades/"}, True),
    ("condition", {"StringLike": {"s3:prefix": ["home/*", "public/*"]}}, {"s3:prefix": "public/x"}, True),
    ("condition", {"StringEquals": {"s3:prefix": "home/*"}}, {"s3:prefix": "home/alice"}, False),
    ("condition", {"StringEquals": {"AWS:SourceVpc": "vpc-1"}}, {"aws:sourcevpc": "vpc-1"}, True),
    ("condition", {"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}, True),
    ("condition", {"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "11"}, False),
    ("condition", {"DateGreaterThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}},
     {"aws:CurrentTime": "2026-11-30T12:00:00Z"}, True),
    ("condition", {"DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}},
     {"aws:CurrentTime": "2026-11-30T12:00:00Z"}, False),
    ("condition", {"DateLessThan": {"aws:EpochTime": "1767225600"}}, {"aws:EpochTime": 1764504000}, True),
    ("condition", {"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True}, True),
    ("condition", {"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": False}, False),
    ("condition", {"Bool": {"aws:SecureTransport": "false"}}, {}, False),
    ("condition", {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, {"aws:SourceIp": "203.0.113.77"}, True),
    ("condition", {"IpAddress": {"aws:SourceIp": "203.0.113.5"}}, {"aws:SourceIp": "203.0.113.6"}, False),
    ("condition", {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]}},
     {"aws:SourceIp": "198.51.100.1"}, True),
    ("condition", {"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}, {"aws:SourceIp": "2001:db8::1"}, True),
    ("condition", {"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:topic-*"}},
     {"aws:SourceArn": "arn:aws:sns:eu-west-1:123456789012:topic-a"}, True),
    ("condition", {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:*:123456789012:topic-*"}},
     {"aws:SourceArn": "arn:aws:sns:eu-west-1:123456789012:topic-a"}, True),
    ("condition", {"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"}}, {}, True),
    ("condition", {"BinaryEquals": {"key": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}, {"key": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="},
     True),
    ("condition", {"Null": {"aws:TokenIssueTime": "true"}}, {}, True),
    ("condition", {"Null": {"aws:TokenIssueTime": "false"}}, {}, False),
    ("condition", {"Null": {"aws:TokenIssueTime": "false"}}, {"aws:TokenIssueTime": "2026-11-30T10:00:00Z"}, True),
    ("condition", {"StringLike": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}, {}, False),
    ("condition", {"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}, {}, True),
    ("condition", {"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}},
     {"ec2:InstanceType": "c5.large"}, False),
    # several operators, several keys: all must hold (AND); several values of one key: any (OR)
    ("multivalued", {"Bool": {"aws:SecureTransport": "true"}, "IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
     {"aws:SecureTransport": True, "aws:SourceIp": "198.51.100.1"}, False),
    ("multivalued", {"StringEquals": {"aws:PrincipalTag/team": ["red", "yellow"]}},
     {"aws:PrincipalTag/team": "yellow"}, True),
    # set operators over a multi-valued key, from the multi-valued context keys page
    ("multivalued", {"ForAllValues:StringEquals": {"dynamodb:Attributes": ["PostDateTime", "Message", "Tags"]}},
     {"dynamodb:Attributes": ["PostDateTime", "UserName"]}, False),
    ("multivalued", {"ForAllValues:StringEquals": {"dynamodb:Attributes": ["PostDateTime", "Message", "Tags"]}},
     {"dynamodb:Attributes": ["PostDateTime", "Message"]}, True),
    ("multivalued", {"ForAllValues:StringEquals": {"dynamodb:Attributes": ["PostDateTime", "Message", "Tags"]}},
     {}, True),
    ("multivalued", {"ForAnyValue:StringEquals": {"aws:TagKeys": "webserver"}},
     {"aws:TagKeys": ["environment", "webserver", "test"]}, True),
    ("multivalued", {"ForAnyValue:StringEquals": {"aws:TagKeys": "webserver"}},
     {"aws:TagKeys": ["environment", "test"]}, False),
    ("multivalued", {"ForAnyValue:StringEquals": {"aws:TagKeys": "webserver"}}, {}, False),
    ("multivalued", {"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}, {"aws:TagKeys": ["key1:legal"]}, False),
    ("multivalued", {"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}},
     {"aws:TagKeys": ["key1:hr", "key1:personnel"]}, False),
    ("multivalued", {"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}, {"aws:TagKeys": ["key2:audit"]}, True),
    ("multivalued", {"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}, {}, True),
]


@pytest.mark.parametrize(("page", "condition", "context", "expected"), CONDITIONS)
def test_condition_operators(page, condition, context, expected):
    assert _holds(condition, context) is expected
    assert _holds(condition, context, effect="Deny") is expected  # the same test decides a Deny


# --- 4. policy variables -------------------------------------------------------------------------------------

HOME = allow("s3:GetObject", "arn:aws:s3:::course/home/${aws:username}/*", Sid="Home")
TEAM_BUCKET = allow("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket-${aws:PrincipalTag/team, 'company-wide'}/*")
BOB = policy.Principal("arn:aws:iam::111122223333:user/bob")
SESSION = policy.Principal("arn:aws:sts::111122223333:assumed-role/Grader/alice-session",
                           user_id="AROAEXAMPLEGRADER:alice-session")
VARIABLES = [  # (page, statement, version, principal, resource, allowed)
    ("variables", HOME, V, ALICE, "arn:aws:s3:::course/home/alice/notes.txt", True),
    ("variables", HOME, V, ALICE, "arn:aws:s3:::course/home/bob/notes.txt", False),
    ("variables", HOME, None, ALICE, "arn:aws:s3:::course/home/alice/notes.txt", False),  # 2008: literal text
    ("variables", HOME, None, ALICE, "arn:aws:s3:::course/home/${aws:username}/notes.txt", True),
    ("variables", HOME, V, SESSION, "arn:aws:s3:::course/home/alice-session/notes.txt", False),  # no aws:username
    ("variables", TEAM_BUCKET, V, ALICE, "arn:aws:s3:::amzn-s3-demo-bucket-yellow/x", True),
    ("variables", TEAM_BUCKET, V, BOB, "arn:aws:s3:::amzn-s3-demo-bucket-company-wide/x", True),
    ("variables", TEAM_BUCKET, V, BOB, "arn:aws:s3:::amzn-s3-demo-bucket-yellow/x", False),
    ("variables", allow("s3:GetObject", "arn:aws:s3:::course/${*}"), V, ALICE, "arn:aws:s3:::course/*", True),
    ("variables", allow("s3:GetObject", "arn:aws:s3:::course/${*}"), V, ALICE, "arn:aws:s3:::course/a", False),
    ("variables", allow("s3:GetObject", "arn:aws:s3:::course/a${?}${$}"), V, ALICE, "arn:aws:s3:::course/a?$", True),
    ("variables", allow("s3:GetObject", "*", Condition={"StringEquals": {"aws:userid": "${aws:userid}"}}), V,
     SESSION, "arn:aws:s3:::b/k", True),
    ("variables", allow("s3:GetObject", "*", Condition={"StringLike": {"s3:prefix": "home/${aws:username}/*"}}), V,
     ALICE, "arn:aws:s3:::course", None),  # decided with the prefix in the test below
]


@pytest.mark.parametrize(("page", "statement", "version", "principal", "resource", "expected"),
                         [case for case in VARIABLES if case[5] is not None])
def test_policy_variables(page, statement, version, principal, resource, expected):
    decision = policy.decide({"p": doc(statement, version=version)}, "s3:GetObject", resource, principal=principal)
    assert decision.allowed is expected


def test_a_variable_in_a_condition_and_a_missing_tag_in_a_negated_condition():
    listing = VARIABLES[-1][1]
    for prefix, expected in (("home/alice/", True), ("home/bob/", False)):
        assert policy.decide({"p": doc(listing)}, "s3:GetObject", "arn:aws:s3:::course", principal=ALICE,
                             context={"s3:prefix": prefix}).allowed is expected
    # the variables page: a missing tag makes the variable null, and a negated operator then matches
    team_only = doc(allow("s3:GetObject"), {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*", "Condition": {
        "StringNotEquals": {"s3:ExistingObjectTag/Team": "${aws:PrincipalTag/Team}"}}})
    tagged = policy.Principal(ALICE.arn, tags={"Team": "red"})
    context = {"s3:ExistingObjectTag/Team": "red"}
    assert policy.decide({"p": team_only}, "s3:GetObject", "arn:aws:s3:::b/k", principal=tagged,
                         context=context).allowed
    untagged = policy.decide({"p": team_only}, "s3:GetObject", "arn:aws:s3:::b/k", principal=BOB, context=context)
    assert untagged.rule == "explicit deny"


# --- 5. identity and resource-based policies, boundaries and sessions ----------------------------------------

CARLOS = policy.Principal("arn:aws:iam::111111111111:user/carlossalazar")
CARLOS_IDENTITY = doc({"Sid": "NoLogs", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::*log*"},
                      allow(resource="arn:aws:s3:::carlossalazar*", Sid="Mine"))
CARLOS_BUCKET = doc(allow(resource="arn:aws:s3:::carlossalazar*", Sid="Carlos",
                          Principal={"AWS": "arn:aws:iam::111111111111:user/carlossalazar"}))
PRODUCTION = doc(allow(resource="arn:aws:s3:::Production*", Sid="FromAccount1", Principal={"AWS": "111111111111"}))
CARLOS_CROSS = doc({"Sid": "NoLogs", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::*log*"},
                   allow(resource="arn:aws:s3:::Production*", Sid="Production"))
GRADER_ROLE = "arn:aws:iam::111122223333:role/Grader"
BY_ROLE = doc(allow("s3:GetObject", "arn:aws:s3:::grades/*", Sid="ToRole", Principal={"AWS": GRADER_ROLE}))
BY_SESSION = doc(allow("s3:GetObject", "arn:aws:s3:::grades/*", Sid="ToSession", Principal={"AWS": SESSION.arn}))
BOUNDARY = doc(allow("s3:ListBucket", Sid="ListOnly"))
IAM_REPORTS = doc(allow(["iam:Get*", "iam:List*"], Sid="Read"),
                  {"Sid": "NoReports", "Effect": "Deny", "Action": "iam:*Report", "Resource": "*"})

EVALUATION = [  # (page, identity, resource policy, account of the resource, boundary, session, principal, action,
    #              resource, expected rule)
    ("evaluation", {"c": CARLOS_IDENTITY}, {"b": CARLOS_BUCKET}, "111111111111", None, None, CARLOS, "s3:PutObject",
     "arn:aws:s3:::carlossalazar-logs/x", "explicit deny"),
    ("evaluation", {"c": CARLOS_IDENTITY}, {"b": CARLOS_BUCKET}, "111111111111", None, None, CARLOS, "s3:PutObject",
     "arn:aws:s3:::carlossalazar/x", "allowed"),
    ("evaluation", {}, {"b": CARLOS_BUCKET}, "111111111111", None, None, CARLOS, "s3:PutObject",
     "arn:aws:s3:::carlossalazar/x", "allowed"),  # same account: the bucket policy alone suffices
    ("evaluation", {"c": CARLOS_IDENTITY}, {}, "111111111111", None, None, CARLOS, "s3:PutObject",
     "arn:aws:s3:::carlossalazar/x", "allowed"),  # ...and so does the identity policy alone
    ("cross-account", {"c": CARLOS_CROSS}, {"b": PRODUCTION}, "222222222222", None, None, CARLOS, "s3:PutObject",
     "arn:aws:s3:::Production/x", "allowed"),
    ("cross-account", {"c": CARLOS_CROSS}, {}, "222222222222", None, None, CARLOS, "s3:PutObject",
     "arn:aws:s3:::Production-logs/x", "explicit deny"),
    ("cross-account", {}, {"b": PRODUCTION}, "222222222222", None, None, CARLOS, "s3:PutObject",
     "arn:aws:s3:::Production/x", "implicit deny"),  # across accounts both sides must allow
    ("cross-account", {"c": CARLOS_CROSS}, {}, "222222222222", None, None, CARLOS, "s3:PutObject",
     "arn:aws:s3:::Production/x", "implicit deny"),
    ("principal", {}, {"b": PRODUCTION}, "111111111111", None, None, CARLOS, "s3:PutObject",
     "arn:aws:s3:::Production/x", "implicit deny"),  # naming the account delegates to its identity policies
    ("evaluation", {"r": IAM_REPORTS}, None, None, None, None, None, "iam:CreatePolicy", "*", "implicit deny"),
    ("evaluation", {"r": IAM_REPORTS}, None, None, None, None, None, "iam:GetOrganizationsAccessReport", "*",
     "explicit deny"),
    ("evaluation", {"r": IAM_REPORTS, "all": EVERYTHING}, None, None, None, None, None,
     "iam:GenerateCredentialReport", "*", "explicit deny"),
    ("evaluation", {"all": EVERYTHING}, None, None, {"b": BOUNDARY}, None, ALICE, "s3:GetObject",
     "arn:aws:s3:::b/k", "implicit deny"),  # the boundary intersects
    ("evaluation", {"all": EVERYTHING}, None, None, {"b": BOUNDARY}, None, ALICE, "s3:ListBucket",
     "arn:aws:s3:::b", "allowed"),
    ("evaluation", {"all": EVERYTHING}, None, None, None, {"s": BOUNDARY}, SESSION, "s3:GetObject",
     "arn:aws:s3:::b/k", "implicit deny"),  # and so does a session policy
    ("evaluation", {}, {"g": BY_ROLE}, "111122223333", None, None, SESSION, "s3:GetObject",
     "arn:aws:s3:::grades/a.csv", "allowed"),
    ("evaluation", {}, {"g": BY_ROLE}, "111122223333", None, {"s": BOUNDARY}, SESSION, "s3:GetObject",
     "arn:aws:s3:::grades/a.csv", "implicit deny"),  # a grant to the role ARN is limited by the session policy
    ("evaluation", {}, {"g": BY_SESSION}, "111122223333", None, {"s": BOUNDARY}, SESSION, "s3:GetObject",
     "arn:aws:s3:::grades/a.csv", "allowed"),  # a grant to the session ARN is not
    ("notaction", {"n": doc({"Effect": "Allow", "NotAction": "s3:DeleteBucket", "Resource": "arn:aws:s3:::*"})},
     None, None, None, None, None, "s3:ListAllMyBuckets", "*", "implicit deny"),
    ("notaction", {"n": doc({"Effect": "Allow", "NotAction": "s3:DeleteBucket", "Resource": "arn:aws:s3:::*"})},
     None, None, None, None, None, "s3:PutObject", "arn:aws:s3:::b/k", "allowed"),
    ("notaction", {"n": doc({"Effect": "Allow", "NotAction": "s3:DeleteBucket", "Resource": "arn:aws:s3:::*"})},
     None, None, None, None, None, "s3:DeleteBucket", "arn:aws:s3:::b", "implicit deny"),
    ("notaction", {"n": doc(allow("*"), {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"})},
     None, None, None, None, None, "s3:GetObject", "arn:aws:s3:::b/k", "explicit deny"),
    ("notaction", {"n": doc(allow("*"), {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"})},
     None, None, None, None, None, "iam:ListUsers", "*", "allowed"),
    ("notresource", {"n": doc({"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::grades/*"})},
     None, None, None, None, None, "s3:GetObject", "arn:aws:s3:::other/k", "allowed"),
    ("notresource", {"n": doc({"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::grades/*"})},
     None, None, None, None, None, "s3:GetObject", "arn:aws:s3:::grades/k", "implicit deny"),
    ("notresource", {"n": doc(allow("s3:*"), {"Effect": "Deny", "Action": "s3:*", "NotResource": [
        "arn:aws:s3:::course", "arn:aws:s3:::course/*"]})}, None, None, None, None, None, "s3:GetObject",
     "arn:aws:s3:::other/k", "explicit deny"),
    ("notresource", {"n": doc(allow("s3:*"), {"Effect": "Deny", "Action": "s3:*", "NotResource": [
        "arn:aws:s3:::course", "arn:aws:s3:::course/*"]})}, None, None, None, None, None, "s3:GetObject",
     "arn:aws:s3:::course/k", "allowed"),
    ("notprincipal", {"all": EVERYTHING}, {"b": doc({"Effect": "Deny", "Action": "s3:*", "Resource": "*",
                                                     "NotPrincipal": {"AWS": ALICE.arn}})}, "111122223333", None, None,
     BOB, "s3:GetObject", "arn:aws:s3:::b/k", "explicit deny"),
    ("notprincipal", {"all": EVERYTHING}, {"b": doc({"Effect": "Deny", "Action": "s3:*", "Resource": "*",
                                                     "NotPrincipal": {"AWS": ALICE.arn}})}, "111122223333", None, None,
     ALICE, "s3:GetObject", "arn:aws:s3:::b/k", "allowed"),
]


@pytest.mark.parametrize(("page", "identity", "on_resource", "account", "boundary", "session", "principal", "action",
                          "resource", "expected"), EVALUATION)
def test_evaluation_logic(page, identity, on_resource, account, boundary, session, principal, action, resource,
                          expected):
    decision = policy.decide(identity, action, resource, principal=principal, resource_policies=on_resource,
                             resource_account=account, boundary=boundary, session_policies=session)
    assert decision.rule == expected, decision.explain()


def test_the_explanation_names_every_statement_that_mattered_and_the_value_a_condition_saw():
    cross = policy.decide({"c": CARLOS_CROSS}, "s3:PutObject", "arn:aws:s3:::Production/x", principal=CARLOS,
                          resource_policies={"b": PRODUCTION}, resource_account="222222222222")
    assert cross.explain().splitlines() == [
        "ALLOWED: allowed by statement 'Production' of policy 'c'",
        "  - Allow by statement 'Production' of 'c'",
        "  - Allow by statement 'FromAccount1' of 'b' (naming the principal by its account)"]
    one_side = policy.decide({}, "s3:PutObject", "arn:aws:s3:::Production/x", principal=CARLOS,
                             resource_policies={"b": PRODUCTION}, resource_account="222222222222")
    assert "statement 'FromAccount1' of 'b' allows it, but across accounts" in one_side.explain()
    office = doc(allow("s3:GetObject", Sid="Office", Condition={"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}))
    away = policy.decide({"o": office}, "s3:GetObject", "arn:aws:s3:::b/k", context={"aws:SourceIp": "198.51.100.7"})
    assert str(away) == "DENIED: implicit deny: no identity-based policy allows it"
    assert away.near_misses == ("statement 'Office' of 'o' (Allow): its condition IpAddress aws:SourceIp "
                                "\"203.0.113.0/24\" is false: the request has aws:SourceIp = \"198.51.100.7\"",)
    guarded = policy.decide({"all": EVERYTHING, "guard": NO_SECRETS}, "s3:GetObject",
                            f"arn:aws:s3:::{BUCKET}/secret.json")
    assert guarded.reasons == ("Deny by statement 'NoSecrets' of 'guard'",)


def test_a_resource_policy_needs_the_principal():
    with pytest.raises(ValueError, match="principal"):
        policy.decide({}, "s3:GetObject", "arn:aws:s3:::carlossalazar/x", resource_policies={"b": CARLOS_BUCKET})


# --- agreement with moto ------------------------------------------------------------------------------------

ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:*", "s3:Get*", "s3:Put*",
           "s3:List*", "s3:*Object", "*"]
RESOURCES = ["*", f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*", f"arn:aws:s3:::{BUCKET}/lab2/*",
             f"arn:aws:s3:::{BUCKET}/secret.json", "arn:aws:s3:::other-bucket/*", "arn:aws:s3:::policy-*",
             f"arn:aws:s3:::{BUCKET}/*.json", f"arn:aws:s3:::{BUCKET}/lab2/a.txt", f"arn:aws:s3:::{BUCKET}/lab?/*",
             f"arn:aws:s3:::{BUCKET}/secret.jso?"]
REQUESTS = [("s3:GetObject", "lab2/a.txt"), ("s3:GetObject", "secret.json"), ("s3:PutObject", "lab2/new.txt"),
            ("s3:DeleteObject", "notes/gone.txt"), ("s3:ListBucket", None)]
MOTO_DIFFERS = {  # where moto's enforcement departs from the documented rules, as 02.2 says
    "NotResource": "moto does not apply NotResource",
    "?": "moto does not treat ? in a resource as a wildcard",
}

statements = st.fixed_dictionaries({
    "Effect": st.sampled_from(["Allow", "Deny"]),
    "Resource": st.lists(st.sampled_from(RESOURCES), min_size=1, max_size=2, unique=True),
}).flatmap(lambda s: st.sampled_from(["Resource", "NotResource"]).map(
    lambda key: {"Effect": s["Effect"], key: s["Resource"]})).flatmap(
    lambda s: st.sampled_from(["Action", "NotAction"]).flatmap(
        lambda key: st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=2, unique=True).map(
            lambda a: {**s, key: a})))
policies = st.lists(st.lists(statements, min_size=1, max_size=3), min_size=1, max_size=2)


@pytest.fixture(scope="module")
def subject():
    with aws.use("moto"):
        admin_s3, iam = boto3.client("s3"), boto3.client("iam")
        admin_s3.create_bucket(Bucket=BUCKET)
        for key in ("lab2/a.txt", "secret.json"):
            admin_s3.put_object(Bucket=BUCKET, Key=key, Body=b"data")
        iam.create_user(UserName="subject")
        key = iam.create_access_key(UserName="subject")["AccessKey"]
        s3 = boto3.client("s3", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        yield iam, s3


def _moto_allows(s3, action: str, key: str | None) -> bool:
    calls = {"s3:GetObject": lambda: s3.get_object(Bucket=BUCKET, Key=key),
             "s3:PutObject": lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=b"x"),
             "s3:DeleteObject": lambda: s3.delete_object(Bucket=BUCKET, Key=key),
             "s3:ListBucket": lambda: s3.list_objects_v2(Bucket=BUCKET)}
    try:
        calls[action]()
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] == "AccessDenied":
            return False
        raise


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents=policies, request=st.sampled_from(REQUESTS))
def test_explainer_agrees_with_moto_enforcement(subject, documents, request):
    iam, s3 = subject
    named = {f"policy{i}": {"Version": "2012-10-17", "Statement": statements} for i, statements in enumerate(documents)}
    aws.enforce_iam(False)
    for name in iam.list_user_policies(UserName="subject")["PolicyNames"]:
        iam.delete_user_policy(UserName="subject", PolicyName=name)
    for name, document in named.items():
        iam.put_user_policy(UserName="subject", PolicyName=name, PolicyDocument=json.dumps(document))
    action, key = request
    resource = f"arn:aws:s3:::{BUCKET}" + (f"/{key}" if key else "")
    aws.enforce_iam(True)
    try:
        real = _moto_allows(s3, action, key)
    finally:
        aws.enforce_iam(False)
    explained = policy.decide(named, action, resource)
    event(f"{explained.rule}")  # --hypothesis-show-statistics shows how often each rule decided
    if explained.allowed != real:
        text = json.dumps(named)
        known = [why for feature, why in MOTO_DIFFERS.items() if (f'"{feature}"' if feature.isalpha() else feature)
                 in text]
        assert known, f"{action} on {resource}: explainer says {explained}, moto says {real}\n{named}"
        event("moto differs: " + "; ".join(known))  # recorded, not failed: the documentation is with the explainer
