"""Tests for labkit.threatlist: GuardDuty TXT threat lists."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from labkit import threatlist
from labkit.errors import ThreatListError
from labkit.threatlist import (
    find_threat_intel_set,
    format_threat_list,
    parse_threat_list,
    upload_threat_list,
)

DATA = Path(__file__).parent / "data" / "threat_lists" / "txt"
DETECTOR = "12abc34d567e8fa901bc2d34e56789f0"
BUCKET = "lab-threat-lists"
KEY = "threatlist/lab.txt"
LOCATION = f"https://s3.amazonaws.com/{BUCKET}/{KEY}"


def _clients() -> tuple[object, object]:
    session = boto3.Session(
        aws_access_key_id="AKIAEXAMPLEEXAMPLE00",
        aws_secret_access_key="fake-secret-for-stubber",
        region_name="eu-west-2",
    )
    return session.client("s3"), session.client("guardduty")


@pytest.mark.parametrize(("level", "expected"), [(5, 1413), (6, 318), (7, 70), (8, 23)])
def test_parse_threat_list_ipsum_levels(level: int, expected: int) -> None:
    """Each real ipsum level file parses to one /32 network per line."""
    text = (DATA / "ipsum" / f"levels_{level}.txt").read_text()

    networks = parse_threat_list(text)

    assert len(networks) == expected
    assert all(network.prefixlen == 32 for network in networks)
    first = text.splitlines()[0].strip()
    assert networks[0] == ipaddress.IPv4Network(first)


def test_parse_threat_list_aws_docs_sample_with_cidr() -> None:
    """The AWS docs sample list parses, its CIDR kept as a /8 range."""
    text = (DATA / "awsdocs" / "guardduty_docs_sample_list.txt").read_text()

    networks = parse_threat_list(text)

    assert networks == [
        ipaddress.IPv4Network("54.20.175.217/32"),
        ipaddress.IPv4Network("205.0.0.0/8"),
    ]


def test_parse_threat_list_ipsum_feed_refused_naming_line() -> None:
    """The ipsum feed's '#' header is skipped; its IP<TAB>count line is refused."""
    text = (DATA / "ipsum" / "ipsum_head300.txt").read_text()
    assert text.startswith("# IPsum Threat Intelligence Feed")

    with pytest.raises(ThreatListError) as caught:
        parse_threat_list(text)
    assert isinstance(caught.value, ValueError)
    first_entry = "77.90.185.20\t10"
    assert str(caught.value).startswith(
        f"line 8 of the threat list is {first_entry!r}: it is not a dotted IPv4"
    )


def test_parse_threat_list_blank_lines_and_spaces_skipped() -> None:
    """Blank lines, CRLF endings and spaces around an entry hold no entry."""
    text = "\n  198.51.100.7  \r\n\n203.0.113.0/24\n"

    networks = parse_threat_list(text)

    assert [str(network) for network in networks] == [
        "198.51.100.7/32",
        "203.0.113.0/24",
    ]


def test_format_threat_list_writes_only_entries() -> None:
    """Formatted text is one stripped entry per line, and parses back the same."""
    text = format_threat_list(["198.51.100.7", " 203.0.113.0/24", "192.0.2.1/32"])

    assert text == "198.51.100.7\n203.0.113.0/24\n192.0.2.1/32\n"
    assert [str(n) for n in parse_threat_list(text)] == [
        "198.51.100.7/32",
        "203.0.113.0/24",
        "192.0.2.1/32",
    ]


@pytest.mark.parametrize(
    ("address", "problem"),
    [("1.2.3.4\n5.6.7.8", "spans several lines"), ("  ", "is empty")],
)
def test_format_threat_list_address_not_one_line_refused(
    address: str, problem: str
) -> None:
    """An address that would not make exactly one line is refused, by position."""
    with pytest.raises(ThreatListError) as caught:
        format_threat_list(["198.51.100.7", address])

    assert str(caught.value).startswith(
        f"address 2 for the threat list is {address!r}: it {problem}"
    )


