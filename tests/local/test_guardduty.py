"""Tests of the local cloud's GuardDuty API and findings store.

Handlers are called directly with ``Call`` objects. Every handler result is
also serialized with botocore's model (moto's rest-json serializer) and parsed
back with botocore's parser: the round trip must give back exactly what the
handler returned, so nothing is silently dropped or mistyped on the wire.
"""

from __future__ import annotations

import json
import re
import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.parsers import RestJSONParser
from botocore.validate import ParamValidator
from moto.backends import get_backend
from moto.core.serialize import get_serializer_class
from moto.core.utils import get_service_model

from labkit.local import findings_store as store
from labkit.local import guardduty  # noqa: F401  (registers the handlers)
from labkit.local.registry import OPERATIONS, Call, ServiceError

ACCOUNT = "123456789012"
REGION = "eu-west-2"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DATA = Path(__file__).resolve().parents[1] / "data" / "local_guardduty"
MODEL = botocore.session.get_session().get_service_model("guardduty")


@pytest.fixture(autouse=True)
def _fresh_state() -> Any:
    """Start every test with no detectors and an empty local S3."""
    store.reset()
    get_backend("s3").reset()
    yield
    store.reset()
    get_backend("s3").reset()


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace labkit.local.events with a recorder of emitted events."""
    seen: list[dict[str, Any]] = []

    def emit(account_id: str, region: str, **event: Any) -> str:
        seen.append({"account": account_id, "region": region, **event})
        return f"event-{len(seen)}"

    fake = types.ModuleType("labkit.local.events")
    fake.emit = emit  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "labkit.local.events", fake)
    return seen


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def roundtrip(operation: str, result: dict[str, Any]) -> dict[str, Any]:
    """Serialize ``result`` as GuardDuty's wire format and parse it back."""
    moto_model = get_service_model("guardduty").operation_model(operation)
    serializer = get_serializer_class("guardduty", "rest-json")(moto_model)
    response = serializer.serialize(result)
    body = response["body"]
    parsed = RestJSONParser().parse(
        {
            "status_code": 200,
            "headers": response["headers"],
            "body": body.encode() if isinstance(body, str) else body,
        },
        MODEL.operation_model(operation).output_shape,
    )
    parsed.pop("ResponseMetadata", None)
    return parsed


def call(operation: str, **params: Any) -> dict[str, Any]:
    """Call a handler, and check its result survives the wire unchanged."""
    handler = OPERATIONS[("guardduty", operation)]
    result = handler(Call("guardduty", operation, params, ACCOUNT, REGION))
    assert roundtrip(operation, result) == _drop_none(result), operation
    return result


def make_detector(frequency: str = "SIX_HOURS") -> str:
    """Create the region's detector and return its id."""
    return call("CreateDetector", Enable=True, FindingPublishingFrequency=frequency)[
        "DetectorId"
    ]


def put_object(bucket: str, key: str, text: str) -> None:
    """Store an object in the local cloud's S3 (moto's in-process backend)."""
    backend = get_backend("s3")[ACCOUNT]["aws"]
    if bucket not in backend.buckets:
        backend.create_bucket(bucket, REGION)
    backend.put_object(bucket, key, text.encode())


def instance_resource(instance_id: str = "i-0aaa") -> dict[str, Any]:
    """A minimal EC2 instance resource in PascalCase."""
    return {"ResourceType": "Instance", "InstanceDetails": {"InstanceId": instance_id}}


def network_action(ip: str = "198.51.100.7") -> dict[str, Any]:
    """An outbound network connection to ``ip``."""
    return {
        "ActionType": "NETWORK_CONNECTION",
        "NetworkConnectionAction": {
            "ConnectionDirection": "OUTBOUND",
            "Blocked": False,
            "Protocol": "TCP",
            "RemoteIpDetails": {"IpAddressV4": ip},
        },
    }


def record(detector_id: str, n: int = 0, **overrides: Any) -> dict[str, Any]:
    """Record one finding (fingerprint ``f<n>``) and return it."""
    given: dict[str, Any] = {
        "finding_type": "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",
        "severity": 5.0,
        "title": "Outbound traffic to a listed address",
        "description": "The instance talks to a listed address.",
        "resource": instance_resource(),
        "action": network_action(),
        "fingerprint": f"f{n}",
        "now": T0 + timedelta(seconds=n),
    }
    given.update(overrides)
    finding, _ = store.record_finding(ACCOUNT, REGION, detector_id, **given)
    return finding


# Detectors ------------------------------------------------------------------


