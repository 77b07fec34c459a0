"""helpers.policy: the explainer's rules, and its agreement with moto's real enforcement on random policies."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from helpers import aws, policy

BUCKET = "policy-lab"
READ_LAB2 = {"Version": "2012-10-17", "Statement": [
    {"Sid": "ReadLab2", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/lab2/*"}]}
NO_SECRETS = {"Version": "2012-10-17", "Statement": [
    {"Sid": "NoSecrets", "Effect": "Deny", "Action": "s3:*", "Resource": f"arn:aws:s3:::{BUCKET}/secret*"}]}
EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


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


# --- agreement with moto ------------------------------------------------------------------------------------

ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:*", "s3:Get*", "s3:Put*",
           "s3:List*", "s3:*Object", "*"]
RESOURCES = ["*", f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*", f"arn:aws:s3:::{BUCKET}/lab2/*",
             f"arn:aws:s3:::{BUCKET}/secret.json", "arn:aws:s3:::other-bucket/*", "arn:aws:s3:::policy-*",
             f"arn:aws:s3:::{BUCKET}/*.json", f"arn:aws:s3:::{BUCKET}/lab2/a.txt"]
REQUESTS = [("s3:GetObject", "lab2/a.txt"), ("s3:GetObject", "secret.json"), ("s3:PutObject", "lab2/new.txt"),
            ("s3:DeleteObject", "notes/gone.txt"), ("s3:ListBucket", None)]

statements = st.fixed_dictionaries({
    "Effect": st.sampled_from(["Allow", "Deny"]),
    "Resource": st.lists(st.sampled_from(RESOURCES), min_size=1, max_size=2, unique=True),
}).flatmap(lambda s: st.sampled_from(["Action", "NotAction"]).flatmap(
    lambda key: st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=2, unique=True).map(lambda a: {**s, key: a})))
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
    assert explained.allowed == real, f"{action} on {resource}: explainer says {explained}, moto says {real}\n{named}"
