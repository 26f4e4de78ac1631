"""Scenario 1 end to end on the real local cloud, as the notebooks run it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import labkit
from labkit import inventory, rules
from labkit.errors import EventPatternError, StackError
from labkit.lab import Lab

FINDING = "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"

Deployed = tuple[Lab, str, dict[str, str]]
BeforeList = tuple[Lab, str, dict[str, str], pd.DataFrame]


@pytest.fixture(scope="module")
def before_list(local_cloud: str) -> BeforeList:
    """The stack deployed on a fresh local cloud, and 3 minutes of pings later.

    The findings seen then, before any threat list, are kept here, so that
    the tests needing the list active can run in any order.
    """
    import urllib.request

    reset = urllib.request.Request(f"{local_cloud}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=30).close()
    lab = labkit.connect()
    detector_id, _ = labkit.enable_guardduty(lab)
    outputs = labkit.deploy_stack(lab, detector_id=detector_id, progress=False)
    lab.advance(3)
    return lab, detector_id, outputs, labkit.lab_findings(lab, detector_id)


@pytest.fixture(scope="module")
def deployed(before_list: BeforeList) -> Deployed:
    """The lab, its detector and the stack's outputs, GuardDuty on."""
    lab, detector_id, outputs, _ = before_list
    return lab, detector_id, outputs


@pytest.fixture(scope="module")
def detected(deployed: Deployed) -> pd.DataFrame:
    """The threat list active and the Scenario 1 finding raised (and handled).

    Module-scoped, so the list is activated and the finding awaited once,
    whichever test asks first; a later test sees the same lab.
    """
    lab, detector_id, outputs = deployed
    labkit.activate_threat_list(lab, outputs)
    return labkit.wait_for_findings(lab, detector_id, [FINDING], timeout_minutes=10)


def test_no_finding_without_the_threat_list(
    before_list: BeforeList,
) -> None:
    """Pings alone raise nothing, and no bundled finding stands in (P27)."""
    assert before_list[3].empty


def test_finding_comes_from_the_detector(
    deployed: Deployed, detected: pd.DataFrame
) -> None:
    """Once the list is active, the pings raise one real, non-sample finding (P27)."""
    lab, detector_id, outputs = deployed

    assert len(detected) == 1
    row = detected.iloc[0]
    assert row["instance_id"] == outputs["Scenario1InstanceId"]
    assert row["remote_ips"] == [outputs["MaliciousIp"]]
    assert row["action_type"] == "NETWORK_CONNECTION"
    assert row["severity_label"] == "Medium"
    assert not row["sample"]
    full = labkit.finding_json(lab, detector_id, row["id"])
    evidence = full["Service"]["Evidence"]["ThreatIntelligenceDetails"][0]
    assert evidence["ThreatListName"] == "Example-Threat-List"


def test_rule_isolates_and_notifies(deployed: Deployed, detected: pd.DataFrame) -> None:
    """The rule's Lambda leaves the instance only in the forensic group; two e-mails."""
    lab, _, outputs = deployed
    groups = inventory.instance_security_groups(lab, outputs["Scenario1InstanceId"])
    assert groups["group_id"].tolist() == [outputs["ForensicSecurityGroupId"]]

    inbox = labkit.read_inbox(lab, outputs["InboxQueueUrl"])
    assert len(inbox) == 2
    alert, remediation = inbox["message"].tolist()
    assert alert.startswith('"') and alert.endswith('"')
    assert outputs["Scenario1InstanceId"] in alert
    assert "<" not in alert
    assert outputs["ForensicSecurityGroupId"] in remediation


def test_other_instances_keep_their_group(
    deployed: Deployed, detected: pd.DataFrame
) -> None:
    """Only the instance in the finding is isolated."""
    lab, _, outputs = deployed
    for key in (
        "Scenario3InstanceId",
        "MaliciousInstanceId",
        "SecureServer1InstanceId",
    ):
        groups = inventory.instance_security_groups(lab, outputs[key])
        assert groups["group_id"].tolist() == [outputs["TargetSecurityGroupId"]]


def test_isolated_pings_are_rejected(
    deployed: Deployed, detected: pd.DataFrame
) -> None:
    """After isolation the flow log shows REJECT and the finding's count stops."""
    lab, detector_id, outputs = deployed
    count_before = int(labkit.lab_findings(lab, detector_id)["count"].iloc[0])
    lab.advance(4)

    records = inventory.flow_log_records(lab, outputs["FlowLogGroup"], limit=200)
    pings = records[records["dstaddr"] == outputs["MaliciousIp"]]
    assert pings["action"].iloc[-1] == "REJECT"
    assert "ACCEPT" in set(pings["action"])
    assert set(pings["protocol"]) == {"1"}
    assert int(labkit.lab_findings(lab, detector_id)["count"].iloc[0]) == count_before


def test_finding_names_the_instance_profile_by_its_iam_id(
    deployed: Deployed, detected: pd.DataFrame
) -> None:
    """The finding's IamInstanceProfile is the profile's ARN and IAM id, not an association."""
    lab, detector_id, outputs = deployed
    instance_id = outputs["Scenario1InstanceId"]
    described = lab.client("ec2").describe_instances(InstanceIds=[instance_id])
    arn = described["Reservations"][0]["Instances"][0]["IamInstanceProfile"]["Arn"]
    profile = lab.client("iam").get_instance_profile(
        InstanceProfileName=arn.rsplit("/", 1)[-1]
    )["InstanceProfile"]

    full = labkit.finding_json(lab, detector_id, detected.iloc[0]["id"])

    shown = full["Resource"]["InstanceDetails"]["IamInstanceProfile"]
    assert shown == {"Arn": profile["Arn"], "Id": profile["InstanceProfileId"]}
    assert shown["Arn"] == arn and ":instance-profile/" in arn
    assert not shown["Id"].startswith("iip-assoc-")


