"""Tests for labkit.findings: findings as DataFrames, fetching and waiting."""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber

from labkit.errors import ConfigError, WaitTimeoutError
from labkit.findings import (
    COLUMNS,
    active,
    check_finding_types,
    drop_repeats,
    fetch_findings,
    read_findings,
    severity_label,
    type_parts,
    wait_for_findings,
)

DATA = Path(__file__).parent / "data" / "guardduty"
INDEX = json.loads((DATA / "INDEX.json").read_text())
DETECTOR = "12abc34d567e8fa901bc2d34e56789f0"
ARN_PREFIX = "arn:aws:guardduty:eu-west-2:123456789012"

# Resource ids and remote addresses of every finding object, read by hand from
# the raw files (see tests/data/SOURCES.md).
EXPECTED = json.loads((DATA.parent / "guardduty_expected.json").read_text())["files"]

TYPE_PARTS_NAMES = ("purpose", "affected", "family", "mechanism", "artifact")

# Every distinct type in the data, split by hand per GuardDuty's format
# ThreatPurpose:ResourceTypeAffected/ThreatFamilyName.DetectionMechanism!Artifact.
# The text after the one dot is the mechanism (a variant such as ``.B`` too),
# the text after ``!`` the artifact; "DNS" inside a family name is no artifact.
# Each value lists purpose, affected, family, mechanism, artifact; "-" is none.
TYPE_PARTS = {
    "AttackSequence:IAM/CompromisedCredentials": "AttackSequence IAM CompromisedCredentials - -",
    "AttackSequence:S3/CompromisedData": "AttackSequence S3 CompromisedData - -",
    "Canary:EC2/Stateless.IntegTest": "Canary EC2 Stateless IntegTest -",
    "CredentialAccess:IAMUser/AnomalousBehavior": "CredentialAccess IAMUser AnomalousBehavior - -",
    "Discovery:RDS/TorIPCaller": "Discovery RDS TorIPCaller - -",
    "Discovery:S3/AnomalousBehavior": "Discovery S3 AnomalousBehavior - -",
    "PenTest:S3/ParrotLinux": "PenTest S3 ParrotLinux - -",
    "Policy:IAMUser/RootCredentialUsage": "Policy IAMUser RootCredentialUsage - -",
    "PrivilegeEscalation:IAMUser/AdministrativePermissions": (
        "PrivilegeEscalation IAMUser AdministrativePermissions - -"
    ),
    "Recon:EC2/PortProbeEMRUnprotectedPort": "Recon EC2 PortProbeEMRUnprotectedPort - -",
    "Recon:EC2/PortProbeUnprotectedPort": "Recon EC2 PortProbeUnprotectedPort - -",
    "Recon:EC2/Portscan": "Recon EC2 Portscan - -",
    "Recon:IAMUser/MaliciousIPCaller.Custom": "Recon IAMUser MaliciousIPCaller Custom -",
    "Recon:IAMUser/UserPermissions": "Recon IAMUser UserPermissions - -",
    "Trojan:EC2/BlackholeTraffic": "Trojan EC2 BlackholeTraffic - -",
    "Trojan:EC2/DGADomainRequest.B": "Trojan EC2 DGADomainRequest B -",
    "Trojan:EC2/DNSDataExfiltration": "Trojan EC2 DNSDataExfiltration - -",
    "Trojan:EC2/DriveBySourceTraffic!DNS": "Trojan EC2 DriveBySourceTraffic - DNS",
    "Trojan:EC2/DropPoint": "Trojan EC2 DropPoint - -",
    "Trojan:EC2/DropPoint!DNS": "Trojan EC2 DropPoint - DNS",
    "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom": (
        "UnauthorizedAccess EC2 MaliciousIPCaller Custom -"
    ),
    "UnauthorizedAccess:EC2/MetadataDNSRebind": "UnauthorizedAccess EC2 MetadataDNSRebind - -",
    "UnauthorizedAccess:EC2/RDPBruteForce": "UnauthorizedAccess EC2 RDPBruteForce - -",
    "UnauthorizedAccess:EC2/SSHBruteForce": "UnauthorizedAccess EC2 SSHBruteForce - -",
    "UnauthorizedAccess:EC2/TorClient": "UnauthorizedAccess EC2 TorClient - -",
    "UnauthorizedAccess:EC2/TorRelay": "UnauthorizedAccess EC2 TorRelay - -",
}


