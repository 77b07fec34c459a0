"""helpers.iam: the activity log records who did what, and the derived policy allows exactly that."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from helpers import aws, iam, policy


def test_log_records_allowed_and_denied_calls_and_the_smallest_policy_allows_exactly_them():
    with aws.use("moto"):
        admin = boto3.client("iam")
        boto3.client("s3").create_bucket(Bucket="course")
        boto3.client("s3").put_object(Bucket="course", Key="lab2/users.json", Body=b"{}")
        admin.create_user(UserName="grader")
        document = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}]}
        admin.put_user_policy(UserName="grader", PolicyName="p", PolicyDocument=json.dumps(document))
        key = admin.create_access_key(UserName="grader")["AccessKey"]
        log = iam.ActivityLog()
        s3 = log.watch(boto3.client("s3", aws_access_key_id=key["AccessKeyId"],
                                    aws_secret_access_key=key["SecretAccessKey"]), "grader")
        aws.enforce_iam(True)
        s3.get_object(Bucket="course", Key="lab2/users.json")
        s3.list_objects_v2(Bucket="course", Prefix="lab2/")
        with pytest.raises(ClientError):
            s3.put_object(Bucket="course", Key="lab2/users.json", Body=b"{}")
        assert [(e.action, e.resource, e.outcome) for e in log.events] == [
            ("s3:GetObject", "arn:aws:s3:::course/lab2/users.json", "allowed"),
            ("s3:ListBucket", "arn:aws:s3:::course", "allowed"),
            ("s3:PutObject", "arn:aws:s3:::course/lab2/users.json", "denied")]
        smallest = iam.smallest_policy(log.events, "grader")
        for event in log.events:
            decision = policy.decide({"derived": smallest}, event.action, event.resource)
            assert decision.allowed == (event.outcome == "allowed")
        assert not policy.decide({"derived": smallest}, "s3:GetObject", "arn:aws:s3:::course/secret.json").allowed


def test_action_and_resource_names():
    assert iam.iam_action("s3", "ListObjectsV2") == "s3:ListBucket"
    assert iam.iam_action("iam", "CreateUser") == "iam:CreateUser"
    assert iam.resource_arn("iam", {"UserName": "ada"}, "111122223333") == "arn:aws:iam::111122223333:user/ada"
    assert iam.resource_arn("ec2", {}, "1") == "*"
