"""GuardDuty custom threat lists in the TXT format: check, write, upload.

The TXT format holds one IPv4 address or CIDR range per line. GuardDuty
reads the list from S3 and marks a set it cannot read as ``ERROR`` long
after the upload, so labkit refuses a malformed line before uploading,
naming the line.
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
# "1.2.3.4/255.0.0.0" and bare integers, which GuardDuty's TXT format does not.
_ENTRY = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?$")

_ALLOWED = (
    "GuardDuty's TXT format allows one IPv4 address or CIDR range per line "
    "(such as '198.51.100.7' or '205.0.0.0/8'), blank lines and lines "
    "starting with '#'"
)


def parse_threat_list(text: str) -> list[ipaddress.IPv4Network]:
    """Parse a threat list in GuardDuty's TXT format.

    Blank lines and lines starting with ``#`` are skipped; spaces around an
    entry are ignored. A single address becomes a /32 network.

    Args:
        text: The whole list.

    Returns:
        The addresses and ranges, in the order of the list.

    Raises:
        ThreatListError: A line is neither an IPv4 address, a CIDR range, a
            comment nor blank; the message names the line.
    """
    networks = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        try:
            networks.append(_parse_entry(entry))
        except ValueError as exc:
            raise ThreatListError(
                f"line {number} of the threat list is {line!r}: {exc}; "
                f"{_ALLOWED}. Fix or remove that line and try again"
            ) from None
    return networks


def format_threat_list(addresses: Iterable[str], *, comment: str) -> str:
    """Write addresses as a GuardDuty TXT threat list.

    Args:
        addresses: IPv4 addresses or CIDR ranges.
        comment: Text for the ``#`` header, one comment line per line of it.

    Returns:
        The list's text: the header, then one entry per line, ending in a
        newline.

    Raises:
        ThreatListError: An address is not an IPv4 address or CIDR range.
    """
    lines = [f"# {part}".rstrip() for part in comment.splitlines()]
    for position, address in enumerate(addresses, start=1):
        try:
            network = _parse_entry(str(address).strip())
        except ValueError as exc:
            raise ThreatListError(
                f"address {position} for the threat list is {address!r}: {exc}; "
                f"{_ALLOWED}. Pass only IPv4 addresses or CIDR ranges"
            ) from None
        lines.append(_entry_text(network))
    return "\n".join(lines) + "\n"


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

    The list is checked before anything is uploaded. A new ThreatIntelSet is
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
        ThreatListError: An address is malformed, the list is empty, or the
            existing set with this name is not in the TXT format.
    """
    if not addresses:
        raise ThreatListError(
            f"threat list {name!r} has no addresses; GuardDuty would match "
            "nothing. Pass at least one address, such as the attacker's Elastic IP"
        )
    body = format_threat_list(addresses, comment=f"{name}: uploaded by labkit")
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
    if not _ENTRY.match(entry):
        raise ValueError("it is not a dotted IPv4 address or address/prefix")
    try:
        return ipaddress.IPv4Network(entry)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def _entry_text(network: ipaddress.IPv4Network) -> str:
    if network.prefixlen == 32:
        return str(network.network_address)
    return network.with_prefixlen