def _table_parts(finding_type: str) -> tuple[str | None, ...]:
    return tuple(
        None if part == "-" else part for part in TYPE_PARTS[finding_type].split()
    )


LABELS = {1: "Low", 2: "Low", 5: "Medium", 8: "High", 9: "Critical"}


def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def _raw_findings(name: str, shape: str) -> list[dict[str, Any]]:
    """The finding objects of a file, found by the shape INDEX.json gives it."""
    document = _load(name)
    if shape.startswith("GetFindings"):
        return list(document["Findings"])
    if shape == "finding(camelCase)":
        return list(document.get("findings", [document]))
    return [document["detail"]]


def _index_by_file() -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entry in INDEX["files"]:
        grouped.setdefault(entry["file"], []).append(entry)
    return grouped


def _data_files() -> list[str]:
    return sorted(
        str(path.relative_to(DATA))
        for path in DATA.rglob("*.json")
        if path.name != "INDEX.json" and "testcases_index" not in path.name
    )


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _parts(row: Any) -> tuple[str | None, ...]:
    return tuple(None if _nan(row[name]) else row[name] for name in TYPE_PARTS_NAMES)


def _same_text(got: Any, expected: str | None) -> bool:
    """A text column holds the expected value, or NaN where None is expected."""
    return _nan(got) if expected is None else got == expected


def test_index_covers_every_copied_file() -> None:
    """INDEX.json and the expected values name every finding file copied."""
    assert sorted(_index_by_file()) == _data_files()
    assert sorted(EXPECTED) == _data_files()
    assert sorted(TYPE_PARTS) == sorted(INDEX["distinct_types"])
    for name, entries in _index_by_file().items():
        found = [e for e in entries if e["key_case"] != "empty"]
        assert len(EXPECTED[name]) == len(found), name


@pytest.mark.parametrize("name", sorted(_index_by_file()))
def test_read_findings_real_file_matches_index(name: str) -> None:
    """Each real file gives one row per finding, matching INDEX.json and the file."""
    entries = [e for e in _index_by_file()[name] if e["key_case"] != "empty"]

    frame = read_findings(_load(name))

    assert list(frame.columns) == COLUMNS
    assert len(frame) == len(entries)
    raw = _raw_findings(name, entries[0]["shape"]) if entries else []
    for position, (entry, finding) in enumerate(zip(entries, raw, strict=True)):
        row = frame.iloc[position]
        id_key = "Id" if entry["key_case"] == "PascalCase" else "id"
        assert row["id"] == finding[id_key]
        assert row["type"] == entry["type"]
        if entry["severity"] is None:
            assert _nan(row["severity"]) and _nan(row["severity_label"])
        else:
            assert row["severity"] == float(entry["severity"])
            assert row["severity_label"] == LABELS[entry["severity"]]
        if entry["resourceType"] is None:
            assert _nan(row["resource_type"])
        else:
            assert row["resource_type"] == entry["resourceType"]
        assert bool(row["sample"]) is entry["sample_flag"]


@pytest.mark.parametrize("name", sorted(_index_by_file()))
def test_read_findings_real_file_parts_ids_and_ips(name: str) -> None:
    """Each real finding's type parts, resource ids and remote IPs are the hand-read ones."""
    expected = EXPECTED[name]

    frame = read_findings(_load(name))

    assert len(frame) == len(expected)
    for position, want in enumerate(expected):
        row = frame.iloc[position]
        assert row["id"] == want["id"]
        assert _parts(row) == _table_parts(row["type"]), row["type"]
        for column in ("instance_id", "access_key_id", "user_name"):
            assert _same_text(row[column], want[column]), (column, row[column])
        assert row["remote_ips"] == want["remote_ips"]
        first = want["remote_ips"][0] if want["remote_ips"] else None
        assert _same_text(row["remote_ip"], first)