def test_finding_times_are_the_matched_flow_records(
    deployed: Deployed, detected: pd.DataFrame
) -> None:
    """First and last seen are the matched flow records' times; each one counts once."""
    lab, detector_id, outputs = deployed
    records = inventory.flow_log_records(lab, outputs["FlowLogGroup"], limit=500)
    pings = records[records["dstaddr"] == outputs["MaliciousIp"]]
    accepted = pings[pings["action"] == "ACCEPT"]

    full = labkit.finding_json(lab, detector_id, detected.iloc[0]["id"])

    service = full["Service"]
    first = pd.Timestamp(service["EventFirstSeen"])
    last = pd.Timestamp(service["EventLastSeen"])
    # Pings before the list was active were accepted too, but matched nothing.
    assert (accepted["start"] < first).any()
    matched = accepted[accepted["start"] >= first]
    assert first == matched["start"].min()
    assert last == matched["end"].max() == accepted["end"].max()
    assert service["Count"] == len(matched) >= 1
    assert first < pd.Timestamp(full["CreatedAt"]) <= pd.Timestamp(full["UpdatedAt"])


def test_function_code_is_the_deployed_module(deployed: Deployed) -> None:
    """GetFunction's download link gives the handler's own source file."""
    from labkit.remediation import source_path

    lab, _, _ = deployed
    shown = inventory.function_source(
        lab, "Security-Workshop-Remediation-EC2-MaliciousIPCaller"
    )
    assert shown == source_path("isolate_instance").read_text()


def test_pattern_check_through_eventbridge(deployed: Deployed) -> None:
    """TestEventPattern matches exact types only; a bad pattern is a LabError."""
    lab, _, _ = deployed
    pattern = inventory.rule_pattern(lab, "GuardDuty-Event-EC2-MaliciousIPCaller")
    assert rules.pattern_matches(lab, pattern, {"type": FINDING})
    assert not rules.pattern_matches(
        lab, pattern, {"type": FINDING.removesuffix(".Custom")}
    )
    with pytest.raises(EventPatternError, match="refused the pattern"):
        rules.pattern_matches(lab, {"detail": {"type": FINDING}}, {"type": FINDING})


def test_deploy_refuses_a_failed_stack(local_cloud: str) -> None:
    """A stack left in ROLLBACK_COMPLETE is named, with the way out."""
    lab = labkit.connect(stack_name="Failed-Workshop")
    bad = {"Resources": {"Broken": {"Type": "AWS::Not::AType", "Properties": {}}}}
    cfn = lab.client("cloudformation")
    cfn.create_stack(StackName=lab.stack_name, TemplateBody=json.dumps(bad))

    # deploy_stack first waits for the stack in progress, then judges it.
    with pytest.raises(StackError, match="ROLLBACK_COMPLETE.*delete_stack"):
        labkit.deploy_stack(lab, detector_id="0" * 32, progress=False)


def test_inventory_views_show_the_stack(
    deployed: Deployed, detected: pd.DataFrame
) -> None:
    """The tables notebooks show are read back from the deployed resources."""
    lab, _, outputs = deployed
    names = inventory.instances_frame(lab)["name"].tolist()
    assert len(names) == 6 and all(n.startswith("Security-Workshop: ") for n in names)

    script = inventory.user_data(lab, outputs["Scenario1InstanceId"])
    assert f"ping -c 10 {outputs['MaliciousIp']}" in script

    rules_frame = inventory.security_group_rules(
        lab, outputs["ForensicSecurityGroupId"]
    )
    assert rules_frame.to_dict("records") == [
        {
            "direction": "outbound",
            "protocol": "icmp",
            "ports": "all",
            "addresses": "127.0.0.1/32",
        }
    ]

    targets = inventory.rule_targets(lab, "GuardDuty-Event-EC2-MaliciousIPCaller")
    assert targets["service"].tolist() == ["lambda", "sns"]
    assert targets["input"].iloc[0] == "the whole event"
    assert targets["input"].iloc[1].startswith('"GuardDuty finding <gdid>')

    group = "/aws/lambda/Security-Workshop-Remediation-EC2-MaliciousIPCaller"
    lines = inventory.log_lines(lab, group, limit=50)
    assert lines[0].startswith("START RequestId:")
    assert any("Moved instance" in line for line in lines)
    assert lines[-1].startswith("REPORT RequestId:")


def test_finding_reads_as_guardduty_writes_this_type(
    deployed: Deployed, detected: pd.DataFrame
) -> None:
    """Title, description and network-interface fields follow a real finding of the type."""
    lab, detector_id, outputs = deployed
    real = json.loads(
        (
            Path(__file__).parent
            / "data/guardduty/guardduty-soar/UnauthorizedAccess-EC2-MaliciousIPCaller.json"
        ).read_text()
    )["detail"]
    full = labkit.finding_json(lab, detector_id, detected.iloc[0]["id"])
    instance_id = outputs["Scenario1InstanceId"]

    assert full["Title"] == real["Title"].replace("i-99999999", instance_id)
    assert full["Description"] == (
        real["Description"]
        .replace("i-99999999", instance_id)
        .replace("198.51.100.0", outputs["MaliciousIp"])
        .replace("GeneratedFindingThreatListName", "Example-Threat-List")
    )
    (interface,) = full["Resource"]["InstanceDetails"]["NetworkInterfaces"]
    real_interface = real["Resource"]["InstanceDetails"]["NetworkInterfaces"][0]
    assert set(interface) == set(real_interface)
    assert interface["PrivateDnsName"].startswith("ip-")
