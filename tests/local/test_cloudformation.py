"""The local CloudFormation engine creates and deletes stacks as AWS does."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from moto.server import ThreadedMotoServer

import labkit.local.cloudformation as cfn
from labkit.local import internal
from labkit.local.cloudformation.engine import plan
from labkit.local.registry import OPERATIONS, Call, ServiceError
from labkit.template import Evaluator

REGION = "eu-west-2"
ACCOUNT = "123456789012"
TEMPLATE = Path(__file__).parents[2] / "cfn" / "security-workshop.yaml"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A moto server on a free loopback port."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{server._server.server_port}"
    server.stop()


@pytest.fixture
def cloud(moto_url: str) -> str:
    """An empty moto and no stacks, with internal clients aimed at it."""
    cfn.reset_stacks()
    requests.post(f"{moto_url}/moto-api/reset")
    internal.configure(moto_url)
    return moto_url


@pytest.fixture
def managed_policies(cloud: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The empty cloud, whose IAM will know AWS managed policies."""
    # moto 5.2.5 ignores "iam" in /moto-api/config; it reads this variable
    # whenever it makes an IAM backend. Loading them costs seconds, so only
    # the tests that attach managed policies ask for them.
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    return cloud


def cfn_call(operation: str, **params: Any) -> dict[str, Any]:
    """Call one of the engine's operations as the gateway would."""
    handler = OPERATIONS[("cloudformation", operation)]
    return handler(Call("cloudformation", operation, params, ACCOUNT, REGION))


def create(
    body: dict[str, Any] | str, name: str = "lab", **params: Any
) -> dict[str, Any]:
    """Create a stack, wait for it, and return its description."""
    text = body if isinstance(body, str) else json.dumps(body)
    stack_id = cfn_call("CreateStack", StackName=name, TemplateBody=text, **params)[
        "StackId"
    ]
    assert cfn.wait_for_stacks(timeout=120)
    return cfn_call("DescribeStacks", StackName=stack_id)["Stacks"][0]


def delete(stack_id: str) -> dict[str, Any]:
    """Delete a stack, wait for it, and return its description."""
    cfn_call("DeleteStack", StackName=stack_id)
    assert cfn.wait_for_stacks(timeout=120)
    return cfn_call("DescribeStacks", StackName=stack_id)["Stacks"][0]


def events(stack_id: str) -> list[tuple[str, str]]:
    """Return (logical id, status) of every event, oldest first."""
    listed = cfn_call("DescribeStackEvents", StackName=stack_id)["StackEvents"]
    return [(e["LogicalResourceId"], e["ResourceStatus"]) for e in reversed(listed)]


def reason_of(stack_id: str, logical_id: str, status: str) -> str:
    """Return the reason of a resource's event with ``status``."""
    listed = cfn_call("DescribeStackEvents", StackName=stack_id)["StackEvents"]
    for event in listed:
        if (event["LogicalResourceId"], event["ResourceStatus"]) == (
            logical_id,
            status,
        ):
            return str(event.get("ResourceStatusReason", ""))
    raise AssertionError(f"no {status} event for {logical_id}")


def ec2() -> Any:
    """An EC2 client aimed at the test's moto."""
    return internal.client("ec2", REGION)


NETWORK = {
    "Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.1.0.0/16"}},
        "Subnet": {
            "Type": "AWS::EC2::Subnet",
            "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.1.0.0/24"},
        },
        "Closed": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "no egress",
                "VpcId": {"Ref": "Vpc"},
                "SecurityGroupEgress": [
                    {
                        "IpProtocol": "icmp",
                        "FromPort": -1,
                        "ToPort": -1,
                        "CidrIp": "127.0.0.1/32",
                    }
                ],
            },
        },
        "Open": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "default egress",
                "VpcId": {"Ref": "Vpc"},
                "SecurityGroupIngress": [
                    {
                        "IpProtocol": "tcp",
                        "FromPort": "80",
                        "ToPort": "80",
                        "CidrIp": {"Fn::GetAtt": ["Vpc", "CidrBlock"]},
                    }
                ],
            },
        },
    },
    "Outputs": {
        "SubnetZone": {"Value": {"Fn::GetAtt": ["Subnet", "AvailabilityZone"]}},
        "Groups": {"Value": {"Fn::Join": [",", [{"Ref": "Closed"}, {"Ref": "Open"}]]}},
    },
}