def test_create_detector_second_is_refused() -> None:
    """A second CreateDetector in the same region fails with BadRequestException."""
    detector_id = make_detector()
    assert re.fullmatch(r"[0-9a-f]{32}", detector_id)
    with pytest.raises(ServiceError) as caught:
        call("CreateDetector", Enable=True)
    assert caught.value.code == "BadRequestException"
    assert "already exists" in caught.value.message
    assert call("ListDetectors")["DetectorIds"] == [detector_id]


def test_get_detector_reports_defaults_and_tags() -> None:
    """GetDetector shows ENABLED, SIX_HOURS by default, the tags and data sources."""
    detector_id = call("CreateDetector", Enable=True, Tags={"labkit:created": "true"})[
        "DetectorId"
    ]
    got = call("GetDetector", DetectorId=detector_id)
    assert got["Status"] == "ENABLED"
    assert got["FindingPublishingFrequency"] == "SIX_HOURS"
    assert got["Tags"] == {"labkit:created": "true"}
    assert got["DataSources"]["CloudTrail"]["Status"] == "ENABLED"
    assert got["ServiceRole"].endswith("/AWSServiceRoleForAmazonGuardDuty")
    assert datetime.fromisoformat(got["CreatedAt"].replace("Z", "+00:00"))


def test_get_detector_unknown_id_is_refused_with_aws_wording() -> None:
    """An unknown detector id gives AWS's 'not owned by the current account' error."""
    make_detector()
    with pytest.raises(ServiceError) as caught:
        call("GetDetector", DetectorId="0" * 32)
    assert caught.value.code == "BadRequestException"
    assert caught.value.message == (
        "The request is rejected because the input detectorId is not owned by the "
        "current account."
    )


def test_update_detector_changes_status_and_frequency() -> None:
    """UpdateDetector disables the detector and sets FIFTEEN_MINUTES."""
    detector_id = make_detector()
    call("UpdateDetector", DetectorId=detector_id, Enable=False)
    call(
        "UpdateDetector",
        DetectorId=detector_id,
        FindingPublishingFrequency="FIFTEEN_MINUTES",
    )
    got = call("GetDetector", DetectorId=detector_id)
    assert (got["Status"], got["FindingPublishingFrequency"]) == (
        "DISABLED",
        "FIFTEEN_MINUTES",
    )
    assert store.enabled_detector_id(ACCOUNT, REGION) is None


def _features(got: dict[str, Any]) -> dict[str, tuple[str, dict[str, str]]]:
    """GetDetector's Features as name: (status, {configuration: status})."""
    return {
        f["Name"]: (
            f["Status"],
            {c["Name"]: c["Status"] for c in f.get("AdditionalConfiguration", [])},
        )
        for f in got["Features"]
    }


