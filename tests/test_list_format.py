"""Tests for labkit.list_format: the one TXT rule, and reading a set's URL."""

from __future__ import annotations

import copy
import ipaddress
import pickle

import pytest

from labkit.list_format import TxtLineError, parse_location, read_txt_list


def test_read_txt_list_keeps_entries_in_order() -> None:
    """Entries become networks in order; comments, blanks and CRLF hold none."""
    text = "# lab list\r\n\n 198.51.100.7\t\r\n  # later\n205.0.0.0/8"

    assert read_txt_list(text) == [
        ipaddress.IPv4Network("198.51.100.7/32"),
        ipaddress.IPv4Network("205.0.0.0/8"),
    ]


def test_txt_line_error_carries_number_line_and_reason() -> None:
    """The refusal is a ValueError with the line's number, text and reason."""
    with pytest.raises(TxtLineError) as caught:
        read_txt_list("198.51.100.7\n\n 10.0.0.1/8 \n")

    bad = caught.value
    assert isinstance(bad, ValueError)
    assert (bad.number, bad.line, bad.entry) == (3, " 10.0.0.1/8 ", "10.0.0.1/8")
    assert (
        bad.reason == "it has host bits set past its prefix (the range is 10.0.0.0/8)"
    )
    assert str(bad) == f"line 3 ' 10.0.0.1/8 ': {bad.reason}"


def test_txt_line_error_survives_copy_and_pickle() -> None:
    """The error keeps its fields through copy and pickle (worker processes)."""
    bad = TxtLineError(2, "x", "it is not a dotted IPv4 address or address/prefix")

    for again in (copy.copy(bad), pickle.loads(pickle.dumps(bad))):
        assert (again.number, again.line, again.reason) == (bad.number, "x", bad.reason)
        assert str(again) == str(bad)


@pytest.mark.parametrize(
    ("location", "bucket", "key"),
    [
        (
            "https://s3.amazonaws.com/lab-lists/threatlist/a.txt",
            "lab-lists",
            "threatlist/a.txt",
        ),
        ("https://s3.eu-west-2.amazonaws.com/lab-lists/a.txt", "lab-lists", "a.txt"),
        ("https://s3-eu-west-2.amazonaws.com/lab-lists/a.txt", "lab-lists", "a.txt"),
        (
            "https://lab-lists.s3.amazonaws.com/threatlist/a.txt",
            "lab-lists",
            "threatlist/a.txt",
        ),
        ("https://lab-lists.s3.eu-west-2.amazonaws.com/a.txt", "lab-lists", "a.txt"),
        ("https://lab.lists.s3.eu-west-2.amazonaws.com/a.txt", "lab.lists", "a.txt"),
        (
            "https://s3.amazonaws.com/lab-lists/my%20list.txt",
            "lab-lists",
            "my list.txt",
        ),
        ("s3://lab-lists/threatlist/a.txt", "lab-lists", "threatlist/a.txt"),
    ],
)
def test_parse_location_reads_the_s3_url_forms(
    location: str, bucket: str, key: str
) -> None:
    """Path-style, regional and virtual-hosted URLs, and s3://, give bucket and key."""
    assert parse_location(location) == (bucket, key)


@pytest.mark.parametrize(
    "location",
    [
        "http://s3.amazonaws.com/lab-lists/a.txt",
        "https://example.com/lab-lists/a.txt",
        "https://s3.amazonaws.com/lab-lists",
        "https://s3.amazonaws.com/",
        "https://lab-lists.s3.amazonaws.com/",
        "s3://lab-lists",
        "lab-lists/a.txt",
        "",
    ],
)
def test_parse_location_refuses_what_is_not_an_object_url(location: str) -> None:
    """A URL that names no S3 object, bucket and key, is refused."""
    with pytest.raises(ValueError, match="S3 object URL|no bucket and key"):
        parse_location(location)