def test_plan_orders_by_references_and_depends_on() -> None:
    """Resources come after what they refer to or depend on; cycles are refused."""
    template = {
        "Resources": {
            "C": {"Type": "X", "Properties": {"P": {"Ref": "B"}}},
            "B": {"Type": "X", "DependsOn": "A"},
            "A": {"Type": "X"},
        }
    }
    ev = Evaluator(template=template, parameters={}, pseudo={})
    assert list(plan(template, ev)) == ["A", "B", "C"]

    template["Resources"]["A"]["DependsOn"] = ["C"]
    with pytest.raises(ServiceError, match="Circular dependency"):
        plan(template, ev)


def test_create_stack_refuses_unresolved_reference(cloud: str) -> None:
    """A Ref to nothing is refused at CreateStack with AWS's message."""
    body = {
        "Resources": {
            "Q": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"QueueName": {"Ref": "Nope"}},
            }
        }
    }
    with pytest.raises(
        ServiceError, match=r"Unresolved resource dependencies \[Nope\]"
    ):
        cfn_call("CreateStack", StackName="bad", TemplateBody=json.dumps(body))


def test_create_network_honours_egress_rules_and_outputs(cloud: str) -> None:
    """Inline egress replaces the default rule; GetAtt and outputs resolve."""
    stack = create(NETWORK)

    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    closed_id, open_id = outputs["Groups"].split(",")
    assert outputs["SubnetZone"].startswith(REGION)
    groups = {
        g["GroupId"]: g
        for g in ec2().describe_security_groups(GroupIds=[closed_id, open_id])[
            "SecurityGroups"
        ]
    }
    closed_egress = groups[closed_id]["IpPermissionsEgress"]
    assert [r["IpRanges"][0]["CidrIp"] for r in closed_egress] == ["127.0.0.1/32"]
    assert (
        groups[open_id]["IpPermissionsEgress"][0]["IpRanges"][0]["CidrIp"]
        == "0.0.0.0/0"
    )
    assert groups[open_id]["IpPermissions"][0]["IpRanges"][0]["CidrIp"] == "10.1.0.0/16"
    order = [
        name for name, status in events(stack["StackId"]) if status == "CREATE_COMPLETE"
    ]
    assert order.index("Vpc") < order.index("Subnet")
    assert order[-1] == "lab"


def test_conditions_skip_resources_and_pick_branches(cloud: str) -> None:
    """A false Condition skips its resource; Fn::If picks the value."""
    body = {
        "Parameters": {"Mail": {"Type": "String", "Default": ""}},
        "Conditions": {"HasMail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Mail"}, ""]}]}},
        "Resources": {
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t1"}},
            "Sub": {
                "Type": "AWS::SNS::Subscription",
                "Condition": "HasMail",
                "Properties": {
                    "TopicArn": {"Ref": "Topic"},
                    "Protocol": "email",
                    "Endpoint": {"Ref": "Mail"},
                },
            },
        },
        "Outputs": {
            "Mail": {"Value": {"Fn::If": ["HasMail", {"Ref": "Mail"}, "none"]}}
        },
    }
    stack = create(body)

    resources = cfn_call("ListStackResources", StackName="lab")[
        "StackResourceSummaries"
    ]
    assert [r["LogicalResourceId"] for r in resources] == ["Topic"]
    assert stack["Outputs"][0]["OutputValue"] == "none"
    assert stack["Parameters"] == [{"ParameterKey": "Mail", "ParameterValue": ""}]


ROLE = {
    "Type": "AWS::IAM::Role",
    "Properties": {
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        },
        "ManagedPolicyArns": ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"],
        "Policies": [
            {
                "PolicyName": "inline",
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
                    ],
                },
            }
        ],
    },
}