def test_update_detector_merges_features_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Features change by Name, configurations too; the others keep their state."""
    monkeypatch.setattr(store, "read_lab_time", lambda: T0)
    runtime = {
        "Name": "RUNTIME_MONITORING",
        "Status": "ENABLED",
        "AdditionalConfiguration": [
            {"Name": "EKS_ADDON_MANAGEMENT", "Status": "ENABLED"}
        ],
    }
    s3 = {"Name": "S3_DATA_EVENTS", "Status": "ENABLED"}
    detector_id = call("CreateDetector", Enable=True, Features=[s3, runtime])[
        "DetectorId"
    ]
    later = T0 + timedelta(hours=1)
    monkeypatch.setattr(store, "read_lab_time", lambda: later)
    agent = {"Name": "EC2_AGENT_MANAGEMENT", "Status": "ENABLED"}
    call(
        "UpdateDetector",
        DetectorId=detector_id,
        Features=[
            {
                "Name": "RUNTIME_MONITORING",
                "Status": "ENABLED",
                "AdditionalConfiguration": [agent],
            },
            {"Name": "EKS_AUDIT_LOGS", "Status": "ENABLED"},
        ],
    )

    got = call("GetDetector", DetectorId=detector_id)
    found = _features(got)
    assert found["S3_DATA_EVENTS"] == ("ENABLED", {})
    assert found["EKS_AUDIT_LOGS"] == ("ENABLED", {})
    assert found["RDS_LOGIN_EVENTS"] == ("DISABLED", {})
    assert found["RUNTIME_MONITORING"] == (
        "ENABLED",
        {
            "EKS_ADDON_MANAGEMENT": "ENABLED",
            "ECS_FARGATE_AGENT_MANAGEMENT": "DISABLED",
            "EC2_AGENT_MANAGEMENT": "ENABLED",
        },
    )
    updated = {f["Name"]: f["UpdatedAt"] for f in got["Features"]}
    assert updated["S3_DATA_EVENTS"] == T0
    assert updated["EKS_AUDIT_LOGS"] == later
    assert got["DataSources"]["S3Logs"]["Status"] == "ENABLED"
    assert got["DataSources"]["Kubernetes"]["AuditLogs"]["Status"] == "ENABLED"


def test_update_detector_data_sources_change_one_source_at_a_time() -> None:
    """A data source given alone leaves the others; both notations agree."""
    detector_id = call(
        "CreateDetector", Enable=True, DataSources={"S3Logs": {"Enable": True}}
    )["DetectorId"]
    ebs = {"ScanEc2InstanceWithFindings": {"EbsVolumes": True}}
    call(
        "UpdateDetector", DetectorId=detector_id, DataSources={"MalwareProtection": ebs}
    )
    call(
        "UpdateDetector",
        DetectorId=detector_id,
        DataSources={"Kubernetes": {"AuditLogs": {"Enable": False}}},
    )

    got = call("GetDetector", DetectorId=detector_id)
    sources = got["DataSources"]
    assert sources["S3Logs"] == {"Status": "ENABLED"}
    malware = sources["MalwareProtection"]["ScanEc2InstanceWithFindings"]
    assert malware == {"EbsVolumes": {"Status": "ENABLED"}}
    assert sources["Kubernetes"] == {"AuditLogs": {"Status": "DISABLED"}}
    found = _features(got)
    assert found["S3_DATA_EVENTS"][0] == "ENABLED"
    assert found["EBS_MALWARE_PROTECTION"][0] == "ENABLED"
    assert found["EKS_AUDIT_LOGS"][0] == "DISABLED"


def test_update_detector_refuses_data_sources_with_features() -> None:
    """DataSources and Features in one request are refused, nothing changes."""
    detector_id = make_detector()
    with pytest.raises(ServiceError) as caught:
        call(
            "UpdateDetector",
            DetectorId=detector_id,
            DataSources={"S3Logs": {"Enable": True}},
            Features=[{"Name": "EKS_AUDIT_LOGS", "Status": "ENABLED"}],
        )
    assert caught.value.code == "BadRequestException"
    assert "DataSources and Features" in caught.value.message
    found = _features(call("GetDetector", DetectorId=detector_id))
    assert found["S3_DATA_EVENTS"][0] == found["EKS_AUDIT_LOGS"][0] == "DISABLED"


def test_delete_detector_removes_findings_and_sets() -> None:
    """After DeleteDetector a new detector starts with no findings or sets."""
    detector_id = make_detector()
    record(detector_id)
    put_object("lists", "threat.txt", "198.51.100.7\n")
    call(
        "CreateThreatIntelSet",
        DetectorId=detector_id,
        Name="lab",
        Format="TXT",
        Location="s3://lists/threat.txt",
        Activate=True,
    )
    call("DeleteDetector", DetectorId=detector_id)
    assert call("ListDetectors")["DetectorIds"] == []
    again = make_detector()
    assert call("ListFindings", DetectorId=again)["FindingIds"] == []
    assert call("ListThreatIntelSets", DetectorId=again)["ThreatIntelSetIds"] == []


def test_tag_resource_tags_the_detector() -> None:
    """TagResource on the detector ARN shows up in ListTagsForResource."""
    detector_id = make_detector()
    arn = f"arn:aws:guardduty:{REGION}:{ACCOUNT}:detector/{detector_id}"
    call("TagResource", ResourceArn=arn, Tags={"owner": "labkit"})
    assert call("ListTagsForResource", ResourceArn=arn)["Tags"] == {"owner": "labkit"}
    call("UntagResource", ResourceArn=arn, TagKeys=["owner"])
    assert call("ListTagsForResource", ResourceArn=arn)["Tags"] == {}


# Sets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "https://s3.amazonaws.com/lists/lab/threat.txt",
        "https://lists.s3.amazonaws.com/lab/threat.txt",
        f"https://s3.{REGION}.amazonaws.com/lists/lab/threat.txt",
        f"https://lists.s3.{REGION}.amazonaws.com/lab/threat.txt",
        "s3://lists/lab/threat.txt",
    ],
)
def test_threat_set_becomes_active_at_refresh(location: str) -> None:
    """A TXT threat set is ACTIVATING, then ACTIVE with its networks at refresh."""
    detector_id = make_detector()
    put_object("lists", "lab/threat.txt", "198.51.100.7\n\n203.0.113.0/28\n")
    set_id = call(
        "CreateThreatIntelSet",
        DetectorId=detector_id,
        Name="lab-threats",
        Format="TXT",
        Location=location,
        Activate=True,
    )["ThreatIntelSetId"]
    got = call("GetThreatIntelSet", DetectorId=detector_id, ThreatIntelSetId=set_id)
    assert got["Status"] == "ACTIVATING"
    assert store.active_threat_networks(ACCOUNT, REGION) == []
    store.refresh(T0)
    got = call("GetThreatIntelSet", DetectorId=detector_id, ThreatIntelSetId=set_id)
    assert got["Status"] == "ACTIVE"
    networks = store.active_threat_networks(ACCOUNT, REGION)
    assert [(str(n), i, name) for n, i, name in networks] == [
        ("198.51.100.7/32", set_id, "lab-threats"),
        ("203.0.113.0/28", set_id, "lab-threats"),
    ]


def test_threat_set_with_missing_object_is_error() -> None:
    """A set whose S3 object does not exist turns ERROR at refresh."""
    detector_id = make_detector()
    put_object("lists", "other.txt", "198.51.100.7\n")
    set_id = call(
        "CreateThreatIntelSet",
        DetectorId=detector_id,
        Name="lab",
        Format="TXT",
        Location="https://s3.amazonaws.com/lists/missing.txt",
        Activate=True,
    )["ThreatIntelSetId"]
    store.refresh(T0)
    got = call("GetThreatIntelSet", DetectorId=detector_id, ThreatIntelSetId=set_id)
    assert got["Status"] == "ERROR"
    assert store.active_threat_networks(ACCOUNT, REGION) == []


def test_threat_set_with_malformed_line_is_error_naming_the_line() -> None:
    """A line that is no IPv4 address or CIDR makes the set ERROR, naming it."""
    detector_id = make_detector()
    put_object("lists", "bad.txt", "198.51.100.7\nnot-an-ip\n")
    set_id = call(
        "CreateThreatIntelSet",
        DetectorId=detector_id,
        Name="lab",
        Format="TXT",
        Location="s3://lists/bad.txt",
        Activate=True,
    )["ThreatIntelSetId"]
    store.refresh(T0)
    listed = store.get_set(
        store.get_detector(ACCOUNT, REGION, detector_id), "threat", set_id
    )
    assert listed.status == "ERROR"
    assert "line 2 'not-an-ip'" in (listed.error or "")


def test_threat_set_in_stix_format_is_error_saying_txt_only() -> None:
    """A STIX set is accepted, then marked ERROR because only TXT is read."""
    detector_id = make_detector()
    put_object("lists", "t.xml", "<stix/>")
    set_id = call(
        "CreateThreatIntelSet",
        DetectorId=detector_id,
        Name="stix",
        Format="STIX",
        Location="s3://lists/t.xml",
        Activate=True,
    )["ThreatIntelSetId"]
    store.refresh(T0)
    listed = store.get_set(
        store.get_detector(ACCOUNT, REGION, detector_id), "threat", set_id
    )
    assert listed.status == "ERROR"
    assert "TXT" in (listed.error or "")


def test_threat_set_with_bad_location_is_refused() -> None:
    """A Location that is no S3 object URL is refused at once."""
    detector_id = make_detector()
    with pytest.raises(ServiceError) as caught:
        call(
            "CreateThreatIntelSet",
            DetectorId=detector_id,
            Name="lab",
            Format="TXT",
            Location="https://example.com/list.txt",
            Activate=True,
        )
    assert caught.value.code == "BadRequestException"


def test_threat_set_deactivated_stops_counting() -> None:
    """UpdateThreatIntelSet(Activate=False) goes DEACTIVATING, then INACTIVE."""
    detector_id = make_detector()
    put_object("lists", "t.txt", "198.51.100.7\n")
    set_id = call(
        "CreateThreatIntelSet",
        DetectorId=detector_id,
        Name="lab",
        Format="TXT",
        Location="s3://lists/t.txt",
        Activate=True,
    )["ThreatIntelSetId"]
    store.refresh(T0)
    call(
        "UpdateThreatIntelSet",
        DetectorId=detector_id,
        ThreatIntelSetId=set_id,
        Activate=False,
    )
    got = call("GetThreatIntelSet", DetectorId=detector_id, ThreatIntelSetId=set_id)
    assert got["Status"] == "DEACTIVATING"
    store.refresh(T0)
    got = call("GetThreatIntelSet", DetectorId=detector_id, ThreatIntelSetId=set_id)
    assert got["Status"] == "INACTIVE"
    assert store.active_threat_networks(ACCOUNT, REGION) == []


def test_threat_networks_are_empty_while_detector_is_disabled() -> None:
    """A disabled detector's ACTIVE sets are not offered to the detector rules."""
    detector_id = make_detector()
    put_object("lists", "t.txt", "198.51.100.7\n")
    call(
        "CreateThreatIntelSet",
        DetectorId=detector_id,
        Name="lab",
        Format="TXT",
        Location="s3://lists/t.txt",
        Activate=True,
    )
    store.refresh(T0)
    call("UpdateDetector", DetectorId=detector_id, Enable=False)
    assert store.active_threat_networks(ACCOUNT, REGION) == []