def test_read_findings_all_files_together() -> None:
    """All real files in one list give 32 rows, each split as the hand-made table."""
    frame = read_findings([_load(name) for name in _data_files()])

    assert len(frame) == 32
    assert set(frame["type"]) == set(INDEX["distinct_types"])
    for _, row in frame.iterrows():
        assert _parts(row) == _table_parts(row["type"]), row["type"]
    expected_ids = [want["id"] for name in _data_files() for want in EXPECTED[name]]
    assert frame["id"].tolist() == expected_ids
    assert frame["archived"].sum() == 3
    assert len(active(frame)) == 29
    assert len(drop_repeats(frame)) == 26


def test_read_findings_real_details() -> None:
    """Resource, action and time fields of real findings land in their columns."""
    frame = read_findings(
        [
            _load("alertchain/aws_guardduty_example.json"),
            _load("guardduty-soar/Trojan-EC2-DNSDataExfiltration.json"),
            _load("panther/panther_guardduty_findings.json"),
        ]
    )

    iam = frame.iloc[0]
    assert (iam["access_key_id"], iam["user_name"]) == (
        "ASIASZ4SI7REEEXAMPLE",
        "testuser",
    )
    assert _nan(iam["instance_id"])
    assert (iam["action_type"], iam["api"], iam["count"]) == (
        "AWS_API_CALL",
        "ListPolicyVersions",
        5,
    )
    assert iam["first_seen"] == pd.Timestamp("2020-05-26T22:02:24Z")
    assert iam["last_seen"] == pd.Timestamp("2020-05-26T22:33:55Z")
    assert iam["updated_at"] == pd.Timestamp("2020-05-26T22:55:21.703Z")
    assert (iam["account_id"], iam["region"]) == ("111122223333", "us-east-1")
    dns = frame.iloc[1]
    assert (dns["instance_id"], dns["action_type"]) == ("i-99999999", "DNS_REQUEST")
    assert dns["domain"] == "GeneratedFindingAdditionalDomainName"
    assert dns["remote_ips"] == [] and _nan(dns["api"])
    # Panther keeps times with a space and nanoseconds, and no zone.
    assert frame.iloc[2]["last_seen"] == pd.Timestamp("2025-02-25T20:40:06Z")
    assert frame.iloc[2]["updated_at"] == pd.Timestamp("2025-02-25T20:40:06.721Z")


def test_read_findings_envelope_fills_region_and_account() -> None:
    """A finding without region or account takes them from its event envelope."""
    frame = read_findings(
        [
            _load("aws-samples-waf-acl/gd2acl_test_event.json"),
            {
                "detail-type": "GuardDuty Finding",
                "account": "111122223333",
                "region": "eu-west-2",
                "detail": {"id": "e1", "type": "Recon:EC2/Portscan", "severity": 5},
            },
        ]
    )

    assert frame["region"].tolist() == ["us-east-1", "eu-west-2"]
    assert _nan(frame.iloc[0]["account_id"])
    assert frame.iloc[1]["account_id"] == "111122223333"


def test_read_findings_empty_detail_skipped_with_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The StreamAlert event with an empty detail gives no row and a warning."""
    with caplog.at_level(logging.WARNING, logger="labkit.findings"):
        frame = read_findings(_load("streamalert/guard_duty_all.json"))

    assert len(frame) == 0
    assert list(frame.columns) == COLUMNS
    assert any("empty detail" in r.getMessage() for r in caplog.records)


def test_read_findings_other_event_skipped_with_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An EventBridge event of another detail-type is skipped with a warning."""
    event = {"detail-type": "AWS API Call via CloudTrail", "detail": {"eventName": "X"}}
    finding = {"id": "f9", "type": "Recon:EC2/Portscan", "severity": 5}

    with caplog.at_level(logging.WARNING, logger="labkit.findings"):
        frame = read_findings([event, finding])

    assert frame["id"].tolist() == ["f9"]
    assert any("AWS API Call via CloudTrail" in r.getMessage() for r in caplog.records)


def test_read_findings_not_a_container_refused() -> None:
    """A string item is refused with ConfigError naming its type."""
    with pytest.raises(ConfigError, match="from a str"):
        read_findings([{"id": "f1", "severity": 2}, "not a finding"])


