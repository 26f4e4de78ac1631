"""The remediation handlers, run in-process against moto's services."""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest
import time_machine
from moto import mock_aws

from labkit.errors import ConfigError
from labkit.remediation import (
    CODE_KEY_PARAMETERS,
    build_zip,
    isolate_instance,
    revoke_sessions,
    source_path,
)

REGION = "eu-west-2"
ROLE = "Security-Workshop-EC2-Compromised"
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


@pytest.fixture(scope="module")
def cloud() -> Iterator[None]:
    """One moto for the module: a fresh EC2 backend costs seconds to build."""
    with mock_aws():
        yield


@pytest.fixture
def aws(cloud: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A topic of this test's own whose messages land in a queue."""
    # Set per test: the suite's guard clears AWS keys before every test.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    suffix = uuid.uuid4().hex[:8]
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name=f"GuardDuty-{suffix}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"inbox-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv("TOPIC_ARN", topic_arn)
    return {"topic_arn": topic_arn, "queue_url": queue_url}


@pytest.fixture
def role(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh instance role, the only one the revoke handler may act on."""
    name = f"{ROLE}-{uuid.uuid4().hex[:8]}"
    make_role(name)
    monkeypatch.setenv("ALLOWED_ROLE_NAME", name)
    return name


@pytest.fixture
def network(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An instance in a target group, and an empty forensic group beside it."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.0.0/24")["Subnet"][
        "SubnetId"
    ]
    target = ec2.create_security_group(
        GroupName="Target", Description="target", VpcId=vpc_id
    )["GroupId"]
    forensic = ec2.create_security_group(
        GroupName="Forensic", Description="forensic", VpcId=vpc_id
    )["GroupId"]
    ami = boto3.client("ssm", region_name=REGION).get_parameter(Name=AMI_PARAMETER)
    instance_id = ec2.run_instances(
        ImageId=ami["Parameter"]["Value"],
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet_id,
        SecurityGroupIds=[target],
    )["Instances"][0]["InstanceId"]
    monkeypatch.setenv("FORENSIC_SECURITY_GROUP_ID", forensic)
    return {**aws, "instance_id": instance_id, "target": target, "forensic": forensic}


def ec2_finding(instance_id: str) -> dict[str, Any]:
    """A GuardDuty Finding event for an instance talking to a listed IP."""
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "region": REGION,
        "detail": {
            "id": "f1ec2finding",
            "type": "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",
            "severity": 5,
            "resource": {
                "resourceType": "Instance",
                "instanceDetails": {"instanceId": instance_id},
            },
        },
    }


def exfiltration_finding(role_name: str) -> dict[str, Any]:
    """A GuardDuty Finding event for a role's credentials used outside AWS."""
    return {
        "version": "0",
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "region": REGION,
        "detail": {
            "id": "f3exfil",
            "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
            "severity": 8,
            "resource": {
                "resourceType": "AccessKey",
                "accessKeyDetails": {
                    "accessKeyId": "ASIAEXAMPLEEXAMPLE",
                    "userName": role_name,
                    "userType": "AssumedRole",
                },
            },
        },
    }


def inbox(queue_url: str) -> list[dict[str, Any]]:
    """Every SNS envelope waiting in the queue."""
    sqs = boto3.client("sqs", region_name=REGION)
    reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in reply.get("Messages", [])]


def instance_groups(instance_id: str) -> list[str]:
    """The instance's SecurityGroups (moto's ENI view keeps the old group)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    reply = ec2.describe_instances(InstanceIds=[instance_id])
    instance = reply["Reservations"][0]["Instances"][0]
    return [group["GroupId"] for group in instance["SecurityGroups"]]


def make_role(name: str) -> None:
    """Create an EC2 instance role of that name."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    boto3.client("iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(trust)
    )


def test_isolate_instance_leaves_only_forensic_group(network: dict[str, str]) -> None:
    """The instance ends in the forensic group alone and the result says so."""
    result = isolate_instance.handler(ec2_finding(network["instance_id"]), None)

    assert instance_groups(network["instance_id"]) == [network["forensic"]]
    assert result == {
        "findingId": "f1ec2finding",
        "instanceId": network["instance_id"],
        "previousGroups": [network["target"]],
        "securityGroups": [network["forensic"]],
        "changed": True,
    }


def test_isolate_instance_publishes_remediation(network: dict[str, str]) -> None:
    """One message naming the finding, instance and group reaches the topic."""
    isolate_instance.handler(ec2_finding(network["instance_id"]), None)

    messages = inbox(network["queue_url"])
    assert len(messages) == 1
    assert messages[0]["TopicArn"] == network["topic_arn"]
    assert network["instance_id"] in messages[0]["Subject"]
    text = messages[0]["Message"]
    for expected in ("f1ec2finding", network["instance_id"], network["forensic"]):
        assert expected in text
    assert "Next steps" in text