def test_ip_set_is_trusted_and_a_second_is_refused() -> None:
    """An ACTIVE IP set feeds trusted_networks; a second IP set is refused."""
    detector_id = make_detector()
    put_object("lists", "trusted.txt", "203.0.113.25\n")
    set_id = call(
        "CreateIPSet",
        DetectorId=detector_id,
        Name="office",
        Format="TXT",
        Location="s3://lists/trusted.txt",
        Activate=True,
    )["IpSetId"]
    store.refresh(T0)
    assert (
        call("GetIPSet", DetectorId=detector_id, IpSetId=set_id)["Status"] == "ACTIVE"
    )
    assert call("ListIPSets", DetectorId=detector_id)["IpSetIds"] == [set_id]
    assert [str(n) for n, _, _ in store.trusted_networks(ACCOUNT, REGION)] == [
        "203.0.113.25/32"
    ]
    with pytest.raises(ServiceError):
        call(
            "CreateIPSet",
            DetectorId=detector_id,
            Name="second",
            Format="TXT",
            Location="s3://lists/trusted.txt",
            Activate=True,
        )


# Findings -------------------------------------------------------------------


def test_record_finding_fits_botocore_finding_shape() -> None:
    """A recorded finding validates against botocore's Finding shape."""
    finding = record(make_detector())
    report = ParamValidator().validate(finding, MODEL.shape_for("Finding"))
    assert not report.has_errors(), report.generate_report()
    assert re.fullmatch(r"[0-9a-f]{32}", finding["Id"])
    assert finding["Arn"].endswith(f"/finding/{finding['Id']}")
    assert finding["CreatedAt"] == "2024-05-01T12:00:00.000Z"
    assert finding["Service"]["Count"] == 1
    assert finding["Service"]["Archived"] is False