def test_iam_resources_need_the_matching_capability(managed_policies: str) -> None:
    """IAM resources need CAPABILITY_IAM, named ones CAPABILITY_NAMED_IAM."""
    unnamed = json.dumps({"Resources": {"Role": ROLE}})
    named_role = {**ROLE, "Properties": {**ROLE["Properties"], "RoleName": "lab-role"}}
    named = json.dumps({"Resources": {"Role": named_role}})

    with pytest.raises(ServiceError) as caught:
        cfn_call("CreateStack", StackName="a", TemplateBody=unnamed)
    assert caught.value.code == "InsufficientCapabilitiesException"
    assert caught.value.message == "Requires capabilities : [CAPABILITY_IAM]"
    with pytest.raises(ServiceError, match=r"\[CAPABILITY_NAMED_IAM\]"):
        cfn_call(
            "CreateStack",
            StackName="b",
            TemplateBody=named,
            Capabilities=["CAPABILITY_IAM"],
        )

    stack = create(named, "c", Capabilities=["CAPABILITY_NAMED_IAM"])
    iam = internal.client("iam", REGION)
    attached = iam.list_attached_role_policies(RoleName="lab-role")["AttachedPolicies"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert stack["Capabilities"] == ["CAPABILITY_NAMED_IAM"]
    assert [p["PolicyName"] for p in attached] == ["AmazonSSMManagedInstanceCore"]
    assert iam.list_role_policies(RoleName="lab-role")["PolicyNames"] == ["inline"]

    assert delete(stack["StackId"])["StackStatus"] == "DELETE_COMPLETE"
    assert iam.list_roles()["Roles"] == []


FAILING = {
    "Resources": {
        "Bucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {"BucketName": "kept-or-not"},
        },
        "Detector": {"Type": "AWS::GuardDuty::Detector", "DependsOn": "Bucket"},
    }
}


def test_failed_create_rolls_back(cloud: str) -> None:
    """A failed resource rolls the stack back: what was made is deleted."""
    stack = create(FAILING)

    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    reason = reason_of(stack["StackId"], "Detector", "CREATE_FAILED")
    assert "AWS::GuardDuty::Detector is not supported" in reason
    assert ("Bucket", "DELETE_COMPLETE") in events(stack["StackId"])
    assert internal.client("s3", REGION).list_buckets()["Buckets"] == []


def test_failed_create_with_do_nothing_keeps_resources(cloud: str) -> None:
    """OnFailure=DO_NOTHING leaves CREATE_FAILED and the resources made."""
    stack = create(FAILING, OnFailure="DO_NOTHING")

    assert stack["StackStatus"] == "CREATE_FAILED"
    assert stack["StackStatusReason"].startswith(
        "The following resource(s) failed to create: [Detector]"
    )
    buckets = internal.client("s3", REGION).list_buckets()["Buckets"]
    assert [b["Name"] for b in buckets] == ["kept-or-not"]


def test_service_error_fails_resource_with_its_message(cloud: str) -> None:
    """A service's refusal becomes the resource's CREATE_FAILED reason."""
    body = {
        "Resources": {
            "Subnet": {
                "Type": "AWS::EC2::Subnet",
                "Properties": {"VpcId": "vpc-00000000", "CidrBlock": "10.9.0.0/24"},
            }
        }
    }
    stack = create(body, DisableRollback=True)

    assert stack["StackStatus"] == "CREATE_FAILED"
    reason = reason_of(stack["StackId"], "Subnet", "CREATE_FAILED")
    assert "vpc-00000000" in reason and "InvalidVpcID.NotFound" in reason


FULL_NETWORK = {
    "Parameters": {
        "Ami": {
            "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
            "Default": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
        }
    },
    "Resources": {
        **NETWORK["Resources"],
        "Gateway": {"Type": "AWS::EC2::InternetGateway"},
        "Attach": {
            "Type": "AWS::EC2::VPCGatewayAttachment",
            "Properties": {
                "VpcId": {"Ref": "Vpc"},
                "InternetGatewayId": {"Ref": "Gateway"},
            },
        },
        "Table": {
            "Type": "AWS::EC2::RouteTable",
            "Properties": {"VpcId": {"Ref": "Vpc"}},
        },
        "Route": {
            "Type": "AWS::EC2::Route",
            "DependsOn": "Attach",
            "Properties": {
                "RouteTableId": {"Ref": "Table"},
                "DestinationCidrBlock": "0.0.0.0/0",
                "GatewayId": {"Ref": "Gateway"},
            },
        },
        "Assoc": {
            "Type": "AWS::EC2::SubnetRouteTableAssociation",
            "Properties": {
                "SubnetId": {"Ref": "Subnet"},
                "RouteTableId": {"Ref": "Table"},
            },
        },
        "Server": {
            "Type": "AWS::EC2::Instance",
            "Properties": {
                "ImageId": {"Ref": "Ami"},
                "InstanceType": "t3.micro",
                "SubnetId": {"Ref": "Subnet"},
                "SecurityGroupIds": [{"Ref": "Open"}],
                "UserData": {
                    "Fn::Base64": {"Fn::Sub": "#!/bin/bash\necho ${AWS::Region}\n"}
                },
            },
        },
        "Address": {
            "Type": "AWS::EC2::EIP",
            "DependsOn": "Attach",
            "Properties": {"Domain": "vpc", "InstanceId": {"Ref": "Server"}},
        },
        "Spare": {"Type": "AWS::EC2::EIP", "DependsOn": "Attach"},
        "SpareAssoc": {
            "Type": "AWS::EC2::EIPAssociation",
            "Properties": {
                "AllocationId": {"Fn::GetAtt": ["Spare", "AllocationId"]},
                "InstanceId": {"Ref": "Server"},
            },
        },
    },
    "Outputs": {"Ip": {"Value": {"Ref": "Address"}}},
}