def test_read_findings_p01_resource_sub_objects_differ() -> None:
    """P01: an Instance and an AccessKey finding load without KeyError."""
    instance = {
        "id": "a",
        "type": "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",
        "resource": {
            "resourceType": "Instance",
            "instanceDetails": {"instanceId": "i-0aaa"},
        },
    }
    key = {
        "id": "b",
        "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        "resource": {
            "resourceType": "AccessKey",
            "accessKeyDetails": {
                "accessKeyId": "ASIAEXAMPLE",
                "userName": "GDRole",
                "userType": "AssumedRole",
            },
        },
    }

    frame = read_findings([instance, key])

    assert len(frame) == 2
    a, b = frame.iloc[0], frame.iloc[1]
    assert a["instance_id"] == "i-0aaa" and pd.isna(a["access_key_id"])
    assert b["access_key_id"] == "ASIAEXAMPLE" and pd.isna(b["instance_id"])
    assert b["user_name"] == "GDRole"
    assert frame["resource_type"].tolist() == ["Instance", "AccessKey"]


def test_read_findings_p02_both_key_cases_one_schema() -> None:
    """P02: the boto3 PascalCase dict and the camelCase event give the same row."""
    boto = {
        "Id": "f1",
        "Resource": {"InstanceDetails": {"InstanceId": "i-0aaa"}},
        "Severity": 8,
    }
    event = {
        "detail": {
            "id": "f1",
            "resource": {"instanceDetails": {"instanceId": "i-0aaa"}},
            "severity": 8,
        }
    }

    frame = read_findings([boto, event])

    assert len(frame) == 2
    assert frame["id"].tolist() == ["f1", "f1"]
    assert frame["instance_id"].tolist() == ["i-0aaa", "i-0aaa"]
    assert frame["severity"].dtype == "float64"
    assert frame["severity"].tolist() == [8.0, 8.0]
    assert len(drop_repeats(frame)) == 1


def test_drop_repeats_keeps_latest_update() -> None:
    """drop_repeats keeps the latest updated_at per id, whatever the read order."""

    def finding(fid: str, updated: str, count: int) -> dict[str, Any]:
        return {
            "id": fid,
            "type": "Recon:EC2/Portscan",
            "updatedAt": updated,
            "service": {"count": count},
        }

    frame = read_findings(
        [
            finding("f1", "2024-05-01T12:05:00Z", 3),
            finding("f2", "2024-05-01T12:00:00Z", 1),
            finding("f1", "2024-05-01T12:00:00.500Z", 1),
            finding("f1", "2024-05-01T12:10:00Z", 4),
            finding("f1", "2024-05-01T12:01:00Z", 2),
        ]
    )

    kept = drop_repeats(frame)

    assert kept["id"].tolist() == ["f2", "f1"]
    assert kept["count"].tolist() == [1, 4]
    assert len(frame) == 5


@pytest.mark.parametrize(
    ("severity", "label"),
    [
        (1.0, "Low"),
        (3.9, "Low"),
        (3.99, "Low"),
        (4.0, "Medium"),
        (6.9, "Medium"),
        (6.99, "Medium"),
        (7.0, "High"),
        (8.9, "High"),
        (8.95, "High"),
        (9.0, "Critical"),
        (10.0, "Critical"),
    ],
)
def test_severity_label_p03_half_open_bands(severity: float, label: str) -> None:
    """P03: labels follow [1,4) Low, [4,7) Medium, [7,9) High, [9,10] Critical."""
    assert severity_label(severity) == label


@pytest.mark.parametrize("severity", [0.5, 10.5, float("nan")])
def test_severity_label_out_of_range_refused(severity: float) -> None:
    """A severity outside 1 to 10 is refused, naming the value."""
    with pytest.raises(ConfigError, match="not a number from 1.0 to 10.0"):
        severity_label(severity)


def test_read_findings_p03_critical_rows_labelled() -> None:
    """P03: findings with every boundary severity get their label, none missing."""
    values = [1.0, 3.9, 4.0, 6.9, 7.0, 8.9, 9.0, 10.0]
    frame = read_findings([{"id": f"s{v}", "severity": v} for v in values])

    assert frame["severity_label"].tolist() == [
        "Low",
        "Low",
        "Medium",
        "Medium",
        "High",
        "High",
        "Critical",
        "Critical",
    ]


