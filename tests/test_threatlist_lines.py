"""One table of TXT threat-list lines, read by labkit and by the local cloud.

The rule is GuardDuty's List formats (one IPv4 address or CIDR range per
line), read strictly: one function, ``labkit.list_format.read_txt_list``,
that both callers use. labkit refuses a bad line before upload, naming it;
the local cloud marks a set holding it ERROR, as GuardDuty does with a list
it cannot read. Each words its own message from the rule's one reason.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from moto.backends import get_backend

from labkit import list_format, threatlist
from labkit.errors import ThreatListError
from labkit.local import findings_store as store
from labkit.local import guardduty  # noqa: F401  (registers the handlers)
from labkit.local.registry import OPERATIONS, Call

ACCOUNT = "123456789012"
REGION = "eu-west-2"
FIRST = "198.51.100.7"

# (line, the range it holds, or None when the line holds no entry)
GOOD = [
    ("54.20.175.217", "54.20.175.217/32"),
    ("205.0.0.0/8", "205.0.0.0/8"),
    ("203.0.113.0/24", "203.0.113.0/24"),
    ("192.0.2.1/32", "192.0.2.1/32"),
    ("0.0.0.0/0", "0.0.0.0/0"),
    ("  203.0.113.9 ", "203.0.113.9/32"),
    ("\t203.0.113.9", "203.0.113.9/32"),
    ("203.0.113.9\r", "203.0.113.9/32"),
    ("", None),
    ("   ", None),
    ("# lab threats", None),
    ("  # an indented comment", None),
]
# (line, what labkit's message says is wrong)
BAD = [
    ("203.0.113.9 # attacker", "not a dotted IPv4"),
    ("10.0.0.1/8", "host bits set past its prefix (the range is 10.0.0.0/8)"),
    ("1.2.3.4/255.0.0.0", "not a dotted IPv4"),
    ("1.2.3.0/0.0.0.255", "not a dotted IPv4"),
    ("1.2.3.4/33", "netmask"),
    ("1.2.3.4/", "not a dotted IPv4"),
    ("256.1.1.1", "256"),
    ("010.1.1.1", "Leading zeros"),
    ("1.2.3", "not a dotted IPv4"),
    ("16909060", "not a dotted IPv4"),
    ("2001:db8::1", "not a dotted IPv4"),
    ("2001:db8::/32", "not a dotted IPv4"),
    ("77.90.185.20\t10", "not a dotted IPv4"),
    ("198.51.100.7,203.0.113.9", "not a dotted IPv4"),
    ("198.51.100.7 203.0.113.9", "not a dotted IPv4"),
    ("evil.example.com", "not a dotted IPv4"),
]


def _text(line: str) -> str:
    return f"{FIRST}\n{line}\n"


def _expected(network: str | None) -> list[ipaddress.IPv4Network]:
    found = [ipaddress.IPv4Network(FIRST)]
    return found + ([ipaddress.IPv4Network(network)] if network else [])


# The rule ------------------------------------------------------------------


@pytest.mark.parametrize(("line", "network"), GOOD)
def test_rule_reads_a_good_line(line: str, network: str | None) -> None:
    """The shared rule keeps the entry a good line holds, and skips a blank one."""
    assert list_format.read_txt_list(_text(line)) == _expected(network)


@pytest.mark.parametrize(("line", "reason"), BAD)
def test_rule_refuses_a_bad_line_with_its_number(line: str, reason: str) -> None:
    """The shared rule's refusal carries line 2, the line itself and the reason."""
    with pytest.raises(list_format.TxtLineError) as caught:
        list_format.read_txt_list(_text(line))

    assert (caught.value.number, caught.value.line) == (2, line)
    assert reason in caught.value.reason


# labkit --------------------------------------------------------------------


@pytest.mark.parametrize(("line", "network"), GOOD)
def test_labkit_reads_a_good_line(line: str, network: str | None) -> None:
    """labkit's check keeps the entry a good line holds, and skips a blank one."""
    assert threatlist.parse_threat_list(_text(line)) == _expected(network)


@pytest.mark.parametrize(("line", "reason"), BAD)
def test_labkit_refuses_a_bad_line_naming_it(line: str, reason: str) -> None:
    """labkit's check names the bad line, what is wrong and what is allowed."""
    with pytest.raises(ThreatListError) as caught:
        threatlist.parse_threat_list(_text(line))

    message = str(caught.value)
    assert message.startswith(f"line 2 of the threat list is {line!r}: ")
    assert reason in message
    assert "one IPv4 address or CIDR range per line" in message
    assert message.endswith("Fix or remove that line and try again")


