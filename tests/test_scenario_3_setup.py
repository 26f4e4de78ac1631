"""What the Scenario 3 instance's user data writes, on the real local cloud."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

import labkit
from labkit import inventory
from labkit.lab import Lab

PARAMETER = "gd_prod_dbpwd_sample"


@pytest.fixture(scope="module")
def deployed(local_cloud: str) -> Iterator[tuple[Lab, dict[str, str]]]:
    """A fresh local cloud with the stack deployed and no lab time passed."""
    reset = urllib.request.Request(f"{local_cloud}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=30).close()
    lab = labkit.connect()
    detector_id, _ = labkit.enable_guardduty(lab)
    outputs = labkit.deploy_stack(lab, detector_id=detector_id, progress=False)
    yield lab, outputs


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
    deployed: tuple[Lab, dict[str, str]],
) -> None:
    """Deploying alone writes no SecureString: CloudFormation cannot."""
    lab, _ = deployed
    ssm = lab.client("ssm")
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name=PARAMETER, WithDecryption=True)
    assert items(lab) == []


def test_first_minute_writes_the_user_data_values(
    deployed: tuple[Lab, dict[str, str]],
) -> None:
    """After one minute the parameter holds the script's value, as a SecureString."""
    lab, outputs = deployed
    lab.advance(1)

    instance_id = outputs["Scenario3InstanceId"]
    parameter = password(lab)
    assert parameter["Value"] == script_value(lab, instance_id, "--value")
    assert parameter["Type"] == "SecureString"
    assert parameter["Version"] == 1
    assert items(lab) == [json.loads(script_value(lab, instance_id, "--item"))]


def test_later_minutes_do_not_run_the_user_data_again(
    deployed: tuple[Lab, dict[str, str]],
) -> None:
    """User data runs once per instance: the version stays 1, the row stays one."""
    lab, _ = deployed
    lab.advance(2)

    assert password(lab)["Version"] == 1
    history = lab.client("ssm").get_parameter_history(Name=PARAMETER)
    assert len(history["Parameters"]) == 1
    assert len(items(lab)) == 1


def test_a_new_instance_overwrites_as_aws_does(
    deployed: tuple[Lab, dict[str, str]],
) -> None:
    """The same script on a new instance makes version 2 of one parameter."""
    lab, outputs = deployed
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
    finally:
        ec2.terminate_instances(InstanceIds=[again])

    parameter = password(lab)
    assert parameter["Version"] == 2
    assert parameter["Value"] == script_value(lab, again, "--value")
    found = lab.client("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [PARAMETER]}]
    )
    assert len(found["Parameters"]) == 1
    assert len(items(lab)) == 1


def test_instance_role_may_write_only_these(
    deployed: tuple[Lab, dict[str, str]],
) -> None:
    """The role allows the two boot writes, and not the same writes elsewhere."""
    lab, outputs = deployed
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

    parameter_arn = password(lab)["ARN"]
    table_arn = lab.client("dynamodb").describe_table(TableName=table_name(lab))[
        "Table"
    ]["TableArn"]
    assert allowed("ssm:PutParameter", parameter_arn)
    assert allowed("dynamodb:PutItem", table_arn)
    assert not allowed("ssm:PutParameter", parameter_arn + "_other")
    assert not allowed("dynamodb:PutItem", table_arn + "-other")