def test_network_stack_deletes_everything_dependents_first(cloud: str) -> None:
    """Deletion undoes every network resource, dependents before dependencies."""
    stack = create(FULL_NETWORK)
    assert stack["StackStatus"] == "CREATE_COMPLETE", events(stack["StackId"])
    resolved = stack["Parameters"][0]["ResolvedValue"]
    instance = ec2().describe_instances()["Reservations"][0]["Instances"][0]
    assert instance["ImageId"] == resolved.strip()
    assert len(instance["SecurityGroups"]) == 1
    user_data = ec2().describe_instance_attribute(
        InstanceId=instance["InstanceId"], Attribute="userData"
    )["UserData"]["Value"]
    assert json.dumps(user_data)  # stored once-encoded, as the API returns it

    deleted = delete(stack["StackId"])

    assert deleted["StackStatus"] == "DELETE_COMPLETE"
    order = [
        name for name, status in events(stack["StackId"]) if status == "DELETE_COMPLETE"
    ]
    assert order.index("Route") < order.index("Attach") < order.index("Gateway")
    assert order.index("Server") < order.index("Subnet") < order.index("Vpc")
    client = ec2()
    assert [v for v in client.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []
    assert client.describe_addresses()["Addresses"] == []
    assert client.describe_internet_gateways()["InternetGateways"] == []
    states = {
        i["State"]["Name"]
        for r in client.describe_instances()["Reservations"]
        for i in r["Instances"]
    }
    assert states <= {"terminated", "shutting-down"}


def test_user_data_is_sent_once_encoded(cloud: str) -> None:
    """Fn::Base64 user data reaches the instance as the script, not base64 of base64."""
    body = {
        "Resources": {
            "Server": {
                "Type": "AWS::EC2::Instance",
                "Properties": {
                    "ImageId": "ami-0e5df6fd7455a69b3",
                    "UserData": {"Fn::Base64": "#!/bin/bash\necho hi\n"},
                },
            }
        }
    }
    create(body)
    instance_id = cfn_call(
        "DescribeStackResource", StackName="lab", LogicalResourceId="Server"
    )["StackResourceDetail"]["PhysicalResourceId"]
    import base64

    value = ec2().describe_instance_attribute(
        InstanceId=instance_id, Attribute="userData"
    )
    assert base64.b64decode(value["UserData"]["Value"]) == b"#!/bin/bash\necho hi\n"


def test_non_empty_bucket_fails_delete_then_retry_succeeds(cloud: str) -> None:
    """A bucket with objects gives DELETE_FAILED; emptied, the delete completes."""
    body = {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "full"}}
        }
    }
    stack = create(body)
    s3 = internal.client("s3", REGION)
    s3.put_object(Bucket="full", Key="a.txt", Body=b"x")

    failed = delete(stack["StackId"])

    assert failed["StackStatus"] == "DELETE_FAILED"
    assert (
        failed["StackStatusReason"]
        == "The following resource(s) failed to delete: [Bucket]. "
    )
    assert "BucketNotEmpty" in reason_of(stack["StackId"], "Bucket", "DELETE_FAILED")

    s3.delete_object(Bucket="full", Key="a.txt")
    assert delete(stack["StackId"])["StackStatus"] == "DELETE_COMPLETE"
    assert s3.list_buckets()["Buckets"] == []


