"""GuardDuty's IP lists in the local cloud: threat intel sets and trusted IP sets.

A set names a file in S3 by URL. The file is read from the local cloud's own
S3 (moto's backend, in-process) when the set is activated. Only the TXT format
is understood, as GuardDuty's user guide defines it (see :func:`parse_txt`);
a file that does not follow it makes the set ``ERROR``, as in GuardDuty.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

from moto.utilities.utils import get_partition


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


_S3_HOST = re.compile(r"^(?:(?P<bucket>.+)\.)?s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com$")


def parse_location(location: str) -> tuple[str, str]:
    """Split an S3 object URL (``https://`` or ``s3://`` form) into bucket, key.

    Raises:
        ValueError: the location is not an S3 object URL.
    """
    url = urlparse(location)
    if url.scheme == "s3" and url.netloc and url.path.strip("/"):
        return url.netloc, unquote(url.path.lstrip("/"))
    host = _S3_HOST.match(url.hostname or "") if url.scheme == "https" else None
    if host is None:
        raise ValueError(f"not an S3 object URL: {location!r}")
    path = unquote(url.path.lstrip("/"))
    bucket = host.group("bucket")
    if bucket is None:
        bucket, _, path = path.partition("/")
    if not bucket or not path:
        raise ValueError(f"no bucket and key in {location!r}")
    return bucket, path


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


# A dotted quad, and a prefix length if a range: not the netmask forms
# ("/255.0.0.0") that Python's ipaddress would also read.
_TXT_ENTRY = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?")


def parse_txt(text: str) -> list[ipaddress.IPv4Network]:
    """Parse a TXT list: IPv4 addresses and CIDR ranges, one per line.

    This is the List formats rule of GuardDuty's user guide, read strictly
    (the same rule as ``labkit.threatlist``, which checks lists before they
    are uploaded): a range has a prefix length from 0 to 32 and no bits set
    past it; blank lines and comment lines (``#`` first) are skipped and
    spaces or tabs around an entry ignored. A comment after an entry, a
    netmask, IPv6 or any other text is not part of the format.

    Raises:
        ValueError: naming the first line that is none of these.
    """
    networks = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        if _TXT_ENTRY.fullmatch(line) is None:
            raise ValueError(
                f"line {number} {line!r} is not an IPv4 address or CIDR range"
            )
        try:
            networks.append(ipaddress.IPv4Network(line))
        except ValueError as error:
            raise ValueError(
                f"line {number} {line!r} is not an IPv4 address or CIDR range: {error}"
            ) from error
    return networks


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