def test_record_finding_repeat_keeps_id_and_raises_count() -> None:
    """The same fingerprint again keeps the id, counts 2 and moves the times."""
    detector_id = make_detector()
    first = record(detector_id, fingerprint="same")
    later = T0 + timedelta(minutes=7)
    again, is_new = store.record_finding(
        ACCOUNT,
        REGION,
        detector_id,
        finding_type=first["Type"],
        severity=5.0,
        title=first["Title"],
        description=first["Description"],
        resource=instance_resource(),
        action=network_action(),
        fingerprint="same",
        now=later,
    )
    assert not is_new
    assert again["Id"] == first["Id"]
    assert again["Service"]["Count"] == 2
    assert again["Service"]["EventFirstSeen"] == "2024-05-01T12:00:00.000Z"
    assert (
        again["Service"]["EventLastSeen"]
        == again["UpdatedAt"]
        == "2024-05-01T12:07:00.000Z"
    )
    assert call("ListFindings", DetectorId=detector_id)["FindingIds"] == [first["Id"]]


def test_record_finding_seen_times_span_the_activity() -> None:
    """EventFirstSeen/LastSeen span the activity; CreatedAt/UpdatedAt the detections."""
    detector_id = make_detector()
    first = record(
        detector_id,
        fingerprint="same",
        now=T0 + timedelta(minutes=5),
        first_seen=T0 + timedelta(minutes=3),
        last_seen=T0 + timedelta(minutes=4),
    )
    assert first["Service"]["EventFirstSeen"] == "2024-05-01T12:03:00.000Z"
    assert first["Service"]["EventLastSeen"] == "2024-05-01T12:04:00.000Z"
    assert first["CreatedAt"] == first["UpdatedAt"] == "2024-05-01T12:05:00.000Z"

    again = record(
        detector_id,
        fingerprint="same",
        now=T0 + timedelta(minutes=6),
        first_seen=T0 + timedelta(minutes=4),
        last_seen=T0 + timedelta(minutes=5, seconds=30),
    )

    service = again["Service"]
    assert again["Id"] == first["Id"] and service["Count"] == 2
    assert service["EventFirstSeen"] == "2024-05-01T12:03:00.000Z"
    assert service["EventLastSeen"] == "2024-05-01T12:05:30.000Z"
    assert again["CreatedAt"] == "2024-05-01T12:05:00.000Z"
    assert again["UpdatedAt"] == "2024-05-01T12:06:00.000Z"