def test_describe_unknown_or_deleted_stack_by_name_fails(cloud: str) -> None:
    """A deleted stack is gone by name but still described by its id."""
    body = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    stack = create(body, Tags=[{"Key": "lab", "Value": "yes"}])
    assert stack["Tags"] == [{"Key": "lab", "Value": "yes"}]
    delete(stack["StackId"])

    with pytest.raises(ServiceError, match="Stack with id lab does not exist"):
        cfn_call("DescribeStacks", StackName="lab")
    listed = cfn_call("ListStacks", StackStatusFilter=["DELETE_COMPLETE"])[
        "StackSummaries"
    ]
    assert [s["StackId"] for s in listed] == [stack["StackId"]]
    assert cfn_call("DescribeStacks")["Stacks"] == []


def test_parameters_are_checked_like_aws(cloud: str) -> None:
    """Missing, unknown and disallowed parameter values are refused."""
    body = json.dumps(
        {
            "Parameters": {
                "Size": {"Type": "String", "AllowedValues": ["s", "m"]},
                "Count": {"Type": "Number", "Default": "1", "MaxValue": 3},
            },
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        }
    )
    cases = [
        ([], r"Parameters: \[Size\] must have values"),
        (
            [{"ParameterKey": "Size", "ParameterValue": "xl"}],
            "must be one of AllowedValues",
        ),
        (
            [
                {"ParameterKey": "Size", "ParameterValue": "s"},
                {"ParameterKey": "Count", "ParameterValue": "9"},
            ],
            "not greater than 3",
        ),
        (
            [
                {"ParameterKey": "Size", "ParameterValue": "s"},
                {"ParameterKey": "Extra", "ParameterValue": "1"},
            ],
            r"Parameters: \[Extra\] do not exist",
        ),
    ]
    for given, message in cases:
        with pytest.raises(ServiceError, match=message):
            cfn_call("CreateStack", StackName="p", TemplateBody=body, Parameters=given)


def test_ssm_parameter_type_reads_parameter_store(cloud: str) -> None:
    """An SSM parameter type gives the stored value; a missing one is refused."""
    internal.client("ssm", REGION).put_parameter(
        Name="/lab/colour", Value="blue", Type="String"
    )
    body = {
        "Parameters": {
            "Colour": {
                "Type": "AWS::SSM::Parameter::Value<String>",
                "Default": "/lab/colour",
            }
        },
        "Resources": {
            "Param": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Type": "String", "Value": {"Ref": "Colour"}},
            }
        },
        "Outputs": {"Name": {"Value": {"Ref": "Param"}}},
    }
    stack = create(body)
    name = stack["Outputs"][0]["OutputValue"]
    stored = internal.client("ssm", REGION).get_parameter(Name=name)["Parameter"][
        "Value"
    ]
    assert stored == "blue"
    assert stack["Parameters"][0]["ResolvedValue"] == "blue"

    missing = [{"ParameterKey": "Colour", "ParameterValue": "/lab/none"}]
    with pytest.raises(ServiceError, match=r"Unable to fetch parameters \[/lab/none\]"):
        cfn_call(
            "CreateStack",
            StackName="x",
            TemplateBody=json.dumps(body),
            Parameters=missing,
        )


def test_update_stack_is_refused_with_a_reason(cloud: str) -> None:
    """An unchanged update has nothing to do; a changed one is not supported."""
    body = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    create(body)

    with pytest.raises(ServiceError, match=r"^No updates are to be performed\.$"):
        cfn_call("UpdateStack", StackName="lab", TemplateBody=json.dumps(body))
    changed = {"Resources": {"Other": {"Type": "AWS::SNS::Topic"}}}
    with pytest.raises(ServiceError, match="not supported by the local cloud"):
        cfn_call("UpdateStack", StackName="lab", TemplateBody=json.dumps(changed))


def test_validate_and_get_template(cloud: str) -> None:
    """ValidateTemplate lists parameters and capabilities; GetTemplate returns the body."""
    body = json.dumps(
        {
            "Description": "d",
            "Parameters": {"P": {"Type": "String", "Default": "v"}},
            "Resources": {"Role": ROLE},
        }
    )
    checked = cfn_call("ValidateTemplate", TemplateBody=body)
    assert checked["Parameters"] == [
        {"ParameterKey": "P", "NoEcho": False, "DefaultValue": "v"}
    ]
    assert checked["Capabilities"] == ["CAPABILITY_IAM"]
    assert "AWS::IAM::Role" in checked["CapabilitiesReason"]

    create(body, Capabilities=["CAPABILITY_IAM"])
    assert cfn_call("GetTemplate", StackName="lab")["TemplateBody"] == body
    with pytest.raises(ServiceError) as caught:
        cfn_call(
            "CreateStack",
            StackName="lab",
            TemplateBody=body,
            Capabilities=["CAPABILITY_IAM"],
        )
    assert caught.value.code == "AlreadyExistsException"