def test_isolate_instance_twice_changes_nothing(network: dict[str, str]) -> None:
    """A second run keeps the forensic group and publishes no second message."""
    event = ec2_finding(network["instance_id"])
    isolate_instance.handler(event, None)
    inbox(network["queue_url"])

    again = isolate_instance.handler(event, None)

    assert again["changed"] is False
    assert again["previousGroups"] == [network["forensic"]]
    assert instance_groups(network["instance_id"]) == [network["forensic"]]
    assert inbox(network["queue_url"]) == []


def test_isolate_instance_without_instance_does_nothing(
    network: dict[str, str],
) -> None:
    """A finding with no instanceDetails changes no instance and publishes nothing."""
    event = exfiltration_finding(ROLE)

    result = isolate_instance.handler(event, None)

    assert result == {"findingId": "f3exfil", "changed": False, "reason": "no instance"}
    assert instance_groups(network["instance_id"]) == [network["target"]]
    assert inbox(network["queue_url"]) == []


def test_isolate_instance_without_setting_raises(
    network: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing FORENSIC_SECURITY_GROUP_ID is named in the error."""
    monkeypatch.delenv("FORENSIC_SECURITY_GROUP_ID")

    with pytest.raises(RuntimeError, match="FORENSIC_SECURITY_GROUP_ID"):
        isolate_instance.handler(ec2_finding(network["instance_id"]), None)


def test_revoke_sessions_puts_utc_policy_in_utc_plus_2(role: str) -> None:
    """At 12:00Z on a UTC+2 host the cutoff is exactly 2024-05-01T12:00:00Z (P18)."""
    local_time = datetime(2024, 5, 1, 14, 0, tzinfo=ZoneInfo("Etc/GMT-2"))

    with time_machine.travel(local_time, tick=False):
        assert time.strftime("%z") == "+0200"
        result = revoke_sessions.handler(exfiltration_finding(role), None)

    document = boto3.client("iam").get_role_policy(
        RoleName=role, PolicyName="RevokeOldSessions"
    )["PolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "DateLessThan": {"aws:TokenIssueTime": "2024-05-01T12:00:00Z"}
                },
            }
        ],
    }
    assert result["changed"] is True
    assert result["cutoff"] == "2024-05-01T12:00:00Z"


def test_revoke_sessions_publishes_remediation(aws: dict[str, str], role: str) -> None:
    """One message naming the finding, role, policy and cutoff reaches the topic."""
    # Read inside the travel too: SQS would find a 2024 message long expired.
    with time_machine.travel(datetime(2024, 5, 1, 12, tzinfo=UTC), tick=False):
        revoke_sessions.handler(exfiltration_finding(role), None)
        messages = inbox(aws["queue_url"])

    assert len(messages) == 1
    assert role in messages[0]["Subject"]
    text = messages[0]["Message"]
    for expected in ("f3exfil", role, "RevokeOldSessions", "2024-05-01T12:00:00Z"):
        assert expected in text


def test_revoke_sessions_refuses_other_role(aws: dict[str, str], role: str) -> None:
    """A finding about another role puts no policy anywhere and publishes nothing."""
    other = f"Production-App-{uuid.uuid4().hex[:8]}"
    make_role(other)

    result = revoke_sessions.handler(exfiltration_finding(other), None)

    iam = boto3.client("iam")
    assert result["changed"] is False
    assert other in result["reason"]
    assert iam.list_role_policies(RoleName=other)["PolicyNames"] == []
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == []
    assert inbox(aws["queue_url"]) == []


def test_revoke_sessions_refuses_finding_without_user(
    aws: dict[str, str], role: str
) -> None:
    """An instance finding (no accessKeyDetails) is refused, not a KeyError."""
    result = revoke_sessions.handler(ec2_finding("i-0aaa"), None)

    assert result["changed"] is False
    assert result["roleName"] == ""
    assert boto3.client("iam").list_role_policies(RoleName=role)["PolicyNames"] == []
    assert inbox(aws["queue_url"]) == []


def test_revoke_policy_naive_cutoff_raises() -> None:
    """A cutoff without a time zone is refused rather than guessed."""
    with pytest.raises(ValueError, match="no time zone"):
        revoke_sessions.revoke_policy(datetime(2024, 5, 1, 12))


def test_build_zip_holds_module_at_root() -> None:
    """Each zip holds only its module, at the root, and is the same every build."""
    for module in CODE_KEY_PARAMETERS.values():
        data = build_zip(module)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert archive.namelist() == [f"{module}.py"]
            assert archive.read(f"{module}.py") == source_path(module).read_bytes()
        assert build_zip(module) == data


def test_source_path_unknown_module_raises() -> None:
    """An unknown module name is refused with the allowed names."""
    with pytest.raises(ConfigError, match="isolate_instance"):
        source_path("delete_everything")


def test_handlers_import_no_labkit() -> None:
    """The handler modules import only boto3 and the standard library."""
    for module in CODE_KEY_PARAMETERS.values():
        text = source_path(module).read_text()
        assert "labkit" not in [
            line.split()[1].split(".")[0]
            for line in text.splitlines()
            if line.startswith(("import ", "from "))
        ]
