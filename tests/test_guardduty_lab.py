"""Turning GuardDuty on for the lab, on the real local cloud."""

from __future__ import annotations

import logging

import pytest

import labkit
from labkit.errors import ConfigError, NotDeployedError, ThreatListError


def test_enable_guardduty_turns_on_a_disabled_detector(
    fresh_cloud: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A suspended detector is ENABLED and tagged labkit=enabled; the rest stays."""
    lab = labkit.connect()
    guardduty = lab.client("guardduty")
    detector_id = guardduty.create_detector(
        Enable=False, FindingPublishingFrequency="SIX_HOURS", Tags={"team": "sec"}
    )["DetectorId"]

    with caplog.at_level(logging.INFO, "labkit.guardduty"):
        assert labkit.enable_guardduty(lab) == (detector_id, False)

    detector = guardduty.get_detector(DetectorId=detector_id)
    assert detector["Status"] == "ENABLED"
    assert detector["FindingPublishingFrequency"] == "SIX_HOURS"
    assert detector["Tags"] == {"team": "sec", "labkit": "enabled"}
    arn = f"arn:aws:guardduty:{lab.region}:{lab.account_id}:detector/{detector_id}"
    listed = guardduty.list_tags_for_resource(ResourceArn=arn)["Tags"]
    assert listed == {"team": "sec", "labkit": "enabled"}
    assert guardduty.list_detectors()["DetectorIds"] == [detector_id]
    assert f"Enabled GuardDuty detector {detector_id}" in caplog.text


def test_enable_guardduty_keeps_created_on_a_suspended_lab_detector(
    fresh_cloud: str,
) -> None:
    """A detector an earlier run made, then suspended, is turned on and stays created."""
    lab = labkit.connect()
    guardduty = lab.client("guardduty")
    detector_id, created = labkit.enable_guardduty(lab)
    assert created
    guardduty.update_detector(DetectorId=detector_id, Enable=False)

    assert labkit.enable_guardduty(lab) == (detector_id, False)

    detector = guardduty.get_detector(DetectorId=detector_id)
    assert detector["Status"] == "ENABLED"
    assert detector["Tags"] == {"labkit": "created"}


def test_enable_guardduty_leaves_an_enabled_detector_alone(fresh_cloud: str) -> None:
    """An enabled detector is reused as it is: no UpdateDetector call, no tag."""
    lab = labkit.connect()
    guardduty = lab.client("guardduty")
    detector_id = guardduty.create_detector(Enable=True)["DetectorId"]
    before = guardduty.get_detector(DetectorId=detector_id)["UpdatedAt"]
    lab.advance(1)

    assert labkit.enable_guardduty(lab) == (detector_id, False)

    after = guardduty.get_detector(DetectorId=detector_id)
    assert (after["Status"], after["UpdatedAt"]) == ("ENABLED", before)
    assert after["Tags"] == {}


def test_activate_threat_list_refuses_a_bad_line_before_upload(
    fresh_cloud: str,
) -> None:
    """A malformed address is refused by its line; nothing is put or created."""
    lab = labkit.connect()
    detector_id, _ = labkit.enable_guardduty(lab)
    s3 = lab.client("s3")
    s3.create_bucket(
        Bucket="lab-lists",
        CreateBucketConfiguration={"LocationConstraint": lab.region},
    )
    outputs = {"MaliciousIp": "10.0.0.1/8", "ThreatListBucket": "lab-lists"}

    with pytest.raises(ThreatListError) as caught:
        labkit.activate_threat_list(lab, outputs)

    message = str(caught.value)
    assert message.startswith(
        "line 1 of threat list 'Example-Threat-List' is '10.0.0.1/8': "
        "it has host bits set past its prefix (the range is 10.0.0.0/8)"
    )
    assert "one IPv4 address or CIDR range per line" in message
    assert message.endswith("and try again")
    assert "Contents" not in s3.list_objects_v2(Bucket="lab-lists")
    guardduty = lab.client("guardduty")
    assert (
        guardduty.list_threat_intel_sets(DetectorId=detector_id)["ThreatIntelSetIds"]
        == []
    )


def test_wait_for_findings_refuses_one_string_before_any_time_passes(
    fresh_cloud: str,
) -> None:
    """A type given as a bare string is refused, not split into letters."""
    lab = labkit.connect()
    detector_id, _ = labkit.enable_guardduty(lab)
    before = lab.now()
    with pytest.raises(ConfigError, match="wrap it in a list"):
        labkit.wait_for_findings(
            lab, detector_id, "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"
        )
    assert (lab.now() - before).total_seconds() < 30


def test_finding_json_of_an_unknown_id_says_where_ids_are(fresh_cloud: str) -> None:
    """An unknown finding id is refused with the way to find a real one."""
    lab = labkit.connect()
    detector_id, _ = labkit.enable_guardduty(lab)
    with pytest.raises(NotDeployedError, match=r"'f00'.*labkit\.lab_findings"):
        labkit.finding_json(lab, detector_id, "f00")


@pytest.mark.parametrize("call", ["lab_findings", "wait_for_findings", "finding_json"])
def test_a_wrong_detector_id_is_refused_with_the_right_one_to_use(
    fresh_cloud: str, call: str
) -> None:
    """GuardDuty's refusal of an unknown detector id becomes a ConfigError with a way out."""
    lab = labkit.connect()
    labkit.enable_guardduty(lab)
    arguments = {
        "lab_findings": (),
        "wait_for_findings": (["UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"],),
        "finding_json": ("f00",),
    }[call]
    with pytest.raises(ConfigError) as caught:
        getattr(labkit, call)(lab, "abc", *arguments)
    message = str(caught.value)
    assert "'abc'" in message and "not owned by the current account" in message
    assert "labkit.enable_guardduty(lab)" in message