def _zip(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def test_workshop_template_creates_and_deletes_completely(
    managed_policies: str,
) -> None:
    """The lab's template reaches CREATE_COMPLETE as intended and deletes cleanly."""
    s3 = internal.client("s3", REGION)
    s3.create_bucket(
        Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    s3.put_object(
        Bucket="artifacts", Key="isolate.zip", Body=_zip("isolate_instance.py")
    )
    s3.put_object(Bucket="artifacts", Key="revoke.zip", Body=_zip("revoke_sessions.py"))
    parameters = [
        {"ParameterKey": "ArtifactBucket", "ParameterValue": "artifacts"},
        {"ParameterKey": "IsolateCodeKey", "ParameterValue": "isolate.zip"},
        {"ParameterKey": "RevokeCodeKey", "ParameterValue": "revoke.zip"},
    ]
    stack = create(
        TEMPLATE.read_text(),
        "Security-Workshop",
        Parameters=parameters,
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    assert stack["StackStatus"] == "CREATE_COMPLETE", events(stack["StackId"])
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    client = ec2()
    forensic = client.describe_security_groups(
        GroupIds=[outputs["ForensicSecurityGroupId"]]
    )
    egress = forensic["SecurityGroups"][0]["IpPermissionsEgress"]
    assert [r["IpRanges"][0]["CidrIp"] for r in egress] == ["127.0.0.1/32"]
    assert forensic["SecurityGroups"][0]["IpPermissions"] == []
    instances = [
        i for r in client.describe_instances()["Reservations"] for i in r["Instances"]
    ]
    assert len(instances) == 6
    for instance in instances:
        groups = [g["GroupId"] for g in instance["SecurityGroups"]]
        assert groups == [outputs["TargetSecurityGroupId"]]
    address = client.describe_addresses(PublicIps=[outputs["MaliciousIp"]])[
        "Addresses"
    ][0]
    assert address["InstanceId"] == outputs["MaliciousInstanceId"]

    events_client = internal.client("events", REGION)
    rules = events_client.list_rules(NamePrefix="GuardDuty-Event")["Rules"]
    assert len(rules) == 3
    targets = events_client.list_targets_by_rule(
        Rule="GuardDuty-Event-EC2-MaliciousIPCaller"
    )
    by_id = {t["Id"]: t for t in targets["Targets"]}
    assert by_id["isolate-instance"]["Arn"].endswith(
        ":function:Security-Workshop-Remediation-EC2-MaliciousIPCaller"
    )
    transformer = by_id["notify-guardduty-topic"]["InputTransformer"]
    assert (
        transformer["InputPathsMap"]["instanceid"]
        == "$.detail.resource.instanceDetails.instanceId"
    )
    assert transformer["InputTemplate"].startswith('"GuardDuty finding <gdid>')
    environment = internal.client("lambda", REGION).get_function_configuration(
        FunctionName="Security-Workshop-Remediation-EC2-MaliciousIPCaller"
    )["Environment"]["Variables"]
    assert (
        environment["FORENSIC_SECURITY_GROUP_ID"] == outputs["ForensicSecurityGroupId"]
    )

    deleted = delete(stack["StackId"])

    assert deleted["StackStatus"] == "DELETE_COMPLETE", events(stack["StackId"])
    assert [v for v in client.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []
    states = {
        i["State"]["Name"]
        for r in client.describe_instances()["Reservations"]
        for i in r["Instances"]
    }
    assert states <= {"terminated", "shutting-down"}
    assert internal.client("iam", REGION).list_roles()["Roles"] == []
    assert internal.client("iam", REGION).list_users()["Users"] == []
    assert internal.client("sns", REGION).list_topics()["Topics"] == []
    assert internal.client("sqs", REGION).list_queues().get("QueueUrls", []) == []
    assert events_client.list_rules()["Rules"] == []
    assert internal.client("lambda", REGION).list_functions()["Functions"] == []
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["artifacts"]
