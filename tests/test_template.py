"""The CloudFormation template deployed in both modes: lint and structure."""

from __future__ import annotations

import importlib
import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.api import lint
from cfnlint.decode.decode import decode_str
from moto import mock_aws
from moto.events.models import EventPattern

from labkit.local.patterns import matches, parse_pattern
from labkit.remediation import CODE_KEY_PARAMETERS

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "cfn" / "security-workshop.yaml"

INSTANCE_NAMES = {
    "Security-Workshop: Compromised Instance: Scenario 1",
    "Security-Workshop: Compromised Instance: Scenario 3",
    "Security-Workshop: Malicious Instance",
    "Security-Workshop: SecureServer1",
    "Security-Workshop: SecureServer2",
    "Security-Workshop: ControlServer",
}
EC2_RULE = "GuardDuty-Event-EC2-MaliciousIPCaller"
IAM_RULE = "GuardDuty-Event-IAM-MaliciousIPCaller"
EXFIL_RULE = "GuardDuty-Event-IAMUser-InstanceCredentialExfiltration"
EC2_TYPE = "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"
RECON_TYPE = "Recon:IAMUser/MaliciousIPCaller.Custom"
IAM_TYPE = "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom"
EXFIL_OLD = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration"
EXFIL_NEW = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
ALL_TYPES = [EC2_TYPE, RECON_TYPE, IAM_TYPE, EXFIL_OLD, EXFIL_NEW]
RULE_TYPES = {
    EC2_RULE: {EC2_TYPE},
    IAM_RULE: {RECON_TYPE, IAM_TYPE},
    EXFIL_RULE: {EXFIL_OLD, EXFIL_NEW},
}
OUTPUTS = {
    "MaliciousIp",
    "Scenario1InstanceId",
    "Scenario3InstanceId",
    "MaliciousInstanceId",
    "SecureServer1InstanceId",
    "SecureServer2InstanceId",
    "ControlServerInstanceId",
    "TargetSecurityGroupId",
    "ForensicSecurityGroupId",
    "GuardDutyTopicArn",
    "ConfigTopicArn",
    "InboxQueueUrl",
    "InboxQueueArn",
    "CompromisedRoleName",
    "SimulatedUserName",
    "ThreatListBucket",
    "ConfigBucket",
    "TrailBucket",
    "AccessLogGroup",
    "FlowLogGroup",
    "DetectorId",
}
# What the local CloudFormation engine evaluates.
INTRINSICS = {
    "Ref",
    "Condition",
    "Fn::GetAtt",
    "Fn::Sub",
    "Fn::Join",
    "Fn::If",
    "Fn::Equals",
    "Fn::Not",
    "Fn::Select",
    "Fn::GetAZs",
    "Fn::Base64",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """The template as plain JSON data, short-form tags expanded."""
    decoded, problems = decode_str(TEMPLATE_PATH.read_text())
    assert problems == []
    return json.loads(json.dumps(decoded))


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The resources of one type, by logical id."""
    return {
        name: body
        for name, body in template["Resources"].items()
        if body["Type"] == kind
    }


def rule_named(template: dict[str, Any], name: str) -> dict[str, Any]:
    """The properties of the event rule with that Name."""
    for body in resources_of(template, "AWS::Events::Rule").values():
        if body["Properties"]["Name"] == name:
            return dict(body["Properties"])
    raise AssertionError(f"no rule named {name!r}")


def finding_event(finding_type: str, source: str = "aws.guardduty") -> dict[str, Any]:
    """A GuardDuty Finding event of that type, as EventBridge delivers it."""
    return {
        "version": "0",
        "id": "0f0e0d0c-0b0a-0908-0706-050403020100",
        "detail-type": "GuardDuty Finding",
        "source": source,
        "account": "123456789012",
        "region": "eu-west-2",
        "resources": [],
        "detail": {"id": "abc123", "type": finding_type, "severity": 8},
    }


def walk(value: Any) -> Iterator[Any]:
    """Every dict, list and scalar inside a value, the value first."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def test_template_passes_cfn_lint() -> None:
    """cfn-lint reports no error for the regions the lab uses."""
    found = lint(TEMPLATE_PATH.read_text(), regions=["eu-west-2", "us-east-1"])

    errors = [str(match) for match in found if match.rule.id.startswith("E")]
    assert errors == []


def test_template_uses_only_local_intrinsics(template: dict[str, Any]) -> None:
    """Every intrinsic function is one the local engine evaluates."""
    used = {
        key
        for section in ("Resources", "Outputs", "Conditions")
        for node in walk(template[section])
        if isinstance(node, dict)
        for key in node
        if key == "Ref" or key.startswith("Fn::")
    }

    assert used <= INTRINSICS
    assert {"Ref", "Fn::GetAtt", "Fn::Sub", "Fn::If"} <= used


def test_template_has_six_named_instances(template: dict[str, Any]) -> None:
    """Six instances carry the workshop's names, all in the target group."""
    instances = resources_of(template, "AWS::EC2::Instance")

    names = {
        tag["Value"]
        for body in instances.values()
        for tag in body["Properties"]["Tags"]
        if tag["Key"] == "Name"
    }
    assert names == INSTANCE_NAMES
    for body in instances.values():
        properties = body["Properties"]
        assert properties["SecurityGroupIds"] == [{"Ref": "TargetSecurityGroup"}]
        assert properties["SubnetId"] == {"Ref": "PublicSubnet"}
        assert "SecurityGroups" not in properties
        assert properties["ImageId"] == {"Ref": "LatestAmiId"}
        assert "Fn::Base64" in properties["UserData"]


def test_template_ami_is_al2023_public_parameter(template: dict[str, Any]) -> None:
    """The AMI comes from the public Amazon Linux 2023 parameter."""
    parameter = template["Parameters"]["LatestAmiId"]

    assert parameter["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert parameter["Default"] == (
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    )


def test_template_ami_parameter_served_by_moto(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto answers the AMI parameter with an image it can launch."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    name = template["Parameters"]["LatestAmiId"]["Default"]

    with mock_aws():
        ssm = boto3.client("ssm", region_name="eu-west-2")
        image_id = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        ec2 = boto3.client("ec2", region_name="eu-west-2")
        images = ec2.describe_images(ImageIds=[image_id])["Images"]

    assert image_id.startswith("ami-")
    assert "al2023" in images[0]["Name"]


def test_template_malicious_eip_is_associated(template: dict[str, Any]) -> None:
    """The Elastic IP is bound to the malicious instance and output."""
    eips = resources_of(template, "AWS::EC2::EIP")

    assert [body["Properties"]["InstanceId"] for body in eips.values()] == [
        {"Ref": "MaliciousInstance"}
    ]
    assert template["Outputs"]["MaliciousIp"]["Value"] == {"Ref": "MaliciousEip"}


def test_template_has_three_workshop_rules(template: dict[str, Any]) -> None:
    """The three event rules carry the workshop's exact names."""
    rules = resources_of(template, "AWS::Events::Rule")

    assert {body["Properties"]["Name"] for body in rules.values()} == set(RULE_TYPES)


@pytest.mark.parametrize("rule", sorted(RULE_TYPES))
def test_rule_pattern_matches_its_finding_types(
    template: dict[str, Any], rule: str
) -> None:
    """Each pattern matches its own finding types and no other (P12 included)."""
    pattern = rule_named(template, rule)["EventPattern"]
    checked = parse_pattern(pattern)

    labkit_verdicts = {t: matches(checked, finding_event(t)) for t in ALL_TYPES}
    moto_pattern = EventPattern.load(json.dumps(pattern))
    moto_verdicts = {t: moto_pattern.matches_event(finding_event(t)) for t in ALL_TYPES}

    expected = {t: t in RULE_TYPES[rule] for t in ALL_TYPES}
    assert labkit_verdicts == expected
    assert moto_verdicts == expected


@pytest.mark.parametrize("rule", sorted(RULE_TYPES))
def test_rule_pattern_requires_guardduty_source(
    template: dict[str, Any], rule: str
) -> None:
    """A look-alike event from another source matches no rule."""
    pattern = parse_pattern(rule_named(template, rule)["EventPattern"])
    finding_type = sorted(RULE_TYPES[rule])[0]

    assert matches(pattern, finding_event(finding_type))
    assert not matches(pattern, finding_event(finding_type, source="custom.app"))


@pytest.mark.parametrize(
    ("rule", "function"),
    [(EC2_RULE, "IsolateFunction"), (IAM_RULE, None), (EXFIL_RULE, "RevokeFunction")],
)
def test_rule_targets(
    template: dict[str, Any], rule: str, function: str | None
) -> None:
    """Each rule notifies the GuardDuty topic; two also run their remediation."""
    targets = rule_named(template, rule)["Targets"]

    arns = [target["Arn"] for target in targets]
    expected = [{"Ref": "GuardDutyTopic"}]
    if function is not None:
        expected.insert(0, {"Fn::GetAtt": [function, "Arn"]})
    assert arns == expected
    assert len({target["Id"] for target in targets}) == len(targets)


@pytest.mark.parametrize(
    ("rule", "needed"),
    [
        (EC2_RULE, {"gdid", "instanceid", "type"}),
        (IAM_RULE, {"gdid", "userName", "accessKeyId", "type"}),
        (EXFIL_RULE, {"gdid", "roleName", "accessKeyId", "type"}),
    ],
)
def test_rule_topic_message_is_string_template(
    template: dict[str, Any], rule: str, needed: set[str]
) -> None:
    """The topic gets a quoted text whose placeholders are all mapped."""
    topic_target = rule_named(template, rule)["Targets"][-1]
    transformer = topic_target["InputTransformer"]
    text = transformer["InputTemplate"]

    placeholders = set(re.findall(r"<([A-Za-z0-9_.-]+)>", text))
    assert text.startswith('"') and text.endswith('"')
    assert text.count('"') == 2
    assert placeholders == set(transformer["InputPathsMap"])
    assert needed <= placeholders
    assert all(path.startswith("$.") for path in transformer["InputPathsMap"].values())


def test_lambda_permissions_name_their_rules(template: dict[str, Any]) -> None:
    """Events may invoke each function, and only from its own rule."""
    permissions = resources_of(template, "AWS::Lambda::Permission").values()

    pairs = {
        (
            body["Properties"]["FunctionName"]["Fn::GetAtt"][0],
            body["Properties"]["SourceArn"]["Fn::GetAtt"][0],
        )
        for body in permissions
        if body["Properties"]["Principal"] == "events.amazonaws.com"
    }
    assert pairs == {
        ("IsolateFunction", "EC2MaliciousIPCallerRule"),
        ("RevokeFunction", "InstanceCredentialExfiltrationRule"),
    }


def test_forensic_group_has_no_ingress_and_no_usable_egress(
    template: dict[str, Any],
) -> None:
    """The forensic group admits nothing and sends nothing off the instance."""
    group = template["Resources"]["ForensicSecurityGroup"]["Properties"]
    loose_rules = [
        body
        for kind in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress")
        for body in resources_of(template, kind).values()
        if "ForensicSecurityGroup" in json.dumps(body)
    ]

    assert "SecurityGroupIngress" not in group
    assert loose_rules == []
    # At least one rule, or CloudFormation keeps the default allow-all egress.
    assert group["SecurityGroupEgress"]
    loopback = ipaddress.ip_network("127.0.0.0/8")
    for rule in group["SecurityGroupEgress"]:
        assert set(rule) <= {
            "IpProtocol",
            "FromPort",
            "ToPort",
            "CidrIp",
            "Description",
        }
        assert ipaddress.ip_network(rule["CidrIp"]).subnet_of(loopback)


def test_outputs_cover_what_labkit_reads(template: dict[str, Any]) -> None:
    """Every output labkit reads is declared."""
    assert OUTPUTS <= set(template["Outputs"])


def test_outputs_expose_no_secret(template: dict[str, Any]) -> None:
    """No output carries the access key's secret or a NoEcho parameter."""
    text = json.dumps(template["Outputs"])
    hidden = [
        name
        for name, body in template["Parameters"].items()
        if str(body.get("NoEcho", "")).lower() == "true"
    ]
    access_keys = resources_of(template, "AWS::IAM::AccessKey")

    assert "SecretAccessKey" not in text
    assert all(f'"{name}"' not in text for name in hidden)
    assert access_keys
    assert all(f'"{name}"' not in text for name in access_keys)


def test_lambda_handlers_exist_in_remediation(template: dict[str, Any]) -> None:
    """Each function's handler is a function of labkit.remediation."""
    functions = resources_of(template, "AWS::Lambda::Function")

    assert len(functions) == 2
    for body in functions.values():
        properties = body["Properties"]
        module_name, _, func_name = properties["Handler"].rpartition(".")
        module = importlib.import_module(f"labkit.remediation.{module_name}")
        assert callable(getattr(module, func_name))
        assert properties["Runtime"] == "python3.12"
        key_parameter = properties["Code"]["S3Key"]["Ref"]
        assert CODE_KEY_PARAMETERS[key_parameter] == module_name


def test_lambda_environments_name_their_settings(template: dict[str, Any]) -> None:
    """The functions get the settings their handlers read."""
    resources = template["Resources"]
    isolate = resources["IsolateFunction"]["Properties"]["Environment"]["Variables"]
    revoke = resources["RevokeFunction"]["Properties"]["Environment"]["Variables"]

    assert isolate == {
        "FORENSIC_SECURITY_GROUP_ID": {
            "Fn::GetAtt": ["ForensicSecurityGroup", "GroupId"]
        },
        "TOPIC_ARN": {"Ref": "GuardDutyTopic"},
    }
    assert revoke == {
        "ALLOWED_ROLE_NAME": {"Ref": "CompromisedRole"},
        "TOPIC_ARN": {"Ref": "GuardDutyTopic"},
    }


def test_revoke_role_may_only_change_compromised_role(
    template: dict[str, Any],
) -> None:
    """PutRolePolicy is granted on the compromised role alone."""
    role = template["Resources"]["RevokeFunctionRole"]["Properties"]
    statements = [
        statement
        for policy in role["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]

    iam_statements = [s for s in statements if "iam:" in json.dumps(s["Action"])]
    assert iam_statements == [
        {
            "Sid": "DenyOldSessionsOfTheCompromisedRole",
            "Effect": "Allow",
            "Action": "iam:PutRolePolicy",
            "Resource": {"Fn::GetAtt": ["CompromisedRole", "Arn"]},
        }
    ]
    assert "ManagedPolicyArns" not in role


def test_only_workshop_named_iam_resources(template: dict[str, Any]) -> None:
    """Only the role and user the workshop names get explicit IAM names."""
    roles = resources_of(template, "AWS::IAM::Role")
    users = resources_of(template, "AWS::IAM::User")

    named_roles = {b["Properties"].get("RoleName") for b in roles.values()} - {None}
    assert named_roles == {"Security-Workshop-EC2-Compromised"}
    assert [b["Properties"]["UserName"] for b in users.values()] == [
        "Security-Workshop-Compromised-Simulated"
    ]


def test_email_subscriptions_only_with_address(template: dict[str, Any]) -> None:
    """E-mail needs the HasEmail condition; the inbox queue is always subscribed."""
    subscriptions = resources_of(template, "AWS::SNS::Subscription").values()

    by_protocol: dict[str, list[dict[str, Any]]] = {}
    for body in subscriptions:
        by_protocol.setdefault(body["Properties"]["Protocol"], []).append(body)
    assert sorted(by_protocol) == ["email", "sqs"]
    assert all(body.get("Condition") == "HasEmail" for body in by_protocol["email"])
    assert all("Condition" not in body for body in by_protocol["sqs"])
    topics = {json.dumps(body["Properties"]["TopicArn"]) for body in subscriptions}
    assert topics == {'{"Ref": "GuardDutyTopic"}', '{"Ref": "ConfigTopic"}'}


def test_parameters_have_defaults_except_code(template: dict[str, Any]) -> None:
    """Only the artifact bucket and the code keys must be given."""
    required = {
        name for name, body in template["Parameters"].items() if "Default" not in body
    }

    assert required == {"ArtifactBucket", "IsolateCodeKey", "RevokeCodeKey"}
    assert set(CODE_KEY_PARAMETERS) <= set(template["Parameters"])