@pytest.mark.parametrize(
    ("finding_type", "parts"),
    [
        ("Trojan:EC2/DropPoint!DNS", ("Trojan", "EC2", "DropPoint", None, "DNS")),
        (
            "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
            (
                "UnauthorizedAccess",
                "IAMUser",
                "InstanceCredentialExfiltration",
                "OutsideAWS",
                None,
            ),
        ),
        (
            "Recon:EC2/PortProbeUnprotectedPort",
            ("Recon", "EC2", "PortProbeUnprotectedPort", None, None),
        ),
        (
            "CryptoCurrency:EC2/BitcoinTool.B!DNS",
            ("CryptoCurrency", "EC2", "BitcoinTool", "B", "DNS"),
        ),
        ("Backdoor:EC2/C&CActivity.B", ("Backdoor", "EC2", "C&CActivity", "B", None)),
        (
            "Backdoor:EC2/C&CActivity.B!DNS",
            ("Backdoor", "EC2", "C&CActivity", "B", "DNS"),
        ),
        (
            "Trojan:EC2/DGADomainRequest.C!DNS",
            ("Trojan", "EC2", "DGADomainRequest", "C", "DNS"),
        ),
        (
            "Trojan:EC2/DNSDataExfiltration",
            ("Trojan", "EC2", "DNSDataExfiltration", None, None),
        ),
        (
            "Stealth:IAMUser/CloudTrailLoggingDisabled",
            ("Stealth", "IAMUser", "CloudTrailLoggingDisabled", None, None),
        ),
        (
            "Policy:IAMUser/RootCredentialUsage",
            ("Policy", "IAMUser", "RootCredentialUsage", None, None),
        ),
        (
            "UnauthorizedAccess:EC2/TorClient",
            ("UnauthorizedAccess", "EC2", "TorClient", None, None),
        ),
        (
            "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS",
            (
                "UnauthorizedAccess",
                "IAMUser",
                "InstanceCredentialExfiltration",
                "InsideAWS",
                None,
            ),
        ),
        (
            "Stealth:S3/ServerAccessLoggingDisabled",
            ("Stealth", "S3", "ServerAccessLoggingDisabled", None, None),
        ),
        (
            "Exfiltration:S3/ObjectRead.Unusual",
            ("Exfiltration", "S3", "ObjectRead", "Unusual", None),
        ),
        (
            "CredentialAccess:Kubernetes/MaliciousIPCaller.Custom",
            ("CredentialAccess", "Kubernetes", "MaliciousIPCaller", "Custom", None),
        ),
        (
            "CredentialAccess:Kubernetes/SuccessfulAnonymousAccess",
            ("CredentialAccess", "Kubernetes", "SuccessfulAnonymousAccess", None, None),
        ),
        (
            "AttackSequence:EKS/CompromisedCluster",
            ("AttackSequence", "EKS", "CompromisedCluster", None, None),
        ),
        ("not a finding type", (None, None, None, None, None)),
    ],
)
def test_read_findings_type_split(
    finding_type: str, parts: tuple[str | None, ...]
) -> None:
    """Documented types split at the first '.' (mechanism) and at '!' (artifact)."""
    row = read_findings({"id": "t", "type": finding_type}).iloc[0]

    got = tuple(
        row[name] for name in ("purpose", "affected", "family", "mechanism", "artifact")
    )
    assert [None if _nan(value) else value for value in got] == list(parts)


def test_read_findings_missing_type_gives_nan_parts() -> None:
    """A finding without a type has NaN in every part, not a KeyError."""
    row = read_findings({"id": "t", "severity": 2}).iloc[0]

    assert all(_nan(row[name]) for name in ("type", "purpose", "family", "artifact"))


def _action_finding(fid: str, action: dict[str, Any]) -> dict[str, Any]:
    return {"id": fid, "type": "Recon:EC2/Portscan", "service": {"action": action}}


def _remote(ip: str) -> dict[str, Any]:
    return {"remoteIpDetails": {"ipAddressV4": ip}}


