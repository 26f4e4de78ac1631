"""GuardDuty's TXT list format and set locations: one rule for both sides.

GuardDuty's user guide (Working with trusted IP lists and threat lists, List
formats) defines the TXT format as IP addresses and CIDR ranges, one per
line, and gives ``54.20.175.217`` and ``205.0.0.0/8`` as its sample; the
issue that specifies the lab has the local cloud read "TXT format with CIDRs
and comment lines". :func:`read_txt_list` is that rule, read strictly:

- a line holds one IPv4 address (dotted quad) or CIDR range
  (address/prefix length, 0 to 32, with no bits set past the prefix);
- blank lines and comment lines (``#`` first) are skipped, and spaces, tabs
  or a carriage return around an entry ignored;
- anything else is refused: a comment after an entry, a netmask such as
  ``1.2.3.4/255.0.0.0``, ``10.0.0.1/8``, IPv6, ``IP<TAB>count``.

labkit checks a list by it before upload (``labkit.threatlist``) and the
local cloud reads a set's file by it (``labkit.local.guardduty_sets``); each
words its own message from the :class:`TxtLineError` raised here. A set
names its file by an S3 URL, its ``Location``: :func:`parse_location` splits
it as GuardDuty does. Nothing here calls AWS or imports the rest of labkit.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote, urlparse

# Around an entry; "\n" alone ends a line, so CRLF files read the same.
_BLANKS = " \t\r"
# Dotted quad with an optional prefix length: ipaddress alone would also take
# "1.2.3.4/255.0.0.0" and "1.2.3.4/0.255.255.255", which are not CIDR.
_ENTRY = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?")
# s3.amazonaws.com, s3.<region>.amazonaws.com, s3-<region>.amazonaws.com,
# each with an optional "<bucket>." in front (virtual-hosted style).
_S3_HOST = re.compile(r"^(?:(?P<bucket>.+)\.)?s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com$")


class TxtLineError(ValueError):
    """A line of a TXT list is neither an entry, a comment line nor blank.

    Attributes:
        number: the line's number, counted from 1.
        line: the line as the text has it, without its end of line.
        reason: what is wrong with it, as a clause ("it is not ...").
    """

    def __init__(self, number: int, line: str, reason: str) -> None:
        super().__init__(number, line, reason)
        self.number = number
        self.line = line
        self.reason = reason

    @property
    def entry(self) -> str:
        """The line without the blanks around it."""
        return self.line.strip(_BLANKS)

    def __str__(self) -> str:
        return f"line {self.number} {self.line!r}: {self.reason}"


def read_txt_list(text: str) -> list[ipaddress.IPv4Network]:
    """Read a TXT list by the module's rule; a single address becomes a /32.

    Args:
        text: the whole list.

    Returns:
        The addresses and ranges, in the order of the list.

    Raises:
        TxtLineError: the first line that is neither an entry, a comment
            line nor blank, with its number and what is wrong.
    """
    networks = []
    for number, line in enumerate(text.split("\n"), start=1):
        entry = line.strip(_BLANKS)
        if not entry or entry.startswith("#"):
            continue
        try:
            networks.append(_read_entry(entry))
        except ValueError as exc:
            raise TxtLineError(number, line, str(exc)) from None
    return networks


def _read_entry(entry: str) -> ipaddress.IPv4Network:
    """Read one address or range, raising ValueError that says what is wrong."""
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


def parse_location(location: str) -> tuple[str, str]:
    """Split a set's S3 object URL into its bucket and key.

    The forms read are ``s3://bucket/key`` and the ``https://`` ones:
    path style (``s3.amazonaws.com/bucket/key``, also with a region as
    ``s3.<region>.`` or ``s3-<region>.``) and virtual-hosted style
    (``bucket.s3.amazonaws.com/key``, also with a region). The key is
    URL-decoded.

    Args:
        location: the URL, as a set's ``Location`` holds it.

    Returns:
        ``(bucket, key)``.

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
