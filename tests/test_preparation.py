"""prepare_lab on the real local cloud: each scenario notebook can run alone."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import labkit
from labkit import stack_progress
from labkit.guardduty import THREAT_LIST_KEY, THREAT_LIST_NAME
from labkit.lab import Lab


def _threat_set(lab: Lab, detector_id: str) -> dict[str, str]:
    guardduty = lab.client("guardduty")
    (set_id,) = guardduty.list_threat_intel_sets(DetectorId=detector_id)[
        "ThreatIntelSetIds"
    ]
    listed = guardduty.get_threat_intel_set(
        DetectorId=detector_id, ThreatIntelSetId=set_id
    )
    return {"Name": listed["Name"], "Status": listed["Status"]}


def _list_text(lab: Lab, outputs: dict[str, str]) -> str:
    answer = lab.client("s3").get_object(
        Bucket=outputs["ThreatListBucket"], Key=THREAT_LIST_KEY
    )
    return str(answer["Body"].read().decode())


def test_prepare_lab_on_a_fresh_cloud_does_what_notebook_00_does(
    fresh_cloud: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """GuardDuty on, the stack complete, the list active; locally nothing printed."""
    lab = labkit.connect()
    outputs = labkit.prepare_lab(lab, progress=False)
    assert capsys.readouterr().out == ""

    (detector_id,) = lab.client("guardduty").list_detectors()["DetectorIds"]
    assert outputs["DetectorId"] == detector_id
    status = lab.client("cloudformation").describe_stacks(StackName=lab.stack_name)
    assert status["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert _threat_set(lab, detector_id) == {
        "Name": THREAT_LIST_NAME,
        "Status": "ACTIVE",
    }
    assert outputs["MaliciousIp"] in _list_text(lab, outputs).splitlines()


def test_prepare_lab_on_a_ready_lab_changes_nothing(fresh_cloud: str) -> None:
    """A second call keeps the list active and lets no lab time pass."""
    lab = labkit.connect()
    first = labkit.prepare_lab(lab, progress=False)
    before = lab.now()

    again = labkit.prepare_lab(lab, progress=False)

    assert again == first
    assert lab.now() - before < timedelta(seconds=30)
    assert _threat_set(lab, first["DetectorId"])["Status"] == "ACTIVE"


def test_prepare_lab_uploads_a_stale_list_again(fresh_cloud: str) -> None:
    """A list that no longer holds the Elastic IP is replaced and reactivated."""
    lab = labkit.connect()
    outputs = labkit.prepare_lab(lab, progress=False)
    lab.client("s3").put_object(
        Bucket=outputs["ThreatListBucket"], Key=THREAT_LIST_KEY, Body=b"192.0.2.1\n"
    )

    labkit.prepare_lab(lab, progress=False)

    assert outputs["MaliciousIp"] in _list_text(lab, outputs).splitlines()
    assert _threat_set(lab, outputs["DetectorId"])["Status"] == "ACTIVE"


def _point_set_at(lab: Lab, outputs: dict[str, str], key: str, text: str) -> str:
    """Put ``text`` at ``key`` and point the lab's set at it; return its URL."""
    bucket, region = outputs["ThreatListBucket"], lab.region
    lab.client("s3").put_object(Bucket=bucket, Key=key, Body=text.encode())
    location = f"https://{bucket}.s3.{region}.amazonaws.com/{key}"
    guardduty = lab.client("guardduty")
    detector_id = outputs["DetectorId"]
    (set_id,) = guardduty.list_threat_intel_sets(DetectorId=detector_id)[
        "ThreatIntelSetIds"
    ]
    guardduty.update_threat_intel_set(
        DetectorId=detector_id,
        ThreatIntelSetId=set_id,
        Location=location,
        Activate=True,
    )
    lab.advance(1)
    return location


def _set_location(lab: Lab, detector_id: str) -> str:
    guardduty = lab.client("guardduty")
    (set_id,) = guardduty.list_threat_intel_sets(DetectorId=detector_id)[
        "ThreatIntelSetIds"
    ]
    listed = guardduty.get_threat_intel_set(
        DetectorId=detector_id, ThreatIntelSetId=set_id
    )
    return str(listed["Location"])


def test_prepare_lab_keeps_a_set_whose_own_file_lists_the_address(
    fresh_cloud: str,
) -> None:
    """The file the set points at is read, not the lab's usual key: no upload."""
    lab = labkit.connect()
    outputs = labkit.prepare_lab(lab, progress=False)
    moved = _point_set_at(
        lab, outputs, "lists/moved.txt", f"# moved\n{outputs['MaliciousIp']}\n"
    )
    lab.client("s3").put_object(
        Bucket=outputs["ThreatListBucket"], Key=THREAT_LIST_KEY, Body=b"192.0.2.1\n"
    )

    labkit.prepare_lab(lab, progress=False)

    assert _set_location(lab, outputs["DetectorId"]) == moved
    assert _list_text(lab, outputs) == "192.0.2.1\n"
    assert _threat_set(lab, outputs["DetectorId"])["Status"] == "ACTIVE"


def test_prepare_lab_replaces_a_set_whose_own_file_lacks_the_address(
    fresh_cloud: str,
) -> None:
    """A set pointing at a file without the Elastic IP is pointed back and reread."""
    lab = labkit.connect()
    outputs = labkit.prepare_lab(lab, progress=False)
    _point_set_at(lab, outputs, "lists/other.txt", "192.0.2.1\n")

    labkit.prepare_lab(lab, progress=False)

    bucket = outputs["ThreatListBucket"]
    expected = f"https://s3.amazonaws.com/{bucket}/{THREAT_LIST_KEY}"
    assert _set_location(lab, outputs["DetectorId"]) == expected
    assert outputs["MaliciousIp"] in _list_text(lab, outputs).splitlines()
    assert _threat_set(lab, outputs["DetectorId"])["Status"] == "ACTIVE"


def test_local_preparation_and_waits_never_sleep(
    fresh_cloud: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deploying, activating and waiting for the finding sleep no real time (P26)."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    # The stack poll keeps its own reference to time.sleep.
    monkeypatch.setattr(stack_progress, "_sleep", slept.append)
    lab = labkit.connect()

    outputs = labkit.prepare_lab(lab, progress=False)
    found = labkit.wait_for_findings(
        lab,
        outputs["DetectorId"],
        ["UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"],
        timeout_minutes=10,
    )

    assert len(found) == 1
    assert slept == []
