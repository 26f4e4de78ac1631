"""GuardDuty's IP lists in the local cloud: threat intel sets and trusted IP sets.

A set names a file in S3 by URL. The file is read from the local cloud's own
S3 (moto's backend, in-process) when the set is activated. Only the TXT format
is understood, as GuardDuty's user guide defines it (see :func:`parse_txt`);
a file that does not follow it makes the set ``ERROR``, as in GuardDuty.
The rule and the reading of a set's URL are ``labkit.list_format``'s, shared
with labkit's own check before upload.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

from moto.utilities.utils import get_partition

from labkit.list_format import TxtLineError, parse_location, read_txt_list


@dataclass
class ListSet:
    """A threat intel set (``kind="threat"``) or trusted IP set (``kind="ip"``)."""

    set_id: str
    kind: str
    name: str
    format: str
    location: str
    status: str
    tags: dict[str, str] = field(default_factory=dict)
    expected_bucket_owner: str | None = None
    networks: list[ipaddress.IPv4Network] = field(default_factory=list)
    error: str | None = None
    sha256: str | None = None


def _read_object(
    account_id: str, region: str, location: str, owner: str | None
) -> bytes:
    from moto.backends import get_backend
    from moto.s3.exceptions import S3ClientError

    bucket_name, key_name = parse_location(location)
    backend = get_backend("s3")[account_id][get_partition(region)]
    try:
        bucket = backend.get_bucket(bucket_name)
        found = backend.get_object(bucket_name, key_name)
    except S3ClientError as error:
        raise LookupError(
            f"cannot read s3://{bucket_name}/{key_name}: {error}"
        ) from error
    if owner and bucket.account_id != owner:
        raise LookupError(f"bucket {bucket_name!r} is not owned by {owner!r}")
    if found is None:
        raise LookupError(f"no object s3://{bucket_name}/{key_name}")
    return bytes(found.value)


def parse_txt(text: str) -> list[ipaddress.IPv4Network]:
    """Parse a TXT list by GuardDuty's List formats rule, read strictly.

    The rule is :func:`labkit.list_format.read_txt_list`, the one labkit
    also checks lists by before they are uploaded: one IPv4 address or CIDR
    range per line, blank lines and comment lines (``#`` first) skipped.

    Raises:
        ValueError: naming the first line that is none of these, as the
            set's ERROR reason.
    """
    try:
        return read_txt_list(text)
    except TxtLineError as bad:
        raise ValueError(
            f"line {bad.number} {bad.entry!r} is not an IPv4 address or CIDR "
            f"range: {bad.reason}"
        ) from None


def load(listed: ListSet, account_id: str, region: str) -> None:
    """Read the set's file and make it ACTIVE, or ERROR with the reason why."""
    if listed.format != "TXT":
        listed.status, listed.networks = "ERROR", []
        listed.error = (
            f"format {listed.format!r} is not supported: the local cloud reads "
            "TXT lists only (one IPv4 address or CIDR range per line)"
        )
        return
    try:
        owner = listed.expected_bucket_owner
        data = _read_object(account_id, region, listed.location, owner)
        listed.networks = parse_txt(data.decode("utf-8"))
    except (LookupError, ValueError, UnicodeDecodeError) as error:
        listed.status, listed.networks, listed.error = "ERROR", [], str(error)
        return
    listed.status, listed.error = "ACTIVE", None
    listed.sha256 = hashlib.sha256(data).hexdigest()