def test_record_finding_late_earlier_activity_moves_first_seen_back() -> None:
    """An occurrence older than the first moves EventFirstSeen back, not LastSeen."""
    detector_id = make_detector()
    record(
        detector_id,
        fingerprint="same",
        now=T0 + timedelta(minutes=10),
        first_seen=T0 + timedelta(minutes=8),
        last_seen=T0 + timedelta(minutes=9),
    )

    again = record(
        detector_id,
        fingerprint="same",
        now=T0 + timedelta(minutes=11),
        first_seen=T0 + timedelta(minutes=1),
        last_seen=T0 + timedelta(minutes=2),
    )

    assert again["Service"]["Count"] == 2
    assert again["Service"]["EventFirstSeen"] == "2024-05-01T12:01:00.000Z"
    assert again["Service"]["EventLastSeen"] == "2024-05-01T12:09:00.000Z"
    assert again["UpdatedAt"] == "2024-05-01T12:11:00.000Z"


def test_record_finding_rejects_a_resource_outside_the_model() -> None:
    """A resource key GuardDuty does not have is refused, naming it."""
    detector_id = make_detector()
    with pytest.raises(ValueError, match="InstanceName"):
        record(detector_id, resource={"ResourceType": "Instance", "InstanceName": "x"})


def _many(detector_id: str, count: int) -> list[dict[str, Any]]:
    return [record(detector_id, n, severity=float(1 + n % 9)) for n in range(count)]