def _expect_put(s3_stub: Stubber, body: bytes) -> None:
    s3_stub.add_response(
        "put_object",
        {"ETag": '"etag"'},
        {"Bucket": BUCKET, "Key": KEY, "Body": body, "ContentType": "text/plain"},
    )


def test_upload_threat_list_creates_set(caplog: pytest.LogCaptureFixture) -> None:
    """With no set of that name, the list is put to S3 then a TXT set is created."""
    s3, guardduty = _clients()
    body = b"198.51.100.7\n"
    with Stubber(s3) as s3_stub, Stubber(guardduty) as gd_stub:
        _expect_put(s3_stub, body)
        gd_stub.add_response(
            "list_threat_intel_sets",
            {"ThreatIntelSetIds": ["other1"]},
            {"DetectorId": DETECTOR},
        )
        gd_stub.add_response(
            "get_threat_intel_set",
            {
                "Name": "someone-else",
                "Format": "TXT",
                "Location": "x",
                "Status": "ACTIVE",
            },
            {"DetectorId": DETECTOR, "ThreatIntelSetId": "other1"},
        )
        gd_stub.add_response(
            "create_threat_intel_set",
            {"ThreatIntelSetId": "new1"},
            {
                "DetectorId": DETECTOR,
                "Name": "lab-threats",
                "Format": "TXT",
                "Location": LOCATION,
                "Activate": True,
            },
        )
        with caplog.at_level(logging.INFO, logger="labkit.threatlist"):
            set_id = upload_threat_list(
                s3,
                guardduty,
                detector_id=DETECTOR,
                bucket=BUCKET,
                key=KEY,
                addresses=["198.51.100.7"],
                name="lab-threats",
            )
        s3_stub.assert_no_pending_responses()
        gd_stub.assert_no_pending_responses()

    assert set_id == "new1"
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 2
    assert f"s3://{BUCKET}/{KEY}" in infos[0]
    assert "created" in infos[1] and "new1" in infos[1]