def test_read_findings_p05_remote_ips_per_action_type() -> None:
    """P05: each action type's remote IPs come from its own place."""
    network = _action_finding(
        "n",
        {
            "actionType": "NETWORK_CONNECTION",
            "networkConnectionAction": _remote("198.51.100.7"),
        },
    )
    probe = _action_finding(
        "p",
        {
            "actionType": "PORT_PROBE",
            "portProbeAction": {
                "portProbeDetails": [_remote("198.51.100.8"), _remote("198.51.100.9")]
            },
        },
    )
    dns = _action_finding(
        "d",
        {
            "actionType": "DNS_REQUEST",
            "dnsRequestAction": {"domain": "example.invalid"},
        },
    )
    api = _action_finding(
        "a",
        {
            "actionType": "AWS_API_CALL",
            "awsApiCallAction": {"api": "ListBuckets", **_remote("198.51.100.20")},
        },
    )

    frame = read_findings([network, probe, dns, api])

    assert frame["remote_ips"].tolist() == [
        ["198.51.100.7"],
        ["198.51.100.8", "198.51.100.9"],
        [],
        ["198.51.100.20"],
    ]
    assert frame["action_type"].tolist() == [
        "NETWORK_CONNECTION",
        "PORT_PROBE",
        "DNS_REQUEST",
        "AWS_API_CALL",
    ]
    assert frame.iloc[2]["domain"] == "example.invalid" and _nan(
        frame.iloc[2]["remote_ip"]
    )
    assert frame.iloc[3]["api"] == "ListBuckets"
    exploded = frame.explode("remote_ips")
    assert exploded[exploded["id"] == "p"]["remote_ips"].tolist() == [
        "198.51.100.8",
        "198.51.100.9",
    ]


def test_read_findings_p09_mixed_iso_times() -> None:
    """P09: second and millisecond ISO stamps all parse to UTC, with no warning."""
    stamps = [
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00.123Z",
        "2024-05-01T20:00:01Z",
    ]
    objects = [
        {"id": str(n), "updatedAt": stamp, "service": {"eventFirstSeen": stamp}}
        for n, stamp in enumerate(stamps)
    ]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = read_findings(objects)

    for column in ("updated_at", "first_seen", "last_seen"):
        assert str(frame[column].dtype) == "datetime64[ns, UTC]"
    assert frame["updated_at"].tolist() == [
        pd.Timestamp("2024-05-01 12:00:00", tz="UTC"),
        pd.Timestamp("2024-05-01 12:00:00.123", tz="UTC"),
        pd.Timestamp("2024-05-01 20:00:01", tz="UTC"),
    ]
    assert frame["first_seen"].tolist() == frame["updated_at"].tolist()
    assert frame["last_seen"].isna().all()


def _api_finding(number: int, archived: bool) -> dict[str, Any]:
    """A GetFindings finding in boto3's PascalCase, valid for botocore's model."""
    fid = f"f{number:03d}"
    return {
        "AccountId": "123456789012",
        "Arn": f"{ARN_PREFIX}/detector/{DETECTOR}/finding/{fid}",
        "CreatedAt": "2024-05-01T12:00:00.000Z",
        "Id": fid,
        "Region": "eu-west-2",
        "Resource": {
            "ResourceType": "Instance",
            "InstanceDetails": {"InstanceId": "i-0aaa"},
        },
        "SchemaVersion": "2.0",
        "Severity": 5.0,
        "Type": "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",
        "UpdatedAt": "2024-05-01T12:00:00.000Z",
        "Service": {"Archived": archived, "Count": 1, "ServiceName": "guardduty"},
    }


def _guardduty_client() -> Any:
    return boto3.client(
        "guardduty",
        region_name="eu-west-2",
        aws_access_key_id="AKIAEXAMPLEEXAMPLE00",
        aws_secret_access_key="fake-secret-for-stubber",
    )


def _stub_pages(
    stub: Stubber, findings: list[dict[str, Any]], criteria: Any = None
) -> None:
    ids = [f["Id"] for f in findings]
    pages = [ids[start : start + 50] for start in range(0, len(ids), 50)]
    for number, page in enumerate(pages):
        expected: dict[str, Any] = {"DetectorId": DETECTOR, "MaxResults": 50}
        if criteria is not None:
            expected["FindingCriteria"] = criteria
        if number:
            expected["NextToken"] = f"token{number}"
        response: dict[str, Any] = {"FindingIds": page}
        if number + 1 < len(pages):
            response["NextToken"] = f"token{number + 1}"
        stub.add_response("list_findings", response, expected)
    by_id = {f["Id"]: f for f in findings}
    for page in pages:
        stub.add_response(
            "get_findings",
            {"Findings": [by_id[i] for i in page]},
            {"DetectorId": DETECTOR, "FindingIds": page},
        )