@pytest.mark.parametrize(("line", "reason"), BAD)
def test_upload_text_with_a_bad_address_is_refused(line: str, reason: str) -> None:
    """The text labkit would upload is checked by the same rule, by line."""
    with pytest.raises(ThreatListError) as caught:
        threatlist.format_threat_list([FIRST, line])

    message = str(caught.value)
    assert message.startswith(f"line 2 of the threat list is {line.strip()!r}: ")
    assert reason in message
    assert "address 2 of the addresses given" in message


# The local cloud --------------------------------------------------------------


@pytest.fixture
def detector_id() -> Iterator[str]:
    """A fresh local GuardDuty detector, with an empty local S3."""
    store.reset()
    get_backend("s3").reset()
    yield _call("CreateDetector", Enable=True)["DetectorId"]
    store.reset()
    get_backend("s3").reset()


def _call(operation: str, **params: Any) -> dict[str, Any]:
    handler = OPERATIONS[("guardduty", operation)]
    return dict(handler(Call("guardduty", operation, params, ACCOUNT, REGION)))


def _activate(detector_id: str, text: str) -> tuple[str, str | None]:
    """Upload ``text`` as a threat list, activate it; return its status, error."""
    s3 = get_backend("s3")[ACCOUNT]["aws"]
    s3.create_bucket("lists", REGION)
    s3.put_object("lists", "threats.txt", text.encode())
    set_id = _call(
        "CreateThreatIntelSet",
        DetectorId=detector_id,
        Name="lab-threats",
        Format="TXT",
        Location="https://s3.amazonaws.com/lists/threats.txt",
        Activate=True,
    )["ThreatIntelSetId"]
    store.refresh(datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    got = _call("GetThreatIntelSet", DetectorId=detector_id, ThreatIntelSetId=set_id)
    listed = store.get_set(
        store.get_detector(ACCOUNT, REGION, detector_id), "threat", set_id
    )
    return str(got["Status"]), listed.error


@pytest.mark.parametrize(("line", "network"), GOOD)
def test_local_cloud_reads_a_good_line(
    detector_id: str, line: str, network: str | None
) -> None:
    """A list of good lines turns ACTIVE and matches exactly its entries."""
    assert _activate(detector_id, _text(line)) == ("ACTIVE", None)

    networks = store.active_threat_networks(ACCOUNT, REGION)
    assert [n for n, _, _ in networks] == _expected(network)


@pytest.mark.parametrize(("line", "reason"), BAD)
def test_local_cloud_marks_a_bad_line_error(
    detector_id: str, line: str, reason: str
) -> None:
    """A list holding a bad line cannot be read: the set is ERROR, naming line 2."""
    status, error = _activate(detector_id, _text(line))

    assert status == "ERROR"
    assert (error or "").startswith(f"line 2 {line!r} is not an IPv4 address")
    assert store.active_threat_networks(ACCOUNT, REGION) == []


@pytest.mark.parametrize(("line", "reason"), BAD)
def test_both_callers_word_the_rules_one_reason(
    detector_id: str, line: str, reason: str
) -> None:
    """labkit's message and the set's ERROR reason both give the rule's reason."""
    with pytest.raises(list_format.TxtLineError) as rule:
        list_format.read_txt_list(_text(line))
    with pytest.raises(ThreatListError) as refused:
        threatlist.parse_threat_list(_text(line))

    said = rule.value.reason
    assert f"line 2 of the threat list is {line!r}: {said}; " in str(refused.value)
    status, error = _activate(detector_id, _text(line))
    assert status == "ERROR"
    entry = line.strip(" \t\r")
    assert error == f"line 2 {entry!r} is not an IPv4 address or CIDR range: {said}"


def test_local_cloud_reads_what_labkit_writes(detector_id: str) -> None:
    """Every good entry, written by labkit as one list, is read back in order."""
    entries = [line for line, network in GOOD if network]
    text = threatlist.format_threat_list(entries)

    assert _activate(detector_id, text) == ("ACTIVE", None)
    networks = [n for n, _, _ in store.active_threat_networks(ACCOUNT, REGION)]
    assert networks == [ipaddress.IPv4Network(n) for _, n in GOOD if n]