def test_upload_threat_list_reuses_set_of_same_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A set with that name on a later page is updated and activated, not duplicated."""
    s3, guardduty = _clients()
    body = b"198.51.100.7\n203.0.113.0/24\n"
    with Stubber(s3) as s3_stub, Stubber(guardduty) as gd_stub:
        _expect_put(s3_stub, body)
        gd_stub.add_response(
            "list_threat_intel_sets",
            {"ThreatIntelSetIds": ["other1"], "NextToken": "page2"},
            {"DetectorId": DETECTOR},
        )
        gd_stub.add_response(
            "get_threat_intel_set",
            {
                "Name": "someone-else",
                "Format": "TXT",
                "Location": "x",
                "Status": "ACTIVE",
            },
            {"DetectorId": DETECTOR, "ThreatIntelSetId": "other1"},
        )
        gd_stub.add_response(
            "list_threat_intel_sets",
            {"ThreatIntelSetIds": ["old7"]},
            {"DetectorId": DETECTOR, "NextToken": "page2"},
        )
        gd_stub.add_response(
            "get_threat_intel_set",
            {
                "Name": "lab-threats",
                "Format": "TXT",
                "Location": "old",
                "Status": "ERROR",
            },
            {"DetectorId": DETECTOR, "ThreatIntelSetId": "old7"},
        )
        gd_stub.add_response(
            "update_threat_intel_set",
            {},
            {
                "DetectorId": DETECTOR,
                "ThreatIntelSetId": "old7",
                "Location": LOCATION,
                "Activate": True,
            },
        )
        with caplog.at_level(logging.INFO, logger="labkit.threatlist"):
            set_id = upload_threat_list(
                s3,
                guardduty,
                detector_id=DETECTOR,
                bucket=BUCKET,
                key=KEY,
                addresses=["198.51.100.7", "203.0.113.0/24"],
                name="lab-threats",
            )
        s3_stub.assert_no_pending_responses()
        gd_stub.assert_no_pending_responses()

    assert set_id == "old7"
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 2
    assert "updated" in infos[1] and "old7" in infos[1]


def test_upload_threat_list_malformed_address_uploads_nothing() -> None:
    """A malformed line is refused, by number, before any S3 or GuardDuty call."""
    s3, guardduty = _clients()
    with Stubber(s3) as s3_stub, Stubber(guardduty) as gd_stub:
        expected = (
            "line 2 of threat list 'lab-threats' is '203.0.113.300': .*"
            "one IPv4 address or CIDR range per line.*"
            "Line 2 is address 2 of the addresses given"
        )
        with pytest.raises(ThreatListError, match=expected):
            upload_threat_list(
                s3,
                guardduty,
                detector_id=DETECTOR,
                bucket=BUCKET,
                key=KEY,
                addresses=["198.51.100.7", "203.0.113.300"],
                name="lab-threats",
            )
        s3_stub.assert_no_pending_responses()
        gd_stub.assert_no_pending_responses()


def test_upload_threat_list_empty_refused() -> None:
    """An empty address list is refused: a set matching nothing is a mistake."""
    s3, guardduty = _clients()
    with Stubber(s3), Stubber(guardduty):
        with pytest.raises(ThreatListError, match="no addresses"):
            upload_threat_list(
                s3,
                guardduty,
                detector_id=DETECTOR,
                bucket=BUCKET,
                key=KEY,
                addresses=[],
                name="lab-threats",
            )


def test_upload_threat_list_existing_set_wrong_format_refused() -> None:
    """A same-named set in another format is refused before anything is put to S3."""
    s3, guardduty = _clients()
    with Stubber(s3), Stubber(guardduty) as gd_stub:
        gd_stub.add_response(
            "list_threat_intel_sets",
            {"ThreatIntelSetIds": ["stix1"]},
            {"DetectorId": DETECTOR},
        )
        gd_stub.add_response(
            "get_threat_intel_set",
            {
                "Name": "lab-threats",
                "Format": "STIX",
                "Location": "x",
                "Status": "ACTIVE",
            },
            {"DetectorId": DETECTOR, "ThreatIntelSetId": "stix1"},
        )
        with pytest.raises(ThreatListError, match="'STIX'"):
            upload_threat_list(
                s3,
                guardduty,
                detector_id=DETECTOR,
                bucket=BUCKET,
                key=KEY,
                addresses=["198.51.100.7"],
                name="lab-threats",
            )
        gd_stub.assert_no_pending_responses()


@pytest.mark.parametrize("address", ["#198.51.100.7", "  # lab threats", "#"])
def test_format_threat_list_refuses_an_address_that_would_be_a_comment(
    address: str,
) -> None:
    """An address starting with '#' would be a comment line: refused, by position."""
    with pytest.raises(ThreatListError) as caught:
        format_threat_list(["198.51.100.7", address])

    assert str(caught.value).startswith(
        f"address 2 for the threat list is {address!r}: it starts with '#'"
    )


def test_format_threat_list_writes_one_line_per_entry() -> None:
    """Every line written is an entry; no addresses give no line at all."""
    addresses = ["198.51.100.7", "203.0.113.0/24"]
    text = format_threat_list(addresses, name="lab-threats")

    assert len(text.splitlines()) == len(parse_threat_list(text)) == 2
    assert format_threat_list([]) == ""


def test_format_threat_list_names_the_list() -> None:
    """With a name, the message names the list instead of 'the threat list'."""
    with pytest.raises(ThreatListError, match="^line 1 of threat list 'lab' is 'x'"):
        format_threat_list(["x"], name="lab")


def test_upload_threat_list_of_a_comment_uploads_nothing() -> None:
    """An address '# x' is refused before any call, not uploaded as an empty list."""
    s3, guardduty = _clients()
    with Stubber(s3) as s3_stub, Stubber(guardduty) as gd_stub:
        with pytest.raises(ThreatListError, match="address 1 for threat list 'lab'"):
            upload_threat_list(
                s3,
                guardduty,
                detector_id=DETECTOR,
                bucket=BUCKET,
                key=KEY,
                addresses=["# x"],
                name="lab",
            )
        s3_stub.assert_no_pending_responses()
        gd_stub.assert_no_pending_responses()


def test_upload_threat_list_writes_with_format_threat_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The upload's body is format_threat_list's text, written under the list's name."""
    written: list[tuple[list[str], str | None]] = []

    def spy(addresses: list[str], *, name: str | None = None) -> str:
        written.append((list(addresses), name))
        return "192.0.2.1\n"

    monkeypatch.setattr(threatlist, "format_threat_list", spy)
    s3, guardduty = _clients()
    with Stubber(s3) as s3_stub, Stubber(guardduty) as gd_stub:
        _expect_put(s3_stub, b"192.0.2.1\n")
        gd_stub.add_response("list_threat_intel_sets", {"ThreatIntelSetIds": []})
        gd_stub.add_response("create_threat_intel_set", {"ThreatIntelSetId": "n1"})
        upload_threat_list(
            s3,
            guardduty,
            detector_id=DETECTOR,
            bucket=BUCKET,
            key=KEY,
            addresses=["198.51.100.7"],
            name="lab",
        )
        s3_stub.assert_no_pending_responses()

    assert written == [(["198.51.100.7"], "lab")]