def test_list_findings_pages_120_as_50_50_20_by_severity() -> None:
    """120 findings come back in pages of 50, 50 and 20, severity descending."""
    detector_id = make_detector()
    made = _many(detector_id, 120)
    sort = {"AttributeName": "severity", "OrderBy": "DESC"}
    pages, token = [], None
    while True:
        params: dict[str, Any] = {"DetectorId": detector_id, "SortCriteria": sort}
        if token:
            params["NextToken"] = token
        answer = call("ListFindings", **params)
        pages.append(answer["FindingIds"])
        token = answer.get("NextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [50, 50, 20]
    ids = [i for p in pages for i in p]
    assert sorted(ids) == sorted(f["Id"] for f in made)
    severity = {f["Id"]: f["Severity"] for f in made}
    assert [severity[i] for i in ids] == sorted(severity.values(), reverse=True)


def test_list_findings_max_results_out_of_range_is_refused() -> None:
    """MaxResults 51 is refused with BadRequestException."""
    detector_id = make_detector()
    with pytest.raises(ServiceError) as caught:
        call("ListFindings", DetectorId=detector_id, MaxResults=51)
    assert caught.value.code == "BadRequestException"


def test_list_findings_criteria_select_the_right_findings() -> None:
    """type Eq, severity Gte, archived Eq false, instanceId and updatedAt filter."""
    detector_id = make_detector()
    low = record(detector_id, 1, severity=2.0)
    high = record(detector_id, 2, severity=8.0, resource=instance_resource("i-0bbb"))
    user = record(
        detector_id,
        3,
        finding_type="Recon:IAMUser/MaliciousIPCaller.Custom",
        resource={
            "ResourceType": "AccessKey",
            "AccessKeyDetails": {
                "AccessKeyId": "AKIAEXAMPLE",
                "UserName": "GuardDuty-Example",
            },
        },
        action={"ActionType": "AWS_API_CALL", "AwsApiCallAction": {"Api": "ListUsers"}},
    )
    archived = record(detector_id, 4, severity=8.0)
    call("ArchiveFindings", DetectorId=detector_id, FindingIds=[archived["Id"]])

    def ids(criterion: dict[str, Any]) -> set[str]:
        found = call(
            "ListFindings",
            DetectorId=detector_id,
            FindingCriteria={"Criterion": criterion},
        )
        return set(found["FindingIds"])

    ec2_type = "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"
    assert ids({"type": {"Eq": [ec2_type]}}) == {low["Id"], high["Id"], archived["Id"]}
    assert ids({"severity": {"Gte": 7}}) == {high["Id"], archived["Id"]}
    assert ids(
        {"severity": {"GreaterThanOrEqual": 7}, "service.archived": {"Eq": ["false"]}}
    ) == {high["Id"]}
    assert ids({"service.archived": {"Equals": ["true"]}}) == {archived["Id"]}
    assert ids({"resource.instanceDetails.instanceId": {"Eq": ["i-0bbb"]}}) == {
        high["Id"]
    }
    assert ids(
        {"resource.accessKeyDetails.userName": {"Eq": ["GuardDuty-Example"]}}
    ) == {user["Id"]}
    assert ids({"service.action.actionType": {"Neq": ["NETWORK_CONNECTION"]}}) == {
        user["Id"]
    }
    since = int((T0 + timedelta(seconds=2)).timestamp() * 1000)
    assert ids({"updatedAt": {"Gte": since}}) == {
        high["Id"],
        user["Id"],
        archived["Id"],
    }
    assert ids({"id": {"Eq": [low["Id"]]}}) == {low["Id"]}


def test_list_findings_unknown_criterion_field_is_refused() -> None:
    """A criterion on an attribute findings do not have is refused."""
    detector_id = make_detector()
    with pytest.raises(ServiceError, match="criterion field 'service.colour'"):
        call(
            "ListFindings",
            DetectorId=detector_id,
            FindingCriteria={"Criterion": {"service.colour": {"Eq": ["red"]}}},
        )


def test_get_findings_refuses_more_than_50_ids() -> None:
    """GetFindings with 51 ids fails with BadRequestException."""
    detector_id = make_detector()
    with pytest.raises(ServiceError) as caught:
        call(
            "GetFindings",
            DetectorId=detector_id,
            FindingIds=[f"{n:032x}" for n in range(51)],
        )
    assert caught.value.code == "BadRequestException"


def test_get_findings_returns_pascalcase_findings_sorted() -> None:
    """GetFindings returns the stored findings, sorted, skipping unknown ids."""
    detector_id = make_detector()
    made = _many(detector_id, 5)
    wanted = [f["Id"] for f in made] + ["f" * 32]
    got = call(
        "GetFindings",
        DetectorId=detector_id,
        FindingIds=wanted,
        SortCriteria={"AttributeName": "severity", "OrderBy": "ASC"},
    )["Findings"]
    assert [f["Severity"] for f in got] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert got[0] == made[0]


def test_archive_and_unarchive_set_service_archived() -> None:
    """ArchiveFindings sets Service.Archived; UnarchiveFindings clears it."""
    detector_id = make_detector()
    finding = record(detector_id)
    call("ArchiveFindings", DetectorId=detector_id, FindingIds=[finding["Id"]])
    got = call("GetFindings", DetectorId=detector_id, FindingIds=[finding["Id"]])
    assert got["Findings"][0]["Service"]["Archived"] is True
    call("UnarchiveFindings", DetectorId=detector_id, FindingIds=[finding["Id"]])
    got = call("GetFindings", DetectorId=detector_id, FindingIds=[finding["Id"]])
    assert got["Findings"][0]["Service"]["Archived"] is False


def test_statistics_count_by_severity_follow_the_criteria() -> None:
    """COUNT_BY_SEVERITY counts every match; archived ones only if not excluded."""
    detector_id = make_detector()
    record(detector_id, 1, severity=2.0)
    record(detector_id, 2, severity=8.0)
    archived = record(detector_id, 3, severity=8.0)
    call("ArchiveFindings", DetectorId=detector_id, FindingIds=[archived["Id"]])
    every = call(
        "GetFindingsStatistics",
        DetectorId=detector_id,
        FindingStatisticTypes=["COUNT_BY_SEVERITY"],
    )
    assert every["FindingStatistics"]["CountBySeverity"] == {"2.0": 1, "8.0": 2}
    current = call(
        "GetFindingsStatistics",
        DetectorId=detector_id,
        FindingStatisticTypes=["COUNT_BY_SEVERITY"],
        FindingCriteria={"Criterion": {"service.archived": {"Eq": ["false"]}}},
    )
    assert current["FindingStatistics"]["CountBySeverity"] == {"2.0": 1, "8.0": 1}


def test_statistics_group_by_finding_type() -> None:
    """GroupBy FINDING_TYPE gives one row per type, most frequent first."""
    detector_id = make_detector()
    record(detector_id, 1)
    record(detector_id, 2)
    record(detector_id, 3, finding_type="Recon:EC2/Portscan")
    got = call("GetFindingsStatistics", DetectorId=detector_id, GroupBy="FINDING_TYPE")
    rows = got["FindingStatistics"]["GroupedByFindingType"]
    assert [(r["FindingType"], r["TotalFindings"]) for r in rows] == [
        ("UnauthorizedAccess:EC2/MaliciousIPCaller.Custom", 2),
        ("Recon:EC2/Portscan", 1),
    ]


def test_sample_findings_are_flagged_as_samples() -> None:
    """CreateSampleFindings makes findings whose AdditionalInfo says sample: true."""
    detector_id = make_detector()
    wanted = [
        "Recon:IAMUser/MaliciousIPCaller.Custom",
        "UnauthorizedAccess:EC2/SSHBruteForce",
    ]
    call("CreateSampleFindings", DetectorId=detector_id, FindingTypes=wanted)
    ids = call("ListFindings", DetectorId=detector_id)["FindingIds"]
    found = call("GetFindings", DetectorId=detector_id, FindingIds=ids)["Findings"]
    assert sorted(f["Type"] for f in found) == sorted(wanted)
    for finding in found:
        assert json.loads(finding["Service"]["AdditionalInfo"]["Value"]) == {
            "sample": True
        }
        assert "GeneratedFinding" in json.dumps(finding["Resource"])
        event = store.finding_to_event_detail(finding)
        assert event["service"]["additionalInfo"]["sample"] is True


def test_sample_findings_refuse_a_malformed_type() -> None:
    """A finding type without Purpose:Resource/Family is refused."""
    detector_id = make_detector()
    with pytest.raises(ServiceError):
        call("CreateSampleFindings", DetectorId=detector_id, FindingTypes=["nonsense"])


# Publishing -----------------------------------------------------------------


def test_publish_due_sends_new_at_once_and_updates_after_frequency(
    emitted: list[dict[str, Any]],
) -> None:
    """New: published at once; an update: only 15 minutes after, with FIFTEEN_MINUTES."""
    detector_id = make_detector("FIFTEEN_MINUTES")
    record(detector_id, fingerprint="x", now=T0)
    assert store.publish_due(T0) == ["event-1"]
    assert store.publish_due(T0 + timedelta(minutes=1)) == []
    record(detector_id, fingerprint="x", now=T0 + timedelta(minutes=2))
    assert store.publish_due(T0 + timedelta(minutes=14, seconds=59)) == []
    assert store.publish_due(T0 + timedelta(minutes=15)) == ["event-2"]
    assert store.publish_due(T0 + timedelta(minutes=40)) == []
    first, update = emitted
    assert first["source"] == "aws.guardduty"
    assert first["detail_type"] == "GuardDuty Finding"
    assert first["resources"] == []
    assert first["time"] == T0
    assert (
        first["detail"]["service"]["count"],
        update["detail"]["service"]["count"],
    ) == (1, 2)
    assert first["detail"]["id"] == update["detail"]["id"]


def test_publish_due_skips_archived_updates(emitted: list[dict[str, Any]]) -> None:
    """An update of an archived finding is not published."""
    detector_id = make_detector("FIFTEEN_MINUTES")
    finding = record(detector_id, fingerprint="x")
    store.publish_due(T0)
    call("ArchiveFindings", DetectorId=detector_id, FindingIds=[finding["Id"]])
    record(detector_id, fingerprint="x", now=T0 + timedelta(minutes=1))
    assert store.publish_due(T0 + timedelta(hours=1)) == []
    assert len(emitted) == 1


def _to_pascal(value: Any, shape: Any) -> Any:
    if shape.type_name == "structure":
        by_wire = {
            m.serialization.get("name", k): (k, m) for k, m in shape.members.items()
        }
        return {
            by_wire[key][0]: _to_pascal(item, by_wire[key][1])
            for key, item in value.items()
            if item is not None
        }
    if shape.type_name == "list":
        return [_to_pascal(item, shape.member) for item in value]
    return value


def test_event_detail_uses_real_guardduty_key_names() -> None:
    """A real camelCase finding, read as PascalCase and written back, is unchanged."""
    real = json.loads((DATA / "guardduty_iam_event.json").read_text())
    real["service"].pop("additionalInfo")  # free-form in this older sample
    finding = _to_pascal(real, MODEL.shape_for("Finding"))
    assert finding["Resource"]["InstanceDetails"]["ProductCodes"][0]["Code"]
    assert store.finding_to_event_detail(finding) == _drop_none(real)


def test_event_detail_of_a_recorded_finding_has_the_real_top_level_keys() -> None:
    """The event form of a recorded finding has exactly a real finding's keys."""
    real = json.loads((DATA / "guardduty_iam_event.json").read_text())
    detail = store.finding_to_event_detail(record(make_detector()))
    assert set(detail) == set(real)
    assert set(detail["service"]) <= set(real["service"]) | {"additionalInfo"}
    assert detail["severity"] == 5 and isinstance(detail["severity"], int)
    assert detail["service"]["action"]["networkConnectionAction"][
        "remoteIpDetails"
    ] == {"ipAddressV4": "198.51.100.7"}
