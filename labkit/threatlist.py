"""GuardDuty custom threat lists in the TXT format: check, write, find, upload.

The TXT rule is ``labkit.list_format``'s, the one the local cloud reads a
set's file by (``tests/test_threatlist_lines.py`` runs one table of lines
through both): one IPv4 address or CIDR range per line, blank lines and
comment lines (``#`` first) skipped, anything else refused.

GuardDuty reads the list from S3 and marks a set it cannot read as
``ERROR`` long after the upload, so labkit checks the very text it uploads
and refuses a malformed line first, naming it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from labkit.errors import ThreatListError
from labkit.list_format import TxtLineError, read_txt_list

logger = logging.getLogger(__name__)

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
    """Parse a threat list in GuardDuty's TXT format (see ``labkit.list_format``).

    Blank lines and comment lines (``#`` first) are skipped; spaces, tabs and
    a carriage return around an entry are ignored. A single address becomes
    a /32 network.

    Args:
        text: The whole list.

    Returns:
        The addresses and ranges, in the order of the list.

    Raises:
        ThreatListError: A line is neither an IPv4 address, a CIDR range,
            a comment line nor blank; the message names the line.
    """
    return _check_text(text, "the threat list", "Fix or remove that line and try again")


def format_threat_list(addresses: Iterable[str], *, name: str | None = None) -> str:
    """Write addresses as a GuardDuty TXT threat list, one entry per line.

    Only entries are written: an address that is empty, spans lines or
    starts with ``#`` (which would make a comment line) is refused, so every
    line of the text is one address or range.

    Args:
        addresses: IPv4 addresses or CIDR ranges.
        name: The list's name, for the messages (``"the threat list"``
            without it).

    Returns:
        The list's text, each line ending in a newline, checked line by line
        (empty when ``addresses`` is).

    Raises:
        ThreatListError: An address is empty, spans lines, starts with
            ``#``, or is not an IPv4 address or CIDR range; the message
            names its line.
    """
    where = "the threat list" if name is None else f"threat list {name!r}"
    text = _write_lines(addresses, where)
    _check_text(text, where, _FIX_ADDRESS)
    return text


def _write_lines(addresses: Iterable[str], where: str) -> str:
    lines = []
    for position, address in enumerate(addresses, start=1):
        entry = str(address).strip()
        problem = None
        if not entry:
            problem = "it is empty"
        elif len(entry.splitlines()) != 1:
            problem = "it spans several lines"
        elif entry.startswith("#"):
            problem = "it starts with '#', so it would be a comment line"
        if problem is not None:
            raise ThreatListError(
                f"address {position} for {where} is {address!r}: {problem}; "
                f"{_ALLOWED}. Pass one address or range per item and try again"
            )
        lines.append(f"{entry}\n")
    return "".join(lines)


def _check_text(text: str, where: str, fix: str) -> list[ipaddress.IPv4Network]:
    """Check ``text`` by the TXT rule; ``fix`` is the next step, {number} the line."""
    try:
        return read_txt_list(text)
    except TxtLineError as bad:
        raise ThreatListError(
            f"line {bad.number} of {where} is {bad.line!r}: {bad.reason}; "
            f"{_ALLOWED}. " + fix.format(number=bad.number)
        ) from None


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

    The text to upload is written by :func:`format_threat_list`, and so
    checked line by line by the TXT rule, before anything is uploaded. A new
    ThreatIntelSet is created and activated; if the detector already has a set with this name,
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
        ThreatListError: An address is malformed or would not be one entry
            (the message names it), there are none, or the existing set with
            this name is not in the TXT format.
    """
    # The check runs on the very text that is uploaded.
    body = format_threat_list(addresses, name=name)
    entries = len(body.splitlines())
    if not entries:
        raise ThreatListError(
            f"threat list {name!r} has no addresses; GuardDuty would match "
            "nothing. Pass at least one address, such as the attacker's Elastic IP"
        )
    existing = find_threat_intel_set(guardduty, detector_id, name)
    if existing is not None and existing[1].get("Format") != "TXT":
        raise ThreatListError(
            f"ThreatIntelSet {name!r} ({existing[0]}) has format "
            f"{existing[1].get('Format')!r}, not 'TXT', and a set's format cannot "
            "change; delete it (delete_threat_intel_set) or choose another name"
        )

    s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="text/plain")
    logger.info("uploaded threat list s3://%s/%s (%d entries)", bucket, key, entries)

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


def find_threat_intel_set(
    guardduty: Any, detector_id: str, name: str
) -> tuple[str, dict[str, Any]] | None:
    """Find the detector's threat intel set with this name.

    Every page of ListThreatIntelSets is read (by its NextToken), and each
    set is described with GetThreatIntelSet until one has the name.

    Args:
        guardduty: A boto3 GuardDuty client.
        detector_id: The detector whose sets are searched.
        name: The set's name.

    Returns:
        ``(set_id, description)``, the description as GetThreatIntelSet
        returns it (``Name``, ``Format``, ``Location``, ``Status``...), or
        None when no set has the name.
    """
    for set_id in _list_set_ids(guardduty, detector_id):
        found = guardduty.get_threat_intel_set(
            DetectorId=detector_id, ThreatIntelSetId=set_id
        )
        if found.get("Name") == name:
            return str(set_id), dict(found)
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