def test_upload_threat_list_logs_the_entries_it_uploads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The upload's log line counts the entries of the text uploaded."""
    s3, guardduty = _clients()
    with Stubber(s3) as s3_stub, Stubber(guardduty) as gd_stub:
        _expect_put(s3_stub, b"198.51.100.7\n203.0.113.0/24\n192.0.2.1\n")
        gd_stub.add_response("list_threat_intel_sets", {"ThreatIntelSetIds": []})
        gd_stub.add_response("create_threat_intel_set", {"ThreatIntelSetId": "n1"})
        with caplog.at_level(logging.INFO, logger="labkit.threatlist"):
            upload_threat_list(
                s3,
                guardduty,
                detector_id=DETECTOR,
                bucket=BUCKET,
                key=KEY,
                addresses=["198.51.100.7", "203.0.113.0/24", "192.0.2.1"],
                name="lab",
            )

    assert f"uploaded threat list s3://{BUCKET}/{KEY} (3 entries)" in caplog.text


def _stub_pages(gd_stub: Stubber, names: list[list[str]]) -> None:
    """ListThreatIntelSets pages of sets with these names, each described."""
    for number, page in enumerate(names):
        request = {"DetectorId": DETECTOR}
        if number:
            request["NextToken"] = f"page{number}"
        listed: dict[str, object] = {
            "ThreatIntelSetIds": [f"s{number}{i}" for i in range(len(page))]
        }
        if number + 1 < len(names):
            listed["NextToken"] = f"page{number + 1}"
        gd_stub.add_response("list_threat_intel_sets", listed, request)
        for i, name in enumerate(page):
            gd_stub.add_response(
                "get_threat_intel_set",
                {"Name": name, "Format": "TXT", "Location": "x", "Status": "ACTIVE"},
                {"DetectorId": DETECTOR, "ThreatIntelSetId": f"s{number}{i}"},
            )


def test_find_threat_intel_set_reads_every_page() -> None:
    """The set is found on the third page of ListThreatIntelSets."""
    _, guardduty = _clients()
    with Stubber(guardduty) as gd_stub:
        _stub_pages(gd_stub, [["a"], ["b", "c"], ["lab"]])
        found = find_threat_intel_set(guardduty, DETECTOR, "lab")
        gd_stub.assert_no_pending_responses()

    assert found is not None
    assert found[0] == "s20"
    assert found[1]["Name"] == "lab"


def test_find_threat_intel_set_without_the_name_is_none() -> None:
    """No set of that name on any page gives None, after reading them all."""
    _, guardduty = _clients()
    with Stubber(guardduty) as gd_stub:
        _stub_pages(gd_stub, [["a"], ["b"]])
        assert find_threat_intel_set(guardduty, DETECTOR, "lab") is None
        gd_stub.assert_no_pending_responses()
