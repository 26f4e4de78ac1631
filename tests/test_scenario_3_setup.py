"""What the Scenario 3 instance's user data writes, on the real local cloud."""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

import labkit
from labkit import inventory
from labkit.lab import Lab

PARAMETER = "gd_prod_dbpwd_sample"


@dataclass(frozen=True)
class Seen:
    """What the lab shows at one moment: the parameter and the table's items.

    Attributes:
        parameter: GetParameter's ``Parameter`` (decrypted), None if not found.
        history: GetParameterHistory's versions, empty if not found.
        items: every item of the customer table.
    """

    parameter: dict[str, Any] | None
    history: list[dict[str, Any]]
    items: list[dict[str, Any]]


def look(lab: Lab) -> Seen:
    """Read the parameter, its history and the table now."""
    ssm = lab.client("ssm")
    try:
        parameter: dict[str, Any] | None = password(lab)
        history = list(ssm.get_parameter_history(Name=PARAMETER)["Parameters"])
    except ssm.exceptions.ParameterNotFound:
        parameter, history = None, []
    return Seen(parameter, history, items(lab))


@pytest.fixture(scope="module")
def deployed(local_cloud: str) -> tuple[Lab, dict[str, str], Seen]:
    """A fresh local cloud with the stack deployed, and what it shows then.

    The snapshot is taken before any lab time passes; the fixtures below
    advance the lab, each once and in this order (deployed, booted, later,
    relaunched), whichever test asks first, and keep what they saw.
    """
    reset = urllib.request.Request(f"{local_cloud}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=30).close()
    lab = labkit.connect()
    detector_id, _ = labkit.enable_guardduty(lab)
    outputs = labkit.deploy_stack(lab, detector_id=detector_id, progress=False)
    return lab, outputs, look(lab)


@pytest.fixture(scope="module")
def booted(
    deployed: tuple[Lab, dict[str, str], Seen],
) -> tuple[Lab, dict[str, str], Seen]:
    """One lab minute later: the instance has booted and run its user data."""
    lab, outputs, _ = deployed
    lab.advance(1)
    return lab, outputs, look(lab)


@pytest.fixture(scope="module")
def later(booted: tuple[Lab, dict[str, str], Seen]) -> Seen:
    """Two more lab minutes later, with the same instance."""
    lab, _, _ = booted
    lab.advance(2)
    return look(lab)


@pytest.fixture(scope="module")
def relaunched(
    booted: tuple[Lab, dict[str, str], Seen], later: Seen
) -> tuple[str, Seen, list[dict[str, Any]]]:
    """A second instance with the same user data, booted for one minute.

    Returns its id, what the lab then shows, and the parameters named so.
    """
    lab, outputs, _ = booted
    ec2 = lab.client("ec2")
    original = ec2.describe_instances(InstanceIds=[outputs["Scenario3InstanceId"]])
    described = original["Reservations"][0]["Instances"][0]
    script = inventory.user_data(lab, outputs["Scenario3InstanceId"])
    launched = ec2.run_instances(
        ImageId=described["ImageId"],
        InstanceType=described["InstanceType"],
        SubnetId=described["SubnetId"],
        IamInstanceProfile={"Arn": described["IamInstanceProfile"]["Arn"]},
        UserData=script,
        MinCount=1,
        MaxCount=1,
    )
    again = launched["Instances"][0]["InstanceId"]
    try:
        lab.advance(1)
        seen = look(lab)
    finally:
        ec2.terminate_instances(InstanceIds=[again])
    named = lab.client("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [PARAMETER]}]
    )
    return again, seen, list(named["Parameters"])


def script_value(lab: Lab, instance_id: str, option: str) -> str:
    """The single-quoted value of ``option`` in the instance's own user data."""
    found = re.search(rf"{option} '([^']*)'", inventory.user_data(lab, instance_id))
    assert found is not None, f"no {option} in the user data"
    return found[1]


def table_name(lab: Lab) -> str:
    """The physical name of the stack's customer table."""
    resource = lab.client("cloudformation").describe_stack_resource(
        StackName=lab.stack_name, LogicalResourceId="CustomerTable"
    )
    return str(resource["StackResourceDetail"]["PhysicalResourceId"])


def password(lab: Lab) -> dict[str, Any]:
    """GetParameter of the fake password, decrypted."""
    reply = lab.client("ssm").get_parameter(Name=PARAMETER, WithDecryption=True)
    return dict(reply["Parameter"])


def items(lab: Lab) -> list[dict[str, Any]]:
    """Every item of the customer table."""
    return list(lab.client("dynamodb").scan(TableName=table_name(lab))["Items"])


def test_nothing_is_written_before_the_instance_boots(
    deployed: tuple[Lab, dict[str, str], Seen],
) -> None:
    """Deploying alone writes no SecureString: CloudFormation cannot."""
    _, _, seen = deployed
    assert seen == Seen(parameter=None, history=[], items=[])


def test_first_minute_writes_the_user_data_values(
    booted: tuple[Lab, dict[str, str], Seen],
) -> None:
    """After one minute the parameter holds the script's value, as a SecureString."""
    lab, outputs, seen = booted
    instance_id = outputs["Scenario3InstanceId"]
    assert seen.parameter is not None
    assert seen.parameter["Value"] == script_value(lab, instance_id, "--value")
    assert seen.parameter["Type"] == "SecureString"
    assert seen.parameter["Version"] == 1
    assert seen.items == [json.loads(script_value(lab, instance_id, "--item"))]


def test_later_minutes_do_not_run_the_user_data_again(later: Seen) -> None:
    """User data runs once per instance: the version stays 1, the row stays one."""
    assert later.parameter is not None
    assert later.parameter["Version"] == 1
    assert len(later.history) == 1
    assert len(later.items) == 1


def test_a_new_instance_overwrites_as_aws_does(
    booted: tuple[Lab, dict[str, str], Seen],
    relaunched: tuple[str, Seen, list[dict[str, Any]]],
) -> None:
    """The same script on a new instance makes version 2 of one parameter."""
    lab, _, _ = booted
    again, seen, named = relaunched
    assert seen.parameter is not None
    assert seen.parameter["Version"] == 2
    assert seen.parameter["Value"] == script_value(lab, again, "--value")
    assert len(named) == 1
    assert len(seen.items) == 1


def test_instance_role_may_write_only_these(
    booted: tuple[Lab, dict[str, str], Seen],
) -> None:
    """The role allows the two boot writes, and not the same writes elsewhere."""
    lab, outputs, seen = booted
    iam = lab.client("iam")
    role = outputs["CompromisedRoleName"]
    documents = [
        iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
    ]
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(
            PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
        )
        documents.append(version["PolicyVersion"]["Document"])

    def allowed(action: str, resource: str) -> bool:
        results = [
            IAMPolicy(json.dumps(d)).is_action_permitted(action, resource)
            for d in documents
        ]
        return PermissionResult.PERMITTED in results

    assert seen.parameter is not None
    parameter_arn = seen.parameter["ARN"]
    table_arn = lab.client("dynamodb").describe_table(TableName=table_name(lab))[
        "Table"
    ]["TableArn"]
    assert allowed("ssm:PutParameter", parameter_arn)
    assert allowed("dynamodb:PutItem", table_arn)
    assert not allowed("ssm:PutParameter", parameter_arn + "_other")
    assert not allowed("dynamodb:PutItem", table_arn + "-other")
