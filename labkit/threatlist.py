"""GuardDuty custom threat lists in the TXT format: check, write, upload.

GuardDuty's user guide (Working with trusted IP lists and threat lists, List
formats) defines the TXT format as IP addresses and CIDR ranges, one per
line, and gives ``54.20.175.217`` and ``205.0.0.0/8`` as its sample. labkit
reads that strictly, as the local cloud does (``labkit.local.guardduty_sets``;
``tests/test_threatlist_lines.py`` runs one table of lines through both):

- a line holds one IPv4 address (dotted quad) or CIDR range
  (address/prefix length, 0 to 32, with no bits set past the prefix);
- blank lines and comment lines (``#`` first) are skipped, and spaces or
  tabs around an entry ignored;
- anything else is refused: a comment after an entry, a netmask such as
  ``1.2.3.4/255.0.0.0``, ``10.0.0.1/8``, IPv6, ``IP<TAB>count``.

GuardDuty reads the list from S3 and marks a set it cannot read as
``ERROR`` long after the upload, so labkit checks the very text it uploads
and refuses a malformed line first, naming it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

from labkit.errors import ThreatListError

logger = logging.getLogger(__name__)

# Dotted quad with an optional prefix length: ipaddress alone would also take
# "1.2.3.4/255.0.0.0" and "1.2.3.4/0.255.255.255", which are not CIDR.
_ENTRY = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?")

_ALLOWED = (
    "GuardDuty's TXT format allows one IPv4 address or CIDR range per line, "
    "such as '198.51.100.7' or '205.0.0.0/8' (no bits set past the prefix), "
    "blank lines, and comment lines that start with '#'"
)
# The next step when a line written from a list of addresses is refused.
_FIX_ADDRESS = (
    "Line {number} is address {number} of the addresses given: pass only "
    "IPv4 addresses or CIDR ranges, and try again"
)


def parse_threat_list(text: str) -> list[ipaddress.IPv4Network]:
    """Parse a threat list in GuardDuty's TXT format (see the module's rule).

    Blank lines and comment lines (``#`` first) are skipped; spaces and tabs
    around an entry are ignored. A single address becomes a /32 network.

    Args:
        text: The whole list.

    Returns:
        The addresses and ranges, in the order of the list.

    Raises:
        ThreatListError: A line is neither an IPv4 address, a CIDR range,
            a comment nor blank; the message names the line.
    """
    return _check_lines(
        text, "the threat list", "Fix or remove that line and try again"
    )


def format_threat_list(addresses: Iterable[str]) -> str:
    """Write addresses as a GuardDuty TXT threat list, one entry per line.

    Only entries are written, no comment lines.

    Args:
        addresses: IPv4 addresses or CIDR ranges.

    Returns:
        The list's text, ending in a newline, checked line by line.

    Raises:
        ThreatListError: An address is empty, spans lines, or is not an IPv4
            address or CIDR range; the message names its line.
    """
    text = _write_lines(addresses, "the threat list")
    _check_lines(text, "the threat list", _FIX_ADDRESS)
    return text


def _write_lines(addresses: Iterable[str], where: str) -> str:
    lines = []
    for position, address in enumerate(addresses, start=1):
        entry = str(address).strip()
        if not entry or len(entry.splitlines()) != 1:
            problem = "it is empty" if not entry else "it spans several lines"
            raise ThreatListError(
                f"address {position} for {where} is {address!r}: {problem}; "
                f"{_ALLOWED}. Pass one address or range per item and try again"
            )
        lines.append(entry)
    return "\n".join(lines) + "\n"


def _check_lines(text: str, where: str, fix: str) -> list[ipaddress.IPv4Network]:
    """Check every line of ``text``; ``fix`` is the next step, {number} the line."""
    networks = []
    for number, line in enumerate(text.split("\n"), start=1):
        entry = line.strip(" \t\r")
        if not entry or entry.startswith("#"):
            continue
        try:
            networks.append(_parse_entry(entry))
        except ValueError as exc:
            raise ThreatListError(
                f"line {number} of {where} is {line!r}: {exc}; {_ALLOWED}. "
                + fix.format(number=number)
            ) from None
    return networks


def upload_threat_list(
    s3: Any,
    guardduty: Any,
    *,
    detector_id: str,
    bucket: str,
    key: str,
    addresses: list[str],
    name: str,
) -> str:
    """Upload a threat list to S3 and make GuardDuty use it.

    The text to upload is checked line by line, by the rule of this module,
    before anything is uploaded. A new ThreatIntelSet is
    created and activated; if the detector already has a set with this name,
    that set is pointed at the new object and activated again, which also
    makes GuardDuty read the list afresh.

    Args:
        s3: A boto3 S3 client.
        guardduty: A boto3 GuardDuty client.
        detector_id: The detector that uses the list.
        bucket: The bucket to hold the list.
        key: The object key of the list.
        addresses: IPv4 addresses or CIDR ranges; at least one.
        name: The ThreatIntelSet's name.

    Returns:
        The ThreatIntelSet's id.

    Raises:
        ThreatListError: A line of the text to upload is malformed (the
            message names it), the list is empty, or the existing set with
            this name is not in the TXT format.
    """
    if not addresses:
        raise ThreatListError(
            f"threat list {name!r} has no addresses; GuardDuty would match "
            "nothing. Pass at least one address, such as the attacker's Elastic IP"
        )
    # The check runs on the very text that is uploaded.
    body = _write_lines(addresses, f"threat list {name!r}")
    _check_lines(body, f"threat list {name!r}", _FIX_ADDRESS)
    existing = _find_set(guardduty, detector_id, name)
    if existing is not None and existing[1].get("Format") != "TXT":
        raise ThreatListError(
            f"ThreatIntelSet {name!r} ({existing[0]}) has format "
            f"{existing[1].get('Format')!r}, not 'TXT', and a set's format cannot "
            "change; delete it (delete_threat_intel_set) or choose another name"
        )

    s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="text/plain")
    logger.info(
        "uploaded threat list s3://%s/%s (%d entries)", bucket, key, len(addresses)
    )

    location = f"https://s3.amazonaws.com/{bucket}/{key}"
    if existing is None:
        return _create_set(guardduty, detector_id, name, location)
    set_id = existing[0]
    guardduty.update_threat_intel_set(
        DetectorId=detector_id,
        ThreatIntelSetId=set_id,
        Location=location,
        Activate=True,
    )
    logger.info(
        "updated and activated ThreatIntelSet %s (%s) at %s", name, set_id, location
    )
    return set_id


def _create_set(guardduty: Any, detector_id: str, name: str, location: str) -> str:
    response = guardduty.create_threat_intel_set(
        DetectorId=detector_id,
        Name=name,
        Format="TXT",
        Location=location,
        Activate=True,
    )
    set_id = str(response["ThreatIntelSetId"])
    logger.info(
        "created and activated ThreatIntelSet %s (%s) at %s", name, set_id, location
    )
    return set_id


def _find_set(
    guardduty: Any, detector_id: str, name: str
) -> tuple[str, dict[str, Any]] | None:
    for set_id in _list_set_ids(guardduty, detector_id):
        found = guardduty.get_threat_intel_set(
            DetectorId=detector_id, ThreatIntelSetId=set_id
        )
        if found.get("Name") == name:
            return set_id, found
    return None


def _list_set_ids(guardduty: Any, detector_id: str) -> Iterator[str]:
    request: dict[str, Any] = {"DetectorId": detector_id}
    while True:
        page = guardduty.list_threat_intel_sets(**request)
        yield from page.get("ThreatIntelSetIds", [])
        token = page.get("NextToken")
        if not token:
            return
        request["NextToken"] = token


def _parse_entry(entry: str) -> ipaddress.IPv4Network:
    """Parse one address or range, raising ValueError that says what is wrong."""
    if not _ENTRY.fullmatch(entry):
        raise ValueError("it is not a dotted IPv4 address or address/prefix")
    try:
        return ipaddress.IPv4Network(entry)
    except ValueError as exc:
        if "has host bits set" not in str(exc):
            raise ValueError(str(exc)) from None
        network = ipaddress.IPv4Network(entry, strict=False)
        raise ValueError(
            f"it has host bits set past its prefix (the range is {network})"
        ) from None