def test_fetch_findings_p04_pages_and_batches() -> None:
    """P04: 120 findings take 3 ListFindings pages and 3 GetFindings calls of <=50."""
    findings = [_api_finding(n, archived=n in (7, 64, 119)) for n in range(120)]
    client = _guardduty_client()
    calls: list[tuple[str, int]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        ids = params.get("FindingIds", params.get("MaxResults"))
        calls.append((model.name, len(ids) if isinstance(ids, list) else ids))

    client.meta.events.register("provide-client-params.guardduty.*", record)
    with Stubber(client) as stub:
        _stub_pages(stub, findings)
        frame = fetch_findings(client, DETECTOR)
        stub.assert_no_pending_responses()

    assert calls == [
        ("ListFindings", 50),
        ("ListFindings", 50),
        ("ListFindings", 50),
        ("GetFindings", 50),
        ("GetFindings", 50),
        ("GetFindings", 20),
    ]
    assert len(frame) == 120 and frame["id"].is_unique
    assert sorted(frame.loc[frame["archived"], "id"]) == ["f007", "f064", "f119"]
    assert len(active(frame)) == 117
    assert frame["instance_id"].eq("i-0aaa").all()


def test_fetch_findings_passes_criteria() -> None:
    """A FindingCriteria is sent on every ListFindings page."""
    criteria = {"Criterion": {"service.archived": {"Eq": ["false"]}}}
    findings = [_api_finding(n, archived=False) for n in range(60)]
    client = _guardduty_client()
    with Stubber(client) as stub:
        _stub_pages(stub, findings, criteria)
        frame = fetch_findings(client, DETECTOR, criteria=criteria)
        stub.assert_no_pending_responses()

    assert len(frame) == 60


def test_fetch_findings_none_makes_no_get_call() -> None:
    """With no finding ids, GetFindings is not called and the frame is empty."""
    client = _guardduty_client()
    with Stubber(client) as stub:
        stub.add_response(
            "list_findings",
            {"FindingIds": []},
            {"DetectorId": DETECTOR, "MaxResults": 50},
        )
        frame = fetch_findings(client, DETECTOR)
        stub.assert_no_pending_responses()

    assert len(frame) == 0 and list(frame.columns) == COLUMNS


class FakeDetector:
    """A GuardDuty client stand-in whose findings appear at given lab minutes."""

    def __init__(self, schedule: list[tuple[float, dict[str, Any]]]) -> None:
        self.schedule = schedule
        self.minute = 0.0
        self.list_calls = 0

    def advance(self, minutes: float) -> None:
        self.minute += minutes

    def _visible(self) -> list[dict[str, Any]]:
        return [f for at, f in self.schedule if at <= self.minute]

    def list_findings(self, **params: Any) -> dict[str, Any]:
        self.list_calls += 1
        assert params["DetectorId"] == DETECTOR
        return {"FindingIds": [f["Id"] for f in self._visible()]}

    def get_findings(self, **params: Any) -> dict[str, Any]:
        wanted = set(params["FindingIds"])
        return {"Findings": [f for f in self._visible() if f["Id"] in wanted]}


def _typed(number: int, finding_type: str) -> dict[str, Any]:
    finding = _api_finding(number, archived=False)
    finding["Type"] = finding_type
    return finding


RECON = "Recon:IAMUser/MaliciousIPCaller.Custom"
ACCESS = "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom"


def test_wait_for_findings_returns_when_all_types_present() -> None:
    """The wait advances step by step until both types exist, then returns them."""
    detector = FakeDetector(
        [
            (0.0, _typed(1, "Recon:EC2/Portscan")),
            (2.0, _typed(2, RECON)),
            (4.5, _typed(3, ACCESS)),
        ]
    )
    steps: list[float] = []

    def advance(minutes: float) -> None:
        steps.append(minutes)
        detector.advance(minutes)

    frame = wait_for_findings(
        detector,
        DETECTOR,
        [RECON, ACCESS],
        timeout_minutes=10,
        step_minutes=2,
        advance=advance,
    )

    assert steps == [2, 2, 2]
    assert sorted(frame["type"]) == sorted([RECON, ACCESS])
    assert detector.list_calls == 4


def test_wait_for_findings_present_already_does_not_advance() -> None:
    """If the findings already exist, the wait returns without advancing time."""
    detector = FakeDetector([(0.0, _typed(1, RECON))])
    steps: list[float] = []

    frame = wait_for_findings(
        detector,
        DETECTOR,
        [RECON],
        timeout_minutes=10,
        step_minutes=1,
        advance=steps.append,
    )

    assert steps == [] and frame["id"].tolist() == ["f001"]


def test_wait_for_findings_timeout_names_missing_type() -> None:
    """After timeout_minutes of advancing, WaitTimeoutError names the missing type."""
    detector = FakeDetector([(0.0, _typed(1, RECON)), (60.0, _typed(2, ACCESS))])
    steps: list[float] = []

    def advance(minutes: float) -> None:
        steps.append(minutes)
        detector.advance(minutes)

    with pytest.raises(WaitTimeoutError) as caught:
        wait_for_findings(
            detector,
            DETECTOR,
            [RECON, ACCESS],
            timeout_minutes=5,
            step_minutes=2,
            advance=advance,
        )

    assert steps == [2, 2, 1]
    message = str(caught.value)
    assert repr(ACCESS) in message and repr(RECON) not in message
    assert "5 minutes" in message and "timeout_minutes" in message
    assert isinstance(caught.value, TimeoutError)


@pytest.mark.parametrize(
    ("types", "timeout", "step"), [([RECON], 10, 0), ([RECON], -1, 1), ([], 10, 1)]
)
def test_wait_for_findings_bad_arguments_refused(
    types: list[str], timeout: float, step: float
) -> None:
    """A step of 0, a negative timeout or no types is refused before any fetch."""
    detector = FakeDetector([])

    with pytest.raises(ConfigError):
        wait_for_findings(
            detector,
            DETECTOR,
            types,
            timeout_minutes=timeout,
            step_minutes=step,
            advance=print,
        )

    assert detector.list_calls == 0


def test_check_finding_types_accepts_every_real_type() -> None:
    """Each of the 26 types in the real data passes the type check as it is."""
    assert check_finding_types(list(TYPE_PARTS)) == list(TYPE_PARTS)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("UnauthorizedAccess:EC2/MaliciousIPCaller.Custom", "wrap it in a list"),
        ("UnauthorizedAccess:EC2/MaliciousIPCaller.custom", "not a GuardDuty"),
        (["UnauthorizedAccess:EC2/MaliciousIPCaller.custom"], "not a GuardDuty"),
        (["not a type"], "'not a type' is not a GuardDuty finding type"),
        (["recon:IAMUser/MaliciousIPCaller"], "not a GuardDuty"),
        ([None], "None is not a GuardDuty finding type"),
        (["Recon:IAMUser/MaliciousIPCaller.Custom "], "spaces around it"),
    ],
)
def test_check_finding_types_refuses_strings_and_typos(given: Any, said: str) -> None:
    """A bare string or a misspelt type is refused at once, naming it."""
    with pytest.raises(ConfigError, match=said):
        check_finding_types(given)


def test_wait_for_findings_refuses_a_typo_before_advancing() -> None:
    """A misspelt type is refused before any lab time passes."""
    advanced: list[float] = []
    with pytest.raises(ConfigError, match="not a GuardDuty finding type"):
        wait_for_findings(
            object(),
            "det1",
            ["UnauthorizedAccess:EC2/MaliciousIPCaller.custom"],
            timeout_minutes=30,
            step_minutes=1,
            advance=advanced.append,
        )
    assert advanced == []


def test_type_parts_refuses_a_single_string() -> None:
    """type_parts of one string says to pass a list instead of splitting letters."""
    with pytest.raises(ConfigError, match="wrap it in a list"):
        type_parts("Recon:IAMUser/MaliciousIPCaller.Custom")  # type: ignore[arg-type]
